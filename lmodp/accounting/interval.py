r"""An ε interval for the ``"l2"`` geometry: a proven upper bound and a lower bound that is achieved.

DP-SGD releases a d-dimensional sum with L2 sensitivity C and i.i.d. noise per coordinate. For
non-Gaussian noise no tight dominating pair is known, so instead of a point value lmodp reports

* ``upper``: the RDP bound with the dimension-free L2 argument
  (``lmodp.epsilon(..., geometry="l2", accountant="rdp")``); for Gaussian noise the exact PLD
  value instead (rotation invariance makes the scalar pair with Δ = C tight);
* ``lower``: the largest, over n in ``dimensions``, of the ε of a concrete pair of neighbours:
  the shift v = (C/√n, …, C/√n, 0, …) of norm C. Every such pair is a possible worst case, so
  the true ε of the mechanism is at least its ε.

In the ``"scalar"`` geometry the worst pair is known (the shift by Δ), and the interval is the
PLD accountant's bound above the ε of that shift below (n = 1 only).

Write λ(y) = log f(y − s) − log f(y) with s = C/√n. The loss of the n-coordinate shift is the sum
Λ of n i.i.d. copies of λ: the pair (F_v, F) is the n-fold composition of the scalar pair
(f(· − s), f), a *symmetric* pair (the law of λ under f is the mirror of its law under
f(· − s)), and Poisson subsampling acts on it through the likelihood ratio only:

* remove: P = (1 − q)F + qF_v, Q = F, L = log(1 − q + q e^Λ); the law of L under P puts
  q·μ(λ) + (1 − q)·μ(−λ) at log(1 − q + q e^λ), μ the law of Λ under F_v;
* add: P = F, Q = (1 − q)F + qF_v, L = −log(1 − q + q e^{−λ}) with λ ~ μ.

Every law here is *dominated* by the true one (its hockey-stick curve is below the true curve
at every x ≥ 0; :mod:`lmodp.accounting.pld.optimistic`), and every step keeps that order:

1. the scalar pair: its exact curve (closed-form level sets,
   :mod:`lmodp.accounting.pld.hockey_stick`) on a grid with the largest loss on a grid point,
   turned into a symmetric genuine law below it (F5 there);
2. the n-fold law by repeated squaring (FFT convolution, exact on the grid), re-gridded after
   each squaring onto a grid of about ``_POINTS_PER_STD`` points per standard deviation of Λ,
   again by a symmetric genuine law below the curve: by Blackwell's theorem each of these is a
   post-processing of the true pair, so compositions and subsampling keep the order;
3. the subsampled law of L, put on the grid of ``value_discretization_interval`` by a law
   below its curve (F3), composed over the steps (F4) with optimistic truncation
   (:func:`lmodp.accounting.pld.compose.self_compose`). An atom of L between grid points must be
   moved down to one (up to a grid step per composition); where the per-step law has an atom
   heavier than 10⁻³ (Laplace noise on few coordinates) the grid is ten times finer; where the
   composed window would exceed 2¹⁸ points (large ε) it is coarser by a power of two.

Each re-gridding costs second order in its grid step (an atom on a grid point costs nothing),
so n up to 10⁶ is cheap (about 20 squarings of ~10⁵-point laws) and the lower end approaches
the d → ∞ limit (the Gaussian with the same Fisher information, for noises whose l2 sup is that
limit). Rounding of the closed-form probabilities and of the FFTs is not bounded here (FFT
outputs below 1e-15 of the largest entry, which are rounding noise, are set to 0, which only
lowers the curve).

"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from lmodp._validation import require_delta, require_positive, require_sample_rate, require_steps
from lmodp.accounting.api import epsilon as rdp_epsilon
from lmodp.accounting.pld import DEFAULT_INTERVAL, PLDAccountant
from lmodp.accounting.pld.compose import DEFAULT_TAIL_MASS, self_compose, window_length
from lmodp.accounting.pld.discrete import DiscretePLD
from lmodp.accounting.pld.hockey_stick import DIRECTIONS, hockey_stick_curve, loss_range, noise_model
from lmodp.accounting.pld.optimistic import curve_of_atoms, curve_of_hockey_stick, law_below, symmetric_law_below
from lmodp.accounting.spec import RunSpec, run_spec
from lmodp.mechanisms import Mechanism, family_of

DEFAULT_DIMENSIONS = (1, 4, 64, 1024, 2**20)
# Grid of the n-fold law: about this many points per standard deviation of Λ.
_POINTS_PER_STD = 1024
# Grid of the one-coordinate law: the largest loss λ_max is this many grid steps.
_COORDINATE_POINTS = 4096
# A per-step law with an atom heavier than this is put on a grid ten times finer.
_ATOM_SHARE = 1e-3
# Largest window (grid points) of the composition over the steps; the grid coarsens beyond.
_MAX_WINDOW = 2**18
# Truncation mass of the composition, as a share of δ (when below the default).
_TRUNCATION_SHARE = 1e-3
# Bin width (grid points) of the moment estimate that chooses the grid.
_ESTIMATE_BIN = 64
# FFT outputs below this share of the largest entry are rounding noise.
_FFT_FLOOR = 1e-15


@dataclass(frozen=True)
class EpsilonInterval:
    """``lower`` ≤ true ε ≤ ``upper`` for the given δ, with how each end was obtained."""

    lower: float
    upper: float
    delta: float
    upper_method: str
    lower_method: str
    worst_dimensions: int
    lower_by_dimensions: dict[int, float] = field(default_factory=dict)


def _coordinate_law(mechanism: Mechanism, shift: float) -> DiscretePLD:
    """Symmetric law below the scalar pair (f(· − shift), f), its largest loss on a grid point."""
    model = noise_model(mechanism, sensitivity=shift)
    top = loss_range(model, direction="remove", sample_rate=1.0)[1]
    curve = hockey_stick_curve(model, direction="remove", sample_rate=1.0, interval=top / _COORDINATE_POINTS)
    return symmetric_law_below(curve_of_hockey_stick(curve, first=-curve.offset))


def _positive_atoms(law: DiscretePLD) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices (> 0) and masses of the atoms of a symmetric law above loss 0."""
    index = law.offset + np.arange(law.probs.size)
    keep = (index > 0) & (law.probs > 0.0)
    return index[keep], law.probs[keep]


