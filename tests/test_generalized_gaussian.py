"""The generalized Gaussian family (density ∝ exp(−|y/s|^p), 1 ≤ p ≤ 2) against independent references.

References: scipy.stats.gennorm (the same law), mpmath for the incomplete gamma function and for
quadratures of the density written here from its definition, Mironov's closed-form Laplace RDP
and the Gaussian's αΔ²/(2σ²) and Balle–Wang δ(ε) at the ends p = 1 and p = 2 (where the family's
own kernels are called directly: the public path hands p = 1, 2 to the Laplace and Gaussian code),
and a brute-force hockey-stick integral for the PLD.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from scipy import integrate, special, stats

import lmodp
from lmodp import Gaussian, GeneralizedGaussian, Laplace
from lmodp.accounting.pld import _kernels as PK
from lmodp.accounting.rdp._gg_quadrature import gg_log_moments
from lmodp.accounting.rdp.l2_sup_bound import first_cell_ends
from lmodp.accounting.rdp.divergence import l2_renyi_bound, renyi_divergences, subsampled_scalar_rdp
from lmodp.accounting.rdp.noise_laws import noise_law
from lmodp.accounting.pld.hockey_stick import NoiseModel, hockey_stick_curve
from lmodp.mechanisms.generalized_gaussian_kernels import log_gamma_q
from lmodp.search import search

from test_divergence import _power_ratio, mironov_laplace, reference_subsampled
from test_pld import assert_single_release_matches_brute_force

POWERS = (1.3, 1.7)


def reference_density(scale: float, power: float):
    """p/(2sΓ(1/p))·exp(−|y/s|^p), from the definition."""
    norm = mp.mpf(power) / (2 * scale * mp.gamma(mp.mpf(1) / power))
    return lambda y: norm * mp.exp(-(abs(mp.mpf(y)) / scale) ** power)


def reference_renyi(scale: float, power: float, alpha: float, delta: float) -> float:
    """log ∫ f(y−Δ)^α f(y)^{1−α} dy/(α−1) by mpmath, split at the cusps and around the peak of the
    integrand, y* = Δ/(1 − (1 − 1/α)^{1/(p−1)}) (where α(y−Δ)^{p−1} = (α−1)y^{p−1})."""
    mp.mp.dps = 30
    f = reference_density(scale, power)
    pts = [-mp.inf, -20 * scale, -scale, 0, delta / 2, delta, delta + scale, delta + 20 * scale]
    if power > 1.0:
        peak = delta / (1.0 - (1.0 - 1.0 / alpha) ** (1.0 / (power - 1.0)))
        pts += [peak * r for r in (0.5, 0.8, 0.9, 1.0, 1.1, 1.25, 2.0) if peak * r > delta + 20 * scale]
    pts = sorted(pts) + [mp.inf]
    return float(mp.log(mp.quad(lambda y: _power_ratio(f(y - delta), f(y), alpha), pts)) / (alpha - 1))


# --- the law --------------------------------------------------------------------------------
@pytest.mark.parametrize("power", (1.0, 1.3, 1.7, 2.0))
def test_law_matches_scipy_gennorm(power):
    m, ref = GeneralizedGaussian(1.7, power), stats.gennorm(power, scale=1.7)
    y = np.array([-9.0, -2.0, -0.3, 0.0, 0.5, 3.0, 12.0])
    np.testing.assert_allclose(m.logpdf(y), ref.logpdf(y), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(m.cdf(y), ref.cdf(y), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(m.log_tail(np.array([30.0])), np.log(2 * ref.sf(30.0)), rtol=1e-12)
    assert m.variance() == pytest.approx(ref.var(), rel=1e-12)
    assert m.mean_abs() == pytest.approx(integrate.quad(lambda v: 2 * v * ref.pdf(v), 0, np.inf)[0], rel=1e-9)
    assert m.usefulness(0.9) == pytest.approx(ref.cdf(0.9) - ref.cdf(-0.9), rel=1e-12)
    # Fisher information ∫ f'²/f from the density's derivative, by scipy quadrature
    score = lambda v: -power * v ** (power - 1) / 1.7**power  # noqa: E731  (v > 0)
    fisher = 2 * integrate.quad(lambda v: ref.pdf(v) * score(v) ** 2, 0, np.inf, limit=200)[0]
    assert m.fisher_information() == pytest.approx(fisher, rel=1e-8)


def test_ends_of_the_family_are_laplace_and_gaussian():
    assert GeneralizedGaussian(2.0, 1.0).canonical() == Laplace(2.0)
    assert GeneralizedGaussian(2.0, 2.0).canonical() == Gaussian(2.0 / math.sqrt(2.0))
    assert GeneralizedGaussian(2.0, 1.5).canonical() == GeneralizedGaussian(2.0, 1.5)
    for bad in (0.99, 2.01, math.nan):
        with pytest.raises(ValueError, match="power"):
            GeneralizedGaussian(1.0, bad)
    with pytest.raises(ValueError, match="scale"):
        GeneralizedGaussian(-1.0, 1.5)


def test_log_upper_incomplete_gamma_matches_mpmath():
    mp.mp.dps = 50
    for a in (0.5, 0.6, 0.77, 1.0):
        for x in (1e-12, 1e-3, 0.5, 1.4, 1.6, 7.0, 300.0, 5000.0):
            ref = float(mp.log(mp.gammainc(a, x, mp.inf, regularized=True)))
            assert log_gamma_q(a, x) == pytest.approx(ref, rel=1e-14, abs=1e-300)


@pytest.mark.parametrize("power", (1.5, 1.9))
def test_samplers_draw_the_law(power):
    m = GeneralizedGaussian(0.8, power)
    ref = stats.gennorm(power, scale=0.8)
    assert stats.kstest(m.sample(100_000, np.random.default_rng(1)), ref.cdf).pvalue > 1e-3
    torch = pytest.importorskip("torch")
    from lmodp.train import torch_sampler

    draws = torch_sampler(m).sample((100_000,), generator=torch.Generator().manual_seed(2)).double().numpy()
    assert stats.kstest(draws, ref.cdf).pvalue > 1e-3


# --- Rényi divergences ------------------------------------------------------------------------
@pytest.mark.parametrize("power", POWERS)
@pytest.mark.parametrize("delta", (0.4, 2.5))
def test_scalar_divergence_matches_mpmath(power, delta):
    alphas = np.array([1.5, 2.0, 8.0, 64.0])
    got = renyi_divergences(GeneralizedGaussian(1.2, power), alphas, sensitivity=delta)
    ref = np.array([reference_renyi(1.2, power, a, delta) for a in alphas])
    assert np.all(got >= ref * (1 - 1e-12))
    np.testing.assert_allclose(got, ref, rtol=1e-8)


def test_kernels_at_the_ends_match_laplace_and_gaussian_closed_forms():
    alphas = np.array([1.5, 2.0, 8.0, 64.0, 512.0])
    for delta in (0.3, 1.0, 4.0):
        laplace = gg_log_moments(GeneralizedGaussian(1.5, 1.0), alphas, sensitivity=delta, max_order=512.0) / (alphas - 1)
        ref = np.array([mironov_laplace(a, delta, 1.5) for a in alphas])
        assert np.all(laplace >= ref * (1 - 1e-12))
        np.testing.assert_allclose(laplace, ref, rtol=1e-8)
        gaussian = gg_log_moments(GeneralizedGaussian(1.5, 2.0), alphas, sensitivity=delta, max_order=512.0) / (alphas - 1)
        exact = alphas * delta**2 / 1.5**2  # σ² = s²/2
        assert np.all(gaussian >= exact * (1 - 1e-12))
        np.testing.assert_allclose(gaussian, exact, rtol=1e-8)


def test_public_path_at_the_ends_is_the_laplace_and_gaussian_accounting():
    budget = dict(sample_rate=0.02, steps=300, delta=1e-6, geometry="l2", accountant="rdp")
    assert lmodp.epsilon(GeneralizedGaussian(2.0, 1.0), **budget) == lmodp.epsilon(Laplace(2.0), **budget)
    assert lmodp.epsilon(GeneralizedGaussian(2.0, 2.0), **budget) == lmodp.epsilon(Gaussian(2.0 / math.sqrt(2)), **budget)


@pytest.mark.parametrize("power", (1.5,))
def test_subsampled_divergence_matches_mpmath(power):
    mp.mp.dps = 30
    m = GeneralizedGaussian(1.0, power)
    alphas = np.array([2.0, 8.0, 32.0])
    got = subsampled_scalar_rdp(m, alphas, sample_rate=0.1, sensitivity=1.0)
    pts = [-mp.inf, -20, -1, 0, 0.5, 1, 2, 21, mp.inf]
    ref = np.array([reference_subsampled(reference_density(1.0, power), 0.1, a, 1.0, pts) for a in alphas])
    assert np.all(got >= ref * (1 - 1e-12))
    np.testing.assert_allclose(got, ref, rtol=1e-7)


# --- PLD ----------------------------------------------------------------------------------
def test_pld_single_release_matches_brute_force():
    ref = stats.gennorm(1.5, scale=1.0)
    assert_single_release_matches_brute_force(GeneralizedGaussian(1.0, 1.5), ref.pdf)


def _kernel_model(scale: float, power: float, radius: float) -> NoiseModel:
    params = np.array([scale, power])
    outside = 2.0 * math.exp(log_gamma_q(1.0 / power, (radius / scale) ** power))
    return NoiseModel(PK.GENERALIZED_GAUSSIAN, params, 1.0, radius, outside)


def test_pld_kernel_at_the_ends_matches_laplace_and_gaussian_curves():
    interval = 1e-2
    laplace = hockey_stick_curve(_kernel_model(0.8, 1.0, 60.0), direction="remove", sample_rate=1.0, interval=interval)
    eps = (laplace.offset + np.arange(laplace.curve.size)) * interval
    exact = np.where(eps < 1 / 0.8, -np.expm1((eps - 1 / 0.8) / 2.0), 0.0)  # 1 − e^{(ε − Δ/b)/2}
    keep = eps >= 0
    np.testing.assert_allclose(laplace.curve[keep], np.maximum(exact[keep], 0), atol=1e-12)
    sigma = 0.8 / math.sqrt(2)
    gauss = hockey_stick_curve(_kernel_model(0.8, 2.0, 12.0), direction="remove", sample_rate=1.0, interval=interval)
    eps = (gauss.offset + np.arange(gauss.curve.size)) * interval
    balle_wang = special.ndtr(0.5 / sigma - eps * sigma) - np.exp(eps) * special.ndtr(-0.5 / sigma - eps * sigma)
    keep = (eps >= 0) & (eps < 20)
    np.testing.assert_allclose(gauss.curve[keep], balle_wang[keep], atol=1e-11)
    assert np.all(gauss.curve[keep] + gauss.error[keep] >= balle_wang[keep])


# --- the l2 geometry ---------------------------------------------------------------------
@pytest.mark.parametrize("power", POWERS)
def test_first_cell_bound_dominates_mpmath(power):
    m = GeneralizedGaussian(1.0, power)
    cell = noise_law(m).first_cell()
    alphas = np.array([2.0, 16.0])
    t0 = first_cell_ends(alphas, cell, l2_tolerance=5e-3, top=1.0)
    for alpha, top in zip(alphas, t0):
        for t in (top, 4 * top, 0.5):
            bound = float(cell.bound(np.array([alpha]), np.array([t]))[0])
            for u in np.geomspace(t / 50, t, 4):
                assert reference_renyi(1.0, power, alpha, u) / u**2 <= bound
    assert np.all(cell.bound(alphas, t0) <= (1 + 5e-3) * alphas * m.fisher_information() / 2 * (1 + 1e-9))


def test_divergence_is_convex_in_the_shift():
    """The property the l2 cells rely on for log-concave noise (docs/l2-geometry.md 5.4), checked
    on the independent quadrature."""
    t = np.linspace(0.2, 3.0, 5)
    for power in POWERS:
        for alpha in (2.0, 20.0):
            h = np.array([reference_renyi(1.0, power, alpha, x) for x in t])
            assert np.all(h[:-2] - 2 * h[1:-1] + h[2:] >= -1e-12)


@pytest.mark.parametrize("power", POWERS)
def test_l2_bound_dominates_every_split_shift(power):
    m = GeneralizedGaussian(1.1, power)
    alphas = np.array([2.0, 8.0, 64.0])
    bound = l2_renyi_bound(m, alphas, l2_sensitivity=2.0)
    limit = alphas * m.fisher_information() * 4.0 / 2
    assert np.all(bound >= limit) and np.all(bound <= 1.05 * limit)
    for t in (0.05, 0.5, 2.0):
        split = (2.0 / t) ** 2 * np.array([reference_renyi(1.1, power, a, t) for a in alphas])
        assert np.all(bound >= split)


# --- the search --------------------------------------------------------------------------
def test_search_over_the_power_meets_the_budget_and_beats_both_ends_or_returns_one():
    budget = dict(sample_rate=0.05, steps=50, geometry="scalar")
    r = search(1.0, delta=1e-6, family="generalized_gaussian", **budget)
    independent = lmodp.epsilon(r.mechanism, delta=1e-6, accountant="pld", **budget)
    assert r.epsilon <= 1.0 and independent <= 1.0
    assert r.objective_value <= min(r.laplace_objective_value, r.baseline_objective_value)
    if isinstance(r.mechanism, GeneralizedGaussian):
        assert 1.0 < r.mechanism.power < 2.0
        assert r.objective_value < min(r.laplace_objective_value, r.baseline_objective_value) / (1 + 1e-4)


def test_interval_in_the_l2_geometry():
    m = GeneralizedGaussian(3.0, 1.6)
    interval = lmodp.epsilon_interval(m, sample_rate=0.05, steps=30, delta=1e-5, dimensions=(1, 64))
    assert 0 < interval.lower <= interval.upper
    assert interval.upper == lmodp.epsilon(m, sample_rate=0.05, steps=30, delta=1e-5, geometry="l2", accountant="rdp")


def test_pld_at_and_near_the_ends_matches_dp_accounting():
    """p = 1, 2 (the Laplace and Gaussian code) and p = 1.001, 1.999 (the family's own kernels)
    against dp-accounting's Laplace and Gaussian PLD accountants."""
    import dp_accounting

    from test_pld import reference_epsilon

    q, steps, delta = 0.05, 200, 1e-6
    ends = ((1.0, dp_accounting.LaplaceDpEvent(1.5)), (2.0, dp_accounting.GaussianDpEvent(1.5 / math.sqrt(2))))
    for power, event in ends:
        theirs = reference_epsilon(dp_accounting.PoissonSampledDpEvent(q, event), steps, delta)
        ours = lmodp.epsilon(GeneralizedGaussian(1.5, power), sample_rate=q, steps=steps, delta=delta, geometry="scalar", accountant="pld")
        assert theirs - 1e-4 <= ours <= theirs + 1e-3
        near = 1.001 if power == 1.0 else 1.999
        close = lmodp.epsilon(GeneralizedGaussian(1.5, near), sample_rate=q, steps=steps, delta=delta, geometry="scalar", accountant="pld")
        assert close == pytest.approx(theirs, rel=1e-2)
