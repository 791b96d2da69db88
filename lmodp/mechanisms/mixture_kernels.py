r"""Numba kernels for Laplace scale mixtures (LMO and finite mixing laws).

A Laplace scale mixture draws an inverse scale :math:`\omega > 0` and outputs
:math:`Y \mid \omega \sim \mathrm{Laplace}(0, 1/\omega)`. With the LMO mixing law

.. math:: \omega = a_1 G + a_3 E + a_4 U,\quad G\sim\Gamma(k,\theta),\ E\sim\mathrm{Exp}(\lambda),
          \ U\sim\mathcal U[l,u]

(independent; :math:`\lambda` a *rate*), the moment generating function factorises,
:math:`M_\omega(t)=M_G(a_1t)M_E(a_3t)M_U(a_4t)`, and everything about :math:`Y` is a closed
form in :math:`M_\omega` and its derivatives at :math:`t=-s\le 0` (s = |y|):

* density           :math:`f(y) = \tfrac12 E[\omega e^{-\omega s}] = \tfrac12 M'_\omega(-s)`
* tail              :math:`P(|Y|>s) = M_\omega(-s)`
* score             :math:`f'(y)/f(y) = -\mathrm{sign}(y)\, M''_\omega(-s)/M'_\omega(-s)`

Writing :math:`L(s)=\log M_\omega(-s)`, :math:`D_1(s)=\tfrac{d}{dt}\log M_\omega(t)|_{t=-s}` (the
mean of :math:`\omega` tilted by :math:`e^{-s\omega}`) and :math:`D_2(s)` (its variance), we
have :math:`M' = M D_1` and :math:`M'' = M (D_1^2 + D_2)`. For the LMO law each of :math:`L, D_1, D_2`
is a sum over the three independent components, computed here in log space with ``log1p``/``expm1``
so that it stays accurate for :math:`s` up to 1e6 and beyond and for mixtures with mass of
:math:`\omega` near 0 (power-law tails of :math:`Y`).

The mixing law travels as a packed float64 array whose first entry is its kind
(:mod:`lmodp.mechanisms.mixing` builds it; nothing else reads it by index):

* ``LMO_KIND``: ``p = [0, a1, k, theta, a3, lam, a4, lo, hi]`` for
  ω = a1·Gamma(k, θ) + a3·Exponential(rate λ) + a4·U[lo, hi]; a component with weight 0
  contributes nothing, and ``a4 = 1, lo = hi = c`` is the point mass ω ≡ c;
* ``FINITE_KIND``: ``p = [1, m, ω_1, …, ω_m, w_1, …, w_m]`` for ω = ω_i with probability w_i
  (M_ω(t) = Σ w_i e^{tω_i}, evaluated with the largest term factored out; D1 and D2 are the mean
  and variance of the atoms under the tilted weights ∝ w_i e^{−sω_i}).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LOG_HALF = math.log(0.5)

#: Kinds of mixing law (the first entry of the packed vector).
LMO_KIND = 0.0
FINITE_KIND = 1.0
# Index of each parameter of an LMO law in the packed vector.
A1, K, THETA, A3, LAM, A4, LO, HI = range(1, 9)

_SMALL_Z = 1e-4


@njit(cache=True)
def log1mexp_over_z(z: float) -> float:
    """log((1 - e^{-z}) / z) for z >= 0 (its limit 0 at z = 0)."""
    if z < _SMALL_Z:
        return -0.5 * z + z * z / 24.0
    return math.log(-math.expm1(-z)) - math.log(z)


@njit(cache=True)
def log_expm1_over_z(z: float) -> float:
    """log((e^z - 1) / z) for any real z (its limit 0 at z = 0)."""
    if abs(z) < _SMALL_Z:
        return 0.5 * z + z * z / 24.0
    if z > 0.0:
        return z + log1mexp_over_z(z)
    return log1mexp_over_z(-z)


@njit(cache=True)
def truncated_exp_mean(z: float) -> float:
    """Mean of the density proportional to e^{-z x} on [0, 1]: 1/z - 1/(e^z - 1)."""
    if abs(z) < _SMALL_Z:
        return 0.5 - z / 12.0
    if z > 0.0:
        e = math.exp(-z)
        return 1.0 / z - e / (1.0 - e)
    return 1.0 - truncated_exp_mean(-z)


@njit(cache=True)
def truncated_exp_var(z: float) -> float:
    """Variance of the density proportional to e^{-z x} on [0, 1]: 1/z^2 - 1/(4 sinh^2(z/2))."""
    az = abs(z)
    if az < 1e-2:
        return 1.0 / 12.0 - az * az / 240.0
    e = math.exp(-az)
    return 1.0 / (az * az) - e / ((1.0 - e) * (1.0 - e))


@njit(cache=True)
def _lmo_log_mgf(t: float, p: np.ndarray) -> float:
    """log M_omega(t) of an LMO law for real t; +inf outside the finite domain t < min(1/(a1 theta), lam/a3)."""
    out = 0.0
    a1 = p[A1]
    if a1 > 0.0:
        x = a1 * p[THETA] * t
        if x >= 1.0:
            return math.inf
        out -= p[K] * math.log1p(-x)
    a3 = p[A3]
    if a3 > 0.0:
        x = a3 * t / p[LAM]
        if x >= 1.0:
            return math.inf
        out -= math.log1p(-x)
    a4 = p[A4]
    if a4 > 0.0:
        x = a4 * t
        out += x * p[LO] + log_expm1_over_z(x * (p[HI] - p[LO]))
    return out


@njit(cache=True)
def log_tail(s: float, p: np.ndarray) -> float:
    """L(s) = log M_omega(-s) = log P(|Y| > s) for s >= 0."""
    return log_mgf(-s, p)


@njit(cache=True)
def _lmo_tilted_mean(s: float, p: np.ndarray) -> float:
    """D1(s) of an LMO law (a sum over its independent components)."""
    out = 0.0
    a1 = p[A1]
    if a1 > 0.0:
        out += p[K] * a1 * p[THETA] / (1.0 + a1 * p[THETA] * s)
    a3 = p[A3]
    if a3 > 0.0:
        out += a3 / (p[LAM] + a3 * s)
    a4 = p[A4]
    if a4 > 0.0:
        w = p[HI] - p[LO]
        out += a4 * (p[LO] + w * truncated_exp_mean(a4 * w * s))
    return out


@njit(cache=True)
def _lmo_tilted_var(s: float, p: np.ndarray) -> float:
    """D2(s) of an LMO law (a sum over its independent components)."""
    out = 0.0
    a1 = p[A1]
    if a1 > 0.0:
        c = a1 * p[THETA] / (1.0 + a1 * p[THETA] * s)
        out += p[K] * c * c
    a3 = p[A3]
    if a3 > 0.0:
        c = a3 / (p[LAM] + a3 * s)
        out += c * c
    a4 = p[A4]
    if a4 > 0.0:
        w = p[HI] - p[LO]
        out += a4 * a4 * w * w * truncated_exp_var(a4 * w * s)
    return out


@njit(cache=True)
def _finite_log_weights(s: float, p: np.ndarray) -> tuple[np.ndarray, float]:
    """(log w_i − s·ω_i for every atom, their maximum) of a finite law."""
    m = int(p[1])
    e = np.empty(m)
    top = -math.inf
    for i in range(m):
        e[i] = math.log(p[2 + m + i]) - s * p[2 + i]
        top = max(top, e[i])
    return e, top


@njit(cache=True)
def _finite_log_mgf(t: float, p: np.ndarray) -> float:
    """log Σ w_i e^{t ω_i}, the largest term factored out."""
    e, top = _finite_log_weights(-t, p)
    acc = 0.0
    for i in range(e.shape[0]):
        acc += math.exp(e[i] - top)
    return top + math.log(acc)


@njit(cache=True)
def _finite_tilted_moments(s: float, p: np.ndarray) -> tuple[float, float]:
    """(mean, variance) of the atoms under the tilted weights ∝ w_i e^{−s ω_i}."""
    m = int(p[1])
    e, top = _finite_log_weights(s, p)
    den = 0.0
    num = 0.0
    for i in range(m):
        pi = math.exp(e[i] - top)
        den += pi
        num += pi * p[2 + i]
    mean = num / den
    var = 0.0
    for i in range(m):
        d = p[2 + i] - mean
        var += math.exp(e[i] - top) * d * d
    return mean, var / den


@njit(cache=True)
def log_mgf(t: float, p: np.ndarray) -> float:
    """log M_omega(t) for real t; +inf outside the finite domain of M_omega."""
    if p[0] == FINITE_KIND:
        return _finite_log_mgf(t, p)
    return _lmo_log_mgf(t, p)


@njit(cache=True)
def tilted_mean(s: float, p: np.ndarray) -> float:
    """D1(s) = E[omega e^{-s omega}] / E[e^{-s omega}] > 0."""
    if p[0] == FINITE_KIND:
        return _finite_tilted_moments(s, p)[0]
    return _lmo_tilted_mean(s, p)


@njit(cache=True)
def tilted_var(s: float, p: np.ndarray) -> float:
    """D2(s): the variance of omega tilted by e^{-s omega}."""
    if p[0] == FINITE_KIND:
        return _finite_tilted_moments(s, p)[1]
    return _lmo_tilted_var(s, p)


@njit(cache=True)
def logpdf_scalar(y: float, p: np.ndarray) -> float:
    """log f(y) = log(1/2) + L(|y|) + log D1(|y|)."""
    s = abs(y)
    return LOG_HALF + log_tail(s, p) + math.log(tilted_mean(s, p))


@njit(cache=True)
def score_magnitude(s: float, p: np.ndarray) -> float:
    """|f'(y)/f(y)| at |y| = s: M''/M' = (D1^2 + D2) / D1."""
    d1 = tilted_mean(s, p)
    return (d1 * d1 + tilted_var(s, p)) / d1


@njit(cache=True)
def logpdf_array(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Vectorised :func:`logpdf_scalar` over a flat float64 array."""
    out = np.empty(y.shape[0])
    for i in range(y.shape[0]):
        out[i] = logpdf_scalar(y[i], p)
    return out


@njit(cache=True)
def log_tail_array(s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Vectorised :func:`log_tail` over a flat float64 array of s >= 0."""
    out = np.empty(s.shape[0])
    for i in range(s.shape[0]):
        out[i] = log_tail(s[i], p)
    return out


@njit(cache=True)
def fisher_integrand_array(s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """M''(-s)^2 / M'(-s) = M(-s) (D1^2 + D2)^2 / D1; integrates over s >= 0 to the Fisher information."""
    out = np.empty(s.shape[0])
    for i in range(s.shape[0]):
        d1 = tilted_mean(s[i], p)
        m2 = d1 * d1 + tilted_var(s[i], p)
        out[i] = math.exp(log_tail(s[i], p) + 2.0 * math.log(m2) - math.log(d1))
    return out
