"""Soundness of lmodp.accounting.rdp.divergence against independent references.

References: mpmath quadrature of densities written here from their definition
f(y) = ½·E[ω e^{−ω|y|}] (never lmodp's kernels), Mironov's closed-form Laplace RDP,
dp-accounting's and opacus' sampled-Gaussian RDP, and scipy quadrature.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmodp.accounting.rdp.l2_sup_bound import (
    NoiseConstants,
    first_cell_bound,
    first_cell_ends,
    first_order_bound,
    second_order_bound,
)
from lmodp.accounting.rdp.divergence import (
    l2_renyi_bound,
    mgf_bound_rdp,
    pure_dp_epsilon,
    renyi_divergences,
    subsampled_scalar_rdp,
    unsubsampled_rdp,
)
from lmodp.mechanisms import LMO, Gaussian, Laplace
from lmodp.paper.params import paper_mechanism

HEAVY = LMO(gamma_weight=1.0, gamma_shape=0.5, gamma_scale=2.0)
EXPONENTIAL_ONLY = LMO(exponential_weight=1.0, exponential_rate=2.0)
TWO_SCALE = LMO(exponential_weight=1.0, exponential_rate=0.02, uniform_weight=1.0, uniform_low=0.1, uniform_high=0.2)
TASK1 = [paper_mechanism(e, exponential="rate") for e in (0.3, 0.7, 2, 3)]
MIXTURES = TASK1 + [HEAVY, EXPONENTIAL_ONLY, TWO_SCALE]
IDS = ["task1-0.3", "task1-0.7", "task1-2", "task1-3", "gamma-k0.5", "exponential", "two-scale"]


# --- independent reference density: ½ E[ω e^{−ω s}] with ω = a1 G + a3 E + a4 U ---------------
def _component_terms(mech: LMO, s):
    """Per component: (E[e^{−aXs}], E[aX e^{−aXs}]) for the Gamma, Exponential, Uniform parts."""
    terms = []
    if mech.gamma_weight > 0:
        a, k, th = mech.gamma_weight, mech.gamma_shape, mech.gamma_scale
        terms.append(((1 + a * th * s) ** (-k), a * k * th * (1 + a * th * s) ** (-k - 1)))
    if mech.exponential_weight > 0:
        a, lam = mech.exponential_weight, mech.exponential_rate
        terms.append((lam / (lam + a * s), a * lam / (lam + a * s) ** 2))
    if mech.uniform_weight > 0:
        a, lo, hi = mech.uniform_weight, mech.uniform_low, mech.uniform_high
        if hi == lo:
            terms.append((mp.exp(-a * lo * s), a * lo * mp.exp(-a * lo * s)))
        else:
            # U = lo + w V, V ~ U[0, 1]: E[e^{-bU}] = e^{-b lo} E0(bw), E[aU e^{-bU}] =
            # a e^{-b lo} (lo E0(bw) + w E1(bw)), E0(z) = ∫_0^1 e^{-zv} dv, E1(z) = ∫_0^1 v e^{-zv} dv
            b, w = a * s, hi - lo
            z = b * w
            e0, e1 = _uniform_moments(z)
            terms.append((mp.exp(-b * lo) * e0, a * mp.exp(-b * lo) * (lo * e0 + w * e1)))
    return terms


def _uniform_moments(z):
    """(∫_0^1 e^{-zv} dv, ∫_0^1 v e^{-zv} dv) without cancellation (series for small z)."""
    z = mp.mpf(z)
    if z < 0.1:
        e0 = e1 = mp.mpf(0)
        for n in range(24, -1, -1):  # Horner in -z; terms beyond n = 24 are below 1e-40
            e0 = e0 * -z / (n + 1) + mp.mpf(1) / (n + 1)
            e1 = e1 * -z / (n + 1) + mp.mpf(1) / (n + 2)
        return e0, e1
    return -mp.expm1(-z) / z, (-mp.expm1(-z) - z * mp.exp(-z)) / z**2


def reference_density(mech: LMO):
    def f(y):
        s = abs(mp.mpf(y))
        terms = _component_terms(mech, s)
        total = mp.mpf(0)
        for i, (_, mean_i) in enumerate(terms):
            prod = mean_i
            for j, (mgf_j, _) in enumerate(terms):
                if j != i:
                    prod *= mgf_j
            total += prod
        return total / 2

    return f


def _breakpoints(delta):
    d = mp.mpf(delta)
    return [-mp.inf, -10, -1, 0, d / 2, d * 0.99, d, d + d / 100, d + 1, d + 10, mp.inf]


def _power_ratio(p, q, a):
    """p^a q^(1-a), taking 0 where the densities underflow (far beyond every breakpoint)."""
    if p == 0 or q == 0:
        return mp.mpf(0)
    return p**a * q ** (1 - a)


def reference_renyi(mech, alpha, delta):
    mp.mp.dps = 17
    f = reference_density(mech)
    a = mp.mpf(alpha)
    integral = mp.quad(lambda y: _power_ratio(f(y - delta), f(y), a), _breakpoints(delta))
    return float(mp.log(integral) / (a - 1))


def reference_subsampled(density, q, alpha, delta, pts):
    """max of D_alpha(P_q || f) and D_alpha(f || P_q), P_q = (1-q) f + q f(.-delta), by mpmath."""
    a = mp.mpf(alpha)

    def mix(y):
        return (1 - q) * density(y) + q * density(y - delta)

    up = mp.quad(lambda y: _power_ratio(mix(y), density(y), a), pts)
    down = mp.quad(lambda y: _power_ratio(density(y), mix(y), a), pts)
    return float(max(mp.log(up), mp.log(down)) / (a - 1))


def mironov_laplace(alpha, delta, b):
    """Mironov 2017, Prop. 6: RDP of Laplace(b) with sensitivity delta."""
    mp.mp.dps = 40
    a, x = mp.mpf(alpha), mp.mpf(delta) / b
    return float(mp.log(a / (2 * a - 1) * mp.exp((a - 1) * x) + (a - 1) / (2 * a - 1) * mp.exp(-a * x)) / (a - 1))


# --- scalar divergence ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "mech,alphas",
    [(m, a) for m, a in zip(MIXTURES, [(1.5, 32.0), (2.0, 8.0), (1.5, 32.0), (2.0, 8.0), (1.5, 32.0), (2.0, 8.0), (1.5, 32.0)])],
    ids=IDS,
)
def test_scalar_divergence_matches_mpmath(mech, alphas):
    ours = renyi_divergences(mech, alphas, sensitivity=1.0)
    for a, value in zip(alphas, ours):
        ref = reference_renyi(mech, a, 1.0)
        # Never below the reference (up to its own ~1e-20 error), and within 1e-9 relative.
        assert value >= ref * (1 - 1e-13), (a, value, ref)
        assert value <= ref * (1 + 1e-9) + 1e-15, (a, value, ref)


def test_scalar_divergence_small_and_large_shift_against_mpmath():
    mech = TASK1[2]
    # (shift, order, allowed relative pessimism): for tiny divergences the rigorous bound on the
    # rounding error of log f (about 1e-12 absolute in Z - 1) dominates.
    for delta, alpha, slack in [(1e-3, 2.0, 1e-6), (0.05, 64.0, 1e-8), (5.0, 4.0, 1e-9)]:
        ref = reference_renyi(mech, alpha, delta)
        value = renyi_divergences(mech, [alpha], sensitivity=delta)[0]
        assert ref * (1 - 1e-12) <= value <= ref * (1 + slack), (delta, alpha, value, ref)


@pytest.mark.parametrize("b,delta", [(1.0, 1.0), (0.3, 2.0), (5.0, 0.01)])
def test_degenerate_omega_is_mironov_laplace(b, delta):
    alphas = np.array([1.01, 1.5, 2.0, 7.5, 64.0, 1000.0])
    expected = np.array([mironov_laplace(a, delta, b) for a in alphas])
    point_mass = LMO(uniform_weight=1.0, uniform_low=1.0 / b, uniform_high=1.0 / b)
    for mech in (Laplace(b), point_mass):
        ours = renyi_divergences(mech, alphas, sensitivity=delta)
        assert np.all(ours >= expected * (1 - 1e-13))
        # absolute slack: the rigorous rounding bound (~1e-14 in Z - 1) is divided by alpha - 1
        np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(mgf_bound_rdp(mech, alphas, sensitivity=delta), expected, rtol=1e-9)


def test_gaussian_closed_form():
    alphas = np.array([1.5, 2.0, 100.0])
    np.testing.assert_allclose(renyi_divergences(Gaussian(2.0), alphas, sensitivity=3.0), alphas * 9 / 8)


@pytest.mark.parametrize("mech", MIXTURES, ids=IDS)
def test_mgf_bound_dominates_exact(mech):
    alphas = np.concatenate([np.linspace(1.05, 3, 8), np.arange(4, 200, 7.0)])
    for delta in (0.1, 1.0):
        bound = mgf_bound_rdp(mech, alphas, sensitivity=delta)
        exact = renyi_divergences(mech, alphas, sensitivity=delta)
        finite = np.isfinite(bound)
        assert np.all(bound[finite] >= exact[finite] * (1 - 1e-12))
        outside = (alphas - 1) * delta >= mech.omega_mgf_domain()
        assert np.all(np.isinf(bound[outside])) and np.all(finite[~outside])


@pytest.mark.parametrize("mech", MIXTURES, ids=IDS)
def test_pure_dp_is_max_log_density_ratio(mech):
    for delta in (0.3, 1.0, 4.0):
        eps = pure_dp_epsilon(mech, sensitivity=delta)
        y = np.concatenate([np.linspace(-30, 30, 200_001), delta + np.geomspace(1e-9, 1e3, 2000), -np.geomspace(1e-9, 1e3, 2000)])
        grid_max = np.max(np.abs(mech.logpdf(y - delta) - mech.logpdf(y)))
        assert grid_max <= eps * (1 + 1e-12)
        assert grid_max >= eps * (1 - 1e-9)
        # D_alpha <= D_infinity, and the divergence approaches it at huge orders
        assert renyi_divergences(mech, [1e5], sensitivity=delta)[0] <= eps


def test_pure_dp_closed_forms():
    assert pure_dp_epsilon(Laplace(0.5), sensitivity=2.0) == pytest.approx(4.0, rel=1e-14)
    assert pure_dp_epsilon(Gaussian(1.0), sensitivity=1.0) == math.inf


# --- the L2 geometry ------------------------------------------------------------------------
def test_l2_bound_gaussian_exact():
    alphas = np.array([1.1, 2.0, 32.0, 1024.0])
    for geometry in ("scalar", "l2"):
        out = unsubsampled_rdp(Gaussian(1.7), alphas, sensitivity=2.5, geometry=geometry)
        np.testing.assert_allclose(out, alphas * 2.5**2 / (2 * 1.7**2), rtol=1e-15)
    np.testing.assert_allclose(l2_renyi_bound(Gaussian(0.8), alphas, l2_sensitivity=1.0), alphas / (2 * 0.64), rtol=1e-15)


@pytest.mark.parametrize("mech", [TASK1[0], TASK1[2], HEAVY, TWO_SCALE, Laplace(0.7)], ids=["task1-0.3", "task1-2", "heavy", "two-scale", "laplace"])
def test_l2_bound_dominates_splits_and_fisher_limit(mech):
    alphas = np.array([1.5, 2.0, 3.0, 8.0, 20.0, 64.0, 256.0])
    c = 1.0
    bound = l2_renyi_bound(mech, alphas, l2_sensitivity=c)
    assert np.all(bound >= alphas * mech.fisher_information() * c**2 / 2)
    for n in (1, 4, 100):
        split = n * renyi_divergences(mech, alphas, sensitivity=c / math.sqrt(n))
        assert np.all(bound >= split), n
    # an uneven split of the L2 ball
    parts = np.array([0.8, 0.5, 0.3, 0.1])
    parts *= c / np.linalg.norm(parts)
    uneven = sum(renyi_divergences(mech, alphas, sensitivity=t) for t in parts)
    assert np.all(bound >= uneven)
    # close to the best value found on a grid: the bound is not loose
    grid = np.geomspace(1e-3, c, 40)
    best = np.max([renyi_divergences(mech, alphas, sensitivity=t) / t**2 for t in grid], axis=0)
    best = np.maximum(best, alphas * mech.fisher_information() / 2)
    assert np.all(bound <= best * c**2 * 1.01)


def test_l2_bound_looser_tolerance_is_still_a_bound():
    """The search's faster setting (tolerance 2e-2) still dominates concrete splits and stays close."""
    mech = TASK1[1]
    alphas = np.array([2.0, 8.0, 40.0])
    loose = l2_renyi_bound(mech, alphas, l2_sensitivity=1.0, l2_tolerance=2e-2)
    for n in (1, 4, 100):
        assert np.all(loose >= n * renyi_divergences(mech, alphas, sensitivity=1.0 / math.sqrt(n)))
    grid = np.geomspace(1e-3, 1.0, 30)
    best = np.max([renyi_divergences(mech, alphas, sensitivity=t) / t**2 for t in grid], axis=0)
    best = np.maximum(best, alphas * mech.fisher_information() / 2)
    assert np.all(loose <= best * 1.03)
    with pytest.raises(ValueError, match="tolerance"):
        l2_renyi_bound(mech, alphas, l2_sensitivity=1.0, l2_tolerance=0.0)


