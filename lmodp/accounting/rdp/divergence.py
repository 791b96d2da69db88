r"""Per-release Rényi divergences and pure-DP ε of additive noise mechanisms.

For a noise density f and a shift Δ (the query's sensitivity), the scalar Rényi divergence is

.. math:: h_\alpha(\Delta) = D_\alpha\bigl(f(\cdot-\Delta)\,\|\,f\bigr)
          = \frac{1}{\alpha-1}\log\int f(y-\Delta)^\alpha f(y)^{1-\alpha}\,dy,\qquad \alpha > 1

(equal to the other direction by the symmetry y ↦ Δ − y of a symmetric f). Each function asks
the mechanism's family for its :class:`~lmodp.accounting.rdp.noise_laws.NoiseLaw`. Gaussian
noise has the closed form αΔ²/(2σ²); every other family (Laplace scale mixtures, the
generalized Gaussian, user densities: :mod:`lmodp.accounting.rdp.noise_laws`) is integrated numerically by
:mod:`lmodp.accounting.rdp._divergence_kernels` (log space, numba), and every returned value is an
UPPER bound: quadrature error estimate, floating-point error bound and truncated tails are
added before the log is taken (tolerance in :func:`renyi_divergences`).

The d-dimensional "l2" geometry (DP-SGD: L2 sensitivity C, i.i.d. noise per coordinate) is
bounded by :func:`l2_renyi_bound`; :func:`unsubsampled_rdp` dispatches between the two.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numpy.typing import ArrayLike

from lmodp._validation import require_geometry, require_positive, require_sample_rate
from lmodp.accounting.rdp.l2_sup_bound import DEFAULT_L2_TOLERANCE
from lmodp.accounting.rdp.noise_laws import noise_law
from lmodp.accounting.orders import validate_orders as require_orders
from lmodp.mechanisms import Mechanism, require_accountable
from lmodp.mechanisms import mixture_kernels as MK
from lmodp.mechanisms.mixture import require_mixture


def _check_mechanism(mechanism: object) -> Mechanism:
    """The mechanism's :meth:`~lmodp.mechanisms.Mechanism.canonical` form, if an accountant can
    account it (:func:`lmodp.mechanisms.require_accountable`)."""
    return require_accountable(mechanism).canonical()


def pure_dp_epsilon(mechanism: Mechanism, *, sensitivity: float) -> float:
    r"""The pure-DP ε of one release: sup_y |log f(y−Δ) − log f(y)|.

    Laplace scale mixture: :math:`\varepsilon = \log\frac{E[\omega]}{E[\omega e^{-\Delta\omega}]}
    = \log D_1(0) - \log M_\omega(-\Delta) - \log D_1(\Delta)`; Laplace(b): Δ/b; Gaussian: ∞.

    Proof that the sup is log f(0) − log f(Δ). Write f(y) = e^{g(|y|)}. For s ≥ 0,
    :math:`e^{g(s)} = \tfrac12 E[\omega e^{-s\omega}]` is the Laplace transform of the positive
    measure ω dP(ω), so g is decreasing and convex (Cauchy–Schwarz:
    :math:`E[\omega e^{-\frac{s+t}{2}\omega}]^2 \le E[\omega e^{-s\omega}]E[\omega e^{-t\omega}]`).
    The loss L(y) = g(|y−Δ|) − g(|y|) satisfies, on the three ranges:

    * y < 0: L = g(|y|+Δ) − g(|y|) ≤ 0 (g decreasing);
    * 0 ≤ y ≤ Δ: L = g(Δ−y) − g(y) ≤ g(0) − g(Δ) (g(Δ−y) ≤ g(0), g(y) ≥ g(Δ));
    * y > Δ: L = g(y−Δ) − g(y) is non-increasing in y (its derivative g'(y−Δ) − g'(y) ≤ 0 as
      g' is non-decreasing), so L ≤ L(Δ) = g(0) − g(Δ).

    Hence sup L = g(0) − g(Δ) ≥ 0, and by the symmetry y ↦ Δ − y the same holds for −L.
    The returned float is rounded up by 1e-14 relative to its terms. Other families
    (:meth:`lmodp.accounting.rdp.noise_laws.NoiseLaw.pure_dp_epsilon`): generalized Gaussian Δ/s at
    p = 1, ∞ for p > 1; a user density S·Δ.
    """
    mechanism = _check_mechanism(mechanism)
    sensitivity = require_positive("sensitivity", sensitivity)
    return noise_law(mechanism).pure_dp_epsilon(sensitivity)


def renyi_divergences(mechanism: Mechanism, orders: ArrayLike, *, sensitivity: float) -> np.ndarray:
    r"""Exact scalar Rényi divergences h_α(Δ) = D_α(f(·−Δ) ‖ f) at every order (upper bounds).

    Gaussian(σ): αΔ²/(2σ²). Laplace scale mixture: Gauss–Legendre quadrature of
    :math:`Z-1 = \int f(y)\,(e^{\alpha L(y)} - 1)\,dy`, L = log f(y−Δ) − log f(y), on panels
    split at the cusps y = 0 and y = Δ (L is not monotone: it falls on y < 0 towards
    its minimum −ε at 0, rises to +ε at Δ and falls again), log-graded towards both cusps and
    out to the point where P(|Y| > s) ≤ e^{-50}; the nodes are shared by all orders. Returned:
    :math:`\min\bigl(\varepsilon,\ \tfrac{1}{\alpha-1}\log(1 + J_{\rm up})\bigr)` where
    J_up = quadrature value + |fine − coarse| error estimate + floating-point error bound +
    rigorous tail bound, and ε = :func:`pure_dp_epsilon` (D_α ≤ D_∞).

    Tolerance: the returned value exceeds the exact one by at most 1e-9 relative plus about
    1e-14/(α − 1) absolute (the rigorous bound on the rounding of log f at the nodes, which
    dominates only for divergences below ~1e-5); measured against mpmath: 1e-12 relative for
    the task1 sets. It is never below the exact value unless the coarse-versus-fine
    Gauss–Legendre error estimate (an estimate, far above the fine rule's actual error for
    these analytic integrands) underestimates the error.
    """
    mechanism = _check_mechanism(mechanism)
    alphas = require_orders(orders)
    sensitivity = require_positive("sensitivity", sensitivity)
    return noise_law(mechanism).renyi_divergences(alphas, sensitivity=sensitivity)


def mgf_bound_rdp(mechanism: Mechanism, orders: ArrayLike, *, sensitivity: float) -> np.ndarray:
    r"""The LMO-DP paper's closed-form RDP: Mironov's Laplace RDP averaged over ω.

    .. math:: R(\alpha) = \frac{1}{\alpha-1}\log\frac{\alpha M_\omega((\alpha-1)\Delta)
              + (\alpha-1) M_\omega(-\alpha\Delta)}{2\alpha-1}

    (Yang et al. 2024, arXiv 2405.18776; Mironov 2017, Prop. 6 for Laplace), computed in log
    space and +∞ where (α−1)Δ ≥ :meth:`omega_mgf_domain` (M_ω infinite).

    It is an upper bound on :func:`renyi_divergences`: (p, q) ↦ p^α q^{1−α} is jointly convex
    on (0,∞)² for α > 1 (the perspective of the convex x ↦ x^α), and f(·−Δ) = E_ω[p_ω],
    f = E_ω[q_ω] with p_ω, q_ω the Laplace(Δ, 1/ω) and Laplace(0, 1/ω) densities under the same
    mixing law, so by Jensen :math:`\int f(\cdot-\Delta)^\alpha f^{1-\alpha} \le
    E_\omega \int p_\omega^\alpha q_\omega^{1-\alpha} = E_\omega[e^{(\alpha-1)D^{\rm Lap}_\alpha(\omega\Delta)}]`,
    which is the bracket above.
    """
    mixture = require_mixture(mechanism, "mgf_bound_rdp")
    alphas = require_orders(orders)
    sensitivity = require_positive("sensitivity", sensitivity)
    p = mixture.kernel_params
    domain = mixture.omega_mgf_domain()
    out = np.full(alphas.shape, math.inf)
    for i, a in enumerate(alphas):
        if (a - 1.0) * sensitivity >= domain:
            continue
        up = math.log(a) + MK.log_mgf((a - 1.0) * sensitivity, p)
        down = math.log(a - 1.0) + MK.log_mgf(-a * sensitivity, p)
        out[i] = (np.logaddexp(up, down) - math.log(2.0 * a - 1.0)) / (a - 1.0)
    return out


def subsampled_scalar_rdp(
    mechanism: Mechanism, orders: ArrayLike, *, sample_rate: float, sensitivity: float
) -> np.ndarray:
    r"""RDP of the Poisson-subsampled scalar mechanism: the max of both directions, by quadrature.

    With :math:`P_q = (1-q) f + q f(\cdot-\Delta)` (an add/remove neighbour is present with
    probability q), returns :math:`\max\{D_\alpha(P_q\|f),\, D_\alpha(f\|P_q)\}` for every real
    α > 1, i.e. (1/(α−1))·log ∫ f r^c with r = 1 − q + q e^{L} and c = α resp. 1 − α (the
    mixture ratio r in log space as log1p(q·expm1(L))). Same quadrature, pessimism and
    tolerance as :func:`renyi_divergences`; each direction is also capped by the pure-DP ε of
    the subsampled mechanism, log(1 + q(e^ε − 1)). q = 1 is :func:`renyi_divergences`.
    Gaussian noise is integrated on a uniform grid with closed-form tail bounds.
    """
    mechanism = _check_mechanism(mechanism)
    alphas = require_orders(orders)
    sample_rate = require_sample_rate("sample_rate", sample_rate)
    sensitivity = require_positive("sensitivity", sensitivity)
    if sample_rate == 1.0:
        return renyi_divergences(mechanism, alphas, sensitivity=sensitivity)
    log_z, cap = noise_law(mechanism).subsampled_log_moments(alphas, sample_rate=sample_rate, sensitivity=sensitivity)
    n = alphas.size
    both = np.maximum(log_z[:n], log_z[n:]) / (alphas - 1.0)
    return np.clip(both, 0.0, cap)


def l2_renyi_bound(
    mechanism: Mechanism,
    orders: ArrayLike,
    *,
    l2_sensitivity: float,
    l2_tolerance: float = DEFAULT_L2_TOLERANCE,
    tolerance: float | None = None,
) -> np.ndarray:
    r"""Dimension-free RDP bound for a d-dimensional query with L2 sensitivity C, i.i.d. noise.

    The product mechanism's divergence for a shift vector Δ is Σ_i h_α(|Δ_i|), and for
    ‖Δ‖₂ ≤ C, Σ_i h_α(|Δ_i|) = Σ_i Δ_i²·h_α(|Δ_i|)/Δ_i² ≤ C²·sup_{0<t≤C} h_α(t)/t² (zero
    coordinates contribute 0), whatever d. Returned: C² times an upper bound on that sup.

    Gaussian(σ): h_α(t)/t² = α/(2σ²) for all t, so the bound is exactly αC²/(2σ²).
    Other families: :func:`lmodp.accounting.rdp.l2_sup_bound.sup_ratio_bound` (a proven bound on a
    first cell (0, t_0] for the family, then cell bounds on an adaptive geometric t-grid using that
    h_α(t) is non-decreasing in t for symmetric unimodal noise, convex interpolation in α); it
    exceeds the best value found by at most a factor 1 + ``l2_tolerance`` (plus the anchor
    interpolation, < 0.3 %); a larger ``l2_tolerance`` is faster and looser, never unsound. The
    proofs are in docs/l2-geometry.md; the quadrature values it uses are pessimistic by an error
    estimate. (``tolerance`` is the deprecated name of ``l2_tolerance``.)
    """
    if tolerance is not None:
        warnings.warn("l2_renyi_bound(tolerance=...) is deprecated: use l2_tolerance=...", DeprecationWarning, stacklevel=2)
        l2_tolerance = tolerance
    mechanism = _check_mechanism(mechanism)
    alphas = require_orders(orders)
    c = require_positive("l2_sensitivity", l2_sensitivity)
    return noise_law(mechanism).l2_renyi_bound(alphas, l2_sensitivity=c, l2_tolerance=require_positive("l2_tolerance", l2_tolerance))


def unsubsampled_rdp(mechanism: Mechanism, orders: ArrayLike, *, sensitivity: float, geometry: str) -> np.ndarray:
    """RDP of one release without subsampling, in the given sensitivity geometry.

    "scalar": :func:`renyi_divergences`; "l2": :func:`l2_renyi_bound` with l2_sensitivity =
    sensitivity (Gaussian: αΔ²/(2σ²) in both geometries, the l2 bound is exact for Gaussian noise).
    """
    geometry = require_geometry(geometry)
    mechanism = _check_mechanism(mechanism)
    if geometry == "scalar":
        return renyi_divergences(mechanism, orders, sensitivity=sensitivity)
    return l2_renyi_bound(mechanism, orders, l2_sensitivity=sensitivity)
