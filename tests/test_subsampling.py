"""Poisson-subsampling bounds against independent references (mpmath quadrature, dp-accounting PLD)."""

from __future__ import annotations

import math
import warnings

import mpmath as mp
import numpy as np
import pytest

from lmodp import Gaussian, Laplace
from lmodp.paper.params import paper_mechanism
from lmodp.accounting import rdp_to_epsilon, sampled_gaussian_rdp
from lmodp.accounting.rdp.subsampling import (
    _add_remainder_factor,
    binomial_remove_rdp,
    chi2_add_rdp,
    general_subsampled_rdp,
    interpolated_subsampled_rdp,
    low_order_subsampled_rdp,
    poisson_subsampled_rdp,
    zhu_wang_general_rdp,
)



def laplace_rdp(alpha: np.ndarray, scale: float, shift: float = 1.0) -> np.ndarray:
    """Mironov (2017), Prop. 6: D_α of Laplace(Δ, b) from Laplace(0, b), λ = Δ/b (written here)."""
    lam = shift / scale
    alpha = np.asarray(alpha, dtype=float)
    return np.log(alpha / (2 * alpha - 1) * np.exp((alpha - 1) * lam) + (alpha - 1) / (2 * alpha - 1) * np.exp(-alpha * lam)) / (alpha - 1)


def laplace_table(max_order: int, scale: float) -> np.ndarray:
    table = np.zeros(max_order + 1)
    table[2:] = laplace_rdp(np.arange(2, max_order + 1), scale)
    return table


def _mp_directions(alpha: float, q: float, b: float, shift: float = 1.0) -> tuple[float, float]:
    """Both directions of the subsampled Laplace divergence by mpmath quadrature."""
    p = lambda y: mp.exp(-abs(y - shift) / b) / (2 * b)  # noqa: E731
    qd = lambda y: mp.exp(-abs(y) / b) / (2 * b)  # noqa: E731
    mix = lambda y: (1 - q) * qd(y) + q * p(y)  # noqa: E731
    pts = [-mp.inf, 0, shift, mp.inf]
    remove = mp.quad(lambda y: qd(y) * (mix(y) / qd(y)) ** alpha, pts)
    add = mp.quad(lambda y: mix(y) * (qd(y) / mix(y)) ** alpha, pts)
    return float(mp.log(remove) / (alpha - 1)), float(mp.log(add) / (alpha - 1))


@pytest.mark.parametrize("q,b", [(0.1, 1.0), (0.01, 0.5), (0.5, 2.0)])
def test_binomial_remove_is_exact_and_zhu_wang_bounds_both(q, b):
    orders = np.arange(2, 9)
    table = laplace_table(8, b)
    remove = binomial_remove_rdp(orders, table, sample_rate=q)
    both = zhu_wang_general_rdp(orders, table, sample_rate=q)
    reported = general_subsampled_rdp(orders, table, sample_rate=q)
    with mp.workdps(30):
        ref = np.array([_mp_directions(int(a), q, b) for a in orders])
    np.testing.assert_allclose(remove, ref[:, 0], rtol=1e-10)
    assert np.all(both >= ref.max(axis=1) * (1 - 1e-12))
    assert np.all(reported >= ref.max(axis=1) * (1 - 1e-12))
    assert np.all(both >= remove)


@pytest.mark.parametrize("q,b,shift", [(0.01, 1.0, 1.0), (0.03, 2.6, 1.0), (0.2, 0.5, 1.0), (0.05, 1.0, 0.05), (0.6, 3.0, 2.0)])
def test_chi2_add_bound_dominates_the_exact_add_direction(q, b, shift):
    """chi2_add_rdp from the exact D_2 of the pair bounds the add direction computed by mpmath,
    at integer and fractional orders, and is close to it when q is small."""
    alphas = np.array([1.5, 2.0, 3.7, 8.0, 20.0, 60.0])
    bound = chi2_add_rdp(alphas, float(laplace_rdp(2.0, b, shift)), sample_rate=q)
    with mp.workdps(30):
        add = np.array([_mp_directions(float(a), q, b, shift)[1] for a in alphas])
    assert np.all(bound >= add * (1 - 1e-12))
    if q <= 0.03:
        assert np.all(bound[:2] <= add[:2] * 1.1)


