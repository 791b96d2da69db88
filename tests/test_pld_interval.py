"""epsilon_interval: the l2 interval [lower, upper] and the soundness of its lower bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

import lmodp
from lmodp import LMO, Gaussian, Laplace
from lmodp.accounting.pld import PLDAccountant
from lmodp.accounting.interval import EpsilonInterval, split_shift_epsilon

DIMS = (1, 4, 16)


@pytest.mark.parametrize(
    "mechanism",
    [
        Laplace(1.5),
        LMO(gamma_weight=0.1, gamma_shape=1.0, gamma_scale=0.5, exponential_weight=0.1, exponential_rate=5.0,
            uniform_weight=0.1, uniform_low=1.0, uniform_high=2.0),
    ],
)
def test_lower_below_upper(mechanism):
    got = lmodp.epsilon_interval(mechanism, sample_rate=0.05, steps=50, delta=1e-5, dimensions=DIMS)
    assert isinstance(got, EpsilonInterval)
    assert set(got.lower_by_dimensions) == set(DIMS)
    assert 0.0 < got.lower <= got.upper
    assert got.lower == max(got.lower_by_dimensions.values())
    assert "rdp" in got.upper_method
    scalar_pld = lmodp.epsilon(mechanism, sample_rate=0.05, steps=50, delta=1e-5, geometry="scalar", accountant="pld")
    # n = 1 is the scalar pair: its lower bound sits just below the scalar (pessimistic) value
    assert scalar_pld - 50 * 1e-5 - 1e-4 <= got.lower_by_dimensions[1] <= scalar_pld


def test_gaussian_interval_collapses_to_scalar_value():
    steps, h = 200, 5e-4
    got = lmodp.epsilon_interval(Gaussian(1.0), sample_rate=0.02, steps=steps, delta=1e-5, value_discretization_interval=h)
    acc = PLDAccountant(value_discretization_interval=h)
    acc.step(mechanism=Gaussian(1.0), sample_rate=0.02, steps=steps, geometry="scalar")
    scalar = acc.get_epsilon(1e-5)
    assert got.upper == scalar
    assert got.lower <= got.upper <= got.lower + steps * h / 10 + 1e-4


def _product_delta(eps: float, *, q: float, shift: float, direction: str) -> float:
    """Brute force: ∫∫ (P − e^ε Q)_+ for unit Laplace noise on two coordinates, both shifted by
    ``shift`` under the neighbour, on a fine grid (trapezoid rule, rows in chunks)."""
    y = np.linspace(-22.0, 23.0, 6001)
    w = np.full(y.size, y[1] - y[0])
    w[[0, -1]] /= 2.0
    f, g = 0.5 * np.exp(-np.abs(y)), 0.5 * np.exp(-np.abs(y - shift))
    total = 0.0
    for start in range(0, y.size, 1000):
        rows = slice(start, start + 1000)
        base = f[rows, None] * f[None, :]
        mix = (1.0 - q) * base + q * g[rows, None] * g[None, :]
        p, qq = (mix, base) if direction == "remove" else (base, mix)
        total += float(w[rows] @ np.maximum(p - math.exp(eps) * qq, 0.0) @ w)
    return total


def test_lower_bound_is_achieved_by_the_two_coordinate_shift():
    q, delta = 0.5, 0.01
    got = lmodp.epsilon_interval(Laplace(1.0), sample_rate=q, steps=1, delta=delta, dimensions=(2,))
    lower_2 = got.lower_by_dimensions[2]
    shift = 1.0 / math.sqrt(2.0)
    # the add-direction loss is at most −log(1 − q) < lower_2, so only "remove" has δ > 0 there
    assert lower_2 > -math.log1p(-q)
    # δ_true(lower) ≥ δ  ⟺  the true ε is at least the lower bound (quadrature error ≪ 1e-5)
    assert _product_delta(lower_2, q=q, shift=shift, direction="remove") >= delta - 1e-5
    # and the bound is close: slightly above it, δ_true already falls below δ
    assert _product_delta(lower_2 + 5e-3, q=q, shift=shift, direction="remove") < delta


def test_lower_bound_keeps_atoms_on_grid_points():
    # Laplace(2), shift 1/2 on 4 coordinates, q = 1, one release: each coordinate's loss has an
    # atom at exactly ±0.25 (grid points), and P(L = 1) = 2^-4 ≥ δ(ε)/(1 − e^{ε−1}), so the true
    # ε(1e-6) lies in [1 + log(1 − 16e-6), 1] (1 = the pure-DP loss bound).
    got = lmodp.epsilon_interval(Laplace(2.0), sample_rate=1.0, steps=1, delta=1e-6, dimensions=(4,))
    assert 1.0 + math.log1p(-16e-6) - 1e-4 <= got.lower_by_dimensions[4] <= 1.0


def _dp_accounting_epsilon(event, count: int, delta: float, interval: float = 1e-4) -> float:
    dp_accounting = pytest.importorskip("dp_accounting")
    acc = dp_accounting.pld.PLDAccountant(value_discretization_interval=interval)
    acc.compose(event, count)
    return acc.get_epsilon(delta)


def test_gaussian_split_over_a_million_coordinates_is_the_scalar_value():
    # Gaussian noise is rotation invariant: the shift C/√n on n = 2^20 coordinates is exactly
    # the scalar pair, so the whole chain (20 squarings, re-gridding, subsampling, composition)
    # must land just below dp-accounting's (pessimistic) ε of the subsampled Gaussian.
    dp_accounting = pytest.importorskip("dp_accounting")
    ours = split_shift_epsilon(Gaussian(1.0), dimensions=2**20, sample_rate=0.01, steps=1000, delta=1e-5)
    reference = _dp_accounting_epsilon(dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(1.0)), 1000, 1e-5)
    assert reference - 2e-4 <= ours <= reference


@pytest.mark.parametrize("dimensions", [16, 64])
def test_laplace_split_without_subsampling_against_dp_accounting(dimensions):
    # q = 1: the n-coordinate Laplace(1) pair with shift 1/√n is the n-fold composition of the
    # scalar Laplace pair, i.e. dp-accounting's LaplaceDpEvent(√n) composed n times.
    dp_accounting = pytest.importorskip("dp_accounting")
    ours = split_shift_epsilon(Laplace(1.0), dimensions=dimensions, sample_rate=1.0, steps=1, delta=1e-6)
    reference = _dp_accounting_epsilon(dp_accounting.LaplaceDpEvent(math.sqrt(dimensions)), dimensions, 1e-6)
    assert reference - 1e-5 <= ours <= reference


def test_lower_end_approaches_the_fisher_limit():
    # The case: Laplace b = 1, q = 0.01, T = 1000, δ = 1e-5. The d → ∞ value is the
    # subsampled Gaussian with the same Fisher information (σ = b): 1.8282 (dp-accounting).
    dp_accounting = pytest.importorskip("dp_accounting")
    got = lmodp.epsilon_interval(Laplace(1.0), sample_rate=0.01, steps=1000, delta=1e-5)
    limit = _dp_accounting_epsilon(dp_accounting.PoissonSampledDpEvent(0.01, dp_accounting.GaussianDpEvent(1.0)), 1000, 1e-5)
    assert got.worst_dimensions == 2**20
    assert limit - 2e-3 <= got.lower <= min(limit, got.upper)
    values = [got.lower_by_dimensions[n] for n in sorted(got.lower_by_dimensions)]
    assert values == sorted(values)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delta": 1.0},
        {"delta": 0.0},
        {"sample_rate": 0.0},
        {"sample_rate": 1.2},
        {"value_discretization_interval": 0.0},
        {"sensitivity": -1.0},
    ],
)
def test_bad_input(kwargs):
    args = {"sample_rate": 0.1, "steps": 5, "delta": 1e-5} | kwargs
    with pytest.raises(ValueError):
        lmodp.epsilon_interval(Laplace(1.0), **args)
    with pytest.raises(ValueError):
        split_shift_epsilon(Laplace(1.0), dimensions=4, **args)