def test_l2_bound_dense_orders_interpolate_soundly():
    mech = TASK1[2]
    alphas = np.arange(2.0, 257.0)
    dense = l2_renyi_bound(mech, alphas, l2_sensitivity=1.0)
    direct = l2_renyi_bound(mech, alphas[::37], l2_sensitivity=1.0)
    # both are upper bounds with a little slack of their own: compare with true values
    grid = np.geomspace(1e-3, 1.0, 30)
    best = np.max([renyi_divergences(mech, alphas[::37], sensitivity=t) / t**2 for t in grid], axis=0)
    best = np.maximum(best, alphas[::37] * mech.fisher_information() / 2)
    assert np.all(dense[::37] >= best) and np.all(direct >= best)
    assert np.all(dense[::37] <= best * 1.008)


@pytest.mark.parametrize("mech", [TASK1[1], TASK1[3], HEAVY, TWO_SCALE], ids=["task1-0.7", "task1-3", "heavy", "two-scale"])
def test_divergence_nondecreasing_in_shift(mech):
    """h_alpha(t) is non-decreasing in t for symmetric unimodal noise (docs/l2-geometry.md, the
    L2 cell bounds rest on it): check it numerically, and that h_alpha(t)/t^2 stays below its
    t -> 0 limit alpha*I/2 near 0."""
    alphas = np.array([1.2, 2.0, 10.0, 100.0, 1000.0])
    ts = np.geomspace(1e-3, 10.0, 60)
    h = np.array([renyi_divergences(mech, alphas, sensitivity=t) for t in ts])
    assert np.all(np.diff(h, axis=0) >= -1e-12 * h[1:])
    limit = alphas * mech.fisher_information() / 2
    assert np.all(h[:10] / ts[:10, None] ** 2 <= limit * (1 + 1e-6))


