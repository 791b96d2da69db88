r"""RDP of Poisson-subsampled mechanisms (each record enters a step independently with rate q).

Notation: P = law of the output with the record present (the noise centred at the shifted
query), Q = law without it. Poisson subsampling turns P into the mixture (1−q)Q + qP; the
*remove* direction is D_α((1−q)Q + qP ‖ Q) and the *add* direction D_α(Q ‖ (1−q)Q + qP).
An RDP guarantee for add/remove neighbours must bound both; every function here returns an
upper bound on the maximum of the two.

* Gaussian noise: :func:`sampled_gaussian_rdp`, the exact value of Mironov, Talwar & Zhang
  (2019), "Rényi Differential Privacy of the Sampled Gaussian Mechanism", arXiv 1908.10530,
  Sec. 3.3 (for the Gaussian the remove direction dominates, their Theorem 5).
* Any other mechanism with an RDP curve ε(·) valid at every integer order (both directions):
  :func:`binomial_remove_rdp` (the remove direction, exact binomial expansion),
  :func:`zhu_wang_general_rdp` (both directions, Zhu & Wang, ICML 2019, "Poisson Subsampled
  Rényi Differential Privacy", the general upper bound, Theorem 5 of the PMLR version),
  :func:`chi2_add_rdp` (the add direction from the χ² divergence) and
  :func:`general_subsampled_rdp` (the smallest of Zhu–Wang, a convexity bound, and the larger
  of the exact remove direction and the χ² add bound).
* Fractional orders: :func:`low_order_subsampled_rdp` for 1 < α ≤ 2 (from ε(α) at the same
  order) and :func:`interpolated_subsampled_rdp` for α > 2 (the convexity in α of the cumulant
  (α − 1)·D_α between the neighbouring integer orders).
* :func:`poisson_subsampled_rdp` dispatches by mechanism and geometry.

All sums are evaluated in log space (``gammaln`` for binomial coefficients, ``logsumexp``).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from lmodp._validation import require_geometry, require_positive, require_sample_rate
from lmodp.accounting.rdp import divergence
from lmodp.accounting.rdp.l2_sup_bound import DEFAULT_L2_TOLERANCE
from lmodp.accounting.orders import integer_mask, validate_orders
from lmodp.accounting.rdp.noise_laws import noise_law
from lmodp.mechanisms import Mechanism, require_accountable

# Rényi divergences are evaluated exactly (integer-order binomial tables) up to this order;
# above it, only the requested integer orders are evaluated and the others bounded by
# monotonicity in the order.
_DENSE_INTEGER_LIMIT = 256
# Series for fractional orders are summed in blocks of this many terms.
_BLOCK = 1024
# Stop a fractional-order series once a whole block is below (rough size of A_α − 1)·e^-23 ≈ 1e-10·(A_α − 1).
_SERIES_RELATIVE_CUTOFF = 23.0
_MAX_SERIES_TERMS = 50_000_000
# Cells on [0, 1] for the sup in the add-direction bound.
_ADD_GRID = 512


def _log_binom(n: float, k: np.ndarray) -> np.ndarray:
    """log |C(n, k)| for real n and integer k >= 0 (gammaln takes log |Γ|)."""
    return special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)


def _log_a_integer(alpha: int, q: float, sigma: float) -> float:
    r"""log A_α = log Σ_{i=0}^{α} C(α,i) q^i (1−q)^{α−i} exp((i²−i)/(2σ²)) (MTZ 2019, Sec. 3.3)."""
    i = np.arange(alpha + 1, dtype=float)
    terms = _log_binom(float(alpha), i) + i * math.log(q) + (alpha - i) * math.log1p(-q) + (i * i - i) / (2.0 * sigma**2)
    return float(special.logsumexp(terms))


def _log_half_erfc_terms(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split log Φ(−x) = quad + rest with quad = −x²/2 for x > 0 (0 otherwise), rest stable."""
    positive = x > 0.0
    xp = np.where(positive, x, 0.0)
    quad = np.where(positive, -0.5 * xp * xp, 0.0)
    rest = np.where(positive, np.log(0.5 * special.erfcx(xp / math.sqrt(2.0))), special.log_ndtr(-x))
    return quad, rest


