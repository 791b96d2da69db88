r"""The divergence quadrature for a user-defined log-concave density with a bounded score.

Same integrals, panels and pessimism as for Laplace scale mixtures
(:mod:`lmodp.accounting.rdp._mixture_quadrature`): upper bounds on log ∫ f·((1−q) + q·f(·−Δ)/f)^c
for every coefficient c, by Gauss–Legendre quadrature on panels log-graded towards the points
y = 0 and y = Δ and out to a cut where P(|Y| > u) ≤ e^{−50}, the coarse-versus-fine difference, a
rounding bound and a bound on the truncated tails added. What changes:

* the density is the user's log-density, evaluated in numpy at the nodes, normalised by a lower
  bound on its normalising constant (the quadrature value less its error estimate), which only
  raises every integral (each is ∫ f·(positive), and Z − 1 ≥ 0 in the expm1 form);
* the scales come from the score bound S instead of E[ω²]/E[ω];
* the tails: the loss L(y) = g(y − Δ) − g(y) is non-decreasing in y (g concave) and |L| ≤ SΔ
  (g is S-Lipschitz), so on y > Δ + u it lies in [L(Δ + u), SΔ] and on y < −u in
  [−SΔ, L(−u)]; ψ = log(1 − q + q e^L) is increasing in L, so e^{cψ} is at most its larger
  value at the two ends of that range, times the tail mass (an upper bound from the density's
  table, :meth:`~lmodp.mechanisms.density.SymmetricDensity.log_tail`).
"""

from __future__ import annotations

import math

import numpy as np

from lmodp.accounting.rdp import _divergence_kernels as DK
from lmodp.accounting.rdp._mixture_quadrature import (
    FAR_SCORES,
    GL_POINTS,
    LOG_TAIL_TARGET,
    PANEL_WIDTH,
    floor_for_score,
    gauss_legendre,
)
from lmodp.mechanisms.density import SymmetricDensity

_U = 2.0**-53
_MAX_DOUBLINGS = 200


def tail_cutoff(density: SymmetricDensity, log_target: float) -> float:
    """The smallest 2^j/S with log P(|Y| > u) ≤ ``log_target`` (an upper bound on the tail)."""
    u = 1.0 / density.score_bound()
    for _ in range(_MAX_DOUBLINGS):
        if float(density.log_tail(u)) <= log_target:
            return u
        u *= 2.0
    raise ValueError(f"{type(density).__name__}: the tail never falls below e^{log_target:g}")


def density_log_moments(
    density: SymmetricDensity,
    coefs: np.ndarray,
    *,
    sensitivity: float,
    sample_rate: float = 1.0,
    max_order: float,
    log_tail_target: float = LOG_TAIL_TARGET,
) -> np.ndarray:
    """Upper bounds on log ∫ f·((1−q) + q·f(·−Δ)/f)^c for every c in ``coefs`` (see the module docstring)."""
    s = density.score_bound()
    delta = float(sensitivity)
    gx, gw = gauss_legendre(GL_POINTS)
    log_q = math.log(sample_rate)
    log1m_q = math.log1p(-sample_rate) if sample_rate < 1.0 else -math.inf
    u_tail = tail_cutoff(density, log_tail_target)
    kind, origin, direction, a, b = DK.mixture_panels(
        delta, floor_for_score(s, max_order, delta), u_tail, PANEL_WIDTH, FAR_SCORES / s
    )
    y, offset, weight = DK.panel_points(kind, origin, direction, a, b, gx, gw)
    shifted = np.repeat(origin - delta, 3 * GL_POINTS) + offset
    g_y, g_shifted = density._g(y), density._g(shifted)
    table = density.table()
    log_f = g_y - table.log_peak - math.log(table.z - table.z_error)
    loss = g_shifted - g_y
    loss_err = 16.0 * _U * (np.abs(g_y) + np.abs(g_shifted) + 1.0)
    lw, psi, dpsi = DK.nodes_from_losses(weight, log_f, loss, loss_err, log_q, log1m_q)
    cap = s * delta
    edge_loss = density._g(np.array([u_tail, -u_tail - delta])) - density._g(np.array([u_tail + delta, -u_tail]))
    psi_right = np.array([DK.psi_of_loss(float(v), log_q, log1m_q) for v in (edge_loss[0], cap)])
    psi_left = np.array([DK.psi_of_loss(float(v), log_q, log1m_q) for v in (-cap, edge_loss[1])])
    mass_right = math.log(0.5) + float(density.log_tail(u_tail + delta))
    mass_left = math.log(0.5) + float(density.log_tail(u_tail))
    c = np.asarray(coefs, dtype=float)
    tails = np.logaddexp(mass_right + np.max(np.outer(c, psi_right), axis=1), mass_left + np.max(np.outer(c, psi_left), axis=1))
    return DK.log_moments(lw, psi, dpsi, GL_POINTS, np.ascontiguousarray(c), np.ascontiguousarray(tails))