def _regrid(law: DiscretePLD, ratio: int) -> DiscretePLD:
    """The symmetric law below ``law`` on the grid ``ratio`` times coarser."""
    index, masses = _positive_atoms(law)
    if index.size == 0:
        return DiscretePLD(law.interval * ratio, 0, np.ones(1), 0.0, pessimistic=False)
    cells = (index - 1) // ratio
    excess = (index - cells * ratio) * law.interval
    coarse = law.interval * ratio
    return symmetric_law_below(curve_of_atoms(cells, np.minimum(excess, coarse), masses, coarse, first_cell=0))


def _convolve(first: DiscretePLD, second: DiscretePLD) -> DiscretePLD:
    """The law of the sum (same grid); FFT noise below ``_FFT_FLOOR`` of the peak set to 0."""
    out = signal.fftconvolve(first.probs, second.probs)
    out[out < _FFT_FLOOR * out.max()] = 0.0
    return DiscretePLD(first.interval, first.offset + second.offset, out, 0.0, pessimistic=False)


def _binned(probs: np.ndarray, width: int) -> np.ndarray:
    """Sums of ``width`` consecutive entries (a cheap coarse view for estimates)."""
    return np.add.reduceat(probs, np.arange(0, probs.size, width))


def _coarsening(law: DiscretePLD) -> int:
    """The power of two by which the grid may coarsen and keep about ``_POINTS_PER_STD`` points
    per standard deviation (estimated on bins of ``_ESTIMATE_BIN`` points; only speed and
    accuracy depend on it)."""
    bins = _binned(law.probs, _ESTIMATE_BIN)
    centre = (np.arange(bins.size) + 0.5) * _ESTIMATE_BIN
    mean = float(np.dot(bins, centre))
    std = math.sqrt(max(float(np.dot(bins, (centre - mean) ** 2)), 0.0))
    return 2 ** max(int(math.floor(math.log2(max(std, 1.0) / _POINTS_PER_STD))), 0)