def _log_a_fractional(alpha: float, q: float, sigma: float) -> float:
    r"""log A_α for fractional α by the two series of MTZ 2019, Sec. 3.3.

    With z0 = σ² log(1/q − 1) + ½ and j = α − i,

        A_α = Σ_{i≥0} C(α,i) [ q^i (1−q)^{α−i} e^{(i²−i)/(2σ²)} Φ((z0−i)/σ)
                              + q^{j} (1−q)^{i} e^{(j²−j)/(2σ²)} Φ((j−z0)/σ) ].

    Where a Gaussian tail is far out, its −x²/2 is cancelled algebraically against the
    exponent (both terms then equal α log(1−q) − z0²/(2σ²) + log(½ erfcx(x/√2)) + log|C|), so
    large i loses no precision. The series is summed in blocks until a whole block is below
    e^{-23} ≈ 1e-10 times the size of A_α − 1; its tail alternates in sign with decreasing
    terms, so it is bounded by the largest term of the last block, which is added
    (pessimistically).
    """
    log_q, log_1mq = math.log(q), math.log1p(-q)
    s2 = sigma * sigma
    z0 = s2 * (math.log1p(-q) - log_q) + 0.5
    flat = alpha * log_1mq - z0 * z0 / (2.0 * s2)
    rough_excess = math.log(alpha * (alpha - 1.0) / 2.0) + 2.0 * log_q + math.log(math.expm1(min(1.0 / s2, 700.0)))
    cutoff = rough_excess - _SERIES_RELATIVE_CUTOFF
    pos, neg = [], []
    start = 0
    while True:
        i = np.arange(start, start + _BLOCK, dtype=float)
        j = alpha - i
        log_c = _log_binom(alpha, i)
        sign = special.gammasgn(j + 1.0)
        x0 = (i - z0) / sigma
        quad0, rest0 = _log_half_erfc_terms(x0)
        direct0 = i * log_q + j * log_1mq + (i * i - i) / (2.0 * s2) + quad0
        t0 = log_c + np.where(x0 > 0.0, flat, direct0) + rest0
        x1 = (z0 - j) / sigma
        quad1, rest1 = _log_half_erfc_terms(x1)
        direct1 = j * log_q + i * log_1mq + (j * j - j) / (2.0 * s2) + quad1
        t1 = log_c + np.where(x1 > 0.0, flat, direct1) + rest1
        terms = np.concatenate([t0, t1])
        signs = np.concatenate([sign, sign])
        pos.append(special.logsumexp(terms[signs > 0]) if np.any(signs > 0) else -np.inf)
        neg.append(special.logsumexp(terms[signs < 0]) if np.any(signs < 0) else -np.inf)
        block_max = float(np.max(terms))
        start += _BLOCK
        if start > alpha + 1.0 and block_max < cutoff:
            break
        if start >= _MAX_SERIES_TERMS:
            raise ArithmeticError(f"sampled-Gaussian series did not converge at order {alpha}")
    log_pos = special.logsumexp(pos + [block_max])
    log_neg = special.logsumexp(neg)
    if log_neg >= log_pos:
        raise ArithmeticError(f"sampled-Gaussian series lost all precision at order {alpha}")
    return float(log_pos + math.log1p(-math.exp(log_neg - log_pos)))


