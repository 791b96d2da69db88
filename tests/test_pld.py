"""PLD accountant: against dp-accounting (independent reference), a brute-force hockey-stick
integral for a non-monotone Laplace scale mixture, the RDP upper bound, and bad input."""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting.pld import PLDAccountant as ReferencePLD
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

import lmodp
from lmodp import LMO, Gaussian, Laplace
from lmodp.accounting.pld import PLDAccountant, PLDFallbackWarning, mechanism_pld
from lmodp.mechanisms import LaplaceScaleMixture

H = 1e-4


def reference_epsilon(event, count: int, delta: float) -> float:
    acc = ReferencePLD(value_discretization_interval=H)
    acc.compose(event, count)
    return acc.get_epsilon(delta)


def lmodp_epsilon(mechanism, *, q: float, steps: int, delta: float) -> float:
    return lmodp.epsilon(mechanism, sample_rate=q, steps=steps, delta=delta, geometry="scalar", accountant="pld")


CASES = [
    (Gaussian(0.8), dp_accounting.GaussianDpEvent(0.8), 0.01, 500, 1e-5),
    (Gaussian(2.0), dp_accounting.GaussianDpEvent(2.0), 0.1, 100, 1e-8),
    (Gaussian(1.2), dp_accounting.GaussianDpEvent(1.2), 0.02, 2000, 1e-6),
    (Laplace(1.0), dp_accounting.LaplaceDpEvent(1.0), 0.05, 300, 1e-5),
    (Laplace(3.0), dp_accounting.LaplaceDpEvent(3.0), 0.01, 2000, 1e-8),
    (Laplace(0.5), dp_accounting.LaplaceDpEvent(0.5), 0.2, 20, 1e-6),
]


@pytest.mark.parametrize("mechanism, event, q, steps, delta", CASES)
def test_matches_dp_accounting_and_below_rdp(mechanism, event, q, steps, delta):
    ours = lmodp_epsilon(mechanism, q=q, steps=steps, delta=delta)
    theirs = reference_epsilon(dp_accounting.PoissonSampledDpEvent(q, event), steps, delta)
    assert abs(ours - theirs) <= 1e-3
    # never optimistic beyond the discretisation
    assert ours >= theirs - H
    rdp = lmodp.epsilon(mechanism, sample_rate=q, steps=steps, delta=delta, geometry="scalar", accountant="rdp")
    assert ours <= rdp


def test_unsubsampled_laplace_is_exact():
    # Laplace(b), sensitivity 1, one release: δ(ε) = 1 − e^{(ε − 1/b)/2} for 0 ≤ ε ≤ 1/b.
    b, eps = 0.8, 0.5
    exact = -math.expm1((eps - 1.0 / b) / 2.0)
    acc = PLDAccountant()
    acc.step(mechanism=Laplace(b), sample_rate=1.0, geometry="scalar")
    got = acc.get_delta(eps)
    assert exact <= got <= exact + 1e-7


def test_heterogeneous_composition_matches_dp_accounting():
    acc = PLDAccountant()
    acc.step(mechanism=Gaussian(1.5), sample_rate=0.02, steps=300, geometry="scalar")
    acc.step(mechanism=Laplace(2.0), sample_rate=0.05, steps=200, geometry="scalar")
    ref = ReferencePLD(value_discretization_interval=H)
    ref.compose(dp_accounting.PoissonSampledDpEvent(0.02, dp_accounting.GaussianDpEvent(1.5)), 300)
    ref.compose(dp_accounting.PoissonSampledDpEvent(0.05, dp_accounting.LaplaceDpEvent(2.0)), 200)
    ours, theirs = acc.get_epsilon(1e-6), ref.get_epsilon(1e-6)
    assert abs(ours - theirs) <= 1e-3 and ours >= theirs - H
    assert abs(acc.get_delta(1.0) - ref.get_delta(1.0)) <= 1e-6


