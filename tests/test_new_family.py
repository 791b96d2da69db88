"""A new noise family added in this one file, with no library file touched (issue 23, item 1).

The logistic law, density f(y) = e^{−|y|/s} / (s (1 + e^{−|y|/s})²), is declared here by one
registration: its class (a :class:`~lmodp.SymmetricDensity`, so its accounting is the generic
density-based RDP and PLD with controlled numerical error, not a new formula), its torch sampler,
its search representative and its description. It then gets ε from :func:`lmodp.epsilon` (RDP and
PLD), a PLD, a search result, a training step and a figure.

Independent references: the logistic distribution function F(y) = 1/(1 + e^{−y/s}) in closed
form (the hockey-stick curve of a log-concave law is a difference of its values at the root of
the privacy loss, found by mpmath), mpmath quadrature of the Rényi divergence, Var Y = π²s²/3
and scipy.stats.logistic.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from scipy import stats

import lmodp
from lmodp import SymmetricDensity, register_family
from lmodp.mechanisms import SearchSpace, describe, family_of, mechanism_from_dict, registered_families
from lmodp.search import calibrate_scale, search

SAMPLER_CALLS: list[tuple[int, ...]] = []


def logistic_draws(shape: tuple[int, ...], scale: float, generator):
    """s·log(U/(1 − U)) by inversion of a float64 uniform (float32 result)."""
    import torch

    u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64).clamp_(1e-15, 1 - 1e-15)
    return (scale * torch.log(u / (1 - u))).float()


class Logistic(SymmetricDensity):
    """log f(y) = −|y|/s − 2 log(1 + e^{−|y|/s}) + const; |d/dy log f| = tanh(|y|/2s)/s < 1/s."""

    family = "new_logistic"

    def __init__(self, scale: float) -> None:
        if not (isinstance(scale, (int, float)) and 0.0 < scale < math.inf):
            raise ValueError(f"scale must be a number > 0, got {scale!r}")
        self.scale = float(scale)

    def log_density(self, y):
        z = np.abs(y) / self.scale
        return -z - 2.0 * np.log1p(np.exp(-z))

    def score_bound(self) -> float:
        return 1.0 / self.scale

    def torch_sample(self, shape, *, generator):
        return logistic_draws(tuple(shape), self.scale, generator)

    def scaled(self, factor: float) -> "Logistic":
        return Logistic(self.scale * factor)

    def to_dict(self) -> dict:
        return {"family": self.family, "scale": self.scale}


def logistic_torch_sampler(mechanism: Logistic):
    """The family's torch sampler (it records each draw, so that training is seen to use it)."""
    from lmodp.train.noise import TorchNoiseSampler

    class LogisticSampler(TorchNoiseSampler):
        def sample(self, shape, *, generator):
            SAMPLER_CALLS.append(tuple(shape))
            return logistic_draws(tuple(shape), mechanism.scale, generator)

    return LogisticSampler()


register_family(
    Logistic,
    torch_sampler=logistic_torch_sampler,
    search=SearchSpace(Logistic(1.0), label="logistic"),
    describe=lambda m, num: f"logistic s={num(m.scale)}",
)


# --- independent references ------------------------------------------------------------------
def _survival(y, s):
    return 1 / (1 + mp.exp(mp.mpf(y) / s))


def _loss(y, s, shift):
    """ℓ(y) = log f(y − Δ) − log f(y), non-decreasing in y (f log-concave), from the definition."""
    def log_f(x):
        z = abs(mp.mpf(x)) / s
        return -z - 2 * mp.log1p(mp.exp(-z))

    return log_f(y - shift) - log_f(y)


def _root(level, s, shift):
    """y with ℓ(y) = level (|level| < Δ/s), by bisection."""
    lo, hi = mp.mpf(-1), mp.mpf(1)
    while _loss(lo, s, shift) > level:
        lo *= 2
    while _loss(hi, s, shift) < level:
        hi *= 2
    return mp.findroot(lambda y: _loss(y, s, shift) - level, (lo, hi), solver="bisect", tol=mp.mpf(10) ** -40)


