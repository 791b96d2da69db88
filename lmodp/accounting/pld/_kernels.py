r"""Numba kernels for privacy-loss distributions of symmetric additive noise.

For a noise density f (symmetric, log f(y) = g(|y|) with g decreasing and convex or concave) and a
shift Δ > 0, the base privacy loss is ℓ(y) = log f(y) − log f(y − Δ). It is monotone on each of
the three pieces (−R, 0], [0, Δ], [Δ, Δ + R) (on [0, Δ] because g decreases; on the outer pieces
because g(s) − g(s + Δ) is monotone in s when g is convex — Laplace scale mixtures, whose density
is completely monotone in |y| — or concave — the Gaussian and the generalized Gaussian). For a threshold t the level sets
{ℓ > t} and {ℓ < t} are therefore unions of at most three intervals whose endpoints are roots of
ℓ(y) = t, and their probabilities under f and under f(· − Δ) are differences of the closed-form
survival function: no quadrature is involved. Every probability comes with a rounding bound
(a few ulp of the survival values it is a difference of).

Mechanism kinds: ``GAUSSIAN`` with ``p = [sigma]``; ``MIXTURE`` with the packed mixing-law
vector of :mod:`lmodp.mechanisms.mixture_kernels` (LMO or finite mixing laws);
``GENERALIZED_GAUSSIAN`` with ``p = [s, power]`` (:mod:`lmodp.mechanisms.generalized_gaussian_kernels`).
Survival values computed as exp(log P) carry a rounding bound of 8 ulp times (1 + |log P|)
(the rounding of the exponent is amplified by exp); erfc's is 8 ulp.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from lmodp.mechanisms.generalized_gaussian_kernels import log_tail as gg_log_tail
from lmodp.mechanisms.generalized_gaussian_kernels import logpdf_scalar as gg_logpdf
from lmodp.mechanisms.generalized_gaussian_kernels import shift_loss as gg_shift_loss
from lmodp.mechanisms.mixture_kernels import log_tail, logpdf_scalar

GAUSSIAN = 0
MIXTURE = 1
GENERALIZED_GAUSSIAN = 2

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)
# Rounding bound of one survival value (relative): erfc / exp(log_tail) are accurate to a few ulp.
_ROUND = 8.0 * 2.0**-52
_MAX_ROOT_ITER = 200


@njit(cache=True)
def noise_logpdf(y: float, kind: int, p: np.ndarray) -> float:
    """log f(y)."""
    if kind == GAUSSIAN:
        z = y / p[0]
        return -0.5 * z * z - math.log(p[0]) - _LOG_SQRT_2PI
    if kind == GENERALIZED_GAUSSIAN:
        return gg_logpdf(y, p)
    return logpdf_scalar(y, p)


@njit(cache=True)
def noise_survival(y: float, kind: int, p: np.ndarray) -> float:
    """P(Y > y)."""
    if kind == GAUSSIAN:
        return 0.5 * math.erfc(y / (p[0] * _SQRT2))
    tail = 0.5 * math.exp(_log_tail(abs(y), kind, p))
    return tail if y >= 0.0 else 1.0 - tail


@njit(cache=True)
def _log_tail(s: float, kind: int, p: np.ndarray) -> float:
    """log P(|Y| > s), s >= 0, for the kinds other than GAUSSIAN."""
    if kind == GENERALIZED_GAUSSIAN:
        return gg_log_tail(s, p)
    return log_tail(s, p)


@njit(cache=True)
def _rounding(value: float, kind: int) -> float:
    """A bound on the rounding error of a survival value (see the module docstring)."""
    if kind == GAUSSIAN or value <= 0.0:
        return _ROUND * value
    return _ROUND * value * (1.0 - math.log(value))


@njit(cache=True)
def base_loss(y: float, kind: int, p: np.ndarray, shift: float) -> float:
    """ℓ(y) = log f(y) − log f(y − shift)."""
    if kind == GAUSSIAN:
        return shift * (shift - 2.0 * y) / (2.0 * p[0] * p[0])
    if kind == GENERALIZED_GAUSSIAN:
        return -gg_shift_loss(y, shift, p)
    return noise_logpdf(y, kind, p) - noise_logpdf(y - shift, kind, p)


@njit(cache=True)
def _root(a: float, b: float, ga: float, gb: float, t: float, kind: int, p: np.ndarray, shift: float) -> float:
    """A root of ℓ(y) = t in [a, b] where ℓ(a) − t and ℓ(b) − t differ in sign (Illinois method
    in the coordinate u = asinh(y), so that bracket ends far apart in magnitude converge fast;
    closed form for the Gaussian, whose loss is linear)."""
    if kind == GAUSSIAN:
        return min(max(0.5 * shift - p[0] * p[0] * t / shift, a), b)
    ua = math.asinh(a)
    ub = math.asinh(b)
    fa = ga - t
    fb = gb - t
    side = 0
    for _ in range(_MAX_ROOT_ITER):
        if ub - ua <= 4e-16 * max(1.0, abs(ua), abs(ub)):
            break
        uc = (ua * fb - ub * fa) / (fb - fa)
        if not (ua < uc < ub):
            uc = 0.5 * (ua + ub)
        fc = base_loss(math.sinh(uc), kind, p, shift) - t
        if fc == 0.0:
            return math.sinh(uc)
        if (fc > 0.0) == (fa > 0.0):
            ua, fa = uc, fc
            if side == -1:
                fb *= 0.5
            side = -1
        else:
            ub, fb = uc, fc
            if side == 1:
                fa *= 0.5
            side = 1
    return math.sinh(0.5 * (ua + ub))


@njit(cache=True)
def _small_tail(x: float, kind: int, p: np.ndarray) -> float:
    """P(Y > |x|), the tail on the side where it is small."""
    return noise_survival(abs(x), kind, p)


@njit(cache=True)
def _mass_from_tails(a: float, b: float, ta: float, tb: float, kind: int) -> tuple[float, float]:
    """(P(a < Y < b), rounding bound), each tail taken on the side where it is small, from
    ta = P(Y > |a|) and tb = P(Y > |b|)."""
    if b <= a:
        return 0.0, 0.0
    if a >= 0.0:
        return max(ta - tb, 0.0), _rounding(ta, kind) + _rounding(tb, kind)
    if b <= 0.0:
        return max(tb - ta, 0.0), _rounding(tb, kind) + _rounding(ta, kind)
    return max(1.0 - ta - tb, 0.0), _ROUND + _rounding(ta, kind) + _rounding(tb, kind)


@njit(cache=True)
def _warm_bracket(
    a: float, b: float, ga: float, gb: float, t: float, near: float, g_near: float, step: float,
    kind: int, p: np.ndarray, shift: float,
) -> tuple[float, float, float, float]:
    """A bracket [a, b] of the root of ℓ = t (ℓ(a) − t, ℓ(b) − t of opposite signs) narrowed by
    the previous threshold's root ``near`` (with ℓ(near) = ``g_near``) and a guess one ``step``
    beyond it: the roots of consecutive thresholds are close, so the root finder starts there."""
    if not (a < near < b):
        return a, b, ga, gb
    if (g_near > t) == (ga > t):
        a, ga = near, g_near
    else:
        b, gb = near, g_near
    guess = near + step
    if step != 0.0 and a < guess < b:
        g_guess = base_loss(guess, kind, p, shift)
        if (g_guess > t) == (ga > t):
            a, ga = guess, g_guess
        else:
            b, gb = guess, g_guess
    return a, b, ga, gb


@njit(cache=True)
def level_set_masses(
    thresholds: np.ndarray, kind: int, p: np.ndarray, shift: float, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of the level sets of ℓ on the window (−radius, shift + radius).

    Returns ``(mass, err)`` of shape (n, 4): columns are f{ℓ > t}, f_Δ{ℓ > t}, f{ℓ < t},
    f_Δ{ℓ < t} with f_Δ = f(· − Δ) (so f_Δ(I) = f(I − Δ)), and their rounding bounds. Mass
    outside the window is not included (the caller bounds it by the tails). The tails at the
    piece ends are computed once; each root starts from the bracket that the previous
    threshold's root leaves (:func:`_warm_bracket`), as thresholds come in monotone order.
    """
    ends = np.array([-radius, 0.0, shift, shift + radius])
    vals = np.empty(4)
    end_tails = np.empty((4, 2))  # P(Y > |end − moved|), moved = 0 or shift
    for j in range(4):
        vals[j] = base_loss(ends[j], kind, p, shift)
        end_tails[j, 0] = _small_tail(ends[j], kind, p)
        end_tails[j, 1] = _small_tail(ends[j] - shift, kind, p)
    n = thresholds.shape[0]
    mass = np.zeros((n, 4))
    err = np.zeros((n, 4))
    near = np.full(3, np.nan)
    g_near = np.zeros(3)
    step = np.zeros(3)
    tails = np.empty((2, 2))  # tails at the (lo, hi) ends of the piece's part, moved by 0 or shift
    r_tails = np.empty(2)  # tails at the root, moved by 0 or shift
    for i in range(n):
        t = thresholds[i]
        for piece in range(3):
            a = ends[piece]
            b = ends[piece + 1]
            la = vals[piece]
            lb = vals[piece + 1]
            # above = (lo, hi) where ℓ > t; below = where ℓ < t
            if la > t and lb > t:
                a_hi, b_hi, a_lo, b_lo = a, b, 0.0, 0.0
            elif la < t and lb < t:
                a_hi, b_hi, a_lo, b_lo = 0.0, 0.0, a, b
            elif la == t and lb == t:
                continue
            else:
                if la == t:
                    r = a
                elif lb == t:
                    r = b
                else:
                    lo, hi, glo, ghi = _warm_bracket(a, b, la, lb, t, near[piece], g_near[piece], step[piece], kind, p, shift)
                    r = _root(lo, hi, glo, ghi, t, kind, p, shift)
                    if not np.isnan(near[piece]):
                        step[piece] = r - near[piece]
                    near[piece] = r
                    g_near[piece] = base_loss(r, kind, p, shift)
                if la > t or lb < t:
                    a_hi, b_hi, a_lo, b_lo = a, r, r, b
                else:
                    a_hi, b_hi, a_lo, b_lo = r, b, a, r
                r_tails[0] = _small_tail(r, kind, p)
                r_tails[1] = _small_tail(r - shift, kind, p)
            for col in range(4):
                lo_end, hi_end = (a_hi, b_hi) if col < 2 else (a_lo, b_lo)
                if hi_end <= lo_end:
                    continue
                moved = col % 2
                for k in range(2):
                    end = lo_end if k == 0 else hi_end
                    tails[k, moved] = end_tails[piece, moved] if end == a else (end_tails[piece + 1, moved] if end == b else r_tails[moved])
                m, e = _mass_from_tails(lo_end - moved * shift, hi_end - moved * shift, tails[0, moved], tails[1, moved], kind)
                mass[i, col] += m
                err[i, col] += e
    return mass, err


