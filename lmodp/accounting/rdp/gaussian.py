r"""The Gaussian family's RDP law: closed forms, and the subsampled pair by quadrature with
closed-form tails (the ``rdp_law`` that :mod:`lmodp.mechanisms.gaussian` declares).

For N(0, σ²) and a shift Δ, D_α(N(Δ, σ²) ‖ N(0, σ²)) = αΔ²/(2σ²) exactly; i.i.d. Gaussian noise is
rotation invariant, so an L2 shift of norm C is the scalar case with Δ = C (the l2 bound is
exact), and the Poisson-subsampled release has the exact series of Mironov, Talwar & Zhang
(2019, arXiv 1908.10530) in either geometry (:func:`lmodp.accounting.rdp.subsampling.sampled_gaussian_rdp`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from lmodp.accounting.rdp import _divergence_kernels as DK
from lmodp.accounting.rdp._mixture_quadrature import GL_POINTS, gauss_legendre
from lmodp.accounting.rdp.noise_laws import NoiseLaw
from lmodp.accounting.rdp.subsampling import sampled_gaussian_rdp


def gaussian_subsampled_log_moments(
    sigma: float, delta: float, sample_rate: float, alphas: np.ndarray
) -> np.ndarray:
    """log Z bounds for both directions of the Poisson-subsampled Gaussian (coefs α, then 1−α).

    Integration range [−Y_L, Y_R] in linear panels of width σ/2; tails bounded in closed form
    (L(y) = (2yΔ − Δ²)/(2σ²) increases in y): direction α, right: r^α ≤ e^{αL}, giving
    exp(α(α−1)Δ²/(2σ²))·Φ̄((Y_R − αΔ)/σ); left: r ≤ 1. Direction 1−α, right: r ≥ 1;
    left: r ≥ 1 − q, giving (1−q)^{1−α}·Φ̄(Y_L/σ).
    """
    a_max = float(alphas.max())
    log1m_q = math.log1p(-sample_rate)
    log_q = math.log(sample_rate)
    y_left = sigma * math.sqrt(2.0 * (60.0 + (a_max - 1.0) * -log1m_q))
    y_right = a_max * delta + sigma * math.sqrt(2.0 * (60.0 + a_max * -log_q))
    n_panels = int(math.ceil((y_left + y_right) / (0.5 * sigma)))
    edges = np.linspace(-y_left, y_right, n_panels + 1)
    kind = np.zeros(n_panels, dtype=np.int64)
    origin = np.zeros(n_panels)
    direction = np.ones(n_panels)
    gx, gw = gauss_legendre(GL_POINTS)
    lw, psi, dpsi = DK.panel_nodes(
        kind, origin, direction, edges[:-1].copy(), edges[1:].copy(), gx, gw, 1, np.array([sigma]), delta, log_q, log1m_q
    )
    coefs = np.concatenate([alphas, 1.0 - alphas])
    log_sf_left = special.log_ndtr(-y_left / sigma)
    tail_up_right = alphas * (alphas - 1.0) * delta**2 / (2.0 * sigma**2) + special.log_ndtr(
        -(y_right - alphas * delta) / sigma
    )
    tail_up = np.logaddexp(tail_up_right, log_sf_left)
    tail_down = np.logaddexp(special.log_ndtr(-y_right / sigma), (1.0 - alphas) * log1m_q + log_sf_left)
    tails = np.concatenate([tail_up, tail_down])
    return DK.log_moments(lw, psi, dpsi, GL_POINTS, coefs, tails)


class GaussianLaw(NoiseLaw):
    """N(0, σ²): αΔ²/(2σ²) in both geometries, no pure-DP bound, the sampled-Gaussian series."""

    def pure_dp_epsilon(self, sensitivity: float) -> float:
        """∞: the loss (2yΔ − Δ²)/(2σ²) is unbounded."""
        return math.inf

    def renyi_divergences(self, alphas: np.ndarray, *, sensitivity: float) -> np.ndarray:
        """αΔ²/(2σ²)."""
        return alphas * sensitivity**2 / (2.0 * self.mechanism.sigma**2)

    def subsampled_log_moments(self, alphas: np.ndarray, *, sample_rate: float, sensitivity: float) -> tuple[np.ndarray, float]:
        """:func:`gaussian_subsampled_log_moments`; no cap."""
        return gaussian_subsampled_log_moments(self.mechanism.sigma, sensitivity, sample_rate, alphas), math.inf

    def l2_renyi_bound(self, alphas: np.ndarray, *, l2_sensitivity: float, l2_tolerance: float) -> np.ndarray:
        """αC²/(2σ²): h_α(t)/t² = α/(2σ²) for all t, so the bound is exact (the divergence at Δ = C)."""
        return self.renyi_divergences(alphas, sensitivity=l2_sensitivity)

    def closed_form_subsampled_rdp(self, alphas: np.ndarray, *, sample_rate: float, sensitivity: float) -> np.ndarray:
        """:func:`~lmodp.accounting.rdp.subsampling.sampled_gaussian_rdp` with noise multiplier σ/Δ."""
        return sampled_gaussian_rdp(alphas, noise_multiplier=self.mechanism.sigma / sensitivity, sample_rate=sample_rate)