def sampled_gaussian_rdp(orders: ArrayLike, *, noise_multiplier: float, sample_rate: float) -> np.ndarray:
    r"""RDP ε(α) of the Poisson-subsampled Gaussian mechanism, per step.

    Exact value of Mironov, Talwar & Zhang (2019), "Rényi Differential Privacy of the Sampled
    Gaussian Mechanism" (arXiv 1908.10530): ε(α) = log(A_α)/(α−1) with A_α by the binomial sum
    for integer α and by the two-series formula for fractional α (see :func:`_log_a_fractional`);
    for q = 1 it is α/(2σ²). ``noise_multiplier`` is σ divided by the L2 sensitivity. The same
    number bounds a d-dimensional query with L2 sensitivity 1 (rotation invariance) and both
    the add and the remove direction (MTZ 2019, Theorem 5).

    Numerical error: integer orders, a few ulp of log A_α; fractional orders, a truncation of
    at most about 1e-10·(A_α − 1) added pessimistically, plus rounding of order 1e-16·A_α, i.e. a
    relative error of about 1e-16/(A_α − 1) on ε (below 1e-9 whenever A_α − 1 > 1e-7). With very
    little noise (σ ≲ 0.2) the truncation term can dominate at orders below 2; there the value
    is also capped by :func:`low_order_subsampled_rdp` with ε(α) = α/(2σ²), a proven bound that
    is tight in that regime.
    """
    alphas = validate_orders(orders)
    sigma = require_positive("noise_multiplier", noise_multiplier)
    q = require_sample_rate("sample_rate", sample_rate)
    if q == 1.0:
        return alphas / (2.0 * sigma**2)
    out = np.empty_like(alphas)
    for k, alpha in enumerate(alphas):
        if float(alpha).is_integer():
            log_a = _log_a_integer(int(alpha), q, sigma)
        else:
            log_a = _log_a_fractional(float(alpha), q, sigma)
        out[k] = max(log_a, 0.0) / (alpha - 1.0)
    low = alphas < 2.0
    if np.any(low):
        # With little noise the series' truncation term is loose at these orders; the general
        # low-order bound (valid for any pair with D_α = α/(2σ²)) is then the tighter one.
        plain = alphas[low] / (2.0 * sigma**2)
        out[low] = np.minimum(out[low], low_order_subsampled_rdp(alphas[low], plain, sample_rate=q))
    return out


def _check_table(orders: np.ndarray, base_rdp: np.ndarray) -> np.ndarray:
    if not np.all(integer_mask(orders)):
        raise ValueError("orders must be integers >= 2 for the binomial subsampling bounds")
    table = np.asarray(base_rdp, dtype=float)
    if table.ndim != 1 or table.size <= int(orders.max()):
        raise ValueError(f"base_rdp must hold ε(j) for every integer j <= {int(orders.max())} (index j)")
    needed = table[2 : int(orders.max()) + 1]
    if np.any(np.isnan(needed)) or np.any(needed < 0.0):
        raise ValueError("base_rdp must be >= 0 (or +inf) at every integer order 2..max(orders)")
    return table


def _binomial_log_moments(orders: np.ndarray, base_rdp: np.ndarray, q: float, higher_factor: float) -> np.ndarray:
    r"""For each integer α, log[(1−q)^{α−1}(1+(α−1)q) + Σ_{j≥2} c_j C(α,j)(1−q)^{α−j} q^j e^{(j−1)ε(j)}]
    (the bound times α−1), with c_2 = 1 and c_j = ``higher_factor`` for j >= 3."""
    log_q, log_1mq = math.log(q), math.log1p(-q)
    out = np.empty_like(orders)
    for k, alpha in enumerate(orders):
        a = int(alpha)
        j = np.arange(2, a + 1, dtype=float)
        cgf = (j - 1.0) * base_rdp[2 : a + 1]
        factor = np.where(j >= 3, math.log(higher_factor), 0.0)
        terms = _log_binom(float(a), j) + j * log_q + (a - j) * log_1mq + cgf + factor
        head = (a - 1) * log_1mq + math.log1p((a - 1) * q)
        out[k] = special.logsumexp(np.append(terms, head))
    return out


def _binomial_bound(orders: ArrayLike, base_rdp: ArrayLike, sample_rate: float, higher_factor: float) -> np.ndarray:
    alphas = validate_orders(orders)
    table = _check_table(alphas, base_rdp)
    q = require_sample_rate("sample_rate", sample_rate)
    if q == 1.0:
        return table[alphas.astype(int)].copy()
    return _binomial_log_moments(alphas, table, q, higher_factor) / (alphas - 1.0)


