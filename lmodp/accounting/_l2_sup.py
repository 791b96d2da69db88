r"""Upper bound on sup_{0<t≤C} h_α(t)/t² for a Laplace scale mixture (the L2 geometry's constant).

h_α(t) = D_α(f(·−t) ‖ f) is the scalar divergence. The bound combines, per order α:

1. **Cells.** On a grid t_0 < t_1 < … < t_J = C, if h_α is non-decreasing in t then on
   [t_j, t_{j+1}]: h_α(t)/t² ≤ h_α(t_{j+1})/t_j². The grid is refined adaptively (geometric
   bisection of a cell) until every cell's bound is within a factor 1 + ``rel_tol`` of the
   best lower bound max(αI/2, max_j h_α(t_j)/t_j²), or the cell ratio falls below 1 + 1e-4.
   Every h_α(t_j) is the pessimistic quadrature value of
   :mod:`lmodp.accounting._divergence_kernels`.
2. **First cell (0, t_0]**, t_0 = min(C, 0.01/S) with S = sup|score|: the bound
   max(αI/2, h_α(t_0)/t_0²)·(1 + 1e-8), with I the Fisher information, αI/2 the limit of
   h_α(t)/t² as t → 0. This holds if h_α(t)/t² is monotone on (0, t_0], as the expansion
   h_α(t) = αIt²/2 − c·t³ + O(t⁴) suggests (the cusp of f at 0 makes c > 0; for Laplace(b),
   c = α/(6b³)).
3. **Orders.** (α − 1)·h_α(t) is convex in α (van Erven & Harremoës 2014, Cor. 2), so
   (α − 1)·sup_t h_α(t)/t² is convex too (a sup of convex functions); when many orders are
   asked, the sup is computed at anchor orders (geometric in α − 1, ratio 1.1, plus the
   extremes) and (α − 1)·bound is interpolated linearly between anchors, which bounds a
   convex function from above.

Assumptions that are argued and tested numerically but NOT proven: h_α(t) non-decreasing in t
(step 1) and the monotonicity near 0 (step 2). See docs/l2-geometry.md. A decrease of h_α(t)
between computed grid points is logged as a warning.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from lmodp.accounting._mixture_quadrature import max_score, mixture_log_moments
from lmodp.mechanisms.mixture import LaplaceScaleMixture

_FIRST_CELL = 0.01
_INITIAL_RATIO = 1.25
_MIN_RATIO = 1.0001
_ANCHOR_RATIO = 1.1
_FISHER_MARGIN = 1e-8
_MONOTONE_SLACK = 1e-6

logger = logging.getLogger(__name__)


def anchor_orders(alphas: np.ndarray) -> np.ndarray:
    """Anchor orders: all of ``alphas`` if few, else geometric in α − 1 with ratio 1.1."""
    x = np.unique(alphas) - 1.0
    n = int(math.ceil(math.log(x[-1] / x[0]) / math.log(_ANCHOR_RATIO))) + 1 if x.size > 1 else 1
    if n >= x.size:
        return x + 1.0
    return np.geomspace(x[0], x[-1], n) + 1.0


def _divergence_ratio(mechanism: LaplaceScaleMixture, t: float, alphas: np.ndarray) -> np.ndarray:
    """Pessimistic h_α(t)/t² for all alphas."""
    log_z = mixture_log_moments(mechanism, alphas, sensitivity=t, max_order=float(alphas.max()))
    return np.maximum(log_z, 0.0) / (alphas - 1.0) / (t * t)


def _warn_if_decreasing(h_left: np.ndarray, h_right: np.ndarray, t: float) -> None:
    if np.any(h_left > h_right * (1.0 + _MONOTONE_SLACK)):
        logger.warning("h_alpha(t) decreased in t on the L2 grid near t=%g: the L2 bound may not hold", t)


def _sup_at_orders(mechanism: LaplaceScaleMixture, alphas: np.ndarray, c: float, rel_tol: float) -> np.ndarray:
    fisher = mechanism.fisher_information() * (1.0 + _FISHER_MARGIN)
    limit = alphas * fisher / 2.0
    t0 = min(c, _FIRST_CELL / max_score(mechanism))
    ratio0 = _divergence_ratio(mechanism, t0, alphas)
    bound = np.maximum(limit, ratio0) * (1.0 + _FISHER_MARGIN)
    lower = np.maximum(limit, ratio0)
    if t0 >= c:
        return bound
    n0 = max(1, int(math.ceil(math.log(c / t0) / math.log(_INITIAL_RATIO))))
    grid = np.geomspace(t0, c, n0 + 1)
    ratios = [_divergence_ratio(mechanism, float(t), alphas) for t in grid[1:]]
    for j in range(n0):
        _warn_if_decreasing((ratios[j - 1] if j else ratio0) * grid[j] ** 2, ratios[j] * grid[j + 1] ** 2, grid[j])
    lower = np.max([lower, *ratios], axis=0)
    # A cell: (t_left, t_right, ratio at t_right, orders still open in it).
    everything = np.ones(alphas.size, dtype=bool)
    cells = [(grid[j], grid[j + 1], ratios[j], everything) for j in range(n0)]
    while cells:
        t_left, t_right, r_right, mask = cells.pop()
        cell_bound = r_right * (t_right / t_left) ** 2
        open_mask = mask & (cell_bound > lower * (1.0 + rel_tol))
        if not open_mask.any() or t_right / t_left < _MIN_RATIO:
            bound = np.where(mask, np.maximum(bound, cell_bound), bound)
            continue
        bound = np.where(mask & ~open_mask, np.maximum(bound, cell_bound), bound)
        t_mid = math.sqrt(t_left * t_right)
        r_mid = np.full(alphas.size, np.nan)
        r_mid[open_mask] = _divergence_ratio(mechanism, t_mid, alphas[open_mask])
        _warn_if_decreasing(r_mid[open_mask] * t_mid**2, r_right[open_mask] * t_right**2, t_mid)
        lower = np.where(open_mask, np.maximum(lower, r_mid), lower)
        cells.append((t_left, t_mid, r_mid, open_mask))
        cells.append((t_mid, t_right, r_right, open_mask))
    return bound


def sup_ratio_bound(
    mechanism: LaplaceScaleMixture, alphas: np.ndarray, *, l2_sensitivity: float, rel_tol: float = 2e-3
) -> np.ndarray:
    """Upper bound on sup_{0<t≤C} h_α(t)/t² at every order in ``alphas`` (see module docstring)."""
    anchors = anchor_orders(alphas)
    at_anchors = _sup_at_orders(mechanism, anchors, l2_sensitivity, rel_tol)
    if anchors.size == np.unique(alphas).size:
        return np.interp(alphas, anchors, at_anchors)
    scaled = np.interp(alphas, anchors, (anchors - 1.0) * at_anchors)
    return scaled / (alphas - 1.0)
