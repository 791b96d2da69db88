r"""An ε interval for the ``"l2"`` geometry: a proven upper bound and a lower bound that is achieved.

DP-SGD releases a d-dimensional sum with L2 sensitivity C and i.i.d. noise per coordinate. For
non-Gaussian noise no tight dominating pair is known, so instead of a point value lmodp reports

* ``upper``: the RDP bound with the dimension-free L2 argument
  (``lmodp.epsilon(..., geometry="l2", accountant="rdp")``); for Gaussian noise the exact PLD
  value instead (rotation invariance makes the scalar pair with Δ = C tight);
* ``lower``: the largest, over n in ``dimensions``, of the ε of a concrete pair of neighbours:
  the shift v = (C/√n, …, C/√n, 0, …) of norm C. Every such pair is a possible worst case, so
  the true ε of the mechanism is at least its ε.

The lower bound uses one fact only: for a PLD given as the law of L under P,
δ(ε) = E_P[(1 − e^{ε − L})_+] is non-decreasing in every atom's loss and in every atom's mass,
also after composition (the losses add). So rounding losses DOWN (in the direction that lowers
the final loss) and deleting mass can only lower δ, and the resulting ε is at most the true one.

Write λ(y) = log f(y − s) − log f(y) with s = C/√n. The loss of the n-coordinate shift is the
sum Λ of n i.i.d. copies of λ, under F_v (law P0 per coordinate) or under F (law Q0). Poisson
subsampling acts through the likelihood ratio only:

* remove: P = (1 − q)F + qF_v, Q = F, L = log(1 − q + q e^Λ) (increasing in Λ), and the law of
  L under P is the q : (1 − q) mixture of Λ under F_v and under F;
* add: P = F, Q = (1 − q)F + qF_v, L = −log(1 − q + q e^Λ) (decreasing in Λ), Λ under F.

The laws of λ under P0 and Q0 come from the exact level-set probabilities
(:mod:`lmodp.accounting.pld_hockey_stick`) on a grid of step h/n, rounded down (P0, Q0 for the
remove direction) or up (Q0, add direction, where L decreases in Λ); the n-fold convolution has
the full support (no folding), so Λ is off by less than h; L is rounded down onto the grid of
step h/10 and composed over the steps with optimistic truncation
(:func:`lmodp.accounting.pld_compose.self_compose`). Unlike connect-the-dots, rounding down
shifts each step's loss by up to h/10, so the lower bound can sit below the true ε by up to about
steps·h/10; refine ``value_discretization_interval`` to tighten it. Rounding of the
closed-form probabilities (≲ 1e-16 per level set) and of the FFT is not bounded here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lmodp._validation import require_delta, require_positive, require_sample_rate, require_steps
from lmodp.accounting.api import epsilon as rdp_epsilon
from lmodp.accounting.pld import DEFAULT_INTERVAL, PLDAccountant, mechanism_pld
from lmodp.accounting.pld_compose import DEFAULT_TAIL_MASS, self_compose
from lmodp.accounting.pld_discrete import DiscretePLD, rounded_down_laws
from lmodp.accounting.pld_hockey_stick import DIRECTIONS, hockey_stick_curve, noise_model
from lmodp.mechanisms import Gaussian, Mechanism

DEFAULT_DIMENSIONS = (1, 2, 4, 8, 16, 32, 64)


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


def _floor_onto_grid(losses: np.ndarray, masses: np.ndarray, interval: float) -> DiscretePLD:
    """Atoms (losses, masses) with each loss rounded down to the grid of step ``interval``."""
    bins = np.floor(losses / interval).astype(np.int64)
    offset = int(bins.min())
    probs = np.bincount(bins - offset, weights=masses)
    return DiscretePLD(interval, offset, probs, 0.0, pessimistic=False)


def _subsampled_step(laws: dict[str, DiscretePLD], sample_rate: float, direction: str, interval: float) -> DiscretePLD:
    """Per-step law of L (rounded down) from the n-fold laws of Λ (see the module docstring)."""
    q = sample_rate
    with np.errstate(divide="ignore"):
        log_keep = math.log1p(-q) if q < 1.0 else -math.inf

    def ratio(lam: np.ndarray) -> np.ndarray:
        return np.logaddexp(log_keep, math.log(q) + lam)

    if direction == "remove":
        p0, q0 = laws["p0_down"], laws["q0_down"]
        losses = np.concatenate((ratio(p0.losses), ratio(q0.losses)))
        masses = np.concatenate((q * p0.probs, (1.0 - q) * q0.probs))
    else:
        neg = laws["q0_up_mirror"]
        losses = -ratio(-neg.losses)
        masses = neg.probs
    keep = masses > 0.0
    return _floor_onto_grid(losses[keep], masses[keep], interval)


def _lower_epsilon(
    mechanism: Mechanism, *, dimensions: int, sample_rate: float, steps: int, delta: float, sensitivity: float, interval: float
) -> float:
    """ε of the shift of norm C spread evenly over ``dimensions`` coordinates (a lower bound).

    Λ lives on the grid of step interval/n and L on the grid of step interval/10; for n = 1 the
    law of L is read directly off the subsampled level sets."""
    step_grid = interval / 10.0
    steps_by_direction = {}
    if dimensions == 1:
        for direction in DIRECTIONS:
            steps_by_direction[direction] = mechanism_pld(
                mechanism,
                sample_rate=sample_rate,
                direction=direction,
                sensitivity=sensitivity,
                value_discretization_interval=step_grid,
                pessimistic=False,
            )
    else:
        fine = interval / dimensions
        model = noise_model(mechanism, sensitivity=sensitivity / math.sqrt(dimensions))
        curve = hockey_stick_curve(model, direction="remove", sample_rate=1.0, interval=fine)
        p0_down, _ = rounded_down_laws(curve.p_tail, curve.offset, fine)
        q0_down, q0_up_mirror = rounded_down_laws(curve.q_tail, curve.offset, fine)
        laws = {
            name: self_compose(law, dimensions, full_support=True)
            for name, law in (("p0_down", p0_down), ("q0_down", q0_down), ("q0_up_mirror", q0_up_mirror))
        }
        for direction in DIRECTIONS:
            steps_by_direction[direction] = _subsampled_step(laws, sample_rate, direction, step_grid)
    return max(
        self_compose(step, steps, tail_mass=DEFAULT_TAIL_MASS).get_epsilon(delta) for step in steps_by_direction.values()
    )


def epsilon_interval(
    mechanism: Mechanism,
    *,
    sample_rate: float,
    steps: int,
    delta: float,
    sensitivity: float = 1.0,
    dimensions: tuple[int, ...] = DEFAULT_DIMENSIONS,
    value_discretization_interval: float = DEFAULT_INTERVAL,
) -> EpsilonInterval:
    """[lower, upper] for ε of ``steps`` Poisson-subsampled releases in the ``"l2"`` geometry
    (L2 sensitivity ``sensitivity``); see the module docstring for what each end means."""
    q = require_sample_rate("sample_rate", sample_rate)
    steps = require_steps("steps", steps)
    delta = require_delta("delta", delta)
    sensitivity = require_positive("sensitivity", sensitivity)
    h = require_positive("value_discretization_interval", value_discretization_interval)
    dims = tuple(int(require_positive("dimensions", n)) for n in dimensions)
    if 1 not in dims:
        dims = (1,) + dims
    if isinstance(mechanism, Gaussian):
        acc = PLDAccountant(value_discretization_interval=h)
        acc.step(mechanism=mechanism, sample_rate=q, steps=steps, sensitivity=sensitivity, geometry="l2")
        upper = acc.get_epsilon(delta)
        upper_method = "pld (Gaussian: exact by rotation invariance, pessimistic discretisation)"
        dims = (1,)
    else:
        upper = rdp_epsilon(mechanism, sample_rate=q, steps=steps, delta=delta, geometry="l2", sensitivity=sensitivity)
        upper_method = "rdp (dimension-free l2 bound)"
    by_dims = {
        n: _lower_epsilon(mechanism, dimensions=n, sample_rate=q, steps=steps, delta=delta, sensitivity=sensitivity, interval=h)
        for n in dims
    }
    worst = max(by_dims, key=by_dims.__getitem__)
    return EpsilonInterval(
        lower=by_dims[worst],
        upper=upper,
        delta=delta,
        upper_method=upper_method,
        lower_method="pld (losses rounded down) of the shift C/sqrt(n) on n coordinates, worst n",
        worst_dimensions=worst,
        lower_by_dimensions=by_dims,
    )