def binomial_remove_rdp(orders: ArrayLike, base_rdp: ArrayLike, *, sample_rate: float) -> np.ndarray:
    r"""Remove direction D_α((1−q)Q + qP ‖ Q) at integer α, from the base curve ε(j) = ``base_rdp[j]``.

    E_Q[((1−q) + q·P/Q)^α] = Σ_{j=0}^{α} C(α,j)(1−q)^{α−j} q^j E_Q[(P/Q)^j] and
    E_Q[(P/Q)^j] = e^{(j−1)D_j(P‖Q)}: the expansion is exact for every fixed pair (P, Q), and each
    term increases with D_j, so substituting any upper bound ε(j) ≥ D_j (e.g. the sup over the
    L2 ball of shifts) gives an upper bound on the subsampled divergence (Mironov, Talwar & Zhang
    2019, Sec. 3.1; Zhu & Wang 2019, Sec. 3).
    """
    return _binomial_bound(orders, base_rdp, sample_rate, 1.0)


def zhu_wang_general_rdp(orders: ArrayLike, base_rdp: ArrayLike, *, sample_rate: float) -> np.ndarray:
    r"""Both directions at integer α: the general upper bound of Zhu & Wang (ICML 2019), Theorem 5.

    For any mechanism satisfying (j, ε(j))-RDP for all integers j ≥ 2 (in both directions),
    its Poisson-subsampled version with rate γ = q satisfies, for integer α ≥ 2,

        ε'(α) ≤ 1/(α−1) · log[(1−γ)^{α−1}(αγ − γ + 1) + C(α,2) γ² (1−γ)^{α−2} e^{ε(2)}
                              + 3 Σ_{ℓ=3}^{α} C(α,ℓ) (1−γ)^{α−ℓ} γ^ℓ e^{(ℓ−1)ε(ℓ)}].

    Term by term it dominates :func:`binomial_remove_rdp` (same terms, factor 3 from ℓ = 3).
    """
    return _binomial_bound(orders, base_rdp, sample_rate, 3.0)


def _add_remainder_factor(m: np.ndarray, q: float) -> np.ndarray:
    """c(m) in units of q²: R(u) <= c0·u² + c2·u²/(1+u) on u >= −1 with c0 + c2 <= c (see
    :func:`chi2_add_rdp`), or R(u) <= c·u² there; the smaller of the two constructions."""
    c0 = m * (m + 1.0) / 2.0
    with np.errstate(over="ignore"):
        r_minus_one = np.expm1(-m * math.log1p(-q)) - m * q
        v = np.linspace(0.0, 1.0, _ADD_GRID + 1)
        # sup_v (1 − v)((1 − qv)^{−m−2} − 1), by cells: the first factor decreases, the second increases.
        rising = np.expm1(-(m[:, None] + 2.0) * np.log1p(-q * v[None, 1:]))
        g_sup = np.max((1.0 - v[None, :-1]) * rising, axis=1)
    return np.minimum(np.maximum(c0, r_minus_one / (q * q)), c0 + c0 * g_sup / 3.0)


