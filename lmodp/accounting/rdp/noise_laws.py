r"""How the RDP accounting sees each family: one :class:`NoiseLaw` per family, named by the
family's registration (its ``rdp_law`` facet, :mod:`lmodp.mechanisms.family`) and built by
:func:`noise_law`.

A noise law answers every question the RDP accountant asks about one release of its mechanism:

* ``renyi_divergences(α, sensitivity=Δ)``: upper bounds on the scalar D_α(f(·−Δ) ‖ f);
* ``subsampled_log_moments(α, sample_rate=q, sensitivity=Δ)``: upper bounds on log ∫ f·r^c for
  both directions of the Poisson-subsampled pair (c = α, then c = 1 − α), and the cap of the
  subsampled divergence;
* ``l2_renyi_bound(α, l2_sensitivity=C, l2_tolerance=)``: the dimension-free l2 bound;
* ``closed_form_subsampled_rdp(α, sample_rate=q, sensitivity=Δ)``: the subsampled RDP in every
  geometry where a closed form exists (the Gaussian), else None;
* ``pure_dp_epsilon(Δ)``: sup_y |log f(y−Δ) − log f(y)| (``math.inf`` when unbounded), which
  caps every divergence.

The Gaussian's law (:mod:`lmodp.accounting.rdp.gaussian`) is closed forms. Every other family
is integrated numerically: a :class:`QuadratureLaw` provides

* ``log_moments(coefs, sensitivity=Δ, sample_rate=q, max_order=α_max)``: upper bounds on
  log ∫ f·((1−q) + q·f(·−Δ)/f)^c for every coefficient c;
* ``first_cell()``: the constants of the l2 bound's first cell, an object with ``fisher`` (an
  upper bound on the Fisher information) and ``bound(alphas, t)`` (a proven upper bound on
  sup_{0<u≤t} h_α(u)/u²),

and the questions above follow from them (the bodies below).

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

from lmodp.accounting.rdp import _divergence_kernels as DK
from lmodp.accounting.rdp._density_quadrature import density_log_moments
from lmodp.accounting.rdp.first_cell_bounds import GeneralizedGaussianFirstCell, LipschitzFirstCell, gg_fisher
from lmodp.accounting.rdp._gg_quadrature import gg_log_moments
from lmodp.accounting.rdp.l2_sup_bound import NoiseConstants, sup_ratio_bound
from lmodp.accounting.rdp._mixture_quadrature import LOG_TAIL_TARGET, mixture_log_moments
from lmodp.mechanisms import Mechanism, require_accountable
from lmodp.mechanisms import mixture_kernels as MK
from lmodp.mechanisms.registry import hook

# Relative slack covering the rounding of a few logarithms and their sum.
_ROUNDING = 1e-14


class NoiseLaw(ABC):
    """The RDP-side view of one mechanism (see the module docstring)."""

    def __init__(self, mechanism: Mechanism) -> None:
        self.mechanism = mechanism

    @abstractmethod
    def pure_dp_epsilon(self, sensitivity: float) -> float:
        """sup_y |log f(y − Δ) − log f(y)|, rounded up (``math.inf`` when unbounded)."""

    @abstractmethod
    def renyi_divergences(self, alphas: np.ndarray, *, sensitivity: float) -> np.ndarray:
        """Upper bounds on h_α(Δ) = D_α(f(·−Δ) ‖ f) at every order."""

    @abstractmethod
    def subsampled_log_moments(self, alphas: np.ndarray, *, sample_rate: float, sensitivity: float) -> tuple[np.ndarray, float]:
        """(log Z bounds for both directions of the Poisson-subsampled pair, coefficients α then
        1 − α; the cap of the subsampled divergence)."""

    @abstractmethod
    def l2_renyi_bound(self, alphas: np.ndarray, *, l2_sensitivity: float, l2_tolerance: float) -> np.ndarray:
        """Upper bounds on C²·sup_{0<t≤C} h_α(t)/t² (the dimension-free l2 bound)."""

    def closed_form_subsampled_rdp(self, alphas: np.ndarray, *, sample_rate: float, sensitivity: float) -> np.ndarray | None:
        """The per-step RDP of the Poisson-subsampled release in every geometry, where the law has
        a closed form for it; None (the generic bounds apply) by default."""
        return None


class QuadratureLaw(NoiseLaw):
    """A law integrated numerically: a quadrature ``_quadrature(mechanism, coefs, sensitivity=,
    sample_rate=, max_order=, log_tail_target=)``, the pure-DP ε and the first-cell constants."""

    _quadrature: Callable[..., np.ndarray]

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
    def first_cell(self) -> Any:
        """The l2 first-cell constants: ``fisher`` and ``bound(alphas, t)``."""

    def renyi_divergences(self, alphas: np.ndarray, *, sensitivity: float) -> np.ndarray:
        """min(ε, log Z/(α − 1)) with log Z from :meth:`log_moments` at q = 1 (D_α ≤ D_∞)."""
        log_z = self.log_moments(alphas, sensitivity=sensitivity, max_order=float(alphas.max()))
        eps = self.pure_dp_epsilon(sensitivity)
        return np.clip(log_z / (alphas - 1.0), 0.0, eps)

    def subsampled_log_moments(self, alphas: np.ndarray, *, sample_rate: float, sensitivity: float) -> tuple[np.ndarray, float]:
        """:meth:`log_moments` at c = α and 1 − α; the cap is the subsampled pure-DP ε,
        log(1 + q(e^ε − 1))."""
        a_max = float(alphas.max())
        coefs = np.concatenate([alphas, 1.0 - alphas])
        # The reverse direction's factor r^{1-α} can reach (1-q)^{1-α}: push the cut further out.
        target = LOG_TAIL_TARGET - (a_max - 1.0) * -math.log1p(-sample_rate)
        log_z = self.log_moments(coefs, sensitivity=sensitivity, sample_rate=sample_rate, max_order=a_max, log_tail_target=target)
        eps = self.pure_dp_epsilon(sensitivity)
        log1m_q = math.log1p(-sample_rate)
        return log_z, DK.psi_of_loss(eps, math.log(sample_rate), log1m_q) * (1.0 + _ROUNDING)

    def l2_renyi_bound(self, alphas: np.ndarray, *, l2_sensitivity: float, l2_tolerance: float) -> np.ndarray:
        """C² times :func:`~lmodp.accounting.rdp.l2_sup_bound.sup_ratio_bound` (first cell, then cells)."""
        return l2_sensitivity**2 * sup_ratio_bound(self, alphas, l2_sensitivity=l2_sensitivity, l2_tolerance=l2_tolerance)


class MixtureLaw(QuadratureLaw):
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


class GeneralizedGaussianLaw(QuadratureLaw):
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


class DensityLaw(QuadratureLaw):
    """A user-defined symmetric, log-concave density with an S-Lipschitz log-density."""

    _quadrature = staticmethod(density_log_moments)

    def pure_dp_epsilon(self, sensitivity: float) -> float:
        """S·Δ: |g(y − Δ) − g(y)| ≤ SΔ for an S-Lipschitz g."""
        return self.mechanism.score_bound() * sensitivity * (1.0 + _ROUNDING)

    def first_cell(self) -> LipschitzFirstCell:
        return LipschitzFirstCell(self.mechanism.fisher_information_bound(), self.mechanism.score_bound())


def noise_law(mechanism: Mechanism) -> NoiseLaw:
    """The :class:`NoiseLaw` that ``mechanism``'s family declares (its ``rdp_law`` facet);
    ``ValueError`` for a mechanism no accountant accepts."""
    return hook(require_accountable(mechanism), "rdp_law")(mechanism)
