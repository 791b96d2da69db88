"""The noise mechanisms against independent references (closed forms, mpmath, scipy quadrature)."""

from __future__ import annotations

import json
import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from lmodp.mechanisms import LMO, Gaussian, Laplace, mechanism_from_dict
from lmodp.paper.params import PAPER_KEYS, lmo_from_paper_json, lmo_to_paper_json, paper_budgets, paper_mechanism, paper_parameters

TASK1 = [paper_mechanism(e, exponential="rate") for e in paper_budgets("task1")]
HEAVY = LMO(gamma_weight=1.0, gamma_shape=0.5, gamma_scale=2.0, exponential_weight=0.5, exponential_rate=1.5)
MIXTURES = TASK1 + [HEAVY, LMO(exponential_weight=1.0, exponential_rate=2.0), LMO(uniform_weight=2.0, uniform_low=0.0, uniform_high=3.0)]


def reference_mgf(m: LMO):
    """M_omega(t) written from the component MGFs' definitions (independent of lmodp's kernels)."""

    def mgf(t):
        t = mp.mpf(t)
        out = mp.mpf(1)
        if m.gamma_weight > 0:
            out *= (1 - m.gamma_scale * m.gamma_weight * t) ** (-m.gamma_shape)
        if m.exponential_weight > 0:
            out *= m.exponential_rate / (m.exponential_rate - m.exponential_weight * t)
        if m.uniform_weight > 0:
            a, lo, hi = m.uniform_weight, m.uniform_low, m.uniform_high
            if hi == lo:
                out *= mp.e ** (a * t * lo)
            elif t != 0:
                out *= (mp.e ** (a * t * hi) - mp.e ** (a * t * lo)) / (a * t * (hi - lo))
        return out

    return mgf


def reference_pdf(m: LMO, y: float) -> mp.mpf:
    """f(y) = 1/2 · M'_omega(-|y|), differentiated numerically by mpmath."""
    mp.mp.dps = 40
    return mp.diff(reference_mgf(m), -abs(y), h=mp.mpf("1e-15")) / 2


@pytest.mark.parametrize("m", MIXTURES, ids=repr)
@pytest.mark.parametrize("y", [0.0, 0.3, -1.7, 12.0, 250.0])
def test_logpdf_matches_mpmath(m, y):
    ref = float(mp.log(reference_pdf(m, y)))
    assert m.logpdf(y) == pytest.approx(ref, rel=1e-9, abs=1e-9)


def test_logpdf_far_tail_gamma_closed_form():
    # omega ~ Gamma(k, theta): f(y) = k theta / 2 · (1 + theta |y|)^(-k-1), exactly.
    k, theta = 0.7, 3.0
    m = LMO(gamma_weight=1.0, gamma_shape=k, gamma_scale=theta)
    y = np.array([0.0, 1.0, 1e3, 1e6, -1e6, 1e12])
    ref = math.log(k * theta / 2) - (k + 1) * np.log1p(theta * np.abs(y))
    np.testing.assert_allclose(m.logpdf(y), ref, rtol=1e-13)


def test_logpdf_far_tail_exponential_uniform_is_finite_and_ordered():
    m = TASK1[0]
    lp = m.logpdf(np.array([1e4, 1e5, 1e6]))
    assert np.all(np.isfinite(lp)) and np.all(np.diff(lp) < 0)


@pytest.mark.parametrize("m", MIXTURES, ids=repr)
def test_pdf_integrates_to_one_and_cdf_matches(m):
    total = 2 * integrate.quad(lambda t: float(m.pdf(t)), 0, np.inf, limit=400, epsrel=1e-11)[0]
    assert total == pytest.approx(1.0, abs=1e-7)
    for y in (-2.0, -0.1, 0.0, 0.5, 4.0):
        ref = 0.5 + math.copysign(integrate.quad(lambda t: float(m.pdf(t)), 0, abs(y), epsrel=1e-12)[0], y)
        assert float(m.cdf(y)) == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("m", TASK1 + [LMO(gamma_weight=1.0, gamma_shape=3.5, gamma_scale=0.5)], ids=repr)
def test_moments_and_usefulness_against_quadrature(m):
    def moment(power):
        return 2 * integrate.quad(lambda t: t**power * float(m.pdf(t)), 0, np.inf, limit=400, epsrel=1e-11)[0]

    assert m.mean_abs() == pytest.approx(moment(1), rel=1e-7)
    assert m.variance() == pytest.approx(moment(2), rel=1e-7)
    gamma = 0.9
    ref = 2 * integrate.quad(lambda t: float(m.pdf(t)), 0, gamma, epsrel=1e-12)[0]
    assert m.usefulness(gamma) == pytest.approx(ref, rel=1e-9)