def test_deep_tail_of_composed_gaussian_against_closed_form():
    # T-fold Gaussian(σ) is Gaussian(σ/√T): δ(ε) = Φ(μ/2 − ε/μ) − e^ε Φ(−μ/2 − ε/μ), μ = √T/σ
    # (Balle & Wang, ICML 2018). At δ ~ 1e-12 this exercises the tilted FFT tail.
    sigma, steps = 20.0, 1000
    mu = math.sqrt(steps) / sigma
    acc = PLDAccountant()
    acc.step(mechanism=Gaussian(sigma), sample_rate=1.0, steps=steps, geometry="scalar")
    for eps in (3.0, 10.0, 12.0):
        exact = norm.sf(eps / mu - mu / 2) - math.exp(eps) * norm.sf(eps / mu + mu / 2)
        got = acc.get_delta(eps)
        assert exact <= got <= exact * 1.01, eps


def _solve_epsilon(delta_of_eps, delta: float, guess: float) -> float:
    """The root of log δ(ε) = log δ, in mpmath."""
    import mpmath as mp

    return float(mp.findroot(lambda e: mp.log(delta_of_eps(e)) - mp.log(delta), guess))


def test_tiny_delta_of_composed_gaussian_against_closed_form():
    # δ far below the truncation mass 1e-15: the history is recomposed with smaller truncation
    # and the far tail is reached by successive tilts. Reference: Balle & Wang's closed form.
    import mpmath as mp

    sigma, steps = 20.0, 1000
    acc = PLDAccountant()
    acc.step(mechanism=Gaussian(sigma), sample_rate=1.0, steps=steps, geometry="scalar")
    with mp.workdps(50):
        mu = mp.sqrt(steps) / sigma
        exact = lambda e: mp.ncdf(mu / 2 - e / mu) - mp.exp(e) * mp.ncdf(-mu / 2 - e / mu)  # noqa: E731
        for delta in (1e-16, 1e-30, 1e-150):
            got = acc.get_epsilon(delta)
            assert 0.0 <= got - _solve_epsilon(exact, delta, got) <= 2e-4, delta


def test_tiny_delta_of_one_subsampled_gaussian_step_against_closed_form():
    # remove direction (the larger one here): P = (1−q)N(0,1) + qN(1,1) against Q = N(0,1);
    # P/Q > e^ε exactly for y > y*(ε) = log((e^ε − 1 + q)/q) + 1/2.
    import mpmath as mp

    acc = PLDAccountant()
    acc.step(mechanism=Gaussian(1.0), sample_rate=0.01, steps=1, geometry="scalar")
    with mp.workdps(60):
        q = mp.mpf("0.01")

        def exact(e):
            y = mp.log((mp.exp(e) - 1 + q) / q) + mp.mpf(1) / 2
            return (1 - q) * mp.ncdf(-y) + q * mp.ncdf(1 - y) - mp.exp(e) * mp.ncdf(-y)

        for delta in (1e-30, 1e-100, 1e-200):
            got = acc.get_epsilon(delta)
            assert 0.0 <= got - _solve_epsilon(exact, delta, got) <= 1e-4, delta


def test_issue_case_small_delta_is_finite_and_below_rdp():
    rdp, pld = {}, {}
    for delta in (1e-15, 1e-16, 1e-40):
        rdp[delta] = lmodp.epsilon(Gaussian(1.0), sample_rate=0.01, steps=1000, delta=delta, geometry="scalar", accountant="rdp")
        pld[delta] = lmodp_epsilon(Gaussian(1.0), q=0.01, steps=1000, delta=delta)
    assert all(math.isfinite(v) and v <= rdp[d] for d, v in pld.items())
    assert pld[1e-15] < pld[1e-16] < pld[1e-40]


