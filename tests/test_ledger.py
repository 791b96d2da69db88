"""The training ledger at constant cost per step: the allowance computed once (checked against
the definition, step by step, with lmodp.epsilon of every count), heterogeneous runs (against
dp-accounting's PLD of the same events), state_dict round trips and the budget stop."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lmodp
from lmodp import Gaussian, Laplace
from lmodp.accounting.allowance import MAX_STEPS, largest_within, steps_within_budget
from lmodp.accounting.pld import PLDAccountant
from lmodp.accounting.rdp.accountant import RDPAccountant
from lmodp.paper import paper_mechanism
from lmodp.train.ledger import PrivacyBudgetExhausted, PrivacyLedger

DELTA = 1e-6
LMO = paper_mechanism(2, "task1", exponential="rate")


# --- the allowance ------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    increments=st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=1, max_size=300),
    limit=st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
    guesses=st.lists(st.integers(min_value=0, max_value=400), max_size=4),
)
def test_largest_within_is_the_last_count_within_the_limit(increments, limit, guesses):
    """Any nondecreasing ε (here a random staircase that grows linearly past its end): the
    brute-force answer, whatever the guesses."""
    prefix = [0.0]
    for step in increments:
        prefix.append(prefix[-1] + step)

    def spent(k):
        return prefix[k] if k < len(prefix) else prefix[-1] + (k - len(prefix) + 1)

    brute = max(k for k in range(len(prefix) + 200) if spent(k) <= limit)
    found = largest_within(spent, limit, guesses=tuple(guesses))
    assert found.steps == brute and found.epsilon == spent(brute) and found.next_epsilon == spent(brute + 1)


def test_largest_within_uses_few_calls_and_stops_at_its_cap():
    calls = []

    def sqrt_growth(k):
        calls.append(k)
        return math.sqrt(k / 12345.5)

    assert largest_within(sqrt_growth, 1.0).steps == 12345 and len(calls) <= 10
    assert largest_within(lambda k: 0.0, 1.0).steps == MAX_STEPS
    assert largest_within(lambda k: 5.0, 1.0).steps == 0


@pytest.mark.parametrize(
    "mechanism,accountant,q",
    [(Gaussian(1.5), "pld", 0.05), (LMO, "rdp", 0.05), (Laplace(2.0), "pld", 0.1)],
    ids=["gaussian-pld", "lmo-rdp", "laplace-pld-scalar"],
)
def test_allowance_is_the_last_step_within_the_budget(mechanism, accountant, q):
    geometry = "scalar" if mechanism.family == "laplace" else "l2"
    run = dict(sample_rate=q, delta=DELTA, geometry=geometry, accountant=accountant)
    budget = 0.5 * (lmodp.epsilon(mechanism, steps=20, **run) + lmodp.epsilon(mechanism, steps=21, **run))
    found = steps_within_budget(
        lmodp.accounting.make_accountant(accountant), budget, delta=DELTA, mechanism=mechanism, sample_rate=q,
        geometry=geometry, guide=RDPAccountant(),
    )
    assert found.steps == 20
    assert found.epsilon == lmodp.epsilon(mechanism, steps=20, **run) <= budget
    assert found.next_epsilon == lmodp.epsilon(mechanism, steps=21, **run) > budget


# --- constant cost ------------------------------------------------------------------------------------
def count_compositions(monkeypatch):
    import lmodp.accounting.pld.accountant as module

    calls = []
    original = module.self_compose

    def counted(pld, count, **kwargs):
        calls.append(count)
        return original(pld, count, **kwargs)

    monkeypatch.setattr(module, "self_compose", counted)
    return calls


@pytest.mark.parametrize("steps", [40, 400])
def test_a_homogeneous_pld_run_composes_only_to_find_its_allowance(monkeypatch, steps):
    """The compositions (two directions per probe) do not grow with the run: none per step."""
    mechanism, q = Gaussian(2.0), 0.05
    budget = lmodp.epsilon(mechanism, sample_rate=q, steps=steps, delta=DELTA)
    calls = count_compositions(monkeypatch)
    ledger = PrivacyLedger(mechanism=mechanism, sample_rate=q, delta=DELTA, max_epsilon=budget, on_exhausted="stop")
    reports = []
    while (eps := ledger.charge_step()) is not None:
        reports.append(eps)
    assert len(reports) == steps and ledger.exhausted
    assert len(calls) <= 2 * 12
    assert ledger.epsilon() == budget  # the allowance's own composition, cached
    assert len(calls) <= 2 * 12


def test_each_report_is_a_sound_bound_between_the_pld_and_the_rdp():
    mechanism, q = Gaussian(1.2), 0.1
    ledger = PrivacyLedger(mechanism=mechanism, sample_rate=q, delta=DELTA)
    run = dict(sample_rate=q, delta=DELTA)
    for t in range(1, 9):
        reported = ledger.charge_step()
        pld = lmodp.epsilon(mechanism, steps=t, **run)
        assert ledger.epsilon() == pld <= reported == lmodp.epsilon(mechanism, steps=t, accountant="rdp", **run)
    assert [e.steps for e in ledger.accountant.history] == [8]


def test_a_run_with_a_planned_end_reports_the_pld_of_the_whole_run_at_its_end():
    """planned_steps: every report is a sound bound (at least the PLD of its steps, at most the RDP
    and the PLD of the whole run, composed once), and the last one is lmodp.epsilon of the run."""
    mechanism, q, steps = Gaussian(1.2), 0.1, 12
    run = dict(sample_rate=q, delta=DELTA)
    whole = lmodp.epsilon(mechanism, steps=steps, **run)
    ledger = PrivacyLedger(mechanism=mechanism, sample_rate=q, delta=DELTA, planned_steps=steps)
    for t in range(1, steps + 1):
        reported = ledger.charge_step()
        assert lmodp.epsilon(mechanism, steps=t, **run) <= reported <= min(
            whole, lmodp.epsilon(mechanism, steps=t, accountant="rdp", **run)
        )
    assert reported == whole == ledger.epsilon()


# --- heterogeneous runs ----------------------------------------------------------------------------------
def test_a_heterogeneous_run_against_dp_accounting():
    """q and σ change mid-run: two events, composed by lmodp's PLD and by dp-accounting's."""
    dp_accounting = pytest.importorskip("dp_accounting")
    ledger = PrivacyLedger(mechanism=Gaussian(1.0), sample_rate=0.02, delta=1e-5)
    for _ in range(30):
        ledger.charge_step()
    ledger.sample_rate, ledger.mechanism = 0.05, Gaussian(1.5)
    for _ in range(20):
        ledger.charge_step()
    assert [(e.sample_rate, e.steps) for e in ledger.accountant.history] == [(0.02, 30), (0.05, 20)]
    reference = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    reference.compose(dp_accounting.PoissonSampledDpEvent(0.02, dp_accounting.GaussianDpEvent(1.0)), 30)
    reference.compose(dp_accounting.PoissonSampledDpEvent(0.05, dp_accounting.GaussianDpEvent(1.5)), 20)
    assert ledger.epsilon() == pytest.approx(reference.get_epsilon(1e-5), rel=1e-6)


def test_the_budget_of_a_heterogeneous_run_is_recounted_when_the_release_changes():
    first = lmodp.epsilon(Gaussian(1.0), sample_rate=0.05, steps=10, delta=DELTA)
    ledger = PrivacyLedger(mechanism=Gaussian(1.0), sample_rate=0.05, delta=DELTA, max_epsilon=2 * first)
    for _ in range(10):
        ledger.charge_step()
    ledger.sample_rate = 0.2
    reference = PLDAccountant()
    reference.step(mechanism=Gaussian(1.0), sample_rate=0.05, steps=10)
    allowed = 0
    while reference.epsilon_after(DELTA, mechanism=Gaussian(1.0), sample_rate=0.2, steps=allowed + 1) <= 2 * first:
        allowed += 1
    for _ in range(allowed):
        assert ledger.next_step_fits()
        ledger.charge_step()
    assert not ledger.next_step_fits()
    with pytest.raises(PrivacyBudgetExhausted, match=f"step {11 + allowed} would raise epsilon"):
        ledger.charge_step()
    assert ledger.steps == 10 + allowed and sum(e.steps for e in ledger.accountant.history) == 10 + allowed


# --- persistence and the stop ------------------------------------------------------------------------------
@pytest.mark.parametrize("mechanism,accountant", [(Gaussian(1.0), "auto"), (LMO, "auto"), (Gaussian(1.0), "rdp")])
def test_state_dict_round_trip_continues_like_the_uninterrupted_run(mechanism, accountant):
    q = 0.05
    budget = lmodp.epsilon(mechanism, sample_rate=q, steps=12, delta=DELTA, accountant=accountant)

    def ledger():
        return PrivacyLedger(accountant, mechanism=mechanism, sample_rate=q, delta=DELTA, max_epsilon=budget, on_exhausted="stop")

    whole = ledger()
    whole_reports = [whole.charge_step() for _ in range(14)]
    first = ledger()
    first_reports = [first.charge_step() for _ in range(5)]
    resumed = ledger()
    resumed.load_state_dict(first.state_dict())
    resumed_reports = [resumed.charge_step() for _ in range(9)]
    assert first_reports + resumed_reports == whole_reports
    assert whole_reports[11] is not None and whole_reports[12:] == [None, None]
    assert resumed.state_dict() == whole.state_dict() and resumed.epsilon() == whole.epsilon() <= budget


def test_an_old_state_with_one_event_per_step_loads_merged():
    old = RDPAccountant()
    for _ in range(5):
        old.step(mechanism=Gaussian(1.0), sample_rate=0.1)
    state = old.state_dict()
    state["history"] = [{**state["history"][0], "steps": 1} for _ in range(5)]  # the format before events merged
    for make in (RDPAccountant, PLDAccountant):
        acc = make()
        acc.load_state_dict({**state, "accountant": acc.name, "version": 1} if make is RDPAccountant else {
            "accountant": "pld", "version": 1, "value_discretization_interval": 1e-4, "tail_mass_truncation": 1e-15,
            "history": state["history"],
        })
        assert [e.steps for e in acc.history] == [5]
        assert acc.get_epsilon(1e-5) == pytest.approx(lmodp.epsilon(Gaussian(1.0), sample_rate=0.1, steps=5, delta=1e-5, accountant=make.name), rel=1e-12)


def test_a_pld_ledger_for_non_gaussian_noise_in_l2_is_refused_at_once():
    with pytest.raises(ValueError, match="PLD accountant has no tight bound"):
        PrivacyLedger("pld", mechanism=LMO, sample_rate=0.1, delta=DELTA)
    ledger = PrivacyLedger("pld", mechanism=Gaussian(1.0), sample_rate=0.1, delta=DELTA)
    with pytest.raises(ValueError, match="PLD accountant has no tight bound"):
        ledger.mechanism = LMO


def test_refused_steps_record_nothing():
    budget = lmodp.epsilon(Gaussian(1.0), sample_rate=0.1, steps=3, delta=DELTA) * (1 + 1e-9)
    ledger = PrivacyLedger(mechanism=Gaussian(1.0), sample_rate=0.1, delta=DELTA, max_epsilon=budget)
    for _ in range(3):
        ledger.charge_step()
    before = ledger.state_dict()
    with pytest.raises(PrivacyBudgetExhausted):
        ledger.charge_step()
    assert ledger.state_dict() == before and not ledger.exhausted and ledger.epsilon() <= budget


def test_random_heterogeneous_runs_match_an_accountant_stepped_once_per_step():
    """Whatever the order of releases, the ledger's ε is that of an accountant given the same steps."""
    rng = random.Random(3)
    ledger = PrivacyLedger("rdp", mechanism=Gaussian(1.0), sample_rate=0.1, delta=DELTA)
    reference = RDPAccountant()
    for _ in range(25):
        ledger.sample_rate = rng.choice([0.05, 0.1])
        ledger.mechanism = rng.choice([Gaussian(1.0), Gaussian(2.0)])
        reported = ledger.charge_step()
        reference.step(mechanism=ledger.mechanism, sample_rate=ledger.sample_rate)
        assert reported == pytest.approx(reference.get_epsilon(DELTA), rel=1e-12)