def test_infinite_moments_are_reported_as_inf():
    exp_only = LMO(exponential_weight=1.0, exponential_rate=2.0)  # P(|Y|>s) ~ 1/s
    assert exp_only.mean_abs() == math.inf and exp_only.variance() == math.inf
    gamma_15 = LMO(gamma_weight=1.0, gamma_shape=1.5, gamma_scale=1.0)  # E[1/w] finite, E[1/w^2] not
    assert gamma_15.mean_abs() == pytest.approx(1.0 / 0.5) and gamma_15.variance() == math.inf
    assert Gaussian(2.0).variance() == 4.0


def test_gamma_only_closed_forms():
    k, theta = 3.0, 0.5
    m = LMO(gamma_weight=1.0, gamma_shape=k, gamma_scale=theta)
    # E[1/w] = 1/((k-1) theta), E[1/w^2] = 1/((k-1)(k-2) theta^2), I = k (k+1)^2 theta^2 / (k+2).
    assert m.mean_abs() == pytest.approx(1 / ((k - 1) * theta), rel=1e-9)
    assert m.variance() == pytest.approx(2 / ((k - 1) * (k - 2) * theta**2), rel=1e-9)
    assert m.fisher_information() == pytest.approx(k * (k + 1) ** 2 * theta**2 / (k + 2), rel=1e-8)


@pytest.mark.parametrize("k", [1.0001, 1.005, 2.0001, 2.005])
@pytest.mark.parametrize("theta", [0.3, 2.0])
def test_moments_just_above_their_divergence_threshold(k, theta):
    # Gamma(k, θ) inverse scale: E|Y| = E[1/ω] = 1/((k−1)θ) for k > 1, Var Y = 2E[1/ω²] =
    # 2/((k−1)(k−2)θ²) for k > 2 (the tail P(|Y| > s) ~ s^{−k}; a cut-off integral loses ~3 %)
    m = LMO(gamma_weight=1.0, gamma_shape=k, gamma_scale=theta)
    assert m.mean_abs() == pytest.approx(1 / ((k - 1) * theta), rel=1e-8)
    if k > 2:
        assert m.variance() == pytest.approx(2 / ((k - 1) * (k - 2) * theta**2), rel=1e-8)


def test_mean_abs_near_threshold_with_two_components():
    # Gamma(0.005, θ) + Exponential(rate 1/θ) = Gamma(1.005, θ) (same scale): tail exponent 1.005
    # from two components, E[1/ω] = 1/(0.005 θ)
    theta = 0.5
    m = LMO(gamma_weight=1.0, gamma_shape=0.005, gamma_scale=theta, exponential_weight=1.0, exponential_rate=1 / theta)
    assert m.tail_exponent() == pytest.approx(1.005)
    assert m.mean_abs() == pytest.approx(1 / (0.005 * theta), rel=1e-8)


def test_quadrature_error_estimates_are_checked(monkeypatch):
    from lmodp.mechanisms import mixture

    monkeypatch.setattr(mixture, "_ACCEPTED_ERROR", 0.0)
    m = LMO(gamma_weight=1.0, gamma_shape=3.0, gamma_scale=0.5)
    for moment in (m.mean_abs, m.variance, m.fisher_information_bound):
        with pytest.raises(ArithmeticError, match="error estimate"):
            moment()


@pytest.mark.parametrize("k, theta", [(3.0, 0.5), (1.005, 1.0), (0.5, 2.0), (50.0, 0.02)])
def test_fisher_information_bound_against_closed_form(k, theta):
    # Gamma-only: f(y) = (kθ/2)(1 + θ|y|)^{−k−1}, so I = k(k+1)²θ²/(k+2) (independent of the code)
    exact = k * (k + 1) ** 2 * theta**2 / (k + 2)
    bound = LMO(gamma_weight=1.0, gamma_shape=k, gamma_scale=theta).fisher_information_bound()
    assert exact <= bound <= exact * (1 + 1e-8)
    assert Laplace(0.7).fisher_information_bound() == pytest.approx(1 / 0.49, rel=1e-12)  # capped by E[ω²]


def test_steep_power_law_tails_are_integrated():
    """A Gamma shape at the search box's top (k = 50) beside an Exponential: the tail decays like
    s^-51, which the tail mapping for slow power laws could not integrate (ArithmeticError)."""
    m = LMO(gamma_weight=0.5, gamma_shape=50.0, gamma_scale=0.02, exponential_weight=0.5)
    assert math.isfinite(m.fisher_information_bound()) and math.isfinite(m.variance())