def test_delta_beyond_float_range_falls_back_to_rdp_with_a_reason():
    with pytest.warns(PLDFallbackWarning, match="delta=1e-300"):
        got = lmodp_epsilon(Gaussian(1.0), q=0.01, steps=100, delta=1e-300)
    assert got == lmodp.epsilon(Gaussian(1.0), sample_rate=0.01, steps=100, delta=1e-300, geometry="scalar", accountant="rdp")
    heavy = LMO(exponential_weight=1.0, exponential_rate=2.0)  # P(|Y| > s) ~ 1/s: no window reaches 1e-250
    # 10,000 steps: the RDP bound (about 30) is below the pure-DP composition bound (about 124)
    with pytest.warns(PLDFallbackWarning, match="tails are too heavy"):
        assert math.isfinite(lmodp_epsilon(heavy, q=0.01, steps=10_000, delta=1e-250))


class TwoScaleLaplace(LaplaceScaleMixture):
    """ω ∈ {rate_a, rate_b} with equal weights: a scale mixture LMO cannot express."""

    family = "two_scale_laplace"

    def __init__(self, rate_a: float, rate_b: float) -> None:
        self.omega_atoms = np.array([rate_a, rate_b])
        self.omega_weights = np.array([0.5, 0.5])

    def sample_omega(self, size, rng):
        return rng.choice(self.omega_atoms, size=size)

    def scaled(self, factor):
        return TwoScaleLaplace(*(self.omega_atoms / factor))

    def to_dict(self):
        return {"family": self.family, "rate_a": float(self.omega_atoms[0]), "rate_b": float(self.omega_atoms[1])}


BRUTE_FORCE_GRID = np.linspace(-45.0, 46.0, 3_000_001)


def brute_force_delta(density, *, q: float, eps: float, direction: str) -> float:
    """∫ (P − e^ε Q)_+ by the trapezoid rule on a very fine grid (sensitivity 1); ``density``
    may also be the pair (f, f(· − 1)) already evaluated on BRUTE_FORCE_GRID."""
    y = BRUTE_FORCE_GRID
    f, f_shift = density if isinstance(density, tuple) else (density(y), density(y - 1.0))
    mix = (1.0 - q) * f + q * f_shift
    p, qq = (mix, f) if direction == "remove" else (f, mix)
    return float(np.trapezoid(np.maximum(p - math.exp(eps) * qq, 0.0), y))


def test_non_monotone_mixture_against_brute_force():
    rates = (0.8, 4.0)

    def density(y):
        return 0.5 * sum(0.5 * r * np.exp(-r * np.abs(y)) for r in rates)

    y = np.linspace(-3, 4, 701)
    loss = np.log(density(y)) - np.log(density(y - 1.0))
    assert np.any(np.diff(loss) > 1e-9) and np.any(np.diff(loss) < -1e-9)  # non-monotone
    assert_single_release_matches_brute_force(TwoScaleLaplace(*rates), density)


def assert_single_release_matches_brute_force(mechanism, density) -> None:
    """δ(ε) of one subsampled release (q = 1, 0.3; both directions) against brute_force_delta."""
    for q in (1.0, 0.3):
        for direction in ("add", "remove"):
            pld = mechanism_pld(mechanism, sample_rate=q, direction=direction, value_discretization_interval=H)
            for eps in (0.0, 0.1, 0.4, 0.7):
                exact = brute_force_delta(density, q=q, eps=eps, direction=direction)
                got = pld.get_delta(eps)
                assert got >= exact - 1e-9, (q, direction, eps)
                assert got <= exact + 1e-8, (q, direction, eps)