POINT_MASS = LMO(uniform_weight=1.0, uniform_low=1 / 0.7, uniform_high=1 / 0.7)


@pytest.mark.parametrize("mech", [TASK1[0], TASK1[3], HEAVY, TWO_SCALE, POINT_MASS], ids=["task1-0.3", "task1-3", "heavy", "two-scale", "laplace"])
def test_first_cell_bounds_dominate_mpmath(mech):
    """Both proven first-cell bounds hold for every t (not only t <= t_0): compare them with
    h_alpha(t)/t^2 from the independent mpmath quadrature, from tiny to large shifts."""
    constants = NoiseConstants.of(mech)
    alphas = np.array([1.5, 2.0, 8.0, 32.0])
    for score_shift in (1e-3, 1e-2, 0.1, 0.5):
        t = score_shift / constants.score
        exact = np.array([reference_renyi(mech, a, t) for a in alphas]) / t**2
        ts = np.full(alphas.size, t)
        assert np.all(first_order_bound(alphas, ts, constants) >= exact), score_shift
        assert np.all(second_order_bound(alphas, ts, constants) >= exact), score_shift
    limit = alphas * constants.fisher / 2
    tiny = np.full(alphas.size, 1e-9 / constants.score)
    np.testing.assert_allclose(first_cell_bound(alphas, tiny, constants), limit, rtol=1e-6)