@pytest.mark.parametrize("q", [0.001, 0.03, 0.3])
def test_add_remainder_constant_dominates_the_taylor_remainder(q):
    """The pointwise inequality behind chi2_add_rdp, checked in exact arithmetic on a dense grid:
    R(u) <= c0 u^2 + (c - c0) u^2 / (1 + u) on [-1, 0) and R(u) <= c0 u^2 on [0, inf), or
    R(u) <= c u^2 everywhere (whichever construction gave c)."""
    m = np.array([0.5, 1.0, 7.0, 45.0, 86.0])
    c = _add_remainder_factor(m, q) * q * q
    grid = list(np.linspace(-1.0, -1e-3, 400)) + [1e-3, 0.01, 0.5, 3.0, 100.0, 1e4]
    with mp.workdps(40):
        for mi, ci in zip(m, c):
            c0 = mp.mpf(mi) * (mi + 1) * q * q / 2
            remainder = lambda u: (1 + q * u) ** (-mi) - 1 + mi * q * u  # noqa: E731
            uniform = max(c0, remainder(mp.mpf(-1)))
            if ci >= uniform * (1 - 1e-12):  # the one-constant construction: R(u) <= c u^2
                assert all(remainder(mp.mpf(u)) <= ci * mp.mpf(u) ** 2 * (1 + 1e-12) for u in grid)
            else:  # the split construction: c0 u^2 + (c - c0) u^2/(1 + u) below 0, c0 u^2 above
                for u in map(mp.mpf, grid[1:]):
                    split = c0 * u**2 + (ci - c0) * u**2 / (1 + u) if u < 0 else c0 * u**2
                    assert remainder(u) <= split * (1 + 1e-12), (mi, float(u))


def test_chi2_add_bound_edges():
    assert np.all(chi2_add_rdp([2.0, 10.0], 0.0, sample_rate=0.1) == 0.0)
    assert np.all(np.isinf(chi2_add_rdp([2.0], 0.5, sample_rate=1.0)))
    with pytest.raises(ValueError, match="rdp_at_2"):
        chi2_add_rdp([2.0], float("nan"), sample_rate=0.1)


def test_binomial_remove_reduces_to_sampled_gaussian():
    """With the Gaussian's exact ε(j) = j/(2σ²), the binomial expansion is MTZ's integer formula."""
    sigma, q = 1.3, 0.05
    orders = np.arange(2, 65)
    table = np.arange(65) / (2 * sigma**2)
    np.testing.assert_allclose(
        binomial_remove_rdp(orders, table, sample_rate=q), sampled_gaussian_rdp(orders, noise_multiplier=sigma, sample_rate=q), rtol=1e-12
    )


@pytest.mark.parametrize("q", [0.001, 0.03, 0.3, 0.9])
def test_subsampling_never_increases_rdp(q):
    orders = np.arange(2, 200)
    table = laplace_table(199, 0.7)
    assert np.all(general_subsampled_rdp(orders, table, sample_rate=q) <= table[2:] * (1 + 1e-12))
    assert np.all(binomial_remove_rdp(orders, table, sample_rate=q) <= table[2:] * (1 + 1e-12))
    fractional = np.array([1.1, 1.5, 2.5, 7.3, 50.0])
    plain = fractional / (2 * 1.7**2)
    assert np.all(sampled_gaussian_rdp(fractional, noise_multiplier=1.7, sample_rate=q) <= plain * (1 + 1e-12))


