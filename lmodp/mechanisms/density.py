r"""User-defined noise laws: a symmetric, log-concave density with a bounded score.

Subclass :class:`SymmetricDensity`, register it (:func:`lmodp.register_mechanism`), and every
accountant, the search and the training loop accept it::

    @lmodp.register_mechanism
    class Logistic(SymmetricDensity):
        family = "logistic"

        def __init__(self, scale):
            self.scale = scale

        def log_density(self, y):                      # log f(y) up to a constant
            z = np.abs(y) / self.scale
            return -z - 2.0 * np.log1p(np.exp(-z))

        def score_bound(self):                         # sup |d/dy log f|
            return 1.0 / self.scale

        def torch_sample(self, shape, *, generator):   # draws of exactly this law
            u = torch.rand(shape, generator=generator, device=generator.device).clamp_(1e-7, 1 - 1e-7)
            return self.scale * torch.log(u / (1 - u))

        def scaled(self, factor):
            return Logistic(self.scale * factor)

        def to_dict(self):
            return {"family": self.family, "scale": self.scale}

What the accountants rely on, and the subclass asserts, is that g = ``log_density`` is

* **symmetric**: g(y) = g(−y);
* **concave** (f log-concave), so f is unimodal and the loss of a shift,
  g(y) − g(y − Δ), is non-increasing in y (the PLD's level sets are half-lines; the l2 bound's
  monotonicity in the shift, docs/l2-geometry.md 5.1, holds);
* **Lipschitz** with constant S = :meth:`~SymmetricDensity.score_bound`: |g(x) − g(y)| ≤ S|x − y|
  (every loss is at most SΔ, which bounds the RDP integrands' tails and the first cell of the
  l2 bound, docs/l2-geometry.md 5.4).

They are checked on a grid when the density is first tabulated (``ValueError`` naming the
property and the point that fails); a grid check cannot prove them, so the guarantee rests on
the subclass's assertion. The normalising constant, the distribution function and the moments
are computed here by Gauss–Legendre quadrature (8 points on each half of panels of width 1/(4S),
the coarse-versus-fine difference kept as the error estimate). Beyond the table, where
g(0) − g(R) ≥ 750, the tail is bounded by log-concavity: for y ≥ R, g(y) ≤ g(R) − c(y − R) with
c = (g(0) − g(R))/R (a chord slope of a concave function is at most the slope further out), so
∫_R^∞ e^g ≤ e^{g(R)}/c.

The registration at the end is what a family without closed forms gets by default: the
density-based RDP law (:mod:`lmodp.accounting.rdp._density_quadrature`) and PLD model
(:mod:`lmodp.accounting.pld._density`), both with controlled numerical error, and its own
``torch_sample`` as the torch sampler. A subclass registers with
:func:`lmodp.register_family` (to add, e.g., a search representative) or
:func:`lmodp.register_mechanism`.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from lmodp._validation import require_positive
from lmodp.mechanisms.base import Mechanism
from lmodp.mechanisms.registry import register_family

# The table extends to where g(0) − g(R) reaches this (e^-750 is below float64's smallest number).
_LOG_RANGE = 750.0
# Panels per unit of S·y (width 1/(4S): g changes by at most 1/4 across a panel).
_PANELS_PER_SCORE_LENGTH = 4.0
_MAX_PANELS = 200_000
_GL_POINTS = 8
# Relative slack of the grid checks.
_CHECK_SLACK = 1e-9
_CHECK_POINTS = 4001
_U = 2.0**-53


def _gauss_legendre(a: np.ndarray, b: np.ndarray, n: int = _GL_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (shape (len(a), n)) of the n-point rule on each [a_i, b_i]."""
    x, w = np.polynomial.legendre.leggauss(n)
    half = (b - a)[:, None] / 2.0
    return (a + b)[:, None] / 2.0 + half * x[None, :], half * w[None, :]


@dataclass(frozen=True)
class DensityTable:
    """Quadrature of e^{g(y) − g(0)} on panels covering [0, radius], and what follows from it.

    ``edges`` (panel ends), ``masses``/``errors`` (each panel's integral and its error estimate),
    ``tail_bound`` (∫ beyond ``radius``, a proven bound), ``log_peak`` = g(0), ``z`` the
    normalising constant ∫ e^{g − g(0)} over the line and ``z_error`` a bound on its error;
    ``mean_abs``, ``second_moment`` and ``fisher`` (∫ f·(g')², g' by ``score``) of the law."""

    edges: np.ndarray
    masses: np.ndarray
    errors: np.ndarray
    right_masses: np.ndarray
    right_errors: np.ndarray
    tail_bound: float
    log_peak: float
    z: float
    z_error: float
    mean_abs: float
    second_moment: float
    fisher: float
    fisher_error: float


