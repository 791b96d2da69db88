r"""Numba quadrature kernels for Rényi divergences of shifted noise densities.

Every quantity computed here has the form

.. math:: Z(c) = \int f(y)\, e^{c\,\psi(y)}\,dy,\qquad
          \psi(y) = \log\bigl(1 - q + q\,e^{L(y)}\bigr),\quad L(y) = \log f(y-\Delta) - \log f(y),

for a list of real coefficients c: c = α gives :math:`\int P_q^\alpha f^{1-\alpha}` with
:math:`P_q = (1-q)f + q f(\cdot-\Delta)` (q = 1: the unsubsampled :math:`\int f(\cdot-\Delta)^\alpha
f^{1-\alpha}`), and c = 1 − α gives :math:`\int f^\alpha P_q^{1-\alpha}`. The nodes, log f and ψ
are evaluated once per Δ and reused for every coefficient.

Quadrature: the line is cut into panels; on each panel an n-point Gauss–Legendre rule on the
whole panel (coarse) and on both halves (fine) is applied. The fine sum is the value, and
:math:`\sum_{\text{panels}} |\text{fine} - \text{coarse}|` (the coarse rule's error estimate, far
larger than the fine rule's actual error for analytic integrands) is ADDED, together with a
bound on the floating-point error of every term and of the summation and a rigorous bound on
the truncated tails. Where :math:`\max_i c\,\psi_i` is moderate the sum is formed as
:math:`Z - 1 = \int f\,\mathrm{expm1}(c\psi)` (exact because ∫f = 1), so that divergences of
order 1e-12 keep their relative accuracy; otherwise in log space with a max shift.

Panels for a Laplace scale mixture (break points y = 0 and y = Δ, where log f has its cusps):
left piece y = −u and right piece y = Δ + u, each with u ∈ [0, u_lo] linear and
u = e^x, x ∈ [log u_lo, log u_tail] in panels of width ≤ ``width`` (so that both the sharp
peaks of :math:`e^{c\psi}` near the break points at large orders and power-law tails are
resolved); the middle [0, Δ] is one panel when Δ ≤ 4 u_lo, else two halves graded the same
way towards 0 and towards Δ. Beyond u = ``far`` the log-space panels widen geometrically.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from lmodp.mechanisms.generalized_gaussian_kernels import logpdf_scalar as gg_logpdf
from lmodp.mechanisms.generalized_gaussian_kernels import shift_loss as gg_shift_loss
from lmodp.mechanisms.mixture_kernels import log_tail, logpdf_scalar

LINEAR = 0
LOG = 1
LOG_HALF = math.log(0.5)
# Unit roundoff of float64.
_U = 2.0**-53
# Above this max(c·psi) the expm1 form could overflow and the log form is used.
_EXPM1_LIMIT = 300.0


@njit(cache=True)
def _log_breaks(lo: float, hi: float, width: float, far: float) -> np.ndarray:
    """Break points in x = log u from log(lo) to log(hi): steps of ``width`` up to u = far,
    then growing by 1.5x per panel (up to 8): far out, the integrand decays at least like a
    power of u (a smooth exponential in x) and contributes little."""
    x_lo = math.log(lo)
    x_hi = math.log(hi)
    if x_hi <= x_lo:
        return np.array([x_lo])
    x_far = max(math.log(far), x_lo)
    m = max(1, int(math.ceil((min(x_hi, x_far) - x_lo) / width)))
    step = (min(x_hi, x_far) - x_lo) / m
    out = [x_lo + j * step for j in range(m + 1)]
    w = width
    x = out[-1]
    while x < x_hi:
        w = min(1.5 * w, 8.0)
        x = min(x + w, x_hi)
        out.append(x)
    out[-1] = x_hi
    return np.array(out)


@njit(cache=True)
def _fill_graded(kind, origin, direction, a, b, start, org, dirn, breaks) -> int:
    """Panels covering u in [0, e^{breaks[-1]}] (y = org + dirn·u): linear up to e^{breaks[0]},
    then log-spaced between consecutive break points."""
    kind[start] = LINEAR
    origin[start] = org
    direction[start] = dirn
    a[start] = 0.0
    b[start] = math.exp(breaks[0])
    for j in range(breaks.shape[0] - 1):
        k = start + 1 + j
        kind[k] = LOG
        origin[k] = org
        direction[k] = dirn
        a[k] = breaks[j]
        b[k] = breaks[j + 1]
    return start + breaks.shape[0]


@njit(cache=True)
def mixture_panels(delta: float, u_lo: float, u_tail: float, width: float, far: float):
    """Panels (kind, origin, direction, a, b) for a Laplace scale mixture shifted by delta."""
    tail = _log_breaks(min(u_lo, u_tail), u_tail, width, far)
    graded_middle = delta > 4.0 * u_lo
    half = _log_breaks(u_lo, 0.5 * delta, width, far) if graded_middle else tail[:0]
    total = 2 * tail.shape[0] + (2 * half.shape[0] if graded_middle else 1)
    kind = np.empty(total, dtype=np.int64)
    origin = np.empty(total)
    direction = np.empty(total)
    a = np.empty(total)
    b = np.empty(total)
    k = _fill_graded(kind, origin, direction, a, b, 0, 0.0, -1.0, tail)
    k = _fill_graded(kind, origin, direction, a, b, k, delta, 1.0, tail)
    if graded_middle:
        k = _fill_graded(kind, origin, direction, a, b, k, 0.0, 1.0, half)
        _fill_graded(kind, origin, direction, a, b, k, delta, -1.0, half)
    else:
        kind[k] = LINEAR
        origin[k] = 0.0
        direction[k] = 1.0
        a[k] = 0.0
        b[k] = delta
    return kind, origin, direction, a, b


@njit(cache=True)
def psi_of_loss(loss: float, log_q: float, log1m_q: float) -> float:
    """psi = log(1 - q + q e^L), accurate for small q and small |L| (q = 1 gives L)."""
    if log1m_q == -math.inf:
        return loss
    if loss < 700.0:
        return math.log1p(math.exp(log_q) * math.expm1(loss))
    return log_q + loss + math.log1p(math.exp(log1m_q - log_q - loss))


@njit(cache=True)
def _gaussian_logpdf(y: float, sigma: float) -> float:
    z = y / sigma
    return -0.5 * z * z - math.log(sigma) - 0.5 * math.log(2.0 * math.pi)


@njit(cache=True)
def panel_points(kind, origin, direction, a, b, gx, gw):
    """Per node: the point y = origin + direction·u, the offset direction·u from the panel's
    origin (so that y − Δ = (origin − Δ) + direction·u is exact next to the cusps 0 and Δ), and
    the quadrature weight. Layout per panel: n coarse nodes on [a, b], then n fine nodes on each half.
    """
    n = gx.shape[0]
    npan = kind.shape[0]
    y = np.empty(npan * 3 * n)
    u_out = np.empty(npan * 3 * n)
    weight = np.empty(npan * 3 * n)
    for k in range(npan):
        for r in range(3):
            if r == 0:
                lo, hi = a[k], b[k]
            elif r == 1:
                lo, hi = a[k], 0.5 * (a[k] + b[k])
            else:
                lo, hi = 0.5 * (a[k] + b[k]), b[k]
            half = 0.5 * (hi - lo)
            mid = 0.5 * (hi + lo)
            for j in range(n):
                i = (k * 3 + r) * n + j
                v = mid + half * gx[j]
                w = half * gw[j]
                u = v
                if kind[k] == LOG:
                    u = math.exp(v)
                    w *= u
                y[i] = origin[k] + direction[k] * u
                u_out[i] = direction[k] * u
                weight[i] = w
    return y, u_out, weight


@njit(cache=True)
def nodes_from_losses(weight, log_f, loss, loss_err, log_q, log1m_q):
    """Per node: log(weight·f(y)), psi(y) = log(1 − q + q e^{L(y)}) and an absolute error bound
    on psi, from log f, the loss L and a bound on its rounding error."""
    m = weight.shape[0]
    lw = np.empty(m)
    psi = np.empty(m)
    dpsi = np.empty(m)
    for i in range(m):
        lw[i] = math.log(weight[i]) + log_f[i] if weight[i] > 0.0 else -math.inf
        psi[i] = psi_of_loss(loss[i], log_q, log1m_q)
        # d psi / d L = q e^L / (1 - q + q e^L) <= 1
        slope = min(1.0, math.exp(log_q + loss[i] - psi[i]))
        dpsi[i] = loss_err[i] * slope + 4.0 * _U * abs(psi[i])
    return lw, psi, dpsi


@njit(cache=True)
def panel_nodes(kind, origin, direction, a, b, gx, gw, family, p, delta, log_q, log1m_q):
    """Per node: log(weight·f(y)), psi(y) and an absolute error bound on psi.

    Layout per panel: n coarse nodes on [a, b], then n fine nodes on each half.
    ``family`` 0: Laplace scale mixture with packed parameters p; 1: Gaussian, p[0] = sigma;
    2: generalized Gaussian, p = [s, power] (:mod:`lmodp.mechanisms.generalized_gaussian_kernels`).
    """
    y, u, weight = panel_points(kind, origin, direction, a, b, gx, gw)
    m = y.shape[0]
    npan = kind.shape[0]
    per_panel = m // npan
    log_f = np.empty(m)
    loss = np.empty(m)
    err = np.empty(m)
    for i in range(m):
        ys = (origin[i // per_panel] - delta) + u[i]  # exact: origin is 0 or delta
        if family == 1:
            s2 = p[0] * p[0]
            log_f[i] = _gaussian_logpdf(y[i], p[0])
            loss[i] = (2.0 * y[i] * delta - delta * delta) / (2.0 * s2)
            err[i] = 4.0 * _U * (abs(loss[i]) + 1.0)
        elif family == 2:
            log_f[i] = gg_logpdf(y[i], p)
            loss[i] = gg_shift_loss(y[i], delta, p)
            err[i] = 8.0 * _U * (abs(y[i] / p[0]) ** p[1] + abs(ys / p[0]) ** p[1] + 1.0)
        else:
            log_f[i] = logpdf_scalar(y[i], p)
            ls = logpdf_scalar(ys, p)
            loss[i] = ls - log_f[i]
            err[i] = 16.0 * _U * (abs(log_f[i]) + abs(ls) + 1.0)
    return nodes_from_losses(weight, log_f, loss, err, log_q, log1m_q)


@njit(cache=True)
def log_moments(lw, psi, dpsi, n, coefs, log_tail_bounds):
    """Upper bounds on log Z(c) = log ∫ f e^{c psi} for every c in ``coefs``.

    ``log_tail_bounds[i]`` bounds log of the integral over the truncated tails (may be -inf).
    """
    m = lw.shape[0]
    npan = m // (3 * n)
    out = np.empty(coefs.shape[0])
    weights = np.exp(lw)
    for ic in range(coefs.shape[0]):
        c = coefs[ic]
        cmax = -math.inf
        shift = -math.inf
        for i in range(m):
            if lw[i] > -math.inf:
                e = c * psi[i]
                cmax = max(cmax, e)
                shift = max(shift, lw[i] + e)
        linear = cmax < _EXPM1_LIMIT
        total = 0.0
        err = 0.0
        abs_sum = 0.0
        for k in range(npan):
            coarse = 0.0
            fine = 0.0
            for r in range(3):
                for j in range(n):
                    i = (k * 3 + r) * n + j
                    if lw[i] == -math.inf:
                        continue
                    e = c * psi[i]
                    if linear:
                        wf = weights[i]
                        em1 = math.expm1(e)
                        term = wf * em1
                        term_err = wf * (em1 + 1.0) * abs(c) * dpsi[i] + 4.0 * _U * abs(term)
                    else:
                        term = math.exp(lw[i] + e - shift)
                        term_err = term * (abs(c) * dpsi[i] + 4.0 * _U)
                    if r == 0:
                        coarse += term
                    else:
                        fine += term
                        abs_sum += abs(term)
                        err += term_err
            total += fine
            err += abs(fine - coarse)
        err += (3 * n + npan + 4) * _U * abs_sum  # panel sums of 3n terms, then npan panels
        if linear:
            j_up = total + err + math.exp(log_tail_bounds[ic])
            out[ic] = math.log1p(max(j_up, 0.0))
        else:
            s_up = total + err + math.exp(log_tail_bounds[ic] - shift)
            out[ic] = shift + math.log(s_up)
    return out


@njit(cache=True)
def _logaddexp(x: float, y: float) -> float:
    hi = max(x, y)
    if hi == -math.inf:
        return hi
    return hi + math.log1p(math.exp(min(x, y) - hi))


@njit(cache=True)
def mixture_log_moments(p, delta, log_q, log1m_q, coefs, u_lo, u_tail, width, far, gx, gw):
    """Upper bounds on log ∫ f e^{c psi} for a Laplace scale mixture, all c in ``coefs``.

    Tails beyond y = -u_tail and y = delta + u_tail: L is monotone on each tail (log f is
    convex and decreasing in |y|), increasing towards 0 from below on the left and decreasing
    towards 0 from above on the right; psi is increasing in L, so e^{c psi} is at most
    max(e^{c psi(edge)}, 1) there, and the tail mass of f is (1/2)·P(|Y| > |edge|).
    """
    kind, origin, direction, a, b = mixture_panels(delta, u_lo, u_tail, width, far)
    lw, psi, dpsi = panel_nodes(kind, origin, direction, a, b, gx, gw, 0, p, delta, log_q, log1m_q)
    y_right = delta + u_tail
    psi_right = psi_of_loss(logpdf_scalar(u_tail, p) - logpdf_scalar(y_right, p), log_q, log1m_q)
    psi_left = psi_of_loss(logpdf_scalar(u_tail + delta, p) - logpdf_scalar(u_tail, p), log_q, log1m_q)
    mass_right = LOG_HALF + log_tail(y_right, p)
    mass_left = LOG_HALF + log_tail(u_tail, p)
    tails = np.empty(coefs.shape[0])
    for ic in range(coefs.shape[0]):
        c = coefs[ic]
        tails[ic] = _logaddexp(mass_right + max(c * psi_right, 0.0), mass_left + max(c * psi_left, 0.0))
    return log_moments(lw, psi, dpsi, gx.shape[0], coefs, tails)


@njit(cache=True)
def tail_cutoff(p: np.ndarray, log_target: float, start: float, s_max: float) -> float:
    """Smallest s (to 1e-6 in log s, rounded up) with log P(|Y| > s) <= log_target, capped at s_max."""
    lo = start
    if log_tail(lo, p) <= log_target:
        return lo
    hi = lo
    while log_tail(hi, p) > log_target:
        if hi >= s_max:
            return s_max
        lo = hi
        hi = min(hi * 4.0, s_max)
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        if log_tail(mid, p) > log_target:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1.000001:
            break
    return hi
