r"""The divergence quadrature for the generalized Gaussian law, density ∝ exp(−|y/s|^p), 1 ≤ p ≤ 2.

Upper bounds on log Z(c) = log ∫ f·r^c, r = (1 − q) + q·f(· − Δ)/f = 1 − q + q e^{L},
L(y) = |y/s|^p − |(y − Δ)/s|^p, for every coefficient c (c = α and c = 1 − α give the two
directions of the subsampled Rényi divergence; q = 1 the divergence of the shift itself). The
integral is invariant under y ↦ y/s, so everything below takes s = 1 and d = Δ/s.

**Panels.** The log-integrand log f + c·ψ has cusps (|y|^p is not smooth) at y = 0 and y = d and
is smooth elsewhere, its second derivative bounded by κ(y) = |g''(y)| + α_max·(|L''(y)| + L'(y)²/4)
(the last term for q < 1 only: ψ'' = σ(1−σ)L'² + σL'' with σ ∈ [0, 1]); ψ = log r has complex
singularities at distance π/|L'(y)| (where 1 − q + q e^L = 0). Panels start at each cusp with
length 10⁻⁶ (or d/8) and grow geometrically (ratio 2) until they reach the width
w(y) = min(1/4, 1.5/√κ(y), 1.5/|L'(y)| for q < 1), which they keep out to the cuts; each is
integrated by Gauss–Legendre with 8 points on each half, the coarse-versus-fine difference added
(:func:`lmodp.accounting.rdp._divergence_kernels.log_moments`).

**Tails (proven).** With W = |Y|^p ~ Gamma(1/p, 1) and β = 1 − 1/p, the bound
w^β ≤ (1 − β)a^β + βa^{β−1}w (tangent of a concave function, any a > 0) gives, for λ =
κβa^{β−1} < 1,

.. math:: E[1\{W \ge w_0\}\,e^{\kappa W^\beta}] \le e^{\kappa(1-\beta)a^\beta}(1-\lambda)^{-1/p}\,Q(1/p, (1-\lambda)w_0)

(Q the regularized upper incomplete gamma function; a = w_0). On y ≥ Y_R ≥ d,
0 ≤ L(y) ≤ p·d·y^{p−1} (mean value theorem; x^{p−1} increasing), so r^c ≤ e^{cL} for c > 0
and r^c ≤ 1 for c < 0; on y ≤ −Y_L, L ≤ 0 and |L| ≤ p·d·(|y|^{p−1} + d^{p−1}) (x^{p−1} is
subadditive for p ≤ 2), so r^c ≤ 1 for c > 0, r^c ≤ (1 − q)^c for c < 0 and q < 1, and
r^c ≤ e^{|c|·|L|} for q = 1. Each cut is pushed out until its tail's bound is ≤ e^{−60} for
the smallest and the largest coefficient (the bounds grow with |c| on each side), and the sum of
both bounds is added for every coefficient.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from lmodp.accounting.rdp import _divergence_kernels as DK
from lmodp.accounting.rdp._mixture_quadrature import GL_POINTS, gauss_legendre
from lmodp.mechanisms import GeneralizedGaussian
from lmodp.mechanisms.generalized_gaussian_kernels import log_gamma_q

_LOG_TAIL_TARGET = -60.0
_FIRST_PANEL = 1e-6
_MAX_WIDTH = 0.25
_MAX_PANELS = 400_000


@njit(cache=True)
def _signed_power(y: float, e: float) -> float:
    """sign(y)·|y|^e."""
    return math.copysign(abs(y) ** e, y)


@njit(cache=True)
def _width(y: float, d: float, p: float, order: float, subsampled: bool) -> float:
    """The panel width w(y) of the module docstring (s = 1)."""
    w = _MAX_WIDTH
    slope = p * abs(_signed_power(y, p - 1.0) - _signed_power(y - d, p - 1.0))  # |L'(y)|
    kappa = 0.0
    if p > 1.0:
        a, b = abs(y), abs(y - d)
        ga = p * (p - 1.0) * a ** (p - 2.0) if a > 0.0 else 0.0  # |g''(y)|
        gb = p * (p - 1.0) * b ** (p - 2.0) if b > 0.0 else 0.0  # |g''(y − d)|
        kappa = ga + order * abs(ga - gb)  # |g''| + α·|L''|
    if subsampled:
        kappa += order * slope * slope / 4.0
        if slope > 0.0:
            w = min(w, 1.5 / slope)
    if kappa > 0.0:
        w = min(w, 1.5 / math.sqrt(kappa))
    return w


@njit(cache=True)
def _march(cusp: float, direction: float, length: float, first: float, d: float, p: float, order: float, subsampled: bool):
    """Break points cusp + direction·u for u from 0 to ``length``: geometric from ``first``
    (ratio 2) until the width rule takes over."""
    out = [0.0]
    u = min(first, length)
    while True:
        out.append(u)
        if u >= length or len(out) > _MAX_PANELS:
            break
        u = min(u + min(u, _width(cusp + direction * u, d, p, order, subsampled)), length)
    return np.array([cusp + direction * v for v in out])


def panel_edges(d: float, p: float, max_order: float, y_left: float, y_right: float, subsampled: bool) -> np.ndarray:
    """Sorted break points covering [−y_left, d + y_right] (s = 1)."""
    order = max(max_order, 1.0)
    first = min(_FIRST_PANEL, d / 8.0)
    pieces = [
        _march(0.0, -1.0, y_left, first, d, p, order, subsampled),
        _march(0.0, 1.0, d / 2.0, first, d, p, order, subsampled),
        _march(d, -1.0, d / 2.0, first, d, p, order, subsampled),
        _march(d, 1.0, y_right, first, d, p, order, subsampled),
    ]
    edges = np.unique(np.concatenate(pieces))
    if edges.size > _MAX_PANELS:
        raise ArithmeticError(f"generalized Gaussian quadrature needs more than {_MAX_PANELS} panels (d = {d:g}, p = {p:g})")
    return edges


def log_tilted_tail(kappa: float, w0: float, p: float) -> float:
    """log of an upper bound on E[1{W ≥ w0} e^{κ W^β}], W ~ Gamma(1/p, 1), β = 1 − 1/p (the
    tangent bound of the module docstring with a = w0); +inf where λ ≥ 1."""
    k = 1.0 / p
    beta = 1.0 - k
    if kappa <= 0.0 or beta == 0.0:
        return kappa + log_gamma_q(k, w0)
    lam = kappa * beta * w0 ** (beta - 1.0)
    if lam >= 1.0:
        return math.inf
    return kappa * (1.0 - beta) * w0**beta - k * math.log1p(-lam) + log_gamma_q(k, (1.0 - lam) * w0)


def _log_right_tail(c: float, d: float, p: float, y_right: float) -> float:
    """log of the bound on ∫_{y ≥ y_right} f r^c (y_right >= d), s = 1."""
    if c > 0.0:
        return math.log(0.5) + log_tilted_tail(c * p * d, y_right**p, p)
    return math.log(0.5) + log_gamma_q(1.0 / p, y_right**p)


def _log_left_tail(c: float, d: float, p: float, q: float, y_left: float) -> float:
    """log of the bound on ∫_{y ≤ −y_left} f r^c, s = 1."""
    mass = math.log(0.5) + log_gamma_q(1.0 / p, y_left**p)
    if c > 0.0:
        return mass
    if q < 1.0:
        return mass + c * math.log1p(-q)
    return math.log(0.5) + abs(c) * p * d**p + log_tilted_tail(abs(c) * p * d, y_left**p, p)


def _cut(bound, start: float) -> float:
    """A point x >= ``start`` with bound(x) <= the target: doubling, then bisection keeping a
    point known to satisfy it."""
    hi = max(start, 1.0)
    while bound(hi) > _LOG_TAIL_TARGET:
        hi *= 2.0
        if hi > 1e12:
            raise ArithmeticError("generalized Gaussian quadrature: no tail cut meets e^-60")
    lo = max(start, hi / 2.0)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if bound(mid) <= _LOG_TAIL_TARGET:
            hi = mid
        else:
            lo = mid
    return hi


def gg_log_moments(
    mechanism: GeneralizedGaussian,
    coefs: np.ndarray,
    *,
    sensitivity: float,
    sample_rate: float = 1.0,
    max_order: float,
    log_tail_target: float = _LOG_TAIL_TARGET,
) -> np.ndarray:
    """Upper bounds on log ∫ f·((1−q) + q·f(·−Δ)/f)^c for every c in ``coefs`` (module docstring;
    the tails are cut at e^{−60} whatever ``log_tail_target``, which is accepted for the common interface)."""
    d = sensitivity / mechanism.scale
    p = mechanism.power
    q = sample_rate
    coefs = np.ascontiguousarray(coefs, dtype=float)
    # each tail's bound is <= e^-60 at its cut for every coefficient (the extreme ones decide)
    extremes = (float(coefs.min()), float(coefs.max()))
    y_right = max(_cut(lambda y: _log_right_tail(c, d, p, y), d) for c in extremes)
    y_left = max(_cut(lambda y: _log_left_tail(c, d, p, q, y), 1.0) for c in extremes)
    edges = panel_edges(d, p, max_order, y_left, y_right - d, q < 1.0)
    a, b = edges[:-1].copy(), edges[1:].copy()
    npan = a.size
    gx, gw = gauss_legendre(GL_POINTS)
    log_q = math.log(q)
    log1m_q = math.log1p(-q) if q < 1.0 else -math.inf
    lw, psi, dpsi = DK.panel_nodes(
        np.zeros(npan, dtype=np.int64), np.zeros(npan), np.ones(npan), a, b, gx, gw, 2,
        np.array([1.0, p]), d, log_q, log1m_q,
    )
    y_left, y_right = float(-edges[0]), float(edges[-1])
    tails = np.array([np.logaddexp(_log_left_tail(c, d, p, q, y_left), _log_right_tail(c, d, p, y_right)) for c in coefs])
    return DK.log_moments(lw, psi, dpsi, GL_POINTS, coefs, tails)