@pytest.mark.parametrize("b", [0.3, 1.0, 4.0])
def test_first_cell_bounds_dominate_mironov_laplace(b):
    """Laplace(b): the exact h_alpha(t) is Mironov's closed form, so check the bounds over a wide
    range of shifts and orders, and that t_0 leaves them within l2_tolerance of alpha/(2 b^2)."""
    mech = Laplace(b)
    constants = NoiseConstants.of(mech)
    alphas = np.array([1.1, 2.0, 5.0, 50.0, 500.0])
    for t in np.geomspace(1e-4 * b, 3 * b, 12):
        exact = np.array([mironov_laplace(a, t, b) for a in alphas]) / t**2
        ts = np.full(alphas.size, t)
        assert np.all(first_order_bound(alphas, ts, constants) >= exact)
        assert np.all(second_order_bound(alphas, ts, constants) >= exact)
    t0 = first_cell_ends(alphas, constants, l2_tolerance=5e-3, top=10.0)
    assert np.all(first_cell_bound(alphas, t0, constants) <= alphas / (2 * b * b) * (1 + 5e-3) * (1 + 1e-7))
    assert np.all(t0 > 0.01 * b / alphas)


@pytest.mark.parametrize("mech", MIXTURES, ids=IDS)
def test_omega_moments_match_mgf_derivatives(mech):
    """E[omega^n] = (-1)^n d^n/ds^n E[e^{-s omega}] at s = 0, with the MGF written here."""

    def laplace_transform(s):
        total = mp.mpf(1)
        for mgf_term, _ in _component_terms(mech, s):
            total *= mgf_term
        return total

    mp.mp.dps = 30
    expected = [float((-1) ** n * mp.diff(laplace_transform, mp.mpf(0), n)) for n in (1, 2, 3)]
    np.testing.assert_allclose(mech.omega_moments(), expected, rtol=1e-12)