def _compare_with_pld(label: str, orders: np.ndarray, per_step_rdp: np.ndarray, q: float, b: float, steps: int, capsys) -> tuple[float, float]:
    """(RDP-based ε, dp-accounting PLD ε) for T steps of the Poisson-subsampled Laplace, printed."""
    dp_accounting = pytest.importorskip("dp_accounting")
    from dp_accounting.pld import PLDAccountant

    delta = 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, _ = rdp_to_epsilon(orders, per_step_rdp * steps, delta=delta)
    acc = PLDAccountant(value_discretization_interval=1e-4)
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.LaplaceDpEvent(b)), steps)
    pld = acc.get_epsilon(delta)
    with capsys.disabled():
        print(f"\n[{label} q={q} b={b} T={steps}] RDP eps={ours:.4f}, PLD eps={pld:.4f}, ratio {ours / pld:.3f}")
    return ours, pld


@pytest.mark.parametrize("q,b,steps", [(0.05, 1.0, 100), (0.01, 0.5, 1000), (0.2, 2.0, 50)])
def test_general_bound_epsilon_not_below_pld(q, b, steps, capsys):
    orders = np.arange(2, 257)
    rdp = general_subsampled_rdp(orders, laplace_table(256, b), sample_rate=q)
    ours, pld = _compare_with_pld("general bound", orders, rdp, q, b, steps, capsys)
    assert pld <= ours <= 3.0 * pld


@pytest.mark.parametrize("q,b,steps", [(0.05, 1.0, 100), (0.2, 2.0, 50)])
def test_scalar_pipeline_epsilon_not_below_pld(q, b, steps, capsys):
    """The soundness check of the issue: the scalar Laplace pipeline (both directions by
    quadrature in lmodp.accounting.rdp.divergence) gives an ε at least dp-accounting's PLD ε."""
    orders = np.arange(2, 129)
    rdp = poisson_subsampled_rdp(Laplace(b), orders, sample_rate=q, sensitivity=1.0, geometry="scalar")
    ours, pld = _compare_with_pld("scalar pipeline", orders, rdp, q, b, steps, capsys)
    assert ours >= pld


@pytest.mark.parametrize("mechanism", [Laplace(1.0), paper_mechanism(0.3, "task1", exponential="rate")], ids=["laplace", "lmo"])
def test_l2_bound_covers_the_one_coordinate_shift(mechanism):
    """A shift of norm C along one coordinate is one of the L2 neighbours: the l2 result must be
    at least the scalar (exact, both directions) subsampled RDP."""
    orders = np.arange(2, 33, dtype=float)
    l2 = poisson_subsampled_rdp(mechanism, orders, sample_rate=0.05, sensitivity=1.0, geometry="l2")
    scalar = poisson_subsampled_rdp(mechanism, orders, sample_rate=0.05, sensitivity=1.0, geometry="scalar")
    assert np.all(l2 >= scalar * (1 - 1e-9))


def test_l2_laplace_every_order_finite_and_covers_the_one_coordinate_shift():
    orders = np.array([1.05, 1.5, 2.0, 2.5, 3.0, 7.3, 10.0])
    l2 = poisson_subsampled_rdp(Laplace(1.0), orders, sample_rate=0.1, sensitivity=1.0, geometry="l2")
    scalar = poisson_subsampled_rdp(Laplace(1.0), orders, sample_rate=0.1, sensitivity=1.0, geometry="scalar")
    assert np.all(np.isfinite(l2))
    assert np.all(l2 >= scalar * (1 - 1e-9))


def _mp_gaussian_directions(alpha: float, q: float, sigma: float) -> tuple[float, float]:
    """Both directions of the Poisson-subsampled Gaussian (unit shift) by mpmath quadrature."""
    phi = lambda y, mu: mp.npdf(y, mu, sigma)  # noqa: E731
    mix = lambda y: (1 - q) * phi(y, 0) + q * phi(y, 1)  # noqa: E731
    pts = [-mp.inf] + list(mp.linspace(-1, 2, 31)) + [mp.inf]
    remove = mp.quad(lambda y: phi(y, 0) * (mix(y) / phi(y, 0)) ** alpha, pts)
    add = mp.quad(lambda y: mix(y) * (phi(y, 0) / mix(y)) ** alpha, pts)
    return float(mp.log(remove) / (alpha - 1)), float(mp.log(add) / (alpha - 1))


