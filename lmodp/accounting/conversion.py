r"""From an RDP curve to (ε, δ)-DP, and back to δ for a given ε.

If a mechanism satisfies (α, r(α))-RDP then, for every α > 1, it is (ε, δ)-DP with

    ε = r(α) + log((α−1)/α) − (log δ + log α)/(α−1)

(Canonne, Kamath & Steinke 2020, "The Discrete Gaussian for Differential Privacy", Prop. 12;
Balle, Barthe, Gaboardi, Hsu & Sato 2020, "Hypothesis Testing Interpretations and Rényi
Differential Privacy", Theorem 21). Solving for δ gives the matching

    log δ = (α−1)(r(α) − ε) + (α−1) log(1 − 1/α) − log α.

Both are minimised over the order grid. In addition, r(α) ≥ KL and Bretagnolle–Huber give
TV ≤ √(1 − e^{−r(α)}), so δ(ε) ≤ √(1 − e^{−r(α)}) for every ε ≥ 0 (the same check as
dp-accounting's and opacus' conversions). Orders whose RDP is +inf (no bound claimed) are
ignored. ε is reported as max(ε, 0) (DP is monotone in ε).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numpy.typing import ArrayLike

from lmodp._validation import require_delta, require_nonnegative
from lmodp.accounting.orders import validate_orders


class OrderGridEdgeWarning(UserWarning):
    """The optimal order is the smallest or largest finite order of the grid: a grid reaching
    beyond it (``RDPAccountant(orders=...)``, any orders > 1) may give a smaller ε."""


def _validated_curve(orders: ArrayLike, rdp: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    alphas = validate_orders(orders)
    r = np.atleast_1d(np.asarray(rdp, dtype=float))
    if r.shape != alphas.shape:
        raise ValueError(f"rdp must have the same length as orders, got {r.shape} and {alphas.shape}")
    if np.any(np.isnan(r)) or np.any(r < 0.0):
        raise ValueError("rdp must be >= 0 or +inf at every order (no NaN)")
    finite = np.isfinite(r)
    return alphas[finite], r[finite]


def _warn_if_edge(alphas: np.ndarray, best: int, improvable: bool) -> None:
    if improvable and (alphas[best] == alphas.min() or alphas[best] == alphas.max()):
        smallest = alphas[best] == alphas.min()
        side, beyond = ("smallest", "closer to 1") if smallest else ("largest", "above it")
        warnings.warn(
            f"the optimal Rényi order {alphas[best]:g} is the {side} order of the grid with a finite bound; "
            f"orders {beyond} may give a smaller bound: pass them in "
            "lmodp.accounting.RDPAccountant(orders=...) (every order > 1 is supported in both geometries)",
            OrderGridEdgeWarning,
            stacklevel=3,
        )


def rdp_to_epsilon(orders: ArrayLike, rdp: ArrayLike, *, delta: float) -> tuple[float, float]:
    """(ε, optimal order): the smallest ε over the grid such that (ε, δ)-DP holds.

    Returns ``(inf, nan)`` when no order has a finite RDP bound. Warns with
    :class:`OrderGridEdgeWarning` when the optimum sits at either end of the finite orders and
    ε > 0 (a wider grid might then give a smaller ε).
    """
    delta = require_delta("delta", delta)
    alphas, r = _validated_curve(orders, rdp)
    if alphas.size == 0:
        return math.inf, math.nan
    eps = r + np.log1p(-1.0 / alphas) - (math.log(delta) + np.log(alphas)) / (alphas - 1.0)
    eps = np.where(-np.expm1(-r) <= delta * delta, 0.0, eps)
    best = int(np.argmin(eps))
    _warn_if_edge(alphas, best, eps[best] > 0.0)
    return max(float(eps[best]), 0.0), float(alphas[best])


def rdp_to_delta(orders: ArrayLike, rdp: ArrayLike, *, epsilon: float) -> tuple[float, float]:
    """(δ, optimal order): the smallest δ over the grid such that (ε, δ)-DP holds, capped at 1.

    ``epsilon`` may be 0. Returns ``(1.0, nan)`` when no order has a finite RDP bound.
    """
    epsilon = require_nonnegative("epsilon", epsilon)
    alphas, r = _validated_curve(orders, rdp)
    if alphas.size == 0:
        return 1.0, math.nan
    log_delta = (alphas - 1.0) * (r - epsilon + np.log1p(-1.0 / alphas)) - np.log(alphas)
    with np.errstate(divide="ignore"):
        log_tv = 0.5 * np.log(-np.expm1(-r))
    log_delta = np.minimum(log_delta, log_tv)
    best = int(np.argmin(log_delta))
    _warn_if_edge(alphas, best, log_delta[best] > -np.inf)
    return float(min(math.exp(min(log_delta[best], 0.0)), 1.0)), float(alphas[best])