@pytest.mark.parametrize("m", TASK1[:2] + [HEAVY], ids=repr)
def test_fisher_information_against_finite_difference_quadrature(m):
    def integrand(s):
        h = 1e-6 * max(1.0, s)
        d = (reference_pdf(m, s + h) - reference_pdf(m, s - h)) / (2 * h)
        return float(d * d / reference_pdf(m, s))

    ref = 2 * integrate.quad(integrand, 1e-9, np.inf, limit=200, epsrel=1e-8)[0]
    assert m.fisher_information() == pytest.approx(ref, rel=1e-5)
    assert m.fisher_information() <= m.fisher_information_bound() <= m.fisher_information() * (1 + 1e-8)


def test_laplace_closed_forms_and_point_mass_lmo():
    b = 0.7
    lap, point = Laplace(b), LMO(uniform_weight=1.0, uniform_low=1 / b, uniform_high=1 / b)
    y = np.linspace(-20, 20, 81)
    np.testing.assert_allclose(lap.logpdf(y), stats.laplace(scale=b).logpdf(y), rtol=1e-12)
    np.testing.assert_allclose(point.logpdf(y), stats.laplace(scale=b).logpdf(y), rtol=1e-12)
    np.testing.assert_allclose(point.cdf(y), stats.laplace(scale=b).cdf(y), atol=1e-14)
    assert point.mean_abs() == pytest.approx(b, rel=1e-9)
    assert point.variance() == pytest.approx(2 * b * b, rel=1e-9)
    assert point.fisher_information() == pytest.approx(1 / b**2, rel=1e-9)
    assert lap.usefulness(0.9) == pytest.approx(1 - math.exp(-0.9 / b))


def test_gaussian_closed_forms():
    g = Gaussian(1.3)
    y = np.linspace(-8, 8, 33)
    np.testing.assert_allclose(g.logpdf(y), stats.norm(scale=1.3).logpdf(y), rtol=1e-12)
    assert g.mean_abs() == pytest.approx(stats.norm(scale=1.3).expect(abs), rel=1e-8)
    assert g.usefulness(0.9) == pytest.approx(stats.norm(scale=1.3).cdf(0.9) - stats.norm(scale=1.3).cdf(-0.9))
    assert g.fisher_information() == pytest.approx(1 / 1.69)


@pytest.mark.parametrize("m", [TASK1[2], Gaussian(0.8), Laplace(1.5)], ids=repr)
def test_samples_follow_the_law(m):
    rng = np.random.default_rng(1234)
    y = m.sample(100_000, rng)
    assert stats.kstest(y, m.cdf).pvalue > 1e-3


def test_omega_mgf_and_domain():
    m = TASK1[0]  # a1 = 0.1, theta = 0.5 -> 1/(a1 theta) = 20; a3 = 0.1, rate 5 -> 50
    assert m.omega_mgf_domain() == pytest.approx(20.0)
    assert m.omega_mgf(20.0) == math.inf and m.omega_mgf(25.0) == math.inf
    for t in (-3.0, 0.5, 19.0):
        assert float(m.omega_mgf(t)) == pytest.approx(float(reference_mgf(m)(t)), rel=1e-12)
    assert m.omega_mean() == pytest.approx(0.1 * 0.5 + 0.1 / 5 + 0.1 * 1.5)
    assert Laplace(1.0).omega_mgf_domain() == math.inf


def test_from_paper_json_conventions(tmp_path):
    data = paper_parameters(0.3, "task1")
    rate = lmo_from_paper_json(data, exponential="rate")
    scale = lmo_from_paper_json(data, exponential="scale")
    assert rate.exponential_rate == 5.0 and scale.exponential_rate == pytest.approx(0.2)
    assert lmo_to_paper_json(rate) == {k: data[k] for k in PAPER_KEYS}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    assert lmo_from_paper_json(path, exponential="rate") == rate
    with pytest.raises(ValueError, match="exponential"):
        lmo_from_paper_json(data, exponential="mean")
    with pytest.raises(TypeError):
        lmo_from_paper_json(data)  # the convention has no default
    with pytest.raises(ValueError, match="lacks keys"):
        lmo_from_paper_json({"a1": 1}, exponential="rate")


@pytest.mark.parametrize("m", [TASK1[1], Gaussian(2.0), Laplace(0.3)], ids=repr)
def test_dict_round_trip(m):
    d = json.loads(json.dumps(m.to_dict()))
    assert mechanism_from_dict(d) == m


def test_lmo_dict_requires_convention():
    d = TASK1[0].to_dict()
    d.pop("convention")
    with pytest.raises(ValueError, match="convention"):
        LMO.from_dict(d)


