r"""How the RDP accounting sees each accountable family (the Gaussian has closed forms and is
handled by the callers): one :class:`NoiseLaw` per family kind, chosen by :func:`noise_law`.

A noise law provides

* ``log_moments(coefs, sensitivity=Δ, sample_rate=q, max_order=α_max)``: upper bounds on
  log ∫ f·((1−q) + q·f(·−Δ)/f)^c for every coefficient c (the scalar Rényi divergences and both
  directions of their Poisson-subsampled versions are these with c = α and c = 1 − α);
* ``pure_dp_epsilon(Δ)``: sup_y |log f(y−Δ) − log f(y)| (``math.inf`` when unbounded), which
  caps every divergence;
* ``first_cell()``: the constants of the l2 bound's first cell, an object with ``fisher`` (an
  upper bound on the Fisher information) and ``bound(alphas, t)`` (a proven upper bound on
  sup_{0<u≤t} h_α(u)/u²).

=======================  ===========================================  ===========================================
family                   quadrature                                   first cell (docs/l2-geometry.md)
=======================  ===========================================  ===========================================
Laplace scale mixtures   :mod:`~lmodp.accounting.rdp._mixture_quadrature`  5.2 (kink at 0, bounded score)
generalized Gaussian     :mod:`~lmodp.accounting.rdp._gg_quadrature`       5.4 (log-concave, |g'| ≤ p|x|^{p−1}/s^p)
user densities           :mod:`~lmodp.accounting.rdp._density_quadrature`  5.4 (log-concave, S-Lipschitz g)
=======================  ===========================================  ===========================================

Every family here is symmetric and unimodal, so h_α(t) is non-decreasing in t (section 5.1)
and the cells of the l2 bound apply.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np

from lmodp.accounting.rdp._density_quadrature import density_log_moments
from lmodp.accounting.rdp._first_cell import GeneralizedGaussianFirstCell, LipschitzFirstCell, gg_fisher
from lmodp.accounting.rdp._gg_quadrature import gg_log_moments
from lmodp.accounting.rdp._l2_sup import NoiseConstants
from lmodp.accounting.rdp._mixture_quadrature import LOG_TAIL_TARGET, mixture_log_moments
from lmodp.mechanisms import GeneralizedGaussian, LaplaceScaleMixture, Mechanism, SymmetricDensity, require_accountable
from lmodp.mechanisms import _mixture_kernels as MK

# Relative slack covering the rounding of a few logarithms and their sum.
_ROUNDING = 1e-14


class NoiseLaw(ABC):
    """The RDP-side view of one non-Gaussian mechanism (see the module docstring): a quadrature
    ``_quadrature(mechanism, coefs, sensitivity=, sample_rate=, max_order=, log_tail_target=)``,
    the pure-DP ε and the first-cell constants."""

    _quadrature: Callable[..., np.ndarray]

    def __init__(self, mechanism: Mechanism) -> None:
        self.mechanism = mechanism

    def log_moments(
        self,
        coefs: np.ndarray,
        *,
        sensitivity: float,
        sample_rate: float = 1.0,
        max_order: float,
        log_tail_target: float = LOG_TAIL_TARGET,
    ) -> np.ndarray:
        """Upper bounds on log ∫ f·((1−q) + q·f(·−Δ)/f)^c for every c in ``coefs``."""
        return self._quadrature(
            self.mechanism, coefs, sensitivity=sensitivity, sample_rate=sample_rate, max_order=max_order,
            log_tail_target=log_tail_target,
        )

    @abstractmethod
    def pure_dp_epsilon(self, sensitivity: float) -> float:
        """sup_y |log f(y − Δ) − log f(y)|, rounded up (``math.inf`` when unbounded)."""

    @abstractmethod
    def first_cell(self) -> Any:
        """The l2 first-cell constants: ``fisher`` and ``bound(alphas, t)``."""


class MixtureLaw(NoiseLaw):
    """Laplace scale mixtures (LMO, finite mixing laws, Laplace)."""

    _quadrature = staticmethod(mixture_log_moments)

    def pure_dp_epsilon(self, sensitivity: float) -> float:
        r"""log(E[ω]/E[ω e^{−Δω}]) = log D1(0) − log M_ω(−Δ) − log D1(Δ) (proof in
        :func:`lmodp.accounting.rdp.divergence.pure_dp_epsilon`)."""
        p = self.mechanism.kernel_params
        terms = (math.log(MK.tilted_mean(0.0, p)), -MK.log_tail(sensitivity, p), -math.log(MK.tilted_mean(sensitivity, p)))
        return float(sum(terms) + _ROUNDING * sum(abs(t) for t in terms))

    def first_cell(self) -> NoiseConstants:
        return NoiseConstants.of(self.mechanism)


class GeneralizedGaussianLaw(NoiseLaw):
    """The generalized Gaussian, density ∝ exp(−|y/s|^p), 1 ≤ p ≤ 2."""

    _quadrature = staticmethod(gg_log_moments)

    def pure_dp_epsilon(self, sensitivity: float) -> float:
        """Δ/s for p = 1 (Laplace); ∞ for p > 1 (the loss (|y|^p − |y−Δ|^p)/s^p is unbounded)."""
        if self.mechanism.power == 1.0:
            return sensitivity / self.mechanism.scale * (1.0 + _ROUNDING)
        return math.inf

    def first_cell(self) -> GeneralizedGaussianFirstCell:
        m = self.mechanism
        return GeneralizedGaussianFirstCell(gg_fisher(m.scale, m.power), m.scale, m.power)


class DensityLaw(NoiseLaw):
    """A user-defined symmetric, log-concave density with an S-Lipschitz log-density."""

    _quadrature = staticmethod(density_log_moments)

    def pure_dp_epsilon(self, sensitivity: float) -> float:
        """S·Δ: |g(y − Δ) − g(y)| ≤ SΔ for an S-Lipschitz g."""
        return self.mechanism.score_bound() * sensitivity * (1.0 + _ROUNDING)

    def first_cell(self) -> LipschitzFirstCell:
        return LipschitzFirstCell(self.mechanism.fisher_information_bound(), self.mechanism.score_bound())


def noise_law(mechanism: Mechanism) -> NoiseLaw:
    """The :class:`NoiseLaw` of a non-Gaussian accountable mechanism; ``ValueError`` otherwise."""
    require_accountable(mechanism)
    if isinstance(mechanism, LaplaceScaleMixture):
        return MixtureLaw(mechanism)
    if isinstance(mechanism, GeneralizedGaussian):
        return GeneralizedGaussianLaw(mechanism)
    if isinstance(mechanism, SymmetricDensity):
        return DensityLaw(mechanism)
    raise ValueError(f"{type(mechanism).__name__} has closed forms (Gaussian): it has no quadrature noise law")
