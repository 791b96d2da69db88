"""Hypothesis properties of the RDP accounting: monotonicity and input validation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lmodp
from lmodp import Gaussian
from lmodp.accounting import rdp_to_epsilon, sampled_gaussian_rdp
from lmodp.accounting.rdp.subsampling import general_subsampled_rdp

ORDERS = np.concatenate([np.arange(1.25, 10.0, 0.25), np.arange(10, 65), [80, 96, 128, 192, 256]])
INT_ORDERS = np.arange(2, 129)

sigmas = st.floats(0.5, 20.0)
rates = st.floats(1e-3, 1.0)
step_counts = st.integers(1, 5000)
deltas = st.floats(1e-12, 1e-2)
scales = st.floats(0.3, 10.0)


def _eps(orders, rdp, delta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rdp_to_epsilon(orders, rdp, delta=delta)[0]


def gaussian_eps(sigma, q, steps, delta):
    return _eps(ORDERS, steps * sampled_gaussian_rdp(ORDERS, noise_multiplier=sigma, sample_rate=q), delta)


def laplace_eps(scale, q, steps, delta):
    """The general (non-Gaussian) path, fed with Mironov's closed-form Laplace RDP."""
    j = np.arange(2, 129, dtype=float)
    lam = 1.0 / scale
    table = np.zeros(129)
    table[2:] = np.log(j / (2 * j - 1) * np.exp((j - 1) * lam) + (j - 1) / (2 * j - 1) * np.exp(-j * lam)) / (j - 1)
    return _eps(INT_ORDERS, steps * general_subsampled_rdp(INT_ORDERS, table, sample_rate=q), delta)


TOL = 1e-9
FAMILIES = [(gaussian_eps, sigmas), (laplace_eps, scales)]
# (argument varied, +1 if ε must grow with it, -1 if it must shrink)
MONOTONE = [("noise", -1), ("steps", +1), ("rate", +1)]


@pytest.mark.parametrize("eps_of,noises", FAMILIES, ids=["gaussian", "laplace"])
@pytest.mark.parametrize("vary,direction", MONOTONE, ids=[m[0] for m in MONOTONE])
def test_epsilon_is_monotone(eps_of, noises, vary, direction):
    """ε decreases as the noise grows, and grows with the number of steps and with q."""
    drawn = {"noise": noises, "rate": rates, "steps": step_counts}

    @settings(max_examples=12, deadline=None)
    @given(st.fixed_dictionaries(drawn), drawn[vary], deltas)
    def check(base, other, delta):
        lo, hi = sorted((base[vary], other))
        eps = {}
        for name, value in (("lo", lo), ("hi", hi)):
            args = dict(base, **{vary: value})
            eps[name] = eps_of(args["noise"], args["rate"], args["steps"], delta)
        small, large = (eps["lo"], eps["hi"]) if direction > 0 else (eps["hi"], eps["lo"])
        assert small <= large * (1 + TOL) + TOL

    check()


bad_rates = st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, exclude_min=True), st.just(math.nan))
bad_deltas = st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), st.just(math.nan))


@settings(max_examples=20, deadline=None)
@given(bad_rates)
def test_invalid_sample_rate_raises(q):
    with pytest.raises(ValueError, match="sample_rate"):
        lmodp.epsilon(Gaussian(1.0), sample_rate=q, steps=10, delta=1e-5, geometry="l2")


@settings(max_examples=20, deadline=None)
@given(bad_deltas)
def test_invalid_delta_raises(delta):
    with pytest.raises(ValueError, match="delta"):
        lmodp.epsilon(Gaussian(1.0), sample_rate=0.1, steps=10, delta=delta, geometry="l2")


@settings(max_examples=20, deadline=None)
@given(st.one_of(st.integers(max_value=-1), st.floats(0.1, 0.9)))
def test_invalid_steps_raises(steps):
    with pytest.raises(ValueError, match="steps"):
        lmodp.epsilon(Gaussian(1.0), sample_rate=0.1, steps=steps, delta=1e-5, geometry="l2")


@settings(max_examples=20, deadline=None)
@given(st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf)))
def test_invalid_sensitivity_raises(sensitivity):
    with pytest.raises(ValueError, match="sensitivity"):
        lmodp.epsilon(Gaussian(1.0), sample_rate=0.1, steps=10, delta=1e-5, geometry="l2", sensitivity=sensitivity)


@settings(max_examples=10, deadline=None)
@given(st.text(max_size=5).filter(lambda g: g not in ("scalar", "l2")))
def test_invalid_geometry_raises(geometry):
    with pytest.raises(ValueError, match="geometry"):
        lmodp.epsilon(Gaussian(1.0), sample_rate=0.1, steps=10, delta=1e-5, geometry=geometry)