def _log_expm1(x: np.ndarray) -> np.ndarray:
    """log(e^x − 1) for x >= 0 (−inf at 0), without overflow for large x."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(x > 30.0, x + np.log1p(-np.exp(-x)), np.log(np.expm1(np.minimum(x, 30.0))))


def chi2_add_rdp(orders: ArrayLike, rdp_at_2: float, *, sample_rate: float) -> np.ndarray:
    r"""Add direction D_α(Q ‖ (1−q)Q + qP) at any real α > 1, given ``rdp_at_2`` >= D_2(P‖Q) and D_2(Q‖P).

    With X = P/Q under Q (E[X] = 1), Y = X − 1 and m = α − 1,
    e^{(α−1)D_α(Q‖M)} = E_Q[(1 + qY)^{−m}] = 1 + E_Q[R(Y)], R(u) = (1 + qu)^{−m} − 1 + mqu,
    R(0) = R'(0) = 0, R''(u) = m(m+1)q²(1 + qu)^{−m−2} (positive, decreasing and convex), and
    R(u)/u² = ∫_0^1 (1−s) R''(su) ds. Two pointwise bounds follow, with c0 = m(m+1)q²/2:

    * R(u) <= c0·u² for u >= 0 and R(u) <= R(−1)·u² for −1 <= u < 0, so
      E_Q[R(Y)] <= max(c0, R(−1))·χ²(P‖Q), χ²(P‖Q) = E_Q[Y²] = e^{D_2(P‖Q)} − 1;
    * convexity of R'' gives R(−v)/v² <= c0 + (R''(−v) − R''(0))/6 on 0 < v <= 1, so
      R(u) <= c0·u² + c2·u²/(1+u) with c2 = (c0/3)·sup_v (1−v)((1−qv)^{−m−2} − 1) (bounded on
      a grid of cells), and E_Q[Y²/X] = e^{D_2(Q‖P)} − 1: E_Q[R(Y)] <= (c0 + c2)(e^{ε(2)} − 1).

    Hence ε_add(α) <= log(1 + c·(e^{ε(2)} − 1))/(α − 1) with c the smaller constant. Written
    here for lmodp (a second-order Taylor argument); to leading order in q it is the remove
    direction's own term C(α,2)q²(e^{ε(2)} − 1).
    """
    alphas = validate_orders(orders)
    q = require_sample_rate("sample_rate", sample_rate)
    if math.isnan(rdp_at_2) or rdp_at_2 < 0.0:
        raise ValueError(f"rdp_at_2 must be >= 0 (or +inf), got {rdp_at_2!r}")
    if q == 1.0:
        return np.full_like(alphas, np.inf)
    m = alphas - 1.0
    with np.errstate(over="ignore", divide="ignore"):
        log_c = np.log(_add_remainder_factor(m, q)) + 2.0 * math.log(q)
        log_excess = log_c + _log_expm1(rdp_at_2)
        return np.log1p(np.exp(log_excess)) / m


def _add_low_order_factor(m: np.ndarray, q: float) -> np.ndarray:
    r"""ρ(m, q) = sup_{t≥0} (1+t)^{1−m} (1+qt)^{−(m+2)} for 0 < m ≤ 1 (see :func:`low_order_subsampled_rdp`).

    The logarithm φ(t) = (1−m)·log(1+t) − (m+2)·log(1+qt) has φ'(t) = 0 at the single point
    t* = ((1−m) − (m+2)q)/(q(1+2m)), where φ' changes sign from + to −; if t* <= 0, φ is
    non-increasing and the sup is φ(0) = 0."""
    t_star = ((1.0 - m) - (m + 2.0) * q) / (q * (1.0 + 2.0 * m))
    t = np.maximum(t_star, 0.0)
    return np.exp((1.0 - m) * np.log1p(t) - (m + 2.0) * np.log1p(q * t)) * (1.0 + 1e-12)


def low_order_subsampled_rdp(orders: ArrayLike, base_rdp: ArrayLike, *, sample_rate: float) -> np.ndarray:
    r"""Both directions at real 1 < α <= 2, given ``base_rdp`` >= D_α(P‖Q) and D_α(Q‖P) at each order.

    Write X = P/Q under Q (E[X] = 1), Y = X − 1, m = α − 1 ∈ (0, 1] and E = e^{m·ε(α)} − 1.

    *Remove direction.* E_Q[(1 + qY)^α] = 1 + E_Q[β(qY)] with β(u) = (1+u)^α − 1 − αu >= 0 and
    β(qy) = q²∫_0^y (y−r) β''(qr) dr, β''(u) = α m (1+u)^{m−1}. For y >= 0,
    β''(qr)/β''(r) = ((1+r)/(1+qr))^{1−m} <= q^{m−1} because (1+r)/(1+qr) <= 1/q; for −1 <= y < 0
    (r ∈ [y, 0]) the ratio is <= 1 <= q^{m−1}. Hence β(qy) <= q^α β(y) pointwise and
    E_Q[β(qY)] <= q^α E_Q[β(Y)] = q^α (e^{m D_α(P‖Q)} − 1) <= q^α·E.

    *Add direction.* E_Q[(1 + qY)^{−m}] = 1 + E_Q[r(qY)] with r(u) = (1+u)^{−m} − 1 + mu >= 0,
    r''(u) = m(m+1)(1+u)^{−m−2}. For y < 0 the same substitution gives r(qy) <= q² r(y)
    ((1+r)/(1+qr) <= 1); for y >= 0, r''(qr)/β''(r) = (1+r)^{1−m}(1+qr)^{−(m+2)} <= ρ, so
    r(qy) <= q²ρ·β(y) (:func:`_add_low_order_factor`). Both r and β are >= 0, so
    E_Q[r(qY)] <= q²(E_Q[r(Y)] + ρ E_Q[β(Y)]) = q²((e^{m D_α(Q‖P)} − 1) + ρ(e^{m D_α(P‖Q)} − 1))
    <= q²(1 + ρ)·E. Also Q <= M/(1 − q) pointwise, so D_α(Q‖M) <= D_∞(Q‖M) <= −log(1 − q).

    Returned: max(remove, add) with remove = log(1 + q^α E)/m and add = min(log(1 + q²(1+ρ)E)/m,
    −log(1 − q)); at α = 2 the remove bound is the exact binomial expansion. To leading order
    the remove term q^α·e^{m ε(α)} is what the subsampled divergence is when P/Q is large, which
    is where orders below 2 are optimal (little noise). Written here for lmodp.
    """
    alphas = validate_orders(orders)
    if np.any(alphas > 2.0):
        raise ValueError("orders must lie in (1, 2] for the low-order subsampling bound")
    base = np.asarray(base_rdp, dtype=float)
    if base.shape != alphas.shape or np.any(np.isnan(base)) or np.any(base < 0.0):
        raise ValueError("base_rdp must be >= 0 (or +inf) at every order, one value per order")
    q = require_sample_rate("sample_rate", sample_rate)
    m = alphas - 1.0
    log_e = _log_expm1(m * base)
    log_q = math.log(q)
    remove = np.logaddexp(0.0, alphas * log_q + log_e) / m
    if q == 1.0:
        return remove
    add_factor = 2.0 * log_q + np.log1p(_add_low_order_factor(m, q))
    add = np.minimum(np.logaddexp(0.0, add_factor + log_e) / m, -math.log1p(-q))
    return np.maximum(remove, add) * (1.0 + 1e-12)


def interpolated_subsampled_rdp(orders: ArrayLike, integer_orders: ArrayLike, integer_rdp: ArrayLike) -> np.ndarray:
    r"""Bounds at real orders between integers from bounds at the integers around them.

    For any pair (P, Q), α ↦ (α − 1)·D_α(P‖Q) is convex (van Erven & Harremoës 2014, Cor. 2),
    so with j = ⌊α⌋, t = α − j: (α−1)D_α <= (1−t)(j−1)D_j + t·j·D_{j+1}. Bounds at j and j + 1
    valid for every pair of a family (here the subsampled pairs of all shifts in the L2 ball,
    in both directions) therefore bound the family at α. Every ⌊α⌋ and ⌈α⌉ must be in
    ``integer_orders``.
    """
    alphas = validate_orders(orders)
    ints = np.asarray(integer_orders, dtype=float)
    values = np.asarray(integer_rdp, dtype=float)
    lo, hi = np.floor(alphas), np.ceil(alphas)
    i_lo, i_hi = np.searchsorted(ints, lo), np.searchsorted(ints, hi)
    if np.any(i_hi >= ints.size) or np.any(ints[np.minimum(i_lo, ints.size - 1)] != lo) or np.any(ints[i_hi] != hi):
        raise ValueError("integer_orders must contain floor and ceil of every order")
    t = alphas - lo
    with np.errstate(invalid="ignore"):
        cgf_lo = np.where(t < 1.0, (1.0 - t) * (lo - 1.0) * values[i_lo], 0.0)
        cgf_hi = np.where(t > 0.0, t * (hi - 1.0) * values[i_hi], 0.0)
    return (cgf_lo + cgf_hi) / (alphas - 1.0)


def general_subsampled_rdp(orders: ArrayLike, base_rdp: ArrayLike, *, sample_rate: float) -> np.ndarray:
    r"""Both directions at integer α for any mechanism with RDP curve ε(j) = ``base_rdp[j]``.

    The minimum of three upper bounds on max(remove, add):

    * :func:`zhu_wang_general_rdp` (tight for small q; it dominates the exact remove-direction
      expansion :func:`binomial_remove_rdp` term by term);
    * the convexity bound log(1 − q + q·e^{(α−1)ε(α)})/(α−1) <= ε(α), for M = (1−q)Q + qP:
      x ↦ x^α and x ↦ x^{1−α} are convex for α > 1, so pointwise (M/Q)^α <= (1−q) + q(P/Q)^α and
      M^{1−α} <= (1−q)Q^{1−α} + qP^{1−α}; integrating against Q (resp. Q^α) bounds
      e^{(α−1)D_α(M‖Q)} and e^{(α−1)D_α(Q‖M)} by (1−q) + q·e^{(α−1)ε(α)}. It keeps the result
      below ε(α) when q is large, where the factor 3 of Zhu–Wang would exceed the unsubsampled
      curve;
    * the larger of the exact remove direction :func:`binomial_remove_rdp` and the add-direction
      bound :func:`chi2_add_rdp` (which needs only ε(2)); this avoids Zhu–Wang's factor 3 where
      the add direction is the smaller one, as in DP-SGD settings.
    """
    alphas = validate_orders(orders)
    table = _check_table(alphas, base_rdp)
    q = require_sample_rate("sample_rate", sample_rate)
    own = table[alphas.astype(int)]
    with np.errstate(over="ignore"):
        convexity = np.log1p(q * np.expm1((alphas - 1.0) * own)) / (alphas - 1.0)
    directions = np.maximum(
        binomial_remove_rdp(alphas, table, sample_rate=q), chi2_add_rdp(alphas, float(table[2]), sample_rate=q)
    )
    return np.minimum(np.minimum(zhu_wang_general_rdp(alphas, table, sample_rate=q), convexity), directions)


def _l2_bounds(
    mechanism: Mechanism, integer_orders: np.ndarray, low_orders: np.ndarray, sensitivity: float, l2_tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """(ε(j) for j = 0..max(integer_orders), ε at ``low_orders``) from the dimension-free L2 bound.

    Evaluated at every integer 2..min(max, 256) and at the requested integers above (one call),
    and at the fractional ``low_orders`` (a second call, so that the integer values do not
    depend on them: the bound interpolates between anchor orders of each call); any other
    integer j gets the value at the next evaluated integer above it, an upper bound because the
    Rényi divergence (hence the L2 bound, a supremum of divergences) is nondecreasing in the
    order (van Erven & Harremoës 2014, Theorem 3).
    """
    top = int(integer_orders.max())
    dense = np.arange(2, min(top, _DENSE_INTEGER_LIMIT) + 1, dtype=float)
    evaluated = np.union1d(dense, integer_orders)
    values = np.asarray(divergence.l2_renyi_bound(mechanism, evaluated, l2_sensitivity=sensitivity, l2_tolerance=l2_tolerance), dtype=float)
    j = np.arange(top + 1, dtype=float)
    nearest_above = np.searchsorted(evaluated, np.maximum(j, 2.0))
    table = values[nearest_above]
    table[:2] = 0.0
    if low_orders.size == 0:
        return table, low_orders
    low = divergence.l2_renyi_bound(mechanism, low_orders, l2_sensitivity=sensitivity, l2_tolerance=l2_tolerance)
    return table, np.asarray(low, dtype=float)


def _l2_subsampled_rdp(mechanism: Mechanism, alphas: np.ndarray, q: float, sensitivity: float, l2_tolerance: float) -> np.ndarray:
    """The l2 branch of :func:`poisson_subsampled_rdp` at every order (see there)."""
    integers = integer_mask(alphas)
    low = ~integers & (alphas < 2.0)
    high = ~integers & (alphas > 2.0)
    needed = np.unique(np.concatenate([alphas[integers], np.floor(alphas[high]), np.ceil(alphas[high]), [2.0]]))
    table, low_base = _l2_bounds(mechanism, needed, alphas[low], sensitivity, l2_tolerance)
    at_integers = general_subsampled_rdp(needed, table, sample_rate=q)
    out = np.empty_like(alphas)
    out[integers] = at_integers[np.searchsorted(needed, alphas[integers])]
    if np.any(high):
        out[high] = interpolated_subsampled_rdp(alphas[high], needed, at_integers)
    if np.any(low):
        at_two = float(at_integers[np.searchsorted(needed, 2.0)])
        out[low] = np.minimum(low_order_subsampled_rdp(alphas[low], low_base, sample_rate=q), at_two)
    return out


def poisson_subsampled_rdp(
    mechanism: Mechanism,
    orders: ArrayLike,
    *,
    sample_rate: float,
    sensitivity: float,
    geometry: str,
    l2_tolerance: float = DEFAULT_L2_TOLERANCE,
) -> np.ndarray:
    r"""Per-step RDP upper bound of ``mechanism`` under Poisson subsampling with rate q.

    * q = 1: no subsampling, :func:`lmodp.accounting.rdp.divergence.unsubsampled_rdp`.
    * a law with a closed form for it (:meth:`~lmodp.accounting.rdp.noise_laws.NoiseLaw.closed_form_subsampled_rdp`):
      the Gaussian in either geometry (i.i.d. Gaussian noise is rotation invariant, so an L2
      shift of norm Δ is the scalar case), :func:`sampled_gaussian_rdp` with noise multiplier σ/Δ.
    * ``"scalar"``: :func:`lmodp.accounting.rdp.divergence.subsampled_scalar_rdp`, both directions by
      quadrature, at every order.
    * ``"l2"``, other mechanisms: bounds on the maximum of both directions fed with the
      dimension-free L2 bound ε(α) of :func:`lmodp.accounting.rdp.divergence.l2_renyi_bound`
      (``l2_tolerance`` is its relative slack: larger is faster and looser, never unsound):
      integer orders by :func:`general_subsampled_rdp`, fractional orders above 2 by
      :func:`interpolated_subsampled_rdp` between the integers around them, and orders in
      (1, 2) by :func:`low_order_subsampled_rdp` (capped by the bound at order 2, as the
      divergence is nondecreasing in the order).
    """
    alphas = validate_orders(orders)
    q = require_sample_rate("sample_rate", sample_rate)
    delta_s = require_positive("sensitivity", sensitivity)
    geometry = require_geometry(geometry)
    mechanism = require_accountable(mechanism).canonical()
    closed_form = noise_law(mechanism).closed_form_subsampled_rdp(alphas, sample_rate=q, sensitivity=delta_s)
    if closed_form is not None:
        return closed_form
    if q == 1.0:
        return np.asarray(divergence.unsubsampled_rdp(mechanism, alphas, sensitivity=delta_s, geometry=geometry), dtype=float)
    if geometry == "scalar":
        return np.asarray(divergence.subsampled_scalar_rdp(mechanism, alphas, sample_rate=q, sensitivity=delta_s), dtype=float)
    return _l2_subsampled_rdp(mechanism, alphas, q, delta_s, l2_tolerance)
