"""Small noise (a scale far below the sensitivity): every accountant gives a finite ε at least the
exact one (closed forms in mpmath), the PLD's grid stays bounded, and calibration brackets
through such scales without crashing."""

from __future__ import annotations

import json
import math
import warnings

import mpmath as mp
import numpy as np
import pytest

import lmodp
from lmodp import Gaussian, Laplace
from lmodp.accounting import MechanismEvent, NoFiniteBoundWarning, accountant_from_state_dict, make_accountant
from lmodp.accounting.conversion import OrderGridEdgeWarning
from lmodp.accounting.pld import PLDAccountant, PLDFallbackWarning, mechanism_pld
from lmodp.accounting.pld.discrete import coarsened
from lmodp.cli import main
from lmodp.mechanisms import GeneralizedGaussian
from lmodp.paper import paper_mechanism
from lmodp.search import calibrate_gaussian, calibrate_scale


def _solve(delta_of, delta: float) -> float:
    """The least ε >= 0 with δ(ε) <= delta for a non-increasing δ(ε), by bisection in mpmath."""
    lo, hi = mp.mpf(0), mp.mpf(1)
    while delta_of(hi) > delta:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if delta_of(mid) > delta else (lo, mid)
    return float(hi)


def exact_subsampled_gaussian_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    r"""Exact ε of the Poisson-subsampled Gaussian (sensitivity 1), one step or (q = 1) T steps.

    q = 1: the T-fold Gaussian is one Gaussian with μ = √T/σ, δ(ε) = Φ(μ/2 − ε/μ) − e^ε Φ(−μ/2 − ε/μ)
    (Balle & Wang 2018, Thm 8). T = 1, remove direction (P = (1−q)N(0,σ²) + qN(1,σ²), Q = N(0,σ²)):
    L increases in y, {L > ε} = {y > y*} with y* = σ² log((e^ε − 1 + q)/q) + 1/2, and
    δ(ε) = (1−q)Φ̄(y*/σ) + qΦ̄((y*−1)/σ) − e^ε Φ̄(y*/σ); the add direction has δ(ε) = 0 for
    e^{−ε} <= 1 − q, where the ε asked for lies here."""
    with mp.workdps(60):
        if q == 1.0:
            mu = mp.sqrt(steps) / sigma
            return _solve(lambda e: mp.ncdf(mu / 2 - e / mu) - mp.exp(e) * mp.ncdf(-mu / 2 - e / mu), delta)
        assert steps == 1
        s = mp.mpf(sigma)

        def remove(e):
            y = s**2 * mp.log((mp.expm1(e) + q) / q) + mp.mpf(1) / 2
            return (1 - q) * mp.ncdf(-y / s) + q * mp.ncdf(-(y - 1) / s) - mp.exp(e) * mp.ncdf(-y / s)

        eps = _solve(remove, delta)
        assert math.exp(-eps) <= 1.0 - q  # the add direction is then (ε, 0)-DP
        return eps


def _quiet_epsilon(mechanism, **run) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PLDFallbackWarning)
        warnings.simplefilter("ignore", OrderGridEdgeWarning)
        return lmodp.epsilon(mechanism, **run)


@pytest.mark.parametrize("accountant", ["pld", "rdp", "auto"])
@pytest.mark.parametrize("geometry", ["scalar", "l2"])
@pytest.mark.parametrize("sigma, q, steps", [(0.03, 0.5, 1), (0.01, 1.0, 10), (0.05, 0.01, 1)])
def test_small_gaussian_noise_gives_a_finite_epsilon_above_the_exact_one(sigma, q, steps, geometry, accountant):
    exact = exact_subsampled_gaussian_epsilon(sigma, q, steps, 1e-5)
    got = _quiet_epsilon(Gaussian(sigma), sample_rate=q, steps=steps, delta=1e-5, geometry=geometry, accountant=accountant)
    assert exact <= got <= 1.05 * exact + 1.0


@pytest.mark.parametrize("accountant", ["pld", "rdp"])
def test_small_laplace_noise_is_at_least_the_pure_dp_epsilon(accountant):
    # One unsubsampled Laplace(b) release: δ(ε) = 1 − e^{(ε − 1/b)/2} (exact), so ε(δ) = 1/b + 2 log(1 − δ).
    b, delta = 0.001, 1e-5
    exact = 1.0 / b + 2.0 * math.log1p(-delta)
    got = _quiet_epsilon(Laplace(b), sample_rate=1.0, steps=1, delta=delta, geometry="scalar", accountant=accountant)
    assert exact <= got <= 1.01 * exact
    many = _quiet_epsilon(Laplace(b), sample_rate=0.5, steps=10, delta=delta, geometry="scalar", accountant=accountant)
    assert math.isfinite(many) and many >= exact


