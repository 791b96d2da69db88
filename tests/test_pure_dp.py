"""The pure-DP composition bound that caps ε in the scalar geometry (lmodp.accounting.pure), against
mpmath (the closed form log(1 + q(e^ε₀ − 1)) per step, summed) and dp-accounting's Laplace PLD."""

from __future__ import annotations

import math
import warnings

import mpmath
import pytest

import lmodp
from lmodp import Gaussian, Laplace, LaplaceMixture
from lmodp.accounting import MechanismEvent, PLDAccountant, RDPAccountant
from lmodp.accounting.pld import PLDFallbackWarning
from lmodp.accounting.pure import pure_composition_epsilon, subsampled_pure_epsilon

mpmath.mp.dps = 60


def subsampled(eps0, q):
    return mpmath.log(1 + mpmath.mpf(q) * mpmath.expm1(mpmath.mpf(eps0)))


@pytest.mark.parametrize("eps0,q", [(1.0, 0.01), (0.1, 0.5), (5.0, 1.0), (800.0, 0.01), (1e-8, 1e-6), (30.0, 0.999)])
def test_subsampled_pure_epsilon_is_the_closed_form(eps0, q):
    assert subsampled_pure_epsilon(eps0, q) == pytest.approx(float(subsampled(eps0, q)), rel=1e-14)


@pytest.mark.parametrize("accountant", ["pld", "rdp", "auto"])
def test_laplace_at_tiny_delta_is_its_pure_composition_bound(accountant):
    """δ = 1e-300 is below what the PLD resolves: instead of the RDP fallback (with a warning), every
    accountant reports T·log(1 + q(e^{Δ/b} − 1)), rounded up."""
    b, q, steps, sensitivity = 0.8, 0.01, 100, 1.5
    exact = steps * subsampled(mpmath.mpf(sensitivity) / mpmath.mpf(b), q)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PLDFallbackWarning)
        got = lmodp.epsilon(
            Laplace(b), sample_rate=q, steps=steps, delta=1e-300, geometry="scalar", sensitivity=sensitivity, accountant=accountant,
        )
    assert exact <= got <= exact * (1 + 1e-13)


def test_finite_laplace_mixture_cap_from_its_mixing_law():
    """ε₀ = log(E[ω]/E[ω e^{−Δω}]) for ω on atoms, evaluated in mpmath from the atoms and weights."""
    atoms, weights = [0.5, 2.0, 4.0], [0.2, 0.5, 0.3]
    mechanism, q, steps = LaplaceMixture(atoms, weights), 0.05, 40
    mean = sum(mpmath.mpf(w) * a for a, w in zip(atoms, weights))
    tilted = sum(mpmath.mpf(w) * a * mpmath.exp(-mpmath.mpf(a)) for a, w in zip(atoms, weights))
    exact = steps * subsampled(mpmath.log(mean / tilted), q)
    got = lmodp.epsilon(mechanism, sample_rate=q, steps=steps, delta=1e-300, geometry="scalar")
    assert exact <= got <= exact * (1 + 1e-12)


def test_the_cap_holds_for_dp_accountings_laplace_pld_and_binds_only_at_small_delta():
    """dp-accounting's PLD of the same run (an independent composition) puts no more than its own
    truncation mass above the cap, and at δ = 1e-5 the PLD value is below the cap, so it is unchanged."""
    dp_accounting = pytest.importorskip("dp_accounting")
    b, q, steps = 1.0, 0.02, 50
    cap = pure_composition_epsilon([MechanismEvent.validated(Laplace(b), sample_rate=q, steps=steps, sensitivity=1.0, geometry="scalar")])
    assert cap == pytest.approx(float(steps * subsampled(1.0 / b, q)), rel=1e-13)
    event = dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.LaplaceDpEvent(b)), steps)
    reference = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4).compose(event)
    assert reference.get_delta(cap) <= 1e-12
    moderate = lmodp.epsilon(Laplace(b), sample_rate=q, steps=steps, delta=1e-5, geometry="scalar")
    assert moderate < cap and moderate == pytest.approx(reference.get_epsilon(1e-5), rel=1e-6)


@pytest.mark.parametrize("make", [PLDAccountant, RDPAccountant])
def test_delta_is_zero_from_the_cap_on(make):
    acc = make()
    acc.step(mechanism=Laplace(2.0), sample_rate=0.1, steps=30, geometry="scalar")
    cap = float(30 * subsampled(0.5, 0.1))
    assert acc.get_delta(cap * (1 + 1e-12)) == 0.0
    assert acc.get_delta(0.5 * cap) > 0.0


def test_rdp_reports_order_infinity_where_the_cap_is_smaller():
    """One unsubsampled release of Laplace(1) is exactly 1-DP; the RDP conversion at δ = 1e-10 is
    above 1, so the cap (α = ∞) is reported."""
    acc = RDPAccountant()
    acc.step(mechanism=Laplace(1.0), sample_rate=1.0, steps=1, geometry="scalar")
    eps, order = acc.get_epsilon_and_order(1e-10)
    assert order == math.inf and 1.0 <= eps <= 1.0 + 1e-13


def test_no_cap_in_l2_or_for_the_gaussian():
    for mechanism, geometry in ((Laplace(1.0), "l2"), (Gaussian(1.0), "scalar")):
        event = MechanismEvent.validated(mechanism, sample_rate=0.1, steps=10, sensitivity=1.0, geometry=geometry)
        assert pure_composition_epsilon([event]) == math.inf
