"""Every noise family end to end: the registry, to_dict and accountant state_dict round trips,
finite Laplace mixtures (declared by a class or by omega_atoms/omega_weights) and a user-defined
log-concave density through RDP, PLD, the l2 bound, the interval, sampling and training.

Independent references: mpmath quadratures of densities written here from their definitions,
scipy.stats.logistic, and a brute-force hockey-stick integral (tests/test_pld.py).
"""

from __future__ import annotations

import copy
import json
import math

import mpmath as mp
import numpy as np
import pytest
from scipy import stats

import lmodp
from lmodp import LMO, Gaussian, GeneralizedGaussian, Laplace, LaplaceMixture, SymmetricDensity, register_mechanism
from lmodp.accounting import PLDAccountant, RDPAccountant
from lmodp.accounting.rdp.l2_sup_bound import first_cell_ends
from lmodp.accounting.rdp.divergence import l2_renyi_bound, renyi_divergences, subsampled_scalar_rdp
from lmodp.accounting.rdp.noise_laws import noise_law
from lmodp.mechanisms import Mechanism, LaplaceScaleMixture, mechanism_from_dict, registered_families
from lmodp.paper.params import paper_mechanism
from lmodp.search import search

from _user_densities import Logistic, TwoRateLaplace
from test_divergence import _power_ratio, reference_subsampled
from test_pld import assert_single_release_matches_brute_force

EVERY_FAMILY = [
    Gaussian(1.3),
    Laplace(1.5),
    paper_mechanism(2, exponential="rate"),
    LaplaceMixture(omega_atoms=[0.8, 4.0], omega_weights=[0.5, 0.5]),
    TwoRateLaplace(0.8, 3.0),
    GeneralizedGaussian(1.2, 1.6),
    Logistic(0.9),
]
IDS = [m.family for m in EVERY_FAMILY]


def mixture_density(atoms, weights):
    """Σ w_i (ω_i/2) e^{−ω_i|y|}, from the definition."""
    return lambda y: sum(mp.mpf(w) * a / 2 * mp.exp(-a * abs(mp.mpf(y))) for a, w in zip(atoms, weights))


def logistic_density(scale):
    """e^{−|y|/s} / (s (1 + e^{−|y|/s})²), from the definition."""

    def f(y):
        e = mp.exp(-abs(mp.mpf(y)) / scale)
        return e / (scale * (1 + e) ** 2)

    return f


def reference_renyi(density, alpha, delta, scale):
    mp.mp.dps = 30
    pts = [-mp.inf, -40 * scale, -scale, 0, delta / 2, delta, delta + scale, delta + 40 * scale, mp.inf]
    return float(mp.log(mp.quad(lambda y: _power_ratio(density(y - delta), density(y), alpha), pts)) / (alpha - 1))


# --- the registry and round trips -----------------------------------------------------------------
def test_builtin_families_are_registered():
    assert {"gaussian", "laplace", "lmo", "laplace_mixture", "generalized_gaussian"} <= set(registered_families())
    assert {"test_logistic", "test_two_rate_laplace"} <= set(registered_families())


@pytest.mark.parametrize("mechanism", EVERY_FAMILY, ids=IDS)
def test_to_dict_round_trip(mechanism):
    data = json.loads(json.dumps(mechanism.to_dict()))
    rebuilt = mechanism_from_dict(data)
    assert rebuilt == mechanism and type(rebuilt) is type(mechanism) and hash(rebuilt) == hash(mechanism)
    assert copy.deepcopy(mechanism) == mechanism
    assert mechanism.scaled(2.0).mean_abs() == pytest.approx(2.0 * mechanism.mean_abs(), rel=1e-9)


@pytest.mark.parametrize("mechanism", EVERY_FAMILY, ids=IDS)
@pytest.mark.parametrize("accountant, geometry", [("rdp", "scalar"), ("pld", "scalar"), ("rdp", "l2")])
def test_accountant_state_dict_round_trip(mechanism, accountant, geometry):
    make = {"rdp": lambda: RDPAccountant(orders=[1.5, 2, 4, 8, 16, 32, 64]), "pld": lambda: PLDAccountant(1e-3)}[accountant]
    acc = make()
    acc.step(mechanism=mechanism, sample_rate=0.05, steps=20, geometry=geometry)
    acc.step(mechanism=mechanism.scaled(1.5), sample_rate=0.1, steps=5, geometry=geometry)
    state = json.loads(json.dumps(acc.state_dict()))
    again = make()
    again.load_state_dict(state)
    assert again.get_epsilon(1e-5) == acc.get_epsilon(1e-5)
    assert [e.mechanism for e in again.history] == [e.mechanism for e in acc.history]
    if accountant == "pld":
        assert again.get_epsilon_lower(1e-5) <= again.get_epsilon(1e-5)
    else:
        state.pop("rdp")  # recomputed from the history
        recomputed = make()
        recomputed.load_state_dict(state)
        assert recomputed.get_epsilon(1e-5) == pytest.approx(acc.get_epsilon(1e-5), rel=1e-12)