# --- subsampling ----------------------------------------------------------------------------
@pytest.mark.parametrize("sigma,q", [(0.8, 0.01), (1.0, 0.05), (2.0, 0.3), (5.0, 0.001)])
def test_subsampled_gaussian_matches_references(sigma, q):
    from dp_accounting.rdp.rdp_privacy_accountant import _compute_rdp_poisson_subsampled_gaussian
    from opacus.accountants.analysis.rdp import compute_rdp

    integers = np.array([2.0, 3.0, 8.0, 32.0, 128.0])
    ours = subsampled_scalar_rdp(Gaussian(sigma), integers, sample_rate=q, sensitivity=1.0)
    ref = np.asarray(_compute_rdp_poisson_subsampled_gaussian(q, sigma, integers))
    assert np.all(ours >= ref * (1 - 1e-12))
    np.testing.assert_allclose(ours, ref, rtol=1e-8)
    # fractional orders: an mpmath quadrature of both directions, and opacus' fractional series
    # (float64, about 1e-7 relative here; dp-accounting 0.6 returns larger values there)
    fractional = np.array([1.5, 6.5])
    ours = subsampled_scalar_rdp(Gaussian(sigma), fractional, sample_rate=q, sensitivity=1.0)
    np.testing.assert_allclose(ours, compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=fractional), rtol=1e-6)
    mp.mp.dps = 25
    s = mp.mpf(sigma)
    pts = [-mp.inf, -10 * s, 0, 1, 1 + 10 * s, mp.inf]
    for a, value in zip(fractional, ours):
        ref = reference_subsampled(lambda y: mp.npdf(y, 0, s), q, a, 1, pts)
        assert ref * (1 - 1e-13) <= value <= ref * (1 + 1e-8), (a, value, ref)