def exact_delta(eps, s, shift, q, direction):
    """δ(ε) of one Poisson-subsampled release: remove, P = (1−q)f + q f_Δ vs Q = f, the set
    {q f_Δ > (e^ε − 1 + q) f} = {ℓ > t}; add, P = f vs Q = (1−q)f + q f_Δ, the set {ℓ < t'}."""
    mp.mp.dps = 40
    e = mp.exp(mp.mpf(eps))
    if direction == "remove":
        t = mp.log((e - 1 + q) / q)
        if t >= shift / s:
            return mp.mpf(0)
        y = _root(t, s, shift)
        return q * _survival(y - shift, s) - (e - 1 + q) * _survival(y, s)
    a = 1 - e * (1 - q)
    if a <= 0:
        return mp.mpf(0)
    t = mp.log(a / (e * q))
    if t <= -shift / s:
        return mp.mpf(0)
    y = _root(t, s, shift)
    return a * (1 - _survival(y, s)) - e * q * (1 - _survival(y - shift, s))


def exact_epsilon(delta, s, shift, q):
    """The smallest ε with δ(ε) ≤ δ in both directions (one release)."""
    def gap(eps):
        return max(exact_delta(eps, s, shift, q, d) for d in ("add", "remove")) - delta

    return float(mp.findroot(gap, (mp.mpf(1e-9), mp.mpf(shift / s) - mp.mpf(1e-9)), solver="bisect", tol=mp.mpf(10) ** -30))


def reference_renyi(alpha, s, shift):
    """D_α(f(·−Δ) ‖ f) by mpmath quadrature of the densities' definition."""
    mp.mp.dps = 30

    def f(y):
        e = mp.exp(-abs(mp.mpf(y)) / s)
        return e / (s * (1 + e) ** 2)

    points = [-mp.inf, -40 * s, 0, shift, 40 * s + shift, mp.inf]
    return float(mp.log(mp.quad(lambda y: f(y - shift) ** alpha * f(y) ** (1 - alpha), points)) / (alpha - 1))


# --- the registration ----------------------------------------------------------------------------
def test_one_registration_gives_the_family_every_facet():
    family = family_of(Logistic)
    assert family.name == "new_logistic" and "new_logistic" in registered_families()
    assert family.accountable and family.rdp_law == family_of(SymmetricDensity).rdp_law  # the density-based route
    assert family.fitting_accountants("scalar") == ("pld", "rdp") and family.fitting_accountants("l2") == ("rdp",)
    assert describe(Logistic(2.0)) == "logistic s=2"
    assert mechanism_from_dict(Logistic(2.0).to_dict()) == Logistic(2.0)


# --- ε and the PLD against the closed-form hockey stick and the quadrature ---------------------
@pytest.mark.parametrize("q", [1.0, 0.3])
def test_pld_epsilon_of_one_release_bounds_the_exact_one(q):
    s, shift, delta = 0.8, 1.0, 1e-3
    exact = exact_epsilon(delta, s, shift, q)
    got = lmodp.epsilon(Logistic(s), sample_rate=q, steps=1, delta=delta, geometry="scalar", accountant="pld")
    assert exact <= got <= exact + 1e-5


@pytest.mark.parametrize("direction", ["add", "remove"])
def test_pld_dominates_the_exact_hockey_stick(direction):
    from lmodp.accounting.pld import mechanism_pld

    s, shift, q = 0.8, 1.0, 0.3
    pld = mechanism_pld(Logistic(s), sample_rate=q, direction=direction, sensitivity=shift)
    for eps in (0.05, 0.2, 0.4, 0.6):
        exact = float(exact_delta(eps, s, shift, q, direction))
        assert exact * (1 - 1e-9) <= pld.get_delta(eps) <= exact + 1e-8


