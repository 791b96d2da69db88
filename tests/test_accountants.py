"""The accountant interface, over every registered accountant: what each accountant does, its
state_dict round trip, the registry by name (and "auto"), and one RunSpec accepted everywhere."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

import lmodp
from lmodp import LMO, Gaussian, Laplace, RunSpec
from lmodp.accounting import (
    ACCOUNTANTS,
    PrivacyAccountant,
    accountant_choices,
    accountant_from_state_dict,
    make_accountant,
    register_accountant,
)
from lmodp.accounting.events import MechanismEvent

DELTA = 1e-5
LMO_SHAPE = LMO(gamma_weight=0.4, gamma_shape=2.0, gamma_scale=0.5, exponential_weight=0.2, uniform_weight=0.4,
                uniform_low=0.5, uniform_high=1.5)
# Events every registered accountant accounts (the PLD takes non-Gaussian noise in the scalar geometry only).
EVENTS = [
    dict(mechanism=Gaussian(1.2), sample_rate=0.05, steps=30, geometry="l2"),
    dict(mechanism=Laplace(2.0), sample_rate=0.02, steps=20, sensitivity=0.5, geometry="scalar"),
    dict(mechanism=LMO_SHAPE.scaled(0.5), sample_rate=0.1, steps=10, geometry="scalar"),
]
NAMES = sorted(ACCOUNTANTS)


def _stepped(name: str) -> PrivacyAccountant:
    acc = make_accountant(name)
    for event in EVENTS:
        acc.step(**event)
    return acc


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_accountant_has_the_interface(name):
    cls = ACCOUNTANTS[name]
    assert issubclass(cls, PrivacyAccountant) and cls.name == name
    fresh = make_accountant(name)
    assert type(fresh) is cls
    assert fresh.get_epsilon(DELTA) == 0.0 and fresh.get_delta(1.0) == 0.0
    assert fresh.history == [] and fresh.steps_taken == 0
    acc = _stepped(name)
    assert acc.steps_taken == sum(e["steps"] for e in EVENTS)
    assert [e.mechanism for e in acc.history] == [e["mechanism"].to_dict() for e in EVENTS]
    assert all(isinstance(e, MechanismEvent) for e in acc.history)
    eps = acc.get_epsilon(DELTA)
    assert 0.0 < eps < math.inf
    # δ(ε(δ)) <= δ: both queries bound the same curve
    assert acc.get_delta(eps) <= DELTA * (1 + 1e-6)
    # more steps never cost less
    acc.step(**EVENTS[0])
    assert acc.get_epsilon(DELTA) >= eps
    eps_order, order = acc.get_epsilon_and_order(DELTA)
    assert eps_order == acc.get_epsilon(DELTA)
    assert math.isnan(order) != cls.reports_order


@pytest.mark.parametrize("name", NAMES)
def test_one_event_matches_lmodp_epsilon_with_that_accountant(name):
    event = EVENTS[1]
    acc = make_accountant(name)
    acc.step(**event)
    run = RunSpec(sample_rate=event["sample_rate"], steps=event["steps"], delta=DELTA, geometry="scalar", sensitivity=0.5)
    assert acc.get_epsilon(DELTA) == lmodp.epsilon(event["mechanism"], run, accountant=name)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trips_through_json(name):
    acc = _stepped(name)
    state = json.loads(json.dumps(acc.state_dict()))
    assert state["accountant"] == name
    for restored in (accountant_from_state_dict(state), make_accountant(name)):
        if not restored.history:
            restored.load_state_dict(state)
        assert type(restored) is type(acc)
        assert restored.history == acc.history
        assert restored.get_epsilon(DELTA) == acc.get_epsilon(DELTA)
        assert restored.get_delta(1.0) == acc.get_delta(1.0)
        assert restored.state_dict() == acc.state_dict()


@pytest.mark.parametrize("name", NAMES)
def test_an_accountant_refuses_another_accountants_state_and_bad_steps(name):
    other = next(n for n in NAMES if n != name)
    with pytest.raises(ValueError, match="state must come from"):
        make_accountant(name).load_state_dict(_stepped(other).state_dict())
    for bad, match in [(dict(sample_rate=1.5), "sample_rate"), (dict(steps=-1), "steps"), (dict(geometry="l1"), "geometry"),
                       (dict(sensitivity=0.0), "sensitivity"), (dict(mechanism="gaussian"), "mechanism")]:
        with pytest.raises(ValueError, match=match):
            make_accountant(name).step(**{**EVENTS[0], **bad})


def test_registry_names_auto_and_objects():
    assert accountant_choices() == ("auto", *NAMES)
    assert type(make_accountant("auto", mechanism=Laplace(1.0), geometry="l2")) is ACCOUNTANTS["rdp"]
    assert type(make_accountant("auto", mechanism=Laplace(1.0), geometry="scalar")) is ACCOUNTANTS["pld"]
    assert type(make_accountant("auto", mechanism=Gaussian(1.0), geometry="l2")) is ACCOUNTANTS["pld"]
    mine = make_accountant("rdp")
    assert make_accountant(mine) is mine
    with pytest.raises(ValueError, match="accountant must be one of"):
        make_accountant("moments")
    with pytest.raises(ValueError, match="needs the mechanism"):
        make_accountant("auto")
    with pytest.raises(ValueError, match="PrivacyAccountant"):
        make_accountant(object())
    with pytest.raises(ValueError, match="state\\['accountant'\\]"):
        accountant_from_state_dict({"accountant": "moments"})


class _PureDP(PrivacyAccountant):
    """A toy accountant: basic composition of the pure-DP ε of Laplace noise (a valid, loose bound)."""

    name = "pure-dp"

    def __init__(self) -> None:
        self._events = []
        self._epsilon = 0.0

    def _record(self, event, mechanism=None):
        self._epsilon += event.steps * event.sensitivity / event.mechanism["scale"]
        self._events.append(event)

    def get_epsilon(self, delta):
        return self._epsilon

    def get_delta(self, epsilon):
        return 0.0 if epsilon >= self._epsilon else 1.0

    def state_dict(self):
        return {"accountant": self.name, "version": 1, "history": [e.to_dict() for e in self._events]}

    def load_state_dict(self, state):
        self._check_state(state, 1)
        self.__init__()
        for e in state["history"]:
            self._record(MechanismEvent(**e))


def test_a_registered_accountant_is_accepted_by_name_everywhere():
    register_accountant(_PureDP)
    try:
        assert "pure-dp" in accountant_choices()
        run = RunSpec(sample_rate=0.01, steps=10, delta=DELTA, geometry="scalar")
        assert lmodp.epsilon(Laplace(4.0), run, accountant="pure-dp") == pytest.approx(2.5)
        assert lmodp.epsilon(Laplace(4.0), run, accountant="pure-dp") >= lmodp.epsilon(Laplace(4.0), run, accountant="pld")
        with pytest.raises(ValueError, match="already registered"):
            register_accountant(type("Other", (_PureDP,), {}))
    finally:
        del ACCOUNTANTS["pure-dp"]
    with pytest.raises(ValueError, match="PrivacyAccountant subclass"):
        register_accountant(dict)


# --- one run specification ------------------------------------------------------------------
def test_run_spec_checks_its_settings_and_defaults_to_l2():
    run = RunSpec(sample_rate=0.01, steps=100, delta=DELTA)
    assert (run.geometry, run.sensitivity) == ("l2", 1.0)
    assert run.replace(geometry="scalar").geometry == "scalar"
    assert RunSpec(**run.to_dict()) == run
    for bad, match in [(dict(sample_rate=0.0), "sample_rate"), (dict(steps=1.5), "steps"), (dict(delta=1.0), "delta"),
                       (dict(geometry="l1"), "geometry"), (dict(sensitivity=math.nan), "sensitivity")]:
        with pytest.raises(ValueError, match=match):
            run.replace(**bad)
    with pytest.raises(AttributeError):
        run.steps = 3


def test_a_run_spec_and_keywords_give_the_same_numbers():
    run = RunSpec(sample_rate=0.02, steps=50, delta=DELTA, geometry="scalar")
    keywords = dict(sample_rate=0.02, steps=50, delta=DELTA, geometry="scalar")
    for accountant in ("rdp", "pld", "auto"):
        assert lmodp.epsilon(Laplace(2.0), run, accountant=accountant) == lmodp.epsilon(Laplace(2.0), accountant=accountant, **keywords)
    # a keyword replaces that setting of the run
    assert lmodp.epsilon(Laplace(2.0), run, geometry="l2") == lmodp.epsilon(Laplace(2.0), **{**keywords, "geometry": "l2"})
    assert lmodp.epsilon(Gaussian(1.0), sample_rate=0.02, steps=50, delta=DELTA) == lmodp.epsilon(Gaussian(1.0), run.replace(geometry="l2"))
    with pytest.raises(ValueError, match="sample_rate, steps"):
        lmodp.epsilon(Gaussian(1.0), delta=DELTA)
    with pytest.raises(ValueError, match="RunSpec"):
        lmodp.epsilon(Gaussian(1.0), {"sample_rate": 0.1})


def test_epsilon_interval_takes_a_run_and_the_scalar_geometry():
    run = RunSpec(sample_rate=0.05, steps=20, delta=DELTA, geometry="scalar")
    iv = lmodp.epsilon_interval(Laplace(2.0), run)
    assert iv.lower <= iv.upper == lmodp.epsilon(Laplace(2.0), run, accountant="pld")
    assert list(iv.lower_by_dimensions) == [1]
    l2 = lmodp.epsilon_interval(Laplace(2.0), run.replace(geometry="l2"), dimensions=(1, 4))
    assert l2 == lmodp.epsilon_interval(Laplace(2.0), sample_rate=0.05, steps=20, delta=DELTA, dimensions=(1, 4))
    assert l2.lower >= iv.lower and l2.upper == lmodp.epsilon(Laplace(2.0), run.replace(geometry="l2"), accountant="rdp")


def test_delta_is_keyword_only_and_a_positional_delta_is_refused_with_what_to_write():
    from lmodp.search import calibrate_gaussian, calibrate_scale, search

    for call in (lambda: calibrate_gaussian(2.0, DELTA, sample_rate=0.05, steps=20),
                 lambda: calibrate_scale(Laplace(1.0), 2.0, DELTA, sample_rate=0.05, steps=20),
                 lambda: search(2.0, DELTA, sample_rate=0.05, steps=20, family="gaussian"),
                 lambda: lmodp.epsilon(Laplace(1.0), DELTA, sample_rate=0.05, steps=20)):
        with pytest.raises(ValueError, match=r"run must be an lmodp RunSpec, got float \(delta is keyword-only"):
            call()


def test_l2_tolerance_has_one_name_and_the_old_one_warns():
    import numpy as np

    from lmodp.accounting.rdp.divergence import l2_renyi_bound

    orders = np.array([2.0, 8.0])
    with pytest.warns(DeprecationWarning, match="l2_tolerance"):
        old = l2_renyi_bound(Laplace(1.0), orders, l2_sensitivity=1.0, tolerance=2e-2)
    assert np.array_equal(old, l2_renyi_bound(Laplace(1.0), orders, l2_sensitivity=1.0, l2_tolerance=2e-2))
    acc = lmodp.accounting.RDPAccountant(orders, l2_tolerance=2e-2)
    acc.step(mechanism=Laplace(1.0), sample_rate=0.1, steps=3, geometry="l2")
    restored = accountant_from_state_dict(json.loads(json.dumps(acc.state_dict())))
    assert restored.l2_tolerance == 2e-2 and np.array_equal(restored.rdp, acc.rdp)


def test_search_options_are_one_value_or_keywords():
    from lmodp.search import SearchOptions, search

    run = RunSpec(sample_rate=0.05, steps=20, delta=DELTA, geometry="scalar")
    by_options = search(2.0, run, options=SearchOptions(family="laplace", tolerance=1e-3))
    by_keywords = search(2.0, run, family="laplace", tolerance=1e-3)
    assert by_options.mechanism == by_keywords.mechanism and by_options.settings == by_keywords.settings
    with pytest.raises(ValueError, match="unknown SearchOptions setting"):
        search(2.0, run, famliy="laplace")
    with pytest.raises(ValueError, match="family"):
        SearchOptions(family="cauchy")


def test_import_lmodp_loads_neither_scipy_nor_numba_and_nothing_loads_mpmath_or_matplotlib():
    code = (
        "import sys, lmodp\n"
        "assert not {'scipy', 'numba', 'lmodp.mechanisms'} & set(sys.modules), sorted(sys.modules)\n"
        "import lmodp.cli, lmodp.search, lmodp.paper.demo, lmodp.accounting.interval\n"
        "lmodp.cli.build_parser()\n"
        "lmodp.epsilon(lmodp.Laplace(1.0), sample_rate=0.1, steps=2, delta=1e-5)\n"
        "print('mpmath' in sys.modules, 'matplotlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]  # nor does any of it, nor the demo's numbers, need matplotlib
