r"""Laplace scale mixtures: Laplace(0, 1/omega) noise with a random inverse scale omega.

The mixing law is the LMO one (Yang et al. 2024, arXiv 2405.18776, Sec. 4; R2DP, Mohammady et
al., CCS 2020): :math:`\omega = a_1 G + a_3 E + a_4 U`. All closed forms used here follow from
:math:`P(|Y| > s \mid \omega) = e^{-\omega s}`, so that :math:`P(|Y|>s) = M_\omega(-s)`:

* :math:`f(y) = \tfrac12 M'_\omega(-|y|)`,  :math:`F(y) = 1 - \tfrac12 M_\omega(-y)` for y >= 0
* :math:`P(|Y|\le\gamma) = 1 - M_\omega(-\gamma)`
* :math:`E|Y| = E[1/\omega] = \int_0^\infty M_\omega(-t)\,dt`
* :math:`\mathrm{Var}\,Y = 2E[1/\omega^2] = 2\int_0^\infty t\,M_\omega(-t)\,dt`
* Fisher information :math:`I = \int_0^\infty M''_\omega(-s)^2 / M'_\omega(-s)\,ds`

The two integrals for E|Y| and Var Y diverge when :math:`P(|Y|>s)` decays like
:math:`s^{-p}` with p <= 1 (resp. p <= 2); the exponent is read off the parameters
(:meth:`LaplaceScaleMixture.tail_exponent`) and ``math.inf`` returned, never a number from a
truncated integral.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np
from numpy.typing import ArrayLike
from scipy import integrate

from lmodp._validation import require_positive
from lmodp.mechanisms import _mixture_kernels as K
from lmodp.mechanisms.base import Mechanism

_QUAD_RELTOL = 1e-10
# Outside [e^-700, e^700] the integrands contribute nothing measurable: below, they are bounded
# (at most a constant times t); above, t·P(|Y|>t) <= t^{1-p} with p > 2 wherever they are
# integrated, leaving under e^{-700(p-2)}/(p-2): negligible unless p - 2 < 0.05.
_LOG_T_MAX = 700.0


def _log_substituted_integral(log_integrand, centre: float) -> float:
    """∫_0^∞ exp(log_integrand(t)) dt via t = e^x, split at x = log(centre)."""
    x0 = math.log(centre)

    def g(x: float) -> float:
        if not -_LOG_T_MAX < x < _LOG_T_MAX:
            return 0.0
        return math.exp(log_integrand(math.exp(x)) + x)

    left, _ = integrate.quad(g, -np.inf, x0, epsabs=0.0, epsrel=_QUAD_RELTOL, limit=200)
    right, _ = integrate.quad(g, x0, np.inf, epsabs=0.0, epsrel=_QUAD_RELTOL, limit=200)
    return left + right


class LaplaceScaleMixture(Mechanism):
    """Base class: Laplace noise whose inverse scale omega has the LMO mixing law.

    Subclasses provide :attr:`params`, the packed float64 vector
    ``[a1, k, theta, a3, lam, a4, lo, hi]`` read by :mod:`lmodp.mechanisms._mixture_kernels`.
    """

    params: np.ndarray

    @abstractmethod
    def sample_omega(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draw the inverse scale omega."""

    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        omega = self.sample_omega(size, rng)
        return rng.laplace(0.0, 1.0, size) / omega

    # --- the mixing variable omega -------------------------------------------------------
    def omega_log_mgf(self, t: ArrayLike) -> np.ndarray:
        """log M_omega(t) = log E[e^{t omega}]; +inf where t >= :meth:`omega_mgf_domain`."""
        t = np.asarray(t, dtype=float)
        flat = np.array([K.log_mgf(float(v), self.params) for v in t.ravel()])
        return flat.reshape(t.shape)

    def omega_mgf(self, t: ArrayLike) -> np.ndarray:
        """M_omega(t) = E[e^{t omega}]; +inf outside its finite domain."""
        return np.exp(self.omega_log_mgf(t))

    def omega_mgf_domain(self) -> float:
        """Sup of the open set {t : M_omega(t) < inf}: min(1/(a1 theta), lam/a3), or inf."""
        p = self.params
        bound = math.inf
        if p[K.A1] > 0.0:
            bound = min(bound, 1.0 / (p[K.A1] * p[K.THETA]))
        if p[K.A3] > 0.0:
            bound = min(bound, p[K.LAM] / p[K.A3])
        return bound

    def omega_mean(self) -> float:
        """E[omega] = a1 k theta + a3/lam + a4 (lo + hi)/2."""
        p = self.params
        return float(K.tilted_mean(0.0, p))

    def omega_moments(self) -> tuple[float, float, float]:
        """(E[ω], E[ω²], E[ω³]) from the cumulants κ_n, which add over the independent components.

        a·Gamma(k, θ): κ1 = k·aθ, κ2 = k·(aθ)², κ3 = 2k·(aθ)³; a·Exponential(rate λ): κ1 = a/λ,
        κ2 = (a/λ)², κ3 = 2(a/λ)³; a·Uniform[lo, hi]: κ1 = a(lo + hi)/2, κ2 = a²(hi − lo)²/12,
        κ3 = 0. Then E[ω²] = κ2 + κ1², E[ω³] = κ3 + 3κ2κ1 + κ1³.
        """
        p = self.params
        k1 = k2 = k3 = 0.0
        if p[K.A1] > 0.0:
            c = p[K.A1] * p[K.THETA]
            k1, k2, k3 = k1 + p[K.K] * c, k2 + p[K.K] * c * c, k3 + 2.0 * p[K.K] * c**3
        if p[K.A3] > 0.0:
            c = p[K.A3] / p[K.LAM]
            k1, k2, k3 = k1 + c, k2 + c * c, k3 + 2.0 * c**3
        if p[K.A4] > 0.0:
            k1 += p[K.A4] * (p[K.LO] + p[K.HI]) / 2.0
            k2 += (p[K.A4] * (p[K.HI] - p[K.LO])) ** 2 / 12.0
        return float(k1), float(k2 + k1 * k1), float(k3 + 3.0 * k2 * k1 + k1**3)

    def tail_exponent(self) -> float:
        """p such that P(|Y| > s) ~ s^{-p} as s -> inf; inf when the tail is exponential.

        Gamma contributes k, Exponential 1, and a Uniform starting at 0 contributes 1; a Uniform
        bounded away from 0 makes omega >= a4·lo > 0 and the tail exponential.
        """
        p = self.params
        if p[K.A4] > 0.0 and p[K.LO] > 0.0:
            return math.inf
        exponent = 0.0
        if p[K.A1] > 0.0:
            exponent += p[K.K]
        if p[K.A3] > 0.0:
            exponent += 1.0
        if p[K.A4] > 0.0 and p[K.HI] > 0.0:
            exponent += 1.0
        return exponent

    # --- the noise Y ---------------------------------------------------------------------
    def logpdf(self, y: ArrayLike) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        return K.logpdf_array(np.ascontiguousarray(y.ravel()), self.params).reshape(y.shape)

    def log_tail(self, s: ArrayLike) -> np.ndarray:
        """log P(|Y| > s) = log M_omega(-s) for s >= 0."""
        s = np.abs(np.asarray(s, dtype=float))
        return K.log_tail_array(np.ascontiguousarray(s.ravel()), self.params).reshape(s.shape)

    def cdf(self, y: ArrayLike) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        half_tail = 0.5 * np.exp(self.log_tail(y))
        return np.where(y >= 0.0, 1.0 - half_tail, half_tail)

    def usefulness(self, gamma: float) -> float:
        gamma = require_positive("gamma", gamma)
        return float(-np.expm1(self.log_tail(gamma)))

    def mean_abs(self) -> float:
        if self.tail_exponent() <= 1.0:
            return math.inf
        p = self.params
        return _log_substituted_integral(lambda t: K.log_tail(t, p), 1.0 / self.omega_mean())

    def variance(self) -> float:
        if self.tail_exponent() <= 2.0:
            return math.inf
        p = self.params
        return 2.0 * _log_substituted_integral(lambda t: K.log_tail(t, p) + math.log(t), 1.0 / self.omega_mean())

    def fisher_information(self) -> float:
        p = self.params

        def log_integrand(s: float) -> float:
            d1 = K.tilted_mean(s, p)
            m2 = d1 * d1 + K.tilted_var(s, p)
            if m2 <= 0.0:
                return -math.inf  # D1, D2 underflowed: s is so large that the integrand is 0
            return K.log_tail(s, p) + 2.0 * math.log(m2) - math.log(d1)

        return _log_substituted_integral(log_integrand, 1.0 / self.omega_mean())