def test_omega_atoms_mixture_goes_through_every_accountant():
    """The regressions of issue 13: a mixture declared by omega_atoms/omega_weights used to raise
    AttributeError in the RDP accountant and in PLD get_epsilon_lower/load_state_dict."""
    m = TwoRateLaplace(0.8, 3.0)
    same = LaplaceMixture(omega_atoms=[0.8, 3.0], omega_weights=[0.25, 0.75])
    budget = dict(sample_rate=0.05, steps=30, delta=1e-5)
    for geometry, accountant in (("scalar", "rdp"), ("l2", "rdp"), ("scalar", "pld")):
        assert lmodp.epsilon(m, geometry=geometry, accountant=accountant, **budget) == lmodp.epsilon(
            same, geometry=geometry, accountant=accountant, **budget
        )
    acc = PLDAccountant()
    acc.step(mechanism=m, sample_rate=0.05, steps=30, geometry="scalar")
    other = PLDAccountant()
    other.load_state_dict(acc.state_dict())
    assert other.get_epsilon_lower(1e-5) <= other.get_epsilon(1e-5) == acc.get_epsilon(1e-5)


# --- finite Laplace mixtures ------------------------------------------------------------------------
def assert_divergences_match_mpmath(mechanism, density, scale: float) -> None:
    """Scalar divergences at two shifts, and both subsampled directions at q = 0.1, against mpmath
    quadratures of ``density``: never below them, and within 1e-8 (1e-7 subsampled) relative."""
    alphas = np.array([1.5, 2.0, 8.0, 64.0])
    for delta in (0.3, 2.0):
        got = renyi_divergences(mechanism, alphas, sensitivity=delta)
        ref = np.array([reference_renyi(density, a, delta, scale) for a in alphas])
        assert np.all(got >= ref * (1 - 1e-12))
        np.testing.assert_allclose(got, ref, rtol=1e-8)
    got = subsampled_scalar_rdp(mechanism, alphas[:3], sample_rate=0.1, sensitivity=1.0)
    pts = [-mp.inf, -40 * scale, -1, 0, 0.5, 1, 2, 1 + 40 * scale, mp.inf]
    ref = np.array([reference_subsampled(density, 0.1, a, 1.0, pts) for a in alphas[:3]])
    assert np.all(got >= ref * (1 - 1e-12))
    np.testing.assert_allclose(got, ref, rtol=1e-7)


def test_finite_mixture_divergences_match_mpmath():
    atoms, weights = (0.8, 4.0), (0.5, 0.5)
    m = LaplaceMixture(omega_atoms=atoms, omega_weights=weights)
    assert_divergences_match_mpmath(m, mixture_density(atoms, weights), 1.0)


def test_finite_mixture_with_one_atom_is_laplace():
    one = LaplaceMixture(omega_atoms=[0.5], omega_weights=[1.0])
    budget = dict(sample_rate=0.05, steps=30, delta=1e-5, geometry="l2", accountant="rdp")
    assert lmodp.epsilon(one, **budget) == lmodp.epsilon(Laplace(2.0), **budget)
    assert one.mean_abs() == pytest.approx(2.0) and one.variance() == pytest.approx(8.0)


def test_finite_mixture_l2_bound_dominates_split_shifts():
    atoms, weights = (0.8, 4.0), (0.5, 0.5)
    m = LaplaceMixture(omega_atoms=atoms, omega_weights=weights)
    f = mixture_density(atoms, weights)
    alphas = np.array([2.0, 8.0])
    bound = l2_renyi_bound(m, alphas, l2_sensitivity=1.0)
    for t in (0.05, 0.3, 1.0):
        assert np.all(bound >= np.array([reference_renyi(f, a, t, 1.0) for a in alphas]) / t**2)