def test_the_pld_grid_is_capped_and_the_capped_bound_stays_above_the_fine_one():
    run = dict(sample_rate=0.01, steps=100, geometry="scalar")
    capped = PLDAccountant(max_grid_points=2**14)
    capped.step(mechanism=Laplace(0.15), **run)
    fine = PLDAccountant(max_grid_points=None)
    fine.step(mechanism=Laplace(0.15), **run)
    coarse_pld, fine_pld = capped.composed_pld("remove"), fine.composed_pld("remove")
    assert coarse_pld.probs.size <= 2**14 < fine_pld.probs.size
    assert coarse_pld.interval == fine_pld.interval * 2 ** round(math.log2(coarse_pld.interval / fine_pld.interval))
    # nested grids: the coarse pessimistic bound lies above the fine one, and close to it
    assert fine.get_epsilon(1e-5) <= capped.get_epsilon(1e-5) <= fine.get_epsilon(1e-5) * (1 + 1e-4)
    restored = PLDAccountant()
    restored.load_state_dict(capped.state_dict())
    assert restored.max_grid_points == 2**14 and restored.get_epsilon(1e-5) == capped.get_epsilon(1e-5)


def test_events_on_different_grids_compose_on_the_coarser_one_and_stay_above_the_fine_bound():
    """A history whose blocks the cap puts on different nested grids (a small-noise Laplace run, then
    a Gaussian one that fits the default interval) is composed on the coarser grid."""
    capped, fine = PLDAccountant(max_grid_points=2**14), PLDAccountant(max_grid_points=None)
    for acc in (capped, fine):
        acc.step(mechanism=Laplace(0.15), sample_rate=0.01, steps=100, geometry="scalar")
        acc.step(mechanism=Gaussian(2.0), sample_rate=0.01, steps=50, geometry="scalar")
    coarse_pld, fine_pld = capped.composed_pld("remove"), fine.composed_pld("remove")
    assert coarse_pld.probs.size <= 2**14 and coarse_pld.interval > fine_pld.interval
    assert fine.get_epsilon(1e-5) <= capped.get_epsilon(1e-5) <= fine.get_epsilon(1e-5) * (1 + 1e-3)
    # independent reference: dp-accounting's optimistic PLD of the same history lies below the
    # true epsilon, its pessimistic one above; the capped bound is sound and close
    from dp_accounting.pld import privacy_loss_distribution as dp_pld

    def dp_epsilon(pessimistic):
        kw = dict(sensitivity=1, value_discretization_interval=1e-3, sampling_prob=0.01, pessimistic_estimate=pessimistic,
                  use_connect_dots=pessimistic)
        laplace = dp_pld.from_laplace_mechanism(0.15, **kw).self_compose(100)
        return laplace.compose(dp_pld.from_gaussian_mechanism(2.0, **kw).self_compose(50)).get_epsilon_for_delta(1e-5)

    assert dp_epsilon(False) <= capped.get_epsilon(1e-5) <= dp_epsilon(True) * (1 + 1e-3)


@pytest.mark.parametrize("bad", [0, 1000, 2.5, True, "many"])
def test_bad_grid_cap(bad):
    with pytest.raises(ValueError, match="max_grid_points"):
        PLDAccountant(max_grid_points=bad)


def test_coarsened_pld_dominates_pessimistically_and_is_dominated_optimistically():
    fine = mechanism_pld(Laplace(0.7), sample_rate=0.2, direction="remove", value_discretization_interval=1e-3)
    optimistic = mechanism_pld(Laplace(0.7), sample_rate=0.2, direction="remove", value_discretization_interval=1e-3, pessimistic=False)
    for factor in (2, 8, 32):
        up, down = coarsened(fine, factor), coarsened(optimistic, factor)
        assert up.interval == fine.interval * factor and math.isclose(up.probs.sum() + up.infinity_mass, fine.probs.sum() + fine.infinity_mass)
        for eps in np.linspace(0.0, 2.0, 21):
            assert up.get_delta(eps) >= fine.get_delta(eps) - 1e-15
            assert down.get_delta(eps) <= optimistic.get_delta(eps) + 1e-15


def test_a_tiny_scale_costs_seconds_not_minutes():
    # the loss range of σ = 0.00125 spans ±500 (the grid's limit): 10⁷ points at the default interval
    acc = PLDAccountant()
    acc.step(mechanism=Gaussian(0.00125), sample_rate=0.5, steps=10, geometry="scalar")
    assert max(acc.composed_pld(d).probs.size for d in ("add", "remove")) <= acc.max_grid_points