def test_subsampled_laplace_matches_independent_quadrature():
    b, q, delta = 1.0, 0.05, 1.0
    mp.mp.dps = 25
    pts = [-mp.inf, -10, 0, delta, delta + 10, mp.inf]
    alphas = [1.5, 2.0, 8.0, 40.0]
    ours = subsampled_scalar_rdp(Laplace(b), alphas, sample_rate=q, sensitivity=delta)
    for a, value in zip(alphas, ours):
        ref = reference_subsampled(lambda y: mp.exp(-abs(y) / b) / (2 * b), q, a, delta, pts)
        assert ref * (1 - 1e-13) <= value <= ref * (1 + 1e-9), (a, value, ref)


def test_subsampled_lmo_matches_mpmath_and_limits():
    mech = TASK1[2]
    q = 0.01
    f = reference_density(mech)
    mp.mp.dps = 25
    alphas = [2.0, 16.0]
    ours = subsampled_scalar_rdp(mech, alphas, sample_rate=q, sensitivity=1.0)
    for a, value in zip(alphas, ours):
        ref = reference_subsampled(f, q, a, 1.0, _breakpoints(1.0))
        assert ref * (1 - 1e-12) <= value <= ref * (1 + 1e-8), (a, value, ref)
    full = renyi_divergences(mech, alphas, sensitivity=1.0)
    np.testing.assert_array_equal(subsampled_scalar_rdp(mech, alphas, sample_rate=1.0, sensitivity=1.0), full)


@settings(max_examples=15, deadline=None)
@given(q=st.floats(1e-4, 0.99), alpha=st.floats(1.01, 500.0))
def test_subsampling_never_increases_rdp(q, alpha):
    mech = TASK1[0]
    sub = subsampled_scalar_rdp(mech, [alpha], sample_rate=q, sensitivity=1.0)[0]
    assert 0.0 <= sub <= renyi_divergences(mech, [alpha], sensitivity=1.0)[0] * (1 + 1e-9)


# --- input validation -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda: renyi_divergences(TASK1[0], [1.0], sensitivity=1.0),
        lambda: renyi_divergences(TASK1[0], [0.5, 2.0], sensitivity=1.0),
        lambda: renyi_divergences(TASK1[0], [float("nan")], sensitivity=1.0),
        lambda: renyi_divergences(TASK1[0], [float("inf")], sensitivity=1.0),
        lambda: renyi_divergences(TASK1[0], [2.0], sensitivity=0.0),
        lambda: renyi_divergences(TASK1[0], [2.0], sensitivity=-1.0),
        lambda: renyi_divergences(TASK1[0], [2.0], sensitivity=float("nan")),
        lambda: renyi_divergences("laplace", [2.0], sensitivity=1.0),
        lambda: mgf_bound_rdp(Gaussian(1.0), [2.0], sensitivity=1.0),
        lambda: mgf_bound_rdp(TASK1[0], [1.0], sensitivity=1.0),
        lambda: pure_dp_epsilon(TASK1[0], sensitivity=0.0),
        lambda: l2_renyi_bound(TASK1[0], [2.0], l2_sensitivity=-1.0),
        lambda: l2_renyi_bound(TASK1[0], [float("nan")], l2_sensitivity=1.0),
        lambda: unsubsampled_rdp(TASK1[0], [2.0], sensitivity=1.0, geometry="l1"),
        lambda: unsubsampled_rdp(TASK1[0], [2.0], sensitivity=1.0, geometry=None),
        lambda: subsampled_scalar_rdp(TASK1[0], [2.0], sample_rate=0.0, sensitivity=1.0),
        lambda: subsampled_scalar_rdp(TASK1[0], [2.0], sample_rate=1.5, sensitivity=1.0),
        lambda: subsampled_scalar_rdp(TASK1[0], [2.0], sample_rate=float("nan"), sensitivity=1.0),
        lambda: subsampled_scalar_rdp(TASK1[0], [0.9], sample_rate=0.1, sensitivity=1.0),
    ],
)
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
