r"""Numba kernels for the generalized Gaussian law (density ∝ exp(−|y/s|^p), 1 ≤ p ≤ 2).

With W = |Y/s|^p, W ~ Gamma(1/p, 1), so every probability is a regularized incomplete gamma
function: :math:`P(|Y| > y) = Q(1/p, (y/s)^p)` with :math:`Q(a, x) = \Gamma(a, x)/\Gamma(a)`.
:func:`log_gamma_q` evaluates log Q in log space (accurate far into the tail, where Q itself
underflows): by the power series of the lower function P for x < a + 1,
:math:`P(a,x) = \frac{x^a e^{-x}}{\Gamma(a+1)}\sum_{n\ge0}\frac{x^n}{(a+1)\cdots(a+n)}` and log Q = log1p(−P),
and by the continued fraction of Q (modified Lentz) for x ≥ a + 1,
:math:`Q(a,x) = \frac{x^a e^{-x}}{\Gamma(a)}\cfrac{1}{x+1-a-\cfrac{1\cdot(1-a)}{x+3-a-\cfrac{2(2-a)}{x+5-a-\cdots}}}`
(Abramowitz & Stegun 6.5.29 and 6.5.31; both converge to float64 precision here).

Parameters travel as ``p = [s, power]``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_EPS = 2.0**-53
_TINY = 1e-300
_MAX_TERMS = 10_000


@njit(cache=True)
def log_gamma_q(a: float, x: float) -> float:
    """log Q(a, x), the log of the regularized upper incomplete gamma function (a > 0, x >= 0)."""
    if x <= 0.0:
        return 0.0
    log_prefactor = a * math.log(x) - x
    if x < a + 1.0:
        term = 1.0 / a
        total = term
        for n in range(1, _MAX_TERMS):
            term *= x / (a + n)
            total += term
            if term < total * _EPS:
                break
        p = math.exp(log_prefactor - math.lgamma(a) + math.log(total))
        return math.log1p(-min(p, 1.0))
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < _EPS:
            break
    return log_prefactor - math.lgamma(a) + math.log(h)


@njit(cache=True)
def log_normalizer(p: np.ndarray) -> float:
    """log of p / (2 s Γ(1/p)), the density at 0."""
    return math.log(p[1]) - math.log(2.0 * p[0]) - math.lgamma(1.0 / p[1])


@njit(cache=True)
def logpdf_scalar(y: float, p: np.ndarray) -> float:
    """log f(y) = log(p / (2sΓ(1/p))) − |y/s|^p."""
    return log_normalizer(p) - abs(y / p[0]) ** p[1]


@njit(cache=True)
def log_tail(s: float, p: np.ndarray) -> float:
    """log P(|Y| > s) = log Q(1/p, (s/scale)^p) for s >= 0."""
    return log_gamma_q(1.0 / p[1], (abs(s) / p[0]) ** p[1])


@njit(cache=True)
def shift_loss(y: float, shift: float, p: np.ndarray) -> float:
    """log f(y − shift) − log f(y) = (|y|^p − |y − shift|^p)/s^p, without the normalizers."""
    return (abs(y / p[0]) ** p[1]) - (abs((y - shift) / p[0]) ** p[1])