@pytest.mark.parametrize("q,b", [(0.01, 0.05), (0.1, 0.1), (0.3, 1.0), (0.9, 0.2)])
def test_low_order_bound_dominates_both_directions_laplace(q, b):
    """low_order_subsampled_rdp with the pair's own D_α (Mironov's closed form) bounds both
    directions computed by mpmath, and is nearly exact with little noise near α = 2."""
    alphas = np.array([1.05, 1.3, 1.7, 1.99, 2.0])
    bound = low_order_subsampled_rdp(alphas, laplace_rdp(alphas, b), sample_rate=q)
    with mp.workdps(30):
        ref = np.array([_mp_directions(float(a), q, b) for a in alphas]).max(axis=1)
    assert np.all(bound >= ref * (1 - 1e-12))
    if b <= 0.1:
        assert np.all(bound[2:] <= ref[2:] * 1.01)


@pytest.mark.parametrize("q,sigma", [(0.01, 0.1), (0.3, 0.1), (0.03, 0.3), (0.2, 4.6), (0.5, 1.0)])
def test_low_order_bound_dominates_the_sampled_gaussian(q, sigma):
    """Against mpmath quadrature of the subsampled Gaussian, the pair with D_α = α/(2σ²); with
    little noise the bound is tight, and lmodp's sampled-Gaussian RDP uses it there."""
    alphas = np.array([1.05, 1.2, 1.5, 1.9])
    bound = low_order_subsampled_rdp(alphas, alphas / (2 * sigma**2), sample_rate=q)
    with mp.workdps(40):
        ref = np.array([_mp_gaussian_directions(float(a), q, sigma) for a in alphas]).max(axis=1)
    assert np.all(bound >= ref * (1 - 1e-12))
    sampled = sampled_gaussian_rdp(alphas, noise_multiplier=sigma, sample_rate=q)
    assert np.all(sampled >= ref * (1 - 1e-9)) and np.all(sampled <= bound)
    if sigma <= 0.1:
        assert np.all(sampled[1:] <= ref[1:] * 1.01)


@pytest.mark.parametrize("q,b", [(0.01, 0.05), (0.3, 1.0), (0.9, 0.2)])
def test_interpolated_bound_dominates_both_directions(q, b):
    integers = np.arange(2.0, 10.0)
    at_integers = general_subsampled_rdp(integers, laplace_table(9, b), sample_rate=q)
    fractional = np.array([2.5, 3.3, 7.9])
    bound = interpolated_subsampled_rdp(fractional, integers, at_integers)
    with mp.workdps(30):
        ref = np.array([_mp_directions(float(a), q, b) for a in fractional]).max(axis=1)
    assert np.all(bound >= ref * (1 - 1e-12))
    assert np.all(bound <= ref * 1.11)
    with pytest.raises(ValueError, match="floor and ceil"):
        interpolated_subsampled_rdp([10.5], integers, at_integers)


def test_low_order_bound_rejects_orders_above_two():
    with pytest.raises(ValueError, match=r"\(1, 2\]"):
        low_order_subsampled_rdp([2.5], [1.0], sample_rate=0.1)