def test_scaled_multiplies_the_noise():
    for m in (TASK1[3], Gaussian(1.0), Laplace(2.0)):
        s = m.scaled(2.5)
        assert s.mean_abs() == pytest.approx(2.5 * m.mean_abs(), rel=1e-8)
        assert float(s.cdf(2.5)) == pytest.approx(float(m.cdf(1.0)), rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"gamma_weight": -0.1}, "gamma_weight"),
        ({"gamma_weight": 1.0, "gamma_scale": 0.0}, "gamma_scale"),
        ({"gamma_weight": 1.0, "gamma_shape": -1.0}, "gamma_shape"),
        ({"exponential_weight": 1.0, "exponential_rate": 0.0}, "exponential_rate"),
        ({"uniform_weight": 1.0, "uniform_low": 2.0, "uniform_high": 1.0}, "uniform_high"),
        ({"uniform_weight": float("nan")}, "uniform_weight"),
        ({"exponential_weight": 1.0, "exponential_rate": float("inf")}, "exponential_rate"),
        ({}, "omega"),
        ({"uniform_weight": 1.0, "uniform_low": 0.0, "uniform_high": 0.0}, "omega"),
    ],
)
def test_invalid_lmo_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LMO(**kwargs)


@pytest.mark.parametrize("cls, arg", [(Gaussian, 0.0), (Gaussian, -1.0), (Laplace, float("nan")), (Laplace, -2.0)])
def test_invalid_scales(cls, arg):
    with pytest.raises(ValueError):
        cls(arg)


def test_usefulness_rejects_bad_gamma():
    with pytest.raises(ValueError, match="gamma"):
        TASK1[0].usefulness(-1.0)


@settings(max_examples=40, deadline=None)
@given(
    a1=st.floats(0.0, 2.0), a3=st.floats(0.0, 2.0), a4=st.floats(0.05, 2.0),
    k=st.floats(0.3, 4.0), theta=st.floats(0.1, 5.0), lam=st.floats(0.1, 10.0),
    lo=st.floats(0.0, 5.0), width=st.floats(0.0, 5.0), y=st.floats(-1e6, 1e6),
)
def test_density_properties(a1, a3, a4, k, theta, lam, lo, width, y):
    m = LMO(gamma_weight=a1, gamma_shape=k, gamma_scale=theta, exponential_weight=a3,
            exponential_rate=lam, uniform_weight=a4, uniform_low=lo, uniform_high=lo + width + 0.01)
    lp = float(m.logpdf(y))
    assert math.isfinite(lp)
    assert lp == pytest.approx(float(m.logpdf(-y)))
    assert lp <= float(m.logpdf(0.0)) + 1e-12  # unimodal at 0
    c = float(m.cdf(y))
    assert 0.0 <= c <= 1.0


@pytest.mark.parametrize("mechanism", [Gaussian(1.0), Laplace(2.0), TASK1[0]], ids=repr)
def test_mechanisms_are_immutable(mechanism):
    """What a ledger records (to_dict) is what is sampled and accounted: no attribute can change."""
    before = mechanism.to_dict()
    name = next(k for k in before if k not in ("family", "convention"))
    with pytest.raises(AttributeError, match="immutable"):
        setattr(mechanism, name, 5.0)
    with pytest.raises(AttributeError, match="immutable"):
        delattr(mechanism, name)
    if hasattr(mechanism, "kernel_params"):
        with pytest.raises(ValueError, match="read-only"):
            mechanism.kernel_params[1] = 5.0
    assert mechanism.to_dict() == before


def test_replace_gives_a_new_validated_mechanism():
    lmo = TASK1[0]
    changed = lmo.replace(gamma_weight=5.0)
    assert changed.gamma_weight == 5.0 and lmo.gamma_weight != 5.0 and changed.mixing.components["gamma"][0] == 5.0
    assert {k: v for k, v in changed.to_dict().items() if k != "gamma_weight"} == {
        k: v for k, v in lmo.to_dict().items() if k != "gamma_weight"
    }
    assert Gaussian(1.0).replace(sigma=2.0) == Gaussian(2.0)
    with pytest.raises(ValueError, match="has no parameter \\['scale'\\]; its parameters are \\['sigma'\\]"):
        Gaussian(1.0).replace(scale=2.0)
    with pytest.raises(ValueError, match="gamma_weight"):
        lmo.replace(gamma_weight=-1.0)


def test_copies_stay_immutable():
    import copy
    import pickle

    for copied in (copy.deepcopy(TASK1[1]), pickle.loads(pickle.dumps(TASK1[1]))):
        assert copied == TASK1[1] and not copied.kernel_params.flags.writeable
        with pytest.raises(AttributeError):
            copied.gamma_weight = 1.0