def lmo_density(y, *, a1, k, theta, a3, rate, a4, lo, hi):
    """f(y) = ½·E[ω e^{−ω|y|}] = ½·M'(−|y|) for ω = a1·Gamma(k, θ) + a3·Exp(rate) + a4·U[lo, hi],
    from the closed-form MGF M(t) = (1 − a1θt)^{−k}·rate/(rate − a3 t)·(e^{a4 t hi} − e^{a4 t lo})/(a4 t (hi − lo))
    and its logarithmic derivative (written here, independently of lmodp's kernels)."""
    t = -np.abs(y)
    small = np.abs(a4 * t) < 1e-3  # the uniform factor's series (cumulants (lo+hi)/2, (hi−lo)²/12, 0)
    u = np.where(small, -1.0, a4 * t)
    mean, var = (lo + hi) / 2, (hi - lo) ** 2 / 12
    log_uniform = np.where(small, a4 * t * mean + (a4 * t) ** 2 * var / 2, np.log((np.exp(u * hi) - np.exp(u * lo)) / (u * (hi - lo))))
    uniform_score = a4 * np.where(
        small, mean + a4 * t * var, (hi * np.exp(u * hi) - lo * np.exp(u * lo)) / (np.exp(u * hi) - np.exp(u * lo)) - 1.0 / u
    )
    log_m = -k * np.log1p(-a1 * theta * t) + np.log(rate / (rate - a3 * t)) + log_uniform
    score = a1 * k * theta / (1 - a1 * theta * t) + a3 / (rate - a3 * t) + uniform_score
    return 0.5 * np.exp(log_m) * score


def test_continuous_lmo_against_brute_force():
    # the continuous-ω path of the PLD (Gamma + Exponential + Uniform mixing law): δ(ε) of one
    # Poisson-subsampled release against the trapezoid integral of (P − e^ε Q)_+ with the
    # density above (ω >= a4·lo = 0.5, so the tails beyond ±45 are below 1e-9)
    params = dict(a1=0.5, k=2.0, theta=0.5, a3=0.3, rate=2.0, a4=0.5, lo=1.0, hi=2.0)
    mech = LMO(gamma_weight=0.5, gamma_shape=2.0, gamma_scale=0.5, exponential_weight=0.3, exponential_rate=2.0,
               uniform_weight=0.5, uniform_low=1.0, uniform_high=2.0)

    assert abs(np.trapezoid(lmo_density(np.linspace(-60, 60, 1_200_001), **params), dx=1e-4) - 1.0) < 5e-9
    pair = (lmo_density(BRUTE_FORCE_GRID, **params), lmo_density(BRUTE_FORCE_GRID - 1.0, **params))
    assert_single_release_matches_brute_force(mech, pair)


@pytest.mark.parametrize("per_step", [0.3, 3.0])
def test_single_lmo_release_matches_pure_dp(per_step):
    # one unsubsampled release: as δ → 0 the ε of the PLD is the largest loss, the pure-DP ε
    # log(E[ω] / E[ω e^{−Δω}]) (computed by lmodp.accounting.rdp.divergence, not by the PLD code)
    from lmodp.accounting.rdp.divergence import pure_dp_epsilon
    from lmodp.paper.params import paper_mechanism

    mech = paper_mechanism(per_step, "task1", exponential="rate")
    pure = pure_dp_epsilon(mech, sensitivity=1.0)
    got = lmodp_epsilon(mech, q=1.0, steps=1, delta=1e-12)
    assert pure - 1e-6 <= got <= pure + H


def test_lmo_pld_below_rdp():
    mech = LMO(gamma_weight=0.1, gamma_shape=1.0, gamma_scale=0.5, exponential_weight=0.1, exponential_rate=5.0,
               uniform_weight=0.1, uniform_low=1.0, uniform_high=2.0)
    pld_eps = lmodp_epsilon(mech, q=0.01, steps=1000, delta=1e-5)
    rdp_eps = lmodp.epsilon(mech, sample_rate=0.01, steps=1000, delta=1e-5, geometry="scalar", accountant="rdp")
    assert 0.0 < pld_eps <= rdp_eps


@pytest.mark.parametrize("mechanism", [Laplace(1.5), Gaussian(1.5)])
def test_optimistic_estimate_brackets_the_reference(mechanism):
    steps, q, delta = 200, 0.05, 1e-6
    acc = PLDAccountant()
    acc.step(mechanism=mechanism, sample_rate=q, steps=steps, geometry="scalar")
    event = dp_accounting.LaplaceDpEvent(1.5) if isinstance(mechanism, Laplace) else dp_accounting.GaussianDpEvent(1.5)
    reference = reference_epsilon(dp_accounting.PoissonSampledDpEvent(q, event), steps, delta)
    lower, upper = acc.get_epsilon_lower(delta), acc.get_epsilon(delta)
    assert lower <= reference <= upper + 1e-6
    assert upper - lower <= steps * H / 10


