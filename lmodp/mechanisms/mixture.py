r"""Laplace scale mixtures: Laplace(0, 1/omega) noise with a random inverse scale omega.

The mixing law is a :class:`~lmodp.mechanisms.mixing.MixingLaw`: the LMO one (Yang et al. 2024,
arXiv 2405.18776, Sec. 4; R2DP, Mohammady et al., CCS 2020), :math:`\omega = a_1 G + a_3 E + a_4 U`,
or a finite one (ω takes finitely many values). All closed forms used here follow from
:math:`P(|Y| > s \mid \omega) = e^{-\omega s}`, so that :math:`P(|Y|>s) = M_\omega(-s)`:

* :math:`f(y) = \tfrac12 M'_\omega(-|y|)`,  :math:`F(y) = 1 - \tfrac12 M_\omega(-y)` for y >= 0
* :math:`P(|Y|\le\gamma) = 1 - M_\omega(-\gamma)`
* :math:`E|Y| = E[1/\omega] = \int_0^\infty M_\omega(-t)\,dt`
* :math:`\mathrm{Var}\,Y = 2E[1/\omega^2] = 2\int_0^\infty t\,M_\omega(-t)\,dt`
* Fisher information :math:`I = \int_0^\infty M''_\omega(-s)^2 / M'_\omega(-s)\,ds`

The two integrals for E|Y| and Var Y diverge when :math:`P(|Y|>s)` decays like
:math:`s^{-p}` with p <= 1 (resp. p <= 2); the exponent is read off the parameters
(:meth:`LaplaceScaleMixture.tail_exponent`) and ``math.inf`` returned. Above the threshold the
tail is mapped onto a finite interval (never truncated), so values just above it are accurate
(Gamma shape 1.005: E|Y| = 200 to 1e-9), and every quadrature's error estimate is checked
(``ArithmeticError`` rather than an inaccurate number).

The registration at the end declares what every Laplace scale mixture (Laplace, LMO, finite
mixtures, a user's subclass) inherits: the mixture RDP law and PLD model, the torch sampler of
its mixing law, and the ω panel and MGF-bound curve of the figures.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import integrate

from lmodp._validation import require_positive
from lmodp.mechanisms import mixture_kernels as K
from lmodp.mechanisms.base import Mechanism, cdf_from_log_tail
from lmodp.mechanisms.family import Figures
from lmodp.mechanisms.mixing import FiniteMixing, MixingLaw
from lmodp.mechanisms.registry import register_family

_QUAD_RELTOL = 1e-10
# An integral is returned only when the sum of scipy's error estimates is below this share of it.
_ACCEPTED_ERROR = 1e-7
# Below t = e^-700 the integrands are bounded, so that piece contributes nothing measurable.
_LOG_T_MIN = -700.0
# Integrands with a tail lighter than every power are cut at t = e^700.
_LOG_T_MAX = 700.0
# Power-law tails steeper than t^-4 are integrated in log t like light tails: beyond t = e^700
# they hold e^{-2100} of the integral.
_STEEP_DECAY = 4.0
# Power-law tails are mapped onto (0, 1]; points beyond t = 1e300 are evaluated at 1e300, where
# F(t)·t^d has long reached its limit.
_LOG_T_CLAMP = math.log(1e300)
# The Fisher information's second, independent rule: Gauss–Legendre on panels in log t.
_CHECK_PANELS = np.linspace(-40.0, 40.0, 161)
_CHECK_NODES = 8
# Largest accepted disagreement of the two Fisher rules, relative.
_CHECK_AGREEMENT = 1e-6


def _integral_to_infinity(log_integrand, centre: float, decay: float, name: str) -> tuple[float, float]:
    r"""(value, error estimate) of ∫_0^∞ F(t) dt with F = exp(``log_integrand``), F(t) ~ C·t^{−d}
    as t → ∞ (d = ``decay`` > 1, or ``math.inf`` for a lighter tail), by scipy ``quad``.

    On (0, centre]: t = e^x. On [centre, ∞): for d = ∞ or d > 4, t = e^x up to x = 700 (what
    lies beyond is below e^{−(d−1)·700}); for 1 < d ≤ 4, t = centre·v^{−γ} with γ = 1/(d − 1),
    which maps the whole tail onto v ∈ (0, 1] without cutting it off (a steep tail squeezed into
    v near 0 would defeat the quadrature): ∫_centre^∞ F dt = γ·centre^{1−d}·∫_0^1 F(t)·t^d dv, a bounded integrand
    (F(t)·t^d → C). Raises ``ArithmeticError`` (naming ``name``) when scipy's error estimates
    exceed 1e-7 of the value, instead of returning an inaccurate number.
    """
    x0 = math.log(centre)

    def in_log_t(x: float) -> float:
        return math.exp(log_integrand(math.exp(x)) + x) if x > _LOG_T_MIN else 0.0

    left, err_left = integrate.quad(in_log_t, -np.inf, x0, epsabs=0.0, epsrel=_QUAD_RELTOL, limit=200)
    if decay > _STEEP_DECAY:
        right, err_right = integrate.quad(
            lambda x: in_log_t(x) if x < _LOG_T_MAX else 0.0, x0, np.inf, epsabs=0.0, epsrel=_QUAD_RELTOL, limit=200
        )
    else:
        gamma = 1.0 / (decay - 1.0)

        def in_v(v: float) -> float:
            log_t = min(x0 - gamma * math.log(v), _LOG_T_CLAMP) if v > 0.0 else _LOG_T_CLAMP
            return math.exp(log_integrand(math.exp(log_t)) + decay * log_t + (1.0 - decay) * x0) * gamma

        right, err_right = integrate.quad(in_v, 0.0, 1.0, epsabs=0.0, epsrel=_QUAD_RELTOL, limit=200)
    value, error = left + right, err_left + err_right
    if not math.isfinite(value) or error > _ACCEPTED_ERROR * abs(value):
        raise ArithmeticError(f"{name}: the quadrature's error estimate {error:.3g} exceeds {_ACCEPTED_ERROR:g} of its value {value:.6g}")
    return value, error


class LaplaceScaleMixture(Mechanism):
    """Base class: Laplace noise whose inverse scale ω has a mixing law (:mod:`lmodp.mechanisms.mixing`).

    A subclass sets ``self._mixing`` (an :class:`~lmodp.mechanisms.mixing.LMOMixing` or
    :class:`~lmodp.mechanisms.mixing.FiniteMixing`) in its constructor, or declares a finite
    mixing law with the attributes ``omega_atoms`` (the values of ω, > 0) and ``omega_weights``
    (their probabilities). Every closed form, sampler and accountant reads the law from
    :attr:`mixing`, so what is sampled is what is accounted.
    """

    @property
    def mixing(self) -> MixingLaw:
        """The law of ω."""
        law = self.__dict__.get("_mixing")
        if law is not None:
            return law
        if hasattr(self, "omega_atoms") and hasattr(self, "omega_weights"):
            return FiniteMixing(self.omega_atoms, self.omega_weights)
        raise ValueError(
            f"{type(self).__name__} declares no mixing law: set self._mixing to an LMOMixing or FiniteMixing "
            "in its constructor, or give it the attributes omega_atoms and omega_weights"
        )

    @property
    def kernel_params(self) -> np.ndarray:
        """The packed vector of the mixing law that the numba kernels read (read-only)."""
        return self.mixing.kernel_params()

    def sample_omega(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draw the inverse scale ω."""
        return self.mixing.sample(size, rng)

    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        omega = self.sample_omega(size, rng)
        return rng.laplace(0.0, 1.0, size) / omega

    # --- the mixing variable omega -------------------------------------------------------
    def omega_log_mgf(self, t: ArrayLike) -> np.ndarray:
        """log M_omega(t) = log E[e^{t omega}]; +inf where t >= :meth:`omega_mgf_domain`."""
        t = np.asarray(t, dtype=float)
        p = self.kernel_params
        flat = np.array([K.log_mgf(float(v), p) for v in t.ravel()])
        return flat.reshape(t.shape)

    def omega_mgf(self, t: ArrayLike) -> np.ndarray:
        """M_omega(t) = E[e^{t omega}]; +inf outside its finite domain."""
        return np.exp(self.omega_log_mgf(t))

    def omega_mgf_domain(self) -> float:
        """Sup of the open set {t : M_omega(t) < inf} (LMO: min(1/(a1 theta), lam/a3), or inf)."""
        return self.mixing.mgf_domain()

    def omega_mean(self) -> float:
        """E[omega]."""
        return self.mixing.mean()

    def omega_moments(self) -> tuple[float, float, float]:
        """(E[ω], E[ω²], E[ω³]) (:meth:`lmodp.mechanisms.mixing.MixingLaw.moments`)."""
        return self.mixing.moments()

    def tail_exponent(self) -> float:
        """d such that P(|Y| > s) ~ s^{-d} as s -> inf; inf when the tail is exponential."""
        return self.mixing.tail_exponent()

    # --- the noise Y ---------------------------------------------------------------------
    def logpdf(self, y: ArrayLike) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        return K.logpdf_array(np.ascontiguousarray(y.ravel()), self.kernel_params).reshape(y.shape)

    def log_tail(self, s: ArrayLike) -> np.ndarray:
        """log P(|Y| > s) = log M_omega(-s) for s >= 0."""
        s = np.abs(np.asarray(s, dtype=float))
        return K.log_tail_array(np.ascontiguousarray(s.ravel()), self.kernel_params).reshape(s.shape)

    def cdf(self, y: ArrayLike) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        return cdf_from_log_tail(y, self.log_tail(y))

    def usefulness(self, gamma: float) -> float:
        gamma = require_positive("gamma", gamma)
        return float(-np.expm1(self.log_tail(gamma)))

    def mean_abs(self) -> float:
        """E|Y| = ∫_0^∞ P(|Y| > t) dt, the whole power-law tail included (no cut-off)."""
        p_tail = self.tail_exponent()
        if p_tail <= 1.0:
            return math.inf
        p = self.kernel_params
        return _integral_to_infinity(lambda t: K.log_tail(t, p), 1.0 / self.omega_mean(), p_tail, "E|Y|")[0]

    def variance(self) -> float:
        """Var Y = 2∫_0^∞ t·P(|Y| > t) dt, the whole power-law tail included (no cut-off)."""
        p_tail = self.tail_exponent()
        if p_tail <= 2.0:
            return math.inf
        p = self.kernel_params
        integral = _integral_to_infinity(lambda t: K.log_tail(t, p) + math.log(t), 1.0 / self.omega_mean(), p_tail - 1.0, "Var Y")
        return 2.0 * integral[0]

    def _fisher_quadrature(self) -> tuple[float, float]:
        """(I, scipy's error estimate); the integrand M(−s)·(D1² + D2)²/D1 decays like s^{−(p+3)}."""
        p = self.kernel_params

        def log_integrand(s: float) -> float:
            d1 = K.tilted_mean(s, p)
            m2 = d1 * d1 + K.tilted_var(s, p)
            if m2 <= 0.0:
                return -math.inf  # D1, D2 underflowed: s is so large that the integrand is 0
            return K.log_tail(s, p) + 2.0 * math.log(m2) - math.log(d1)

        return _integral_to_infinity(log_integrand, 1.0 / self.omega_mean(), self.tail_exponent() + 3.0, "Fisher information")

    def fisher_information(self) -> float:
        return self._fisher_quadrature()[0]

    def fisher_information_bound(self) -> float:
        r"""An upper bound on I with a checked error margin.

        I ≤ E[ω²] is proven: Fisher information is convex in the density ((f')²/f is jointly
        convex in (f, f')), and Laplace(1/ω) has I = ω². The quadrature value gets the margin
        4·(scipy's error estimate) + 2·|difference to a second, independent rule| + 1e-12·I,
        the second rule being 8-point Gauss–Legendre on 160 panels in log s spanning e^{±40}
        around 1/E[ω] (outside, the integrand is below e^{-40} of its scale on both sides);
        ``ArithmeticError`` if the two rules disagree by more than 1e-6 relative.
        """
        value, error = self._fisher_quadrature()
        nodes, weights = np.polynomial.legendre.leggauss(_CHECK_NODES)
        a, b = _CHECK_PANELS[:-1, None], _CHECK_PANELS[1:, None]
        x = (math.log(1.0 / self.omega_mean()) + (a + b) / 2.0 + (b - a) / 2.0 * nodes[None, :]).ravel()
        w = ((b - a) / 2.0 * weights[None, :]).ravel()
        s = np.exp(x)
        check = float(np.sum(w * s * K.fisher_integrand_array(np.ascontiguousarray(s), self.kernel_params)))
        gap = abs(value - check)
        if gap > _CHECK_AGREEMENT * value:
            raise ArithmeticError(f"Fisher information: quadrature rules disagree ({value:.10g} vs {check:.10g})")
        return min(value + 4.0 * error + 2.0 * gap + 1e-12 * value, self.omega_moments()[1])



def require_mixture(mechanism: object, function: str) -> LaplaceScaleMixture:
    """``mechanism`` if it is a Laplace scale mixture (``function`` is defined for those only);
    ``ValueError`` otherwise."""
    if not isinstance(mechanism, LaplaceScaleMixture):
        raise ValueError(f"{function} takes a Laplace scale mixture (Laplace, LMO, ...), got {type(mechanism).__name__}")
    return mechanism


register_family(
    LaplaceScaleMixture,
    rdp_law="lmodp.accounting.rdp.noise_laws:MixtureLaw",
    pld_model="lmodp.accounting.pld.hockey_stick:mixture_noise_model",
    torch_sampler="lmodp.train.noise:mixture_sampler",
    figures=Figures(density_panels=("omega",), rdp_curves=("mgf_bound",)),
    check=lambda m: m.mixing,  # ValueError when the subclass declares no mixing law
)
