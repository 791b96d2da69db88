r"""Driver of the divergence quadrature for Laplace scale mixtures (Laplace, LMO).

Chooses the quadrature's scales from the mechanism and calls
:func:`lmodp.accounting.rdp._divergence_kernels.mixture_log_moments`:

* resolution floor next to the cusps y = 0 and y = Δ (:func:`resolution_floor`), with
  S = sup|d log f/dy| = E[ω²]/E[ω] (log f is convex in |y|, so |score| is largest at 0): the
  integrand is nearly constant on the first, linear panel;
* truncation: the distance s where P(|Y| > s) ≤ e^{-50} (the tail beyond is bounded and added);
* panels of width 1 in log distance from the cusp (widening beyond 64/S), 8 Gauss–Legendre
  points per half panel.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from lmodp.accounting.rdp import _divergence_kernels as DK
from lmodp.mechanisms import mixture_kernels as MK
from lmodp.mechanisms.mixture import LaplaceScaleMixture

GL_POINTS = 8
PANEL_WIDTH = 1.0
# Log-space panels widen beyond this many score lengths 1/S from a cusp.
FAR_SCORES = 64.0
LOG_TAIL_TARGET = -50.0
_S_MAX = 1e250


@lru_cache(maxsize=4)
def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss–Legendre rule on [-1, 1]."""
    return np.polynomial.legendre.leggauss(n)


def max_score(mechanism: LaplaceScaleMixture) -> float:
    """sup_y |d/dy log f(y)| = E[ω²]/E[ω], its value as y → 0."""
    return float(MK.score_magnitude(0.0, mechanism.kernel_params))


def resolution_floor(mechanism: LaplaceScaleMixture, max_order: float, sensitivity: float) -> float:
    """:func:`floor_for_score` with S = sup|score| of the mixture."""
    return floor_for_score(max_score(mechanism), max_order, sensitivity)


def floor_for_score(score: float, max_order: float, sensitivity: float) -> float:
    """Length of the linear panel next to a cusp: 1/(20·S·max(1, α_max·min(1, 2SΔ))).

    S = sup|score|: f itself varies on the scale 1/S, and c·ψ changes by at most
    2|c|·S·u over a length u, by at most 2|c|·S·Δ across the middle piece, and slowly on the
    outer pieces when Δ is small (there ψ' = g'(|y|−Δ) − g'(|y|) = O(Δ)).
    """
    return 1.0 / (20.0 * score * max(1.0, max(max_order, 2.0) * min(1.0, 2.0 * score * sensitivity)))


def tail_cutoff(mechanism: LaplaceScaleMixture, log_target: float = LOG_TAIL_TARGET) -> float:
    """A distance s with log P(|Y| > s) <= log_target (capped at 1e250)."""
    return float(DK.tail_cutoff(mechanism.kernel_params, log_target, 1.0 / mechanism.omega_mean(), _S_MAX))


def mixture_log_moments(
    mechanism: LaplaceScaleMixture,
    coefs: np.ndarray,
    *,
    sensitivity: float,
    sample_rate: float = 1.0,
    max_order: float,
    log_tail_target: float = LOG_TAIL_TARGET,
) -> np.ndarray:
    """Upper bounds on log ∫ f·((1−q) + q·f(·−Δ)/f)^c for every c in ``coefs``."""
    gx, gw = gauss_legendre(GL_POINTS)
    log_q = math.log(sample_rate)
    log1m_q = math.log1p(-sample_rate) if sample_rate < 1.0 else -math.inf
    return DK.mixture_log_moments(
        mechanism.kernel_params,
        float(sensitivity),
        log_q,
        log1m_q,
        np.ascontiguousarray(coefs, dtype=float),
        resolution_floor(mechanism, max_order, sensitivity),
        tail_cutoff(mechanism, log_tail_target),
        PANEL_WIDTH,
        FAR_SCORES / max_score(mechanism),
        gx,
        gw,
    )