def test_gaussian_dispatch_uses_noise_multiplier_for_both_geometries():
    orders = np.array([1.5, 2.0, 16.0])
    expected = sampled_gaussian_rdp(orders, noise_multiplier=2.0, sample_rate=0.1)
    for geometry in ("scalar", "l2"):
        got = poisson_subsampled_rdp(Gaussian(4.0), orders, sample_rate=0.1, sensitivity=2.0, geometry=geometry)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(sample_rate=0.0), "sample_rate"),
        (dict(sample_rate=1.5), "sample_rate"),
        (dict(sensitivity=-1.0), "sensitivity"),
        (dict(sensitivity=math.nan), "sensitivity"),
        (dict(geometry="l1"), "geometry"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = dict(sample_rate=0.1, sensitivity=1.0, geometry="l2") | kwargs
    with pytest.raises(ValueError, match=match):
        poisson_subsampled_rdp(Gaussian(1.0), [2.0], **args)


def test_binomial_bounds_reject_fractional_orders_and_short_tables():
    with pytest.raises(ValueError, match="integers"):
        zhu_wang_general_rdp([2.5], laplace_table(4, 1.0), sample_rate=0.1)
    with pytest.raises(ValueError, match="base_rdp"):
        binomial_remove_rdp([8], laplace_table(4, 1.0), sample_rate=0.1)
    with pytest.raises(ValueError, match="orders"):
        sampled_gaussian_rdp([1.0], noise_multiplier=1.0, sample_rate=0.1)


def test_l2_path_evaluates_the_bound_once_and_fills_by_monotonicity(monkeypatch):
    """Plumbing of the l2 path with a stand-in L2 bound (Mironov's Laplace curve): one call at
    2..256 and the requested integers above, one at the orders below 2; other integers take the
    next evaluated order's value, fractional orders above 2 are interpolated between integers and
    those below 2 get the low-order bound capped by the value at 2."""
    import types

    from lmodp.accounting import DEFAULT_ORDERS
    from lmodp.accounting.rdp import subsampling as module

    calls = []

    def fake_l2_bound(mechanism, orders, *, l2_sensitivity, l2_tolerance):
        calls.append(np.asarray(orders))
        return laplace_rdp(orders, mechanism.scale, l2_sensitivity)

    monkeypatch.setattr(module, "divergence", types.SimpleNamespace(l2_renyi_bound=fake_l2_bound))
    got = poisson_subsampled_rdp(Laplace(2.0), DEFAULT_ORDERS, sample_rate=0.02, sensitivity=1.0, geometry="l2")
    assert len(calls) == 2
    low = DEFAULT_ORDERS[DEFAULT_ORDERS < 2]
    np.testing.assert_array_equal(calls[0], np.concatenate([np.arange(2, 257), [320, 384, 512, 768, 1024]]))
    np.testing.assert_array_equal(calls[1], low)
    table = np.zeros(1025)
    j = np.arange(2, 1025)
    table[2:] = laplace_rdp(np.where(j <= 256, j, np.array([320, 384, 512, 768, 1024])[np.searchsorted([320, 384, 512, 768, 1024], j)]), 2.0)
    integers = DEFAULT_ORDERS == np.floor(DEFAULT_ORDERS)
    at_integers = general_subsampled_rdp(DEFAULT_ORDERS[integers], table, sample_rate=0.02)
    np.testing.assert_array_equal(got[integers], at_integers)
    high = ~integers & (DEFAULT_ORDERS > 2)
    np.testing.assert_allclose(
        got[high], interpolated_subsampled_rdp(DEFAULT_ORDERS[high], DEFAULT_ORDERS[integers], at_integers), rtol=1e-15
    )
    low = DEFAULT_ORDERS < 2
    expected_low = low_order_subsampled_rdp(DEFAULT_ORDERS[low], laplace_rdp(DEFAULT_ORDERS[low], 2.0), sample_rate=0.02)
    np.testing.assert_array_equal(got[low], np.minimum(expected_low, at_integers[0]))


def test_l2_little_noise_takes_orders_below_two():
    """With little noise the optimum is below order 2: the l2 bound must use those orders
    (integer orders alone are ~40x looser here) and stay above an achieved value, the
    one-coordinate (scalar) Laplace PLD of dp-accounting."""
    from lmodp.accounting import DEFAULT_ORDERS, RDPAccountant

    q, steps, delta = 0.01, 1000, 1e-5
    every, integers = RDPAccountant(), RDPAccountant(orders=DEFAULT_ORDERS[DEFAULT_ORDERS == np.floor(DEFAULT_ORDERS)])
    for acc in (every, integers):
        acc.step(mechanism=Laplace(0.1), sample_rate=q, steps=steps, geometry="l2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps, order = every.get_epsilon_and_order(delta)
        eps_integers = integers.get_epsilon(delta)
    assert order < 2 and eps * 10 < eps_integers
    dp_accounting = pytest.importorskip("dp_accounting")
    reference = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)
    reference.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.LaplaceDpEvent(0.1)), steps)
    assert reference.get_epsilon(delta) <= eps