class SymmetricDensity(Mechanism):
    """Base class of a user-defined noise law (see the module docstring for the contract)."""

    @abstractmethod
    def log_density(self, y: np.ndarray) -> np.ndarray:
        """log f(y) up to an additive constant: vectorised over a float64 array, finite, symmetric, concave."""

    @abstractmethod
    def score_bound(self) -> float:
        """S >= sup_y |d/dy log f(y)| (finite: the log-density is S-Lipschitz)."""

    @abstractmethod
    def torch_sample(self, shape: tuple[int, ...], *, generator: Any) -> Any:
        """float32 noise of ``shape`` with exactly this law, drawn with the ``torch.Generator`` on its device."""

    def score(self, y: np.ndarray) -> np.ndarray:
        """d/dy log f(y) (used for the Fisher information); by default a central difference of step 1e-6/S."""
        h = 1e-6 / self.score_bound()
        return (self.log_density(y + h) - self.log_density(y - h)) / (2.0 * h)

    # --- the table ---------------------------------------------------------------------------
    def table(self) -> DensityTable:
        """The quadrature table (built and checked once, then cached on the instance)."""
        cached = self.__dict__.get("_table")
        if cached is None:
            cached = _build_table(self)
            object.__setattr__(self, "_table", cached)
        return cached

    def _g(self, y: ArrayLike) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        return np.asarray(self.log_density(y), dtype=float)

    # --- the Mechanism interface ---------------------------------------------------------------
    def logpdf(self, y: ArrayLike) -> np.ndarray:
        t = self.table()
        return self._g(y) - t.log_peak - math.log(t.z)

    def survival(self, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """(P(Y > y), a bound on its error) for every y (quadrature; the error estimate included)."""
        y = np.asarray(y, dtype=float)
        s, err = half_line_mass(self, np.abs(y).ravel())
        s, err = s.reshape(y.shape), err.reshape(y.shape)
        return np.where(y >= 0.0, s, 1.0 - s), err

    def cdf(self, y: ArrayLike) -> np.ndarray:
        return 1.0 - self.survival(y)[0]

    def log_tail(self, s: ArrayLike) -> np.ndarray:
        """An upper bound on log P(|Y| > s) (the quadrature value plus its error estimate)."""
        value, err = half_line_mass(self, np.abs(np.asarray(s, dtype=float)).ravel())
        with np.errstate(divide="ignore"):
            return np.log(2.0 * (value + err)).reshape(np.shape(s))

    def usefulness(self, gamma: float) -> float:
        gamma = require_positive("gamma", gamma)
        return float(1.0 - 2.0 * half_line_mass(self, np.array([gamma]))[0][0])

    def mean_abs(self) -> float:
        return self.table().mean_abs

    def variance(self) -> float:
        return self.table().second_moment

    def fisher_information(self) -> float:
        return self.table().fisher

    def fisher_information_bound(self) -> float:
        """min(S², quadrature value + 4·its error estimate + 1e-9 relative): S² is proven (|g'| ≤ S)."""
        t = self.table()
        return min(self.score_bound() ** 2, t.fisher + 4.0 * t.fisher_error + 1e-9 * t.fisher)

    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draws from :meth:`torch_sample` (needs torch) with a generator seeded from ``rng``."""
        import torch

        shape = (size,) if isinstance(size, int) else tuple(size)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        return self.torch_sample(shape, generator=generator).double().numpy()


def _build_table(density: SymmetricDensity) -> DensityTable:
    """Check the contract on a grid and integrate e^{g − g(0)} on [0, R] (see the module docstring)."""
    name = type(density).__name__
    s = require_positive(f"{name}.score_bound()", density.score_bound())
    g0 = float(density._g(np.zeros(1))[0])
    if not math.isfinite(g0):
        raise ValueError(f"{name}.log_density(0) must be finite, got {g0}")
    radius = 1.0 / s
    while g0 - float(density._g(np.array([radius]))[0]) < _LOG_RANGE:
        radius *= 2.0
        if radius * s > _MAX_PANELS / _PANELS_PER_SCORE_LENGTH:
            _check_contract(density, name, s, radius)
            raise ValueError(
                f"{name}.log_density falls by less than {_LOG_RANGE:g} within {radius:g} of 0 (score_bound {s:g}): "
                "not a log-concave density whose slope reaches the score bound's scale"
            )
    _check_contract(density, name, s, radius)
    count = max(16, int(math.ceil(radius * s * _PANELS_PER_SCORE_LENGTH)))
    edges = np.linspace(0.0, radius, count + 1)
    a, b = edges[:-1], edges[1:]
    mid = (a + b) / 2.0
    coarse_y, coarse_w = _gauss_legendre(a, b)
    fine_y, fine_w = (np.concatenate(pair, axis=1) for pair in zip(_gauss_legendre(a, mid), _gauss_legendre(mid, b)))

    def panel_integrals(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
        e = np.exp(density._g(y.ravel()).reshape(y.shape) - g0)
        score = np.asarray(density.score(y.ravel()), dtype=float).reshape(y.shape)
        return tuple(np.sum(w * e * v, axis=1) for v in (1.0, y, y * y, score * score))

    fine = panel_integrals(fine_y, fine_w)
    coarse = panel_integrals(coarse_y, coarse_w)
    masses = fine[0]
    errors = np.abs(fine[0] - coarse[0]) + 4.0 * _GL_POINTS * _U * masses
    g_end = float(density._g(np.array([radius]))[0])
    tail = math.exp(g_end - g0) * radius / (g0 - g_end)
    right = np.cumsum(masses[::-1])[::-1]
    right_err = np.cumsum(errors[::-1])[::-1]
    half = float(right[0]) + tail / 2.0
    z = 2.0 * half
    z_error = 2.0 * (float(right_err[0]) + tail / 2.0) + 4.0 * count * _U * z
    moments = [2.0 * float(np.sum(v)) / z for v in fine[1:]]
    fisher_error = 2.0 * float(np.sum(np.abs(fine[3] - coarse[3]))) / z + moments[2] * z_error / z
    return DensityTable(
        edges=edges, masses=masses, errors=errors, right_masses=right, right_errors=right_err, tail_bound=tail,
        log_peak=g0, z=z, z_error=z_error, mean_abs=moments[0], second_moment=moments[1], fisher=moments[2],
        fisher_error=fisher_error,
    )


def _check_contract(density: SymmetricDensity, name: str, s: float, radius: float) -> None:
    """Symmetry, concavity and the Lipschitz bound of g on a grid over [−radius, radius]."""
    y = np.linspace(-radius, radius, _CHECK_POINTS)
    step = y[1] - y[0]
    g = density._g(y)
    scale = 1.0 + np.abs(g)
    if not np.all(np.isfinite(g)):
        raise ValueError(f"{name}.log_density must be finite; it is not at y = {y[~np.isfinite(g)][0]:g}")
    asym = np.abs(g - g[::-1]) > _CHECK_SLACK * scale
    if asym.any():
        raise ValueError(f"{name}.log_density is not symmetric: g(y) != g(-y) at y = {y[asym][0]:g}")
    slope = np.abs(np.diff(g)) / step
    steep = slope > s * (1.0 + 1e-6) + _CHECK_SLACK * scale[1:] / step
    if steep.any():
        raise ValueError(
            f"{name}.score_bound() = {s:g} is below the slope {slope[steep][0]:g} of log_density near y = {y[1:][steep][0]:g}"
        )
    curvature = g[:-2] - 2.0 * g[1:-1] + g[2:]
    convex = curvature > _CHECK_SLACK * scale[1:-1]
    if convex.any():
        raise ValueError(
            f"{name}.log_density is not concave (the density is not log-concave) near y = {y[1:-1][convex][0]:g}"
        )


def half_line_mass(density: SymmetricDensity, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(Y > y), error bound) for y >= 0.

    Inside the table: the partial panel by 16-point Gauss–Legendre (its difference to 8 points
    is the error estimate), the panels to its right, and half the tail bound (the tail lies in
    [0, bound]). Beyond it: half the log-concave bound e^{g(y) − g(0)}·y/(g(0) − g(y)) ± half."""
    t = density.table()
    last = t.masses.size - 1
    radius = float(t.edges[-1])
    outside = y > radius
    inside = np.minimum(y, radius)
    j = np.clip(np.searchsorted(t.edges, inside, side="right") - 1, 0, last)
    has_right = j < last
    beyond = np.where(has_right, t.right_masses[np.minimum(j + 1, last)], 0.0)
    beyond_err = np.where(has_right, t.right_errors[np.minimum(j + 1, last)], 0.0)
    partial = []
    for n in (16, 8):
        nodes, weights = _gauss_legendre(inside, t.edges[j + 1], n)
        partial.append(np.sum(weights * np.exp(density._g(nodes.ravel()).reshape(nodes.shape) - t.log_peak), axis=1))
    drop = t.log_peak - density._g(y)
    with np.errstate(divide="ignore", over="ignore"):
        far_bound = np.where(outside, np.exp(-drop) * y / np.maximum(drop, 1e-300), 0.0)
    half_tail = np.where(outside, 0.5 * far_bound, 0.5 * t.tail_bound)
    mass = np.where(outside, 0.0, partial[0] + beyond) + half_tail
    mass_err = np.where(outside, 0.0, np.abs(partial[0] - partial[1]) + beyond_err) + half_tail
    value = mass / t.z
    return value, mass_err / t.z + value * t.z_error / t.z + 8.0 * _U * value


register_family(
    SymmetricDensity,
    rdp_law="lmodp.accounting.rdp.noise_laws:DensityLaw",
    pld_model="lmodp.accounting.pld.hockey_stick:density_noise_model",
    torch_sampler="lmodp.train.noise:DensitySampler",
)