@pytest.mark.parametrize("target", [50.0, 1000.0])
def test_calibration_brackets_through_small_scales(target):
    run = dict(sample_rate=0.5, steps=1, delta=1e-5, geometry="scalar")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PLDFallbackWarning)
        warnings.simplefilter("ignore", OrderGridEdgeWarning)
        sigma = calibrate_gaussian(target, **run, tolerance=1e-3)
        laplace = calibrate_scale(Laplace(1.0), target, **run, tolerance=1e-3)
    assert _quiet_epsilon(Gaussian(sigma), **run, accountant="auto") <= target
    assert _quiet_epsilon(laplace, **run, accountant="auto") <= target
    assert _quiet_epsilon(Gaussian(sigma / 1.01), **run, accountant="auto") > target


@pytest.mark.parametrize(
    "argv",
    [
        ["epsilon", "-m", "gaussian:0.03", "--sample-rate", "0.5", "--steps", "1", "--delta", "1e-5"],
        ["epsilon", "-m", "laplace:0.001", "--sample-rate", "0.5", "--steps", "10", "--geometry", "scalar", "--delta", "1e-5"],
    ],
)
def test_cli_small_noise_prints_a_large_epsilon(capsys, argv):
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epsilon"] > 100.0


NEGLIGIBLE = [Gaussian(1e-300), Laplace(1e-300), GeneralizedGaussian(1e-300, 1.5), paper_mechanism(0.7, exponential="rate").scaled(1e-300)]


@pytest.mark.parametrize("mechanism", NEGLIGIBLE, ids=lambda m: m.family)
@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize("geometry", ["scalar", "l2"])
def test_negligible_noise_is_infinite_epsilon_in_every_accountant(mechanism, accountant, geometry):
    if accountant == "pld" and geometry == "l2" and not isinstance(mechanism, Gaussian):
        pytest.skip("the PLD refuses non-Gaussian noise in l2")
    acc = make_accountant(accountant)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stated as ∞: no exception, no raw numpy warning
        acc.step(mechanism=mechanism, sample_rate=0.5, steps=3, geometry=geometry)
        acc.step(mechanism=Gaussian(1.0), sample_rate=0.5, steps=3, geometry=geometry)
        assert acc.get_epsilon(1e-5) == math.inf
        assert acc.get_delta(5.0) == 1.0
    restored = accountant_from_state_dict(json.loads(json.dumps(acc.state_dict())))
    assert restored.get_epsilon(1e-5) == math.inf


def test_negligible_noise_threshold_is_the_median_against_the_sensitivity():
    sigma = 1e-10 / 0.6745  # the median of |N(0, σ²)| is 0.6745σ
    assert MechanismEvent.validated(Gaussian(0.99 * sigma), sample_rate=0.1, steps=1, sensitivity=1.0, geometry="scalar").negligible_noise()
    assert not MechanismEvent.validated(Gaussian(1.01 * sigma), sample_rate=0.1, steps=1, sensitivity=1.0, geometry="scalar").negligible_noise()
    assert MechanismEvent.validated(Gaussian(1.0), sample_rate=0.1, steps=1, sensitivity=1e11, geometry="scalar").negligible_noise()
    # just above the threshold the bound is finite (and huge)
    assert 1e18 < _quiet_epsilon(Gaussian(1.01 * sigma), sample_rate=0.5, steps=1, delta=1e-5, geometry="l2", accountant="rdp") < math.inf


def test_a_bound_that_cannot_be_computed_is_infinite_with_a_warning():
    with pytest.warns(NoFiniteBoundWarning, match="generalized Gaussian quadrature"):
        eps = lmodp.epsilon(GeneralizedGaussian(1e-4, 1.5), sample_rate=0.5, steps=1, delta=1e-5, geometry="scalar", accountant="rdp")
    assert eps == math.inf


@pytest.mark.parametrize("flags", [["-m", "laplace:1e-300", "--accountant", "rdp"], ["-m", "gaussian:1e-300"], ["-m", "gaussian:1e-300", "--accountant", "rdp"]])
def test_cli_states_infinite_epsilon(capsys, flags):
    argv = ["epsilon", *flags, "--sample-rate", "0.5", "--steps", "1", "--delta", "1e-5"]
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "epsilon:       inf" in out.out and "no finite bound" in out.out
    assert out.err == ""
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epsilon"] is None
