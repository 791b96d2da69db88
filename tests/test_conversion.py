"""RDP → (ε, δ) conversion: against dp-accounting/opacus, the exact Gaussian, and edge cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import special

from lmodp.accounting import DEFAULT_ORDERS, OrderGridEdgeWarning, rdp_to_delta, rdp_to_epsilon

ORDERS = np.concatenate([np.arange(1.1, 11.0, 0.1), np.arange(12, 257)])


def gaussian_curve(sigma: float, orders=ORDERS) -> np.ndarray:
    return np.asarray(orders) / (2 * sigma**2)


def exact_gaussian_delta(eps: float, sigma: float) -> float:
    """Balle & Wang (2018), Theorem 8: the exact δ(ε) of the Gaussian mechanism, sensitivity 1."""
    return float(special.ndtr(-eps * sigma + 1 / (2 * sigma)) - math.exp(eps) * special.ndtr(-eps * sigma - 1 / (2 * sigma)))


@pytest.mark.parametrize("sigma,delta", [(0.5, 1e-5), (1.0, 1e-5), (3.0, 1e-10), (10.0, 1e-6)])
def test_epsilon_matches_dp_accounting_and_opacus(sigma, delta):
    dp_rdp = pytest.importorskip("dp_accounting.rdp.rdp_privacy_accountant")
    opacus_rdp = pytest.importorskip("opacus.accountants.analysis.rdp")
    rdp = gaussian_curve(sigma) * 7
    ours, order = rdp_to_epsilon(ORDERS, rdp, delta=delta)
    theirs_dp, order_dp = dp_rdp.compute_epsilon(ORDERS, rdp, delta)
    theirs_opacus, _ = opacus_rdp.get_privacy_spent(orders=ORDERS, rdp=rdp, delta=delta)
    assert ours == pytest.approx(theirs_dp, rel=1e-12)
    assert ours == pytest.approx(theirs_opacus, rel=1e-12)
    assert order == order_dp


@pytest.mark.parametrize("sigma,eps", [(0.8, 1.0), (1.0, 0.5), (2.0, 2.0), (5.0, 0.3)])
def test_delta_matches_dp_accounting_and_bounds_exact_gaussian(sigma, eps):
    dp_rdp = pytest.importorskip("dp_accounting.rdp.rdp_privacy_accountant")
    rdp = gaussian_curve(sigma)
    ours, _ = rdp_to_delta(ORDERS, rdp, epsilon=eps)
    theirs, _ = dp_rdp.compute_delta(ORDERS, rdp, eps)
    assert ours == pytest.approx(theirs, rel=1e-10)
    assert ours >= exact_gaussian_delta(eps, sigma)


@pytest.mark.parametrize("sigma,delta", [(0.8, 1e-5), (2.0, 1e-8), (5.0, 1e-3)])
def test_epsilon_bounds_exact_gaussian_and_round_trips(sigma, delta):
    rdp = gaussian_curve(sigma)
    eps, _ = rdp_to_epsilon(ORDERS, rdp, delta=delta)
    assert exact_gaussian_delta(eps, sigma) <= delta
    back, _ = rdp_to_delta(ORDERS, rdp, epsilon=eps)
    assert back <= delta * (1 + 1e-9)


def test_infinite_orders_are_ignored():
    rdp = gaussian_curve(1.0)
    with_inf = rdp.copy()
    with_inf[ORDERS > 50] = np.inf
    finite = ORDERS <= 50
    assert rdp_to_epsilon(ORDERS, with_inf, delta=1e-5) == rdp_to_epsilon(ORDERS[finite], rdp[finite], delta=1e-5)


def test_all_infinite():
    assert rdp_to_epsilon([2.0, 3.0], [np.inf, np.inf], delta=1e-5)[0] == math.inf
    assert rdp_to_delta([2.0, 3.0], [np.inf, np.inf], epsilon=1.0)[0] == 1.0


def test_edge_warnings():
    tiny = gaussian_curve(1e3, DEFAULT_ORDERS) * 1e-6
    with pytest.warns(OrderGridEdgeWarning, match="largest"):
        rdp_to_epsilon(DEFAULT_ORDERS, gaussian_curve(300.0, DEFAULT_ORDERS), delta=1e-10)
    with pytest.warns(OrderGridEdgeWarning, match="smallest"):
        rdp_to_epsilon(DEFAULT_ORDERS, gaussian_curve(0.05, DEFAULT_ORDERS), delta=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rdp_to_epsilon(DEFAULT_ORDERS, gaussian_curve(1.0, DEFAULT_ORDERS), delta=1e-5)
        assert rdp_to_epsilon(DEFAULT_ORDERS, tiny, delta=1e-5)[0] == 0.0


def test_delta_is_capped_and_zero_epsilon_allowed():
    with pytest.warns(OrderGridEdgeWarning):
        delta, _ = rdp_to_delta(ORDERS, gaussian_curve(0.01), epsilon=0.0)
    assert 0.0 < delta <= 1.0
    assert rdp_to_delta(ORDERS, np.zeros_like(ORDERS), epsilon=0.0)[0] == 0.0


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, math.nan, 2.0])
def test_invalid_delta(delta):
    with pytest.raises(ValueError, match="delta"):
        rdp_to_epsilon(ORDERS, gaussian_curve(1.0), delta=delta)


@pytest.mark.parametrize("epsilon", [-0.1, math.nan, math.inf])
def test_invalid_epsilon(epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        rdp_to_delta(ORDERS, gaussian_curve(1.0), epsilon=epsilon)


def test_invalid_curves():
    with pytest.raises(ValueError, match="same length"):
        rdp_to_epsilon([2.0, 3.0], [0.1], delta=1e-5)
    with pytest.raises(ValueError, match="rdp"):
        rdp_to_epsilon([2.0, 3.0], [0.1, math.nan], delta=1e-5)
    with pytest.raises(ValueError, match="rdp"):
        rdp_to_epsilon([2.0, 3.0], [0.1, -0.2], delta=1e-5)
    with pytest.raises(ValueError, match="orders"):
        rdp_to_epsilon([1.0, 3.0], [0.1, 0.2], delta=1e-5)