# --- a user-defined density ----------------------------------------------------------------------
def test_user_density_table_matches_the_law():
    m, ref = Logistic(0.7), stats.logistic(scale=0.7)
    y = np.array([-30.0, -2.0, -0.1, 0.0, 0.4, 5.0, 60.0])
    np.testing.assert_allclose(m.logpdf(y), ref.logpdf(y), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.cdf(y), ref.cdf(y), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(m.log_tail(np.array([20.0, 200.0])), np.log(2 * ref.sf([20.0, 200.0])), rtol=1e-10)
    assert m.mean_abs() == pytest.approx(2 * math.log(2) * 0.7, rel=1e-10)
    assert m.variance() == pytest.approx(ref.var(), rel=1e-10)
    assert m.fisher_information() == pytest.approx(1 / (3 * 0.7**2), rel=1e-9)
    assert m.usefulness(0.9) == pytest.approx(ref.cdf(0.9) - ref.cdf(-0.9), rel=1e-12)


def test_user_density_divergences_match_mpmath():
    assert_divergences_match_mpmath(Logistic(0.8), logistic_density(0.8), 0.8)


def test_user_density_pld_single_release_matches_brute_force():
    assert_single_release_matches_brute_force(Logistic(0.8), stats.logistic(scale=0.8).pdf)


def test_user_density_l2_bound_and_interval():
    m, f = Logistic(0.8), logistic_density(0.8)
    alphas = np.array([2.0, 8.0])
    cell = noise_law(m).first_cell()
    for alpha, t0 in zip(alphas, first_cell_ends(alphas, cell, l2_tolerance=5e-3, top=1.0)):
        bound = float(cell.bound(np.array([alpha]), np.array([t0]))[0])
        for u in (t0 / 10, t0):
            assert reference_renyi(f, alpha, u, 0.8) / u**2 <= bound
    bound = l2_renyi_bound(m, alphas, l2_sensitivity=1.0)
    for t in (0.05, 0.3, 1.0):
        assert np.all(bound >= np.array([reference_renyi(f, a, t, 0.8) for a in alphas]) / t**2)
    interval = lmodp.epsilon_interval(m, sample_rate=0.05, steps=30, delta=1e-5, dimensions=(1, 16))
    assert interval.lower <= interval.upper
    assert interval.upper == lmodp.epsilon(m, sample_rate=0.05, steps=30, delta=1e-5, geometry="l2", accountant="rdp")


def test_user_density_pld_is_below_rdp():
    budget = dict(sample_rate=0.02, steps=200, delta=1e-6, geometry="scalar")
    assert lmodp.epsilon(Logistic(1.0), accountant="pld", **budget) <= lmodp.epsilon(Logistic(1.0), accountant="rdp", **budget)


# --- what is refused ---------------------------------------------------------------------------
class _Density(SymmetricDensity):
    family = "test_unregistered"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def log_density(self, y):
        return -np.abs(y) / self.scale

    def score_bound(self):
        return 1.0 / self.scale

    def torch_sample(self, shape, *, generator):
        raise NotImplementedError

    def scaled(self, factor):
        return type(self)(self.scale * factor)

    def to_dict(self):
        return {"family": self.family, "scale": self.scale}


class _Skewed(_Density):
    def log_density(self, y):
        return -np.abs(y) - 0.1 * y


class _HeavyTailed(_Density):
    def log_density(self, y):  # Student t with 3 degrees of freedom: not log-concave
        return -2.0 * np.log1p(y * y / 3.0)


class _Understated(_Density):
    def score_bound(self):
        return 0.5  # the slope of −|y| is 1


@pytest.mark.parametrize(
    "density, match",
    [(_Skewed(), "not symmetric"), (_HeavyTailed(), "not concave"), (_Understated(), "score_bound")],
    ids=["asymmetric", "not-log-concave", "score-bound"],
)
def test_user_density_contract_violations_are_refused(density, match):
    with pytest.raises(ValueError, match=match):
        renyi_divergences(density, [2.0], sensitivity=1.0)


def test_unregistered_and_unaccountable_families_are_refused():
    with pytest.raises(ValueError, match="not registered"):
        RDPAccountant().step(mechanism=_Density(), sample_rate=0.1, geometry="scalar")

    class Alien(Mechanism):
        family = "test_alien"
        sample = logpdf = cdf = mean_abs = variance = usefulness = fisher_information = scaled = to_dict = None

    with pytest.raises(ValueError, match="no accountant can account it"):
        register_mechanism(Alien)
    with pytest.raises(ValueError, match="already registered"):
        register_mechanism(type("Impostor", (Logistic,), {}))

    class NoLaw(LaplaceScaleMixture):
        family = "test_no_law"
        scaled = to_dict = None

    with pytest.raises(ValueError, match="declares no mixing law"):
        renyi_divergences(NoLaw(), [2.0], sensitivity=1.0)
    with pytest.raises(ValueError, match="omega_weights must sum to 1"):
        LaplaceMixture(omega_atoms=[1.0, 2.0], omega_weights=[0.5, 0.6])
    with pytest.raises(ValueError, match=r"omega_atoms\[1\]"):
        LaplaceMixture(omega_atoms=[1.0, -2.0], omega_weights=[0.5, 0.5])


# --- sampling and training ------------------------------------------------------------------------
def test_samplers_draw_each_law():
    torch = pytest.importorskip("torch")
    from lmodp.train import torch_sampler

    mixture = LaplaceMixture(omega_atoms=[0.8, 4.0], omega_weights=[0.3, 0.7])

    def mixture_cdf(y):  # 1 − ½ Σ w e^{−ω y} for y ≥ 0, by symmetry below
        tail = 0.5 * sum(w * np.exp(-a * np.abs(y)) for a, w in zip((0.8, 4.0), (0.3, 0.7)))
        return np.where(y >= 0, 1 - tail, tail)

    for mechanism, cdf in ((mixture, mixture_cdf), (Logistic(0.6), stats.logistic(scale=0.6).cdf)):
        draws = torch_sampler(mechanism).sample((100_000,), generator=torch.Generator().manual_seed(5)).double().numpy()
        assert stats.kstest(draws, cdf).pvalue > 1e-3
        assert stats.kstest(mechanism.sample(100_000, np.random.default_rng(6)), cdf).pvalue > 1e-3


def test_user_density_trains_end_to_end():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from test_train_optimizer import CLIP, Classifier, dataset, private, reference_clipped_sum, released_gradient

    from lmodp.train import torch_sampler
    from lmodp.train.sampling import gather

    mechanism = Logistic(0.9)
    model = Classifier()
    reference = copy.deepcopy(model)
    _, dp_optimizer, loader = private(model, lr=0.0, mechanism=mechanism, noise_seed=11)
    batch = gather(dataset(), torch.arange(10))
    dp_optimizer.step(batch)
    clipped, _ = reference_clipped_sum(reference, batch)
    g = torch.Generator().manual_seed(11)
    sampler = torch_sampler(mechanism)
    noise = torch.cat([sampler.add_scaled_(torch.zeros(p.shape), 1.0, generator=g).flatten() for p in model.parameters()])
    expected = (clipped + CLIP * noise.double()) / loader.expected_batch_size
    torch.testing.assert_close(released_gradient(model), expected, rtol=1e-5, atol=1e-6)
    for _ in range(2):
        dp_optimizer.step(next(iter(loader)))
    spent = dp_optimizer.ledger.epsilon()
    independent = lmodp.epsilon(
        mechanism, sample_rate=loader.sample_rate, steps=3, delta=1e-5, geometry="l2", accountant="rdp"
    )
    assert spent == pytest.approx(independent, rel=1e-12)


def test_search_calibrates_the_scale_of_any_registered_mechanism():
    budget = dict(sample_rate=0.05, steps=50, geometry="scalar")
    for shape in (LaplaceMixture(omega_atoms=[0.5, 2.0], omega_weights=[0.5, 0.5]), Logistic(1.0)):
        r = search(1.0, delta=1e-6, family=shape, **budget)
        assert type(r.mechanism) is type(shape) and r.settings["family"] == shape.family
        assert r.epsilon <= 1.0 and lmodp.epsilon(r.mechanism, delta=1e-6, accountant="pld", **budget) <= 1.0
        # the shape is kept: the law is the scaled one
        factor = r.mechanism.mean_abs() / shape.mean_abs()
        assert r.mechanism.scaled(1 / factor).mean_abs() == pytest.approx(shape.mean_abs(), rel=1e-9)
        assert r.mechanism.variance() == pytest.approx(factor**2 * shape.variance(), rel=1e-9)


def test_a_faster_sampler_may_replace_a_registered_familys(monkeypatch):
    pytest.importorskip("torch")
    from lmodp.mechanisms import registry
    from lmodp.train import noise

    monkeypatch.setattr(registry, "_DECLARED", dict(registry._DECLARED))  # the replacement ends with the test
    replacement = noise.LaplaceSampler(1.0)
    noise.register_torch_sampler(Logistic, lambda m: replacement)
    assert noise.torch_sampler(Logistic(2.0)) is replacement
