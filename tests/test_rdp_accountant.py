"""RDPAccountant: heterogeneous composition, caching, history and state round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import lmodp
from lmodp import Gaussian, Laplace
from lmodp.accounting import RDPAccountant, epsilon_and_order, rdp_to_epsilon, sampled_gaussian_rdp
from lmodp.accounting.rdp import accountant as module

ORDERS = np.concatenate([np.arange(1.5, 10.0, 0.5), np.arange(10, 129)])


def _two_event_accountant() -> RDPAccountant:
    acc = RDPAccountant(ORDERS)
    acc.step(mechanism=Gaussian(1.0), sample_rate=0.01, steps=100, geometry="l2")
    acc.step(mechanism=Gaussian(3.0), sample_rate=0.1, steps=20, sensitivity=2.0, geometry="scalar")
    acc.step(mechanism=Gaussian(1.0), sample_rate=0.01, steps=50, geometry="l2")
    return acc


def test_heterogeneous_composition_is_the_sum():
    acc = _two_event_accountant()
    expected = 150 * sampled_gaussian_rdp(ORDERS, noise_multiplier=1.0, sample_rate=0.01) + 20 * sampled_gaussian_rdp(
        ORDERS, noise_multiplier=1.5, sample_rate=0.1
    )
    np.testing.assert_allclose(acc.rdp, expected, rtol=1e-14)
    assert acc.get_epsilon_and_order(1e-5) == rdp_to_epsilon(ORDERS, acc.rdp, delta=1e-5)
    assert acc.get_delta(acc.get_epsilon(1e-5)) <= 1e-5 * (1 + 1e-9)


def test_per_step_curve_is_cached(monkeypatch):
    calls = []
    original = module.poisson_subsampled_rdp

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "poisson_subsampled_rdp", counting)
    _two_event_accountant()
    assert len(calls) == 2


def test_history_and_steps_taken():
    acc = _two_event_accountant()
    assert acc.steps_taken == 170
    first = acc.history[0]
    assert first.mechanism == {"family": "gaussian", "sigma": 1.0}
    assert (first.sample_rate, first.steps, first.sensitivity, first.geometry) == (0.01, 100, 1.0, "l2")
    with pytest.raises(AttributeError):
        first.steps = 3  # frozen


def test_state_dict_round_trip_is_exact():
    acc = _two_event_accountant()
    state = json.loads(json.dumps(acc.state_dict()))
    restored = RDPAccountant()
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.rdp, acc.rdp)
    np.testing.assert_array_equal(restored.orders, acc.orders)
    assert restored.history == acc.history
    assert restored.get_epsilon(1e-6) == acc.get_epsilon(1e-6)
    restored.step(mechanism=Gaussian(1.0), sample_rate=0.01, steps=1, geometry="l2")
    assert restored.steps_taken == 171


def test_state_without_curve_is_recomputed():
    acc = _two_event_accountant()
    state = dict(acc.state_dict(), rdp=None)
    restored = RDPAccountant()
    restored.load_state_dict(state)
    np.testing.assert_allclose(restored.rdp, acc.rdp, rtol=1e-14)


def test_infinite_entries_survive_json():
    acc = RDPAccountant([2.0, 3.0])
    state = acc.state_dict()
    state["rdp"] = [0.5, None]
    restored = RDPAccountant()
    restored.load_state_dict(json.loads(json.dumps(state)))
    assert restored.rdp[1] == math.inf
    assert restored.state_dict()["rdp"] == [0.5, None]


def test_no_steps_means_no_privacy_loss():
    acc = RDPAccountant()
    assert acc.get_epsilon(1e-5) == 0.0
    assert acc.get_delta(0.0) == 0.0
    acc.step(mechanism=Gaussian(1.0), sample_rate=0.5, steps=0, geometry="l2")
    assert acc.get_epsilon(1e-5) == 0.0


def test_one_call_api_matches_accountant():
    acc = RDPAccountant()
    acc.step(mechanism=Gaussian(0.9), sample_rate=0.02, steps=300, geometry="l2")
    assert lmodp.epsilon(Gaussian(0.9), sample_rate=0.02, steps=300, delta=1e-6, geometry="l2", accountant="rdp") == acc.get_epsilon(1e-6)
    assert epsilon_and_order(Gaussian(0.9), sample_rate=0.02, steps=300, delta=1e-6, geometry="l2", accountant="rdp") == acc.get_epsilon_and_order(1e-6)
    with pytest.raises(ValueError, match="accountant"):
        lmodp.epsilon(Gaussian(0.9), sample_rate=0.02, steps=300, delta=1e-6, geometry="l2", accountant="moments")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(steps=-1), "steps"),
        (dict(steps=1.5), "steps"),
        (dict(sample_rate=0.0), "sample_rate"),
        (dict(sensitivity=0.0), "sensitivity"),
        (dict(geometry="l1"), "geometry"),
        (dict(mechanism="gaussian"), "mechanism"),
    ],
)
def test_invalid_steps(kwargs, match):
    args = dict(mechanism=Laplace(1.0), sample_rate=0.1, steps=1, geometry="l2") | kwargs
    with pytest.raises(ValueError, match=match):
        RDPAccountant().step(**args)


def test_invalid_state():
    with pytest.raises(ValueError, match="state"):
        RDPAccountant().load_state_dict({"accountant": "pld", "version": 1})
    with pytest.raises(ValueError, match="orders"):
        RDPAccountant(orders=[0.5, 2.0])