def test_rdp_matches_the_quadrature_and_bounds_epsilon():
    from lmodp.accounting.rdp.divergence import renyi_divergences

    s, shift, delta = 0.8, 1.0, 1e-3
    orders = np.array([1.5, 2.0, 4.0, 8.0, 16.0, 32.0])
    reference = np.array([reference_renyi(a, s, shift) for a in orders])
    got = renyi_divergences(Logistic(s), orders, sensitivity=shift)
    assert np.all(got >= reference * (1 - 1e-12)) and np.all(got <= reference * (1 + 1e-6))
    eps = lmodp.epsilon(Logistic(s), sample_rate=1.0, steps=1, delta=delta, geometry="scalar", accountant="rdp")
    # sound (above the exact ε) and no looser than Mironov's conversion of the exact divergences
    mironov = min(r + math.log(1 / delta) / (a - 1) for a, r in zip(orders, reference))
    assert exact_epsilon(delta, s, shift, 1.0) <= eps <= mironov * (1 + 1e-9)
    # l2: the dimension-free bound holds the scalar one
    l2 = lmodp.epsilon(Logistic(s), sample_rate=0.05, steps=30, delta=1e-5, geometry="l2")
    assert l2 >= lmodp.epsilon(Logistic(s), sample_rate=0.05, steps=30, delta=1e-5, geometry="scalar", accountant="rdp")


# --- search ----------------------------------------------------------------------------------------
def test_search_by_name_calibrates_the_least_logistic_noise():
    run = lmodp.RunSpec(sample_rate=0.05, steps=20, delta=1e-5, geometry="scalar")
    result = search(1.0, run, family="new_logistic", tolerance=1e-3)
    best = result.mechanism
    assert type(best) is Logistic and result.settings["family"] == "new_logistic"
    assert result.epsilon == lmodp.epsilon(best, run) <= 1.0
    assert lmodp.epsilon(best.scaled(1 / 1.002), run) > 1.0  # the least scale, to the tolerance
    assert best == calibrate_scale(Logistic(1.0), 1.0, run, tolerance=1e-3)
    assert result.summary() == "logistic s=" + format(best.scale, ".6g")


# --- training ----------------------------------------------------------------------------------
def test_a_training_step_adds_noise_from_the_familys_sampler():
    torch = pytest.importorskip("torch")
    from lmodp.train import make_private
    from lmodp.train.sampling import gather

    mechanism, clip = Logistic(0.8), 2.0
    model = torch.nn.Linear(316, 316)
    data = {"x": torch.zeros(40, 316), "labels": torch.zeros(40, dtype=torch.long)}
    SAMPLER_CALLS.clear()
    _, dp_optimizer, loader = make_private(
        model, torch.optim.SGD(model.parameters(), lr=1.0), data, mechanism=mechanism, max_grad_norm=clip,
        batch_size=4, delta=1e-5, steps=1, sampling_seed=0, noise_seed=1,
    )
    out = dp_optimizer.step(gather(data, torch.empty(0, dtype=torch.long)))  # an empty batch: the released gradient is noise alone
    noise = np.concatenate([p.grad.double().flatten().numpy() for p in model.parameters()]) * loader.expected_batch_size
    assert sum(math.prod(c) for c in SAMPLER_CALLS) == noise.size  # every coordinate drawn by the family's sampler
    assert noise.var() == pytest.approx((clip * mechanism.scale) ** 2 * math.pi**2 / 3, rel=0.03)
    assert stats.kstest(noise, stats.logistic(scale=clip * mechanism.scale).cdf).pvalue > 1e-3
    assert out.epsilon == lmodp.epsilon(mechanism, sample_rate=4 / 40, steps=1, delta=1e-5, geometry="l2")


# --- figures ---------------------------------------------------------------------------------------
def test_density_figure(tmp_path):
    pytest.importorskip("matplotlib")
    from lmodp import plots

    fig = plots.noise_density([Logistic(1.0), lmodp.Laplace(1.0)], samples=2000, path=tmp_path / "density.png")
    assert (tmp_path / "density.png").stat().st_size > 0
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "logistic s=1" in labels
    assert len(fig.axes) == 2  # the ω panel is the Laplace's; the logistic family declares none
