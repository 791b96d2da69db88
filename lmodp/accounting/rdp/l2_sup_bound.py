r"""Upper bound on sup_{0<t≤C} h_α(t)/t² for symmetric unimodal noise (the L2 geometry's constant).

h_α(t) = D_α(f(·−t) ‖ f) is the scalar divergence, f the noise density, I = ∫ f'²/f the
Fisher information. The bound combines, per order α:

1. **First cell (0, t_0]**: a proven bound that increases in t and tends to αI/2 (the
   family's ``first_cell()``, :class:`FirstCell`); t_0(α) is the largest t at which it is within a
   factor 1 + ``l2_tolerance`` of αI/2 (:func:`first_cell_ends`). Log-concave families (generalized
   Gaussian, user densities) use :mod:`lmodp.accounting.rdp.first_cell_bounds` (docs/l2-geometry.md,
   section 5.4). For a Laplace scale mixture (S = sup|f'/f| = E[ω²]/E[ω]; section 5.2), with
   M(t) = e^{(α−1)h_α(t)}: M(0) = 1, M'(0) = 0 and M'' is bounded on [0, t] in two ways,
   to first order (:func:`first_order_bound`) and to second order in t
   (:func:`second_order_bound`); each gives an upper bound on sup_{0<u≤t} h_α(u)/u² that
   increases in t and tends to αI/2 as t → 0, and the smaller is used (:class:`NoiseConstants`).
2. **Cells.** h_α is non-decreasing in t for every symmetric unimodal noise density (proven:
   docs/l2-geometry.md, section 5), so on a grid t_0 < t_1 < … < t_J = C, on [t_j, t_{j+1}]:
   h_α(t)/t² ≤ h_α(t_{j+1})/t_j². For log-concave noise h_α is moreover convex in t (section
   5.4) and a cell is bounded by the chord through its two ends (:func:`chord_bound`), whose
   excess over h_α(t)/t² is second order in the cell's width. The grid is refined adaptively (a cell is split into
   geometric pieces) until every cell's bound is within a factor 1 + ``l2_tolerance`` of the best lower bound
   max(αI/2, max_j h_α(t_j)/t_j²), or the cell ratio falls below 1 + 1e-4. Every h_α(t_j) is
   the pessimistic quadrature value of :mod:`lmodp.accounting.rdp._divergence_kernels`.
3. **Orders.** (α − 1)·h_α(t) is convex in α (van Erven & Harremoës 2014, Cor. 2), so
   (α − 1)·sup_t h_α(t)/t² is convex too (a sup of convex functions); when many orders are
   asked, the sup is computed at anchor orders (geometric in α − 1, ratio 1.1, plus the
   extremes) and (α − 1)·bound is interpolated linearly between anchors, which bounds a
   convex function from above.

What rests on numerics rather than proof: the quadrature values (pessimistic by an error
estimate, not a proven bound) and, for Laplace scale mixtures and user densities, the Fisher
information (a quadrature with a margin, capped by a proven bound: E[ω²],
:meth:`~lmodp.mechanisms.mixture.LaplaceScaleMixture.fisher_information_bound`; S²,
:meth:`~lmodp.mechanisms.density.SymmetricDensity.fisher_information_bound`). The generalized
Gaussian's I is a closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from lmodp.accounting.rdp._mixture_quadrature import max_score
from lmodp.mechanisms.mixture import LaplaceScaleMixture

if TYPE_CHECKING:
    from lmodp.accounting.rdp.noise_laws import QuadratureLaw

_SERIES_BELOW = 1e-4
_INITIAL_RATIO = 1.25
_MIN_RATIO = 1.0001
_ANCHOR_RATIO = 1.1
#: Default relative slack of the sup: the bound is within about this factor of the best value found.
DEFAULT_L2_TOLERANCE = 5e-3


def anchor_orders(alphas: np.ndarray) -> np.ndarray:
    """Anchor orders: all of ``alphas`` if few, else geometric in α − 1 with ratio 1.1."""
    x = np.unique(alphas) - 1.0
    n = int(math.ceil(math.log(x[-1] / x[0]) / math.log(_ANCHOR_RATIO))) + 1 if x.size > 1 else 1
    if n >= x.size:
        return x + 1.0
    return np.geomspace(x[0], x[-1], n) + 1.0


def _phi(x: np.ndarray) -> np.ndarray:
    """φ(x) = (eˣ − 1 − x)/x² (→ ½ at 0), for real x ≠ 0, by a series for |x| < 1e-4."""
    small = np.abs(x) < _SERIES_BELOW
    xs = np.where(small, 1.0, x)
    with np.errstate(over="ignore", invalid="ignore"):
        closed = (np.expm1(xs) - xs) / (xs * xs)
    series = 0.5 + x / 6.0 + x * x / 24.0 + x**3 / 120.0
    return np.where(small, series, closed)


class FirstCell(Protocol):
    """What the search over t needs from a family: an upper bound ``fisher`` on I, and a proven
    upper bound ``bound(alphas, t)`` on sup_{0<u≤t} h_α(u)/u² that increases in t and tends to αI/2."""

    fisher: float

    def bound(self, alphas: np.ndarray, t: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class NoiseConstants:
    """The constants of a Laplace scale mixture that the first-cell bounds use.

    ``fisher`` an upper bound on I, ``score`` S = E[ω²]/E[ω], ``moments`` (E[ω], E[ω²], E[ω³])."""

    fisher: float
    score: float
    moments: tuple[float, float, float]

    @classmethod
    def of(cls, mechanism: LaplaceScaleMixture) -> "NoiseConstants":
        return cls(mechanism.fisher_information_bound(), max_score(mechanism), mechanism.omega_moments())

    def bound(self, alphas: np.ndarray, t: np.ndarray) -> np.ndarray:
        """:func:`first_cell_bound` with these constants."""
        return first_cell_bound(alphas, t, self)


def first_order_bound(alphas: np.ndarray, t: np.ndarray, c: NoiseConstants) -> np.ndarray:
    r"""sup_{0<u≤t} h_α(u)/u² ≤ (α−1)·I·φ(αSt) + I/2 + J·ψ(αSt), J = E[ω²] − I, ψ(x) = ½ − φ(−x).

    From M''(u) ≤ α(α−1)I + (α−1)²I(e^{αSu} − 1) + (α−1)J(1 − e^{−αSu}) (docs/l2-geometry.md).
    """
    x = alphas * c.score * t
    j = max(c.moments[1] - c.fisher, 0.0)
    with np.errstate(over="ignore"):  # an overflow is +inf, a valid (useless) bound
        return (alphas - 1.0) * c.fisher * _phi(x) + 0.5 * c.fisher + j * (0.5 - _phi(-x))


def second_order_bound(alphas: np.ndarray, t: np.ndarray, c: NoiseConstants) -> np.ndarray:
    r"""sup_{0<u≤t} h_α(u)/u² ≤ αI/2 + κ(t)·t²/12 with
    κ(t) = (α−1)·α·S²·((α−1)I + E[ω²])·e^{αSt}/2 + α·E[ω²]E[ω³]/(2E[ω])·e^{(α−1)St}.

    From M''(u) ≤ α(α−1)I + (α−1)·u²·κ(u), whose terms bound the second-order variation of the
    even functions u ↦ ∫ f(x−u)^α f(x)^{1−α} s(x)² and ∫ f(x−u)^α f(x)^{1−α} (log f)''(x)
    (docs/l2-geometry.md).
    """
    e1, e2, e3 = c.moments
    s = c.score
    with np.errstate(over="ignore"):
        kappa = (alphas - 1.0) * alphas * s * s * ((alphas - 1.0) * c.fisher + e2) * np.exp(alphas * s * t) / 2.0
        kappa = kappa + alphas * e2 * e3 / (2.0 * e1) * np.exp((alphas - 1.0) * s * t)
        return alphas * c.fisher / 2.0 + kappa * t * t / 12.0


def first_cell_bound(alphas: np.ndarray, t: np.ndarray, c: NoiseConstants) -> np.ndarray:
    """An upper bound on sup_{0<u≤t} h_α(u)/u²: the smaller of the two proven bounds."""
    return np.minimum(first_order_bound(alphas, t, c), second_order_bound(alphas, t, c)) * (1.0 + 1e-12)


def first_cell_ends(alphas: np.ndarray, c: "FirstCell", *, l2_tolerance: float, top: float) -> np.ndarray:
    """The largest t_0(α) <= ``top`` (to 1 %) at which the first-cell bound ``c.bound`` is
    <= (1 + l2_tolerance)·αI/2 (the bound increases in t), by bisection in log t."""
    target = (1.0 + l2_tolerance) * alphas * c.fisher / 2.0
    lo = np.full(alphas.size, math.log(top) - 60.0)
    hi = np.full(alphas.size, math.log(top))
    fits = c.bound(alphas, np.full(alphas.size, top)) <= target
    for _ in range(16):
        mid = (lo + hi) / 2.0
        ok = c.bound(alphas, np.exp(mid)) <= target
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return np.where(fits, top, np.exp(lo))


def _divergence_ratio(law: "QuadratureLaw", t: float, alphas: np.ndarray) -> np.ndarray:
    """Pessimistic h_α(t)/t² for all alphas."""
    log_z = law.log_moments(alphas, sensitivity=t, max_order=float(alphas.max()))
    return np.maximum(log_z, 0.0) / (alphas - 1.0) / (t * t)


def _split_count(cell_ratio: float, target_ratio: float) -> int:
    """How many geometric pieces bring ``cell_ratio`` down to ``target_ratio`` (2 to 64)."""
    if target_ratio <= 1.0:
        return 64
    return int(min(64, max(2, math.ceil(math.log(cell_ratio) / math.log(target_ratio)))))


def _sup_at_orders(law: "QuadratureLaw", alphas: np.ndarray, c: float, l2_tolerance: float) -> np.ndarray:
    constants = law.first_cell()
    t0 = first_cell_ends(alphas, constants, l2_tolerance=l2_tolerance, top=c)
    bound = constants.bound(alphas, t0)
    lower = alphas * constants.fisher / 2.0
    t_min = float(t0.min())
    if t_min >= c:
        return bound
    n0 = max(1, int(math.ceil(math.log(c / t_min) / math.log(_INITIAL_RATIO))))
    grid = np.geomspace(t_min, c, n0 + 1)
    if getattr(constants, "convex_in_shift", False):
        return _convex_cells(law, alphas, grid, t0, bound, lower, l2_tolerance)
    # A cell: (t_left, t_right, ratio at t_right, orders it must cover); order α needs the cells
    # above its own first cell (0, t_0(α)].
    cells = []
    for t_left, t_right in zip(grid[:-1], grid[1:]):
        mask = t_right > t0
        ratio = np.full(alphas.size, np.nan)
        ratio[mask] = _divergence_ratio(law, float(t_right), alphas[mask])
        lower = np.where(mask, np.maximum(lower, ratio), lower)
        cells.append((t_left, t_right, ratio, mask))
    while cells:
        t_left, t_right, r_right, mask = cells.pop()
        cell_bound = r_right * (t_right / t_left) ** 2
        open_mask = mask & (cell_bound > lower * (1.0 + l2_tolerance))
        if not open_mask.any() or t_right / t_left < _MIN_RATIO:
            bound = np.where(mask, np.maximum(bound, cell_bound), bound)
            continue
        bound = np.where(mask & ~open_mask, np.maximum(bound, cell_bound), bound)
        # Split into n geometric cells of the ratio that would close the cell were h_α(t)/t²
        # constant on it: (ratio)² · r_right = lower · (1 + l2_tolerance).
        needed = np.sqrt(lower[open_mask] * (1.0 + l2_tolerance) / r_right[open_mask])
        n = _split_count(t_right / t_left, float(needed.min()))
        points = np.geomspace(t_left, t_right, n + 1)
        for left, right in zip(points[:-1], points[1:]):
            keep = open_mask & (right > t0)
            if not keep.any():
                continue
            if right == t_right:
                r = r_right
            else:
                r = np.full(alphas.size, np.nan)
                r[keep] = _divergence_ratio(law, float(right), alphas[keep])
                lower = np.where(keep, np.maximum(lower, r), lower)
            cells.append((left, right, r, keep))
    return bound


def chord_bound(t_left: float, t_right: float, r_left: np.ndarray, r_right: np.ndarray) -> np.ndarray:
    r"""max over t in [t_left, t_right] of ℓ(t)/t², ℓ the chord through (t_left, r_left·t_left²) and
    (t_right, r_right·t_right²): for h_α convex in t with h_α(t_j) ≤ r_j·t_j² at both ends, an upper
    bound on h_α(t)/t² on the cell. With ℓ(t) = A + Bt, (A + Bt)/t² has its only stationary point
    at t* = −2A/B, a maximum of value B²/(−4A) when A < 0 < B; otherwise the ends are the maximum."""
    h_left, h_right = r_left * t_left**2, r_right * t_right**2
    slope = (h_right - h_left) / (t_right - t_left)
    intercept = h_left - slope * t_left
    out = np.maximum(r_left, r_right)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_star = -2.0 * intercept / slope
        inside = (intercept < 0.0) & (slope > 0.0) & (t_star > t_left) & (t_star < t_right)
        peak = np.where(inside, slope * slope / (-4.0 * np.where(inside, intercept, -1.0)), -np.inf)
    return np.maximum(out, peak) * (1.0 + 1e-12)


def _convex_cells(
    law: "QuadratureLaw", alphas: np.ndarray, grid: np.ndarray, t0: np.ndarray, bound: np.ndarray, lower: np.ndarray, l2_tolerance: float
) -> np.ndarray:
    """The cells for noise whose h_α(t) is convex in t (log-concave f, docs/l2-geometry.md 5.4):
    each cell's bound is :func:`chord_bound` of the pessimistic values at its two ends, and an
    open cell is split into four geometric pieces (the chord's excess falls with the square of
    the cell's log-width). Order α needs the cells above its own first cell (0, t_0(α)]."""
    ratios = []
    for i, t in enumerate(grid):
        need = grid[min(i + 1, grid.size - 1)] > t0
        r = np.full(alphas.size, np.nan)
        r[need] = _divergence_ratio(law, float(t), alphas[need])
        lower = np.where(need, np.maximum(lower, r), lower)
        ratios.append(r)
    cells = [(grid[j], grid[j + 1], ratios[j], ratios[j + 1], grid[j + 1] > t0) for j in range(grid.size - 1)]
    while cells:
        t_left, t_right, r_left, r_right, mask = cells.pop()
        cell_bound = chord_bound(t_left, t_right, r_left, r_right)
        open_mask = mask & (cell_bound > lower * (1.0 + l2_tolerance))
        if not open_mask.any() or t_right / t_left < _MIN_RATIO:
            bound = np.where(mask, np.maximum(bound, cell_bound), bound)
            continue
        bound = np.where(mask & ~open_mask, np.maximum(bound, cell_bound), bound)
        points = np.geomspace(t_left, t_right, 5)
        values = [r_left]
        for t in points[1:-1]:
            r = np.full(alphas.size, np.nan)
            r[open_mask] = _divergence_ratio(law, float(t), alphas[open_mask])
            lower = np.where(open_mask, np.maximum(lower, r), lower)
            values.append(r)
        values.append(r_right)
        for k in range(4):
            keep = open_mask & (points[k + 1] > t0)
            if keep.any():
                cells.append((points[k], points[k + 1], values[k], values[k + 1], keep))
    return bound


def sup_ratio_bound(
    law: "QuadratureLaw", alphas: np.ndarray, *, l2_sensitivity: float, l2_tolerance: float = DEFAULT_L2_TOLERANCE
) -> np.ndarray:
    """Upper bound on sup_{0<t≤C} h_α(t)/t² at every order in ``alphas`` (see module docstring),
    for the :class:`~lmodp.accounting.rdp.noise_laws.QuadratureLaw` of a non-Gaussian mechanism."""
    anchors = anchor_orders(alphas)
    at_anchors = _sup_at_orders(law, anchors, l2_sensitivity, l2_tolerance)
    if anchors.size == np.unique(alphas).size:
        return np.interp(alphas, anchors, at_anchors)
    scaled = np.interp(alphas, anchors, (anchors - 1.0) * at_anchors)
    return scaled / (alphas - 1.0)