@njit(cache=True)
def lower_convex_hull(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Indices of the vertices of the lower convex hull of the points (x_i, v_i), x increasing
    (Andrew's monotone chain; collinear middle points are dropped)."""
    n = x.shape[0]
    hull = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        while m >= 2:
            i0 = hull[m - 2]
            i1 = hull[m - 1]
            cross = (x[i1] - x[i0]) * (v[i] - v[i0]) - (v[i1] - v[i0]) * (x[i] - x[i0])
            if cross <= 0.0:
                m -= 1
            else:
                break
        hull[m] = i
        m += 1
    return hull[:m].copy()


@njit(cache=True)
def log_mgf_grid(log_probs: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    """K(λ) = log Σ_j p_j e^{λ j} for each λ (index units), from log p_j (−inf for empty
    cells), with the largest exponent factored out."""
    out = np.empty(lambdas.shape[0])
    n = log_probs.shape[0]
    for i in range(lambdas.shape[0]):
        lam = lambdas[i]
        top = -math.inf
        for j in range(n):
            top = max(top, log_probs[j] + lam * j)
        acc = 0.0
        for j in range(n):
            acc += math.exp(log_probs[j] + lam * j - top)
        out[i] = top + math.log(acc)
    return out


@njit(cache=True)
def tilt_for_mean(log_probs: np.ndarray, target: float) -> float:
    """λ ≥ 0 such that the law ∝ p_j e^{λ j} has mean ``target`` (index units; bisection,
    capped at λ = 1e3 when the target lies at or beyond the top of the support)."""

    def mean(lam: float) -> float:
        top = -math.inf
        for j in range(log_probs.shape[0]):
            top = max(top, log_probs[j] + lam * j)
        num = 0.0
        den = 0.0
        for j in range(log_probs.shape[0]):
            w = math.exp(log_probs[j] + lam * j - top)
            num += w * j
            den += w
        return num / den

    lo, hi = 0.0, 1e-6
    while mean(hi) < target and hi < 1e3:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if mean(mid) < target:
            lo = mid
        else:
            hi = mid
    return hi