def _window_estimate(step: DiscretePLD, steps: int, tail: float) -> int:
    """About the number of grid points :func:`self_compose` will use (on a binned copy)."""
    width = max(1, step.probs.size // 4096)
    coarse = DiscretePLD(step.interval * width, step.offset // width, _binned(step.probs, width), 0.0, pessimistic=False)
    return window_length(coarse, steps, tail_mass=tail) * width


def _square(law: DiscretePLD) -> DiscretePLD:
    total = _convolve(law, law)
    return _regrid(total, _coarsening(total))


def _combine(first: DiscretePLD, second: DiscretePLD) -> DiscretePLD:
    """The law of the sum of two symmetric laws on grids that differ by a power of two."""
    if first.interval > second.interval:
        first, second = second, first
    ratio = int(round(second.interval / first.interval))
    if ratio > 1:
        first = _regrid(first, ratio)
    total = _convolve(first, second)
    return _regrid(total, _coarsening(total))


def _product_law(mechanism: Mechanism, dimensions: int, sensitivity: float) -> DiscretePLD:
    """A symmetric law below the loss of the shift C/√n on n coordinates (binary powering)."""
    power = _coordinate_law(mechanism, sensitivity / math.sqrt(dimensions))
    result: DiscretePLD | None = None
    n = dimensions
    while True:
        if n & 1:
            result = power if result is None else _combine(result, power)
        n >>= 1
        if not n:
            return result
        power = _square(power)


def _subsampled_atoms(law: DiscretePLD, sample_rate: float, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """Losses and masses of the per-step law of L under P (see the module docstring)."""
    q = sample_rate
    lam = law.losses
    if direction == "remove":
        losses = np.log1p(q * np.expm1(lam))
        masses = q * law.probs + (1.0 - q) * law.probs[::-1]
    else:
        losses = -np.log1p(q * np.expm1(-lam))
        masses = law.probs
    keep = masses > 0.0
    return losses[keep], masses[keep]


def _law_on_grid(losses: np.ndarray, masses: np.ndarray, interval: float) -> DiscretePLD:
    """A law on the grid of ``interval`` whose curve is below that of the atoms."""
    cells = np.ceil(losses / interval).astype(np.int64) - 1
    excess = np.clip(losses - cells * interval, 0.0, interval)
    return law_below(curve_of_atoms(cells, excess, masses, interval, first_cell=int(cells.min())), float(masses.sum()))


def _composed_step_epsilon(losses: np.ndarray, masses: np.ndarray, steps: int, delta: float, interval: float) -> float:
    """ε of ``steps`` compositions of the atoms' law, put on a grid below it (a lower bound).

    The grid is ``interval``, ten times finer where the law has an atom heavier than
    ``_ATOM_SHARE`` (an atom between grid points is moved down by up to a grid step per
    composition), and coarser by a power of two where the composed window would exceed
    ``_MAX_WINDOW`` points (large ε: the error is second order in the grid step elsewhere)."""
    if masses.max() > _ATOM_SHARE:
        interval /= 10.0
    tail = min(DEFAULT_TAIL_MASS, _TRUNCATION_SHARE * delta)
    step = _law_on_grid(losses, masses, interval)
    width = _window_estimate(step, steps, tail)
    if width > _MAX_WINDOW:
        step = _law_on_grid(losses, masses, interval * 2 ** math.ceil(math.log2(width / _MAX_WINDOW)))
    return self_compose(step, steps, tail_mass=tail).get_epsilon(delta)


def split_shift_epsilon(
    mechanism: Mechanism,
    *,
    dimensions: int,
    sample_rate: float,
    steps: int,
    delta: float,
    sensitivity: float = 1.0,
    value_discretization_interval: float = DEFAULT_INTERVAL,
) -> float:
    """ε of one concrete pair of neighbours in the ``"l2"`` geometry: the shift of L2 norm
    ``sensitivity`` spread evenly over ``dimensions`` coordinates, ``steps`` Poisson-subsampled
    releases. The value is certainly achieved (it is at most the true ε of that pair, see the
    module docstring), so it is a lower bound on the ε of the mechanism in the l2 geometry."""
    n = int(require_positive("dimensions", dimensions))
    q = require_sample_rate("sample_rate", sample_rate)
    steps = require_steps("steps", steps)
    delta = require_delta("delta", delta)
    c = require_positive("sensitivity", sensitivity)
    h = require_positive("value_discretization_interval", value_discretization_interval)
    law = _product_law(mechanism, n, c)
    return max(_composed_step_epsilon(*_subsampled_atoms(law, q, direction), steps, delta, h) for direction in DIRECTIONS)


def epsilon_interval(
    mechanism: Mechanism,
    run: RunSpec | None = None,
    *,
    sample_rate: float | None = None,
    steps: int | None = None,
    delta: float | None = None,
    geometry: str | None = None,
    sensitivity: float | None = None,
    dimensions: tuple[int, ...] = DEFAULT_DIMENSIONS,
    value_discretization_interval: float = DEFAULT_INTERVAL,
) -> EpsilonInterval:
    """[lower, upper] for ε of ``steps`` Poisson-subsampled releases with sensitivity
    ``sensitivity`` (the settings from ``run`` and/or the keywords); see the module docstring
    for what each end means in the ``"l2"`` geometry (the default). In the ``"scalar"``
    geometry, and for Gaussian noise (a family whose registration declares the PLD fitting in l2:
    its l2 pair is the scalar one), the upper end is the PLD accountant's bound and the lower end
    the shift on one coordinate."""
    spec = run_spec(run, sample_rate=sample_rate, steps=steps, delta=delta, geometry=geometry, sensitivity=sensitivity)
    q, steps, delta, sensitivity = spec.sample_rate, spec.steps, spec.delta, spec.sensitivity
    h = require_positive("value_discretization_interval", value_discretization_interval)
    dims = tuple(int(require_positive("dimensions", n)) for n in dimensions)
    if 1 not in dims:
        dims = (1,) + dims
    canonical = mechanism.canonical()
    if "pld" in family_of(canonical).fitting_accountants(spec.geometry):
        acc = PLDAccountant(value_discretization_interval=h)
        acc.step(mechanism=mechanism, sample_rate=q, steps=steps, sensitivity=sensitivity, geometry=spec.geometry)
        upper = acc.get_epsilon(delta)
        upper_method = (
            "pld (scalar geometry: tight dominating pair, pessimistic discretisation)" if spec.geometry == "scalar"
            else f"pld ({type(canonical).__name__}: exact by rotation invariance, pessimistic discretisation)"
        )
        dims = (1,)
    else:
        upper = rdp_epsilon(mechanism, spec)
        upper_method = "rdp (dimension-free l2 bound)"
    by_dims = {
        n: split_shift_epsilon(
            mechanism, dimensions=n, sample_rate=q, steps=steps, delta=delta, sensitivity=sensitivity, value_discretization_interval=h
        )
        for n in dims
    }
    worst = max(by_dims, key=by_dims.__getitem__)
    return EpsilonInterval(
        lower=by_dims[worst],
        upper=upper,
        delta=delta,
        upper_method=upper_method,
        lower_method="pld (dominated discretisation) of the shift C/sqrt(n) on n coordinates, worst n",
        worst_dimensions=worst,
        lower_by_dimensions=by_dims,
    )