def test_epsilon_delta_round_trip_and_state_dict():
    acc = PLDAccountant()
    acc.step(mechanism=Laplace(1.5), sample_rate=0.05, steps=100, geometry="scalar")
    eps = acc.get_epsilon(1e-6)
    assert acc.get_delta(eps) <= 1e-6 * (1 + 1e-9)
    assert acc.get_delta(eps * 0.99) > 1e-6
    clone = PLDAccountant()
    clone.load_state_dict(acc.state_dict())
    assert clone.get_epsilon(1e-6) == eps
    assert [e.to_dict() for e in clone.history] == [e.to_dict() for e in acc.history]
    assert PLDAccountant().get_epsilon(1e-6) == 0.0


def test_l2_geometry():
    with pytest.raises(ValueError, match="epsilon_interval"):
        PLDAccountant().step(mechanism=Laplace(1.0), sample_rate=0.1, geometry="l2")
    scalar, l2 = PLDAccountant(), PLDAccountant()
    scalar.step(mechanism=Gaussian(1.0), sample_rate=0.1, steps=10, geometry="scalar")
    l2.step(mechanism=Gaussian(1.0), sample_rate=0.1, steps=10, geometry="l2")
    assert scalar.get_epsilon(1e-5) == l2.get_epsilon(1e-5)


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.get_epsilon(1.0),
        lambda a: a.get_epsilon(1.5),
        lambda a: a.get_epsilon(0.0),
        lambda a: a.get_delta(-0.1),
        lambda a: a.get_delta(float("nan")),
        lambda a: a.step(mechanism=Laplace(1.0), sample_rate=0.0, geometry="scalar"),
        lambda a: a.step(mechanism=Laplace(1.0), sample_rate=1.5, geometry="scalar"),
        lambda a: a.step(mechanism=Laplace(1.0), sample_rate=0.1, geometry="l1"),
        lambda a: a.step(mechanism=Laplace(1.0), sample_rate=0.1, sensitivity=-1.0, geometry="scalar"),
    ],
)
def test_bad_input(call):
    acc = PLDAccountant()
    acc.step(mechanism=Laplace(1.0), sample_rate=0.1, steps=2, geometry="scalar")
    with pytest.raises(ValueError):
        call(acc)


@pytest.mark.parametrize("interval", [0.0, -1e-4, float("nan")])
def test_bad_discretisation(interval):
    with pytest.raises(ValueError, match="value_discretization_interval"):
        PLDAccountant(value_discretization_interval=interval)


@settings(max_examples=8, deadline=None)
@given(scale=st.floats(0.5, 4.0), q=st.floats(0.01, 1.0), steps=st.integers(1, 50))
def test_monotone_in_steps_and_noise(scale, q, steps):
    def eps(b, t):
        return lmodp_epsilon(Laplace(b), q=q, steps=t, delta=1e-6)

    base = eps(scale, steps)
    assert eps(scale, steps + 5) >= base - H
    assert eps(scale * 1.5, steps) <= base + H


def test_a_step_with_all_its_mass_at_infinity_composes_to_the_fallback():
    """σ = 0.01, q = 1: the whole privacy loss lies beyond the PLD's grid (coarse here, to be quick);
    several steps at once (one FFT power) give the RDP bound with the warning, as one step does."""
    acc = PLDAccountant(value_discretization_interval=0.1)
    acc.step(mechanism=Gaussian(0.01), sample_rate=1.0, steps=5, geometry="scalar")
    assert acc.composed_pld("remove").infinity_mass == 1.0
    with pytest.warns(PLDFallbackWarning):
        many = acc.get_epsilon(1e-5)
    assert many == lmodp.epsilon(Gaussian(0.01), sample_rate=1.0, steps=5, delta=1e-5, geometry="scalar", accountant="rdp")
