"""The sampled-Gaussian RDP against opacus, dp-accounting and an mpmath quadrature."""

from __future__ import annotations

import warnings

import mpmath as mp
import numpy as np
import pytest

dp_accounting = pytest.importorskip("dp_accounting")
opacus_rdp = pytest.importorskip("opacus.accountants.analysis.rdp")
from dp_accounting.rdp import rdp_privacy_accountant as dp_rdp  # noqa: E402

from lmodp import Gaussian  # noqa: E402
from lmodp.accounting import RDPAccountant, rdp_to_epsilon, sampled_gaussian_rdp  # noqa: E402

INTEGER_ORDERS = [2, 3, 4, 5, 8, 12, 16, 32, 64, 128, 256]
FRACTIONAL_ORDERS = [1.05, 1.1, 1.5, 1.75, 2.5, 3.3, 4.5, 7.9, 9.9]
GRID = [(s, q) for s in (0.7, 1.0, 2.0, 5.0) for q in (0.01, 0.0304, 0.1, 0.5)]


def _dp_accounting_rdp(q: float, sigma: float, orders) -> np.ndarray:
    return dp_rdp._compute_rdp_poisson_subsampled_gaussian(q, sigma, np.asarray(orders, dtype=float))


@pytest.mark.parametrize("sigma,q", GRID)
def test_integer_orders_equal_opacus_and_dp_accounting(sigma, q):
    ours = sampled_gaussian_rdp(INTEGER_ORDERS, noise_multiplier=sigma, sample_rate=q)
    theirs_opacus = np.asarray(opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=INTEGER_ORDERS))
    theirs_dp = _dp_accounting_rdp(q, sigma, INTEGER_ORDERS)
    np.testing.assert_allclose(ours, theirs_opacus, rtol=1e-9, atol=0)
    np.testing.assert_allclose(ours, theirs_dp, rtol=1e-9, atol=0)


@pytest.mark.parametrize("sigma,q", GRID)
def test_fractional_orders_equal_opacus(sigma, q):
    """opacus stops its series at terms below e^-30 ≈ 1e-13 in absolute terms, so its log A_α
    is only accurate to ~1e-13 absolute, which is more than 1e-9 relative when A_α − 1 is small
    (the mpmath test below shows lmodp within 1e-9 of the quadrature where opacus is ~1e-8 off).
    Compared: log A_α = (α−1)·ε to 1e-9 relative or 1e-12 absolute."""
    ours = sampled_gaussian_rdp(FRACTIONAL_ORDERS, noise_multiplier=sigma, sample_rate=q)
    theirs = np.asarray(opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=FRACTIONAL_ORDERS))
    log_a = np.asarray(FRACTIONAL_ORDERS) - 1.0
    np.testing.assert_allclose(ours * log_a, theirs * log_a, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sigma,q", [(1.0, 0.1), (2.0, 0.5), (5.0, 0.0304)])
def test_fractional_orders_not_above_dp_accounting(sigma, q):
    """dp-accounting 0.6 sums |terms| of the alternating series (an upper bound): ours is <= it."""
    ours = sampled_gaussian_rdp(FRACTIONAL_ORDERS, noise_multiplier=sigma, sample_rate=q)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _dp_accounting_rdp(q, sigma, FRACTIONAL_ORDERS)
    finite = np.isfinite(theirs)
    assert np.all(ours[finite] <= theirs[finite] * (1 + 1e-9))


def _mp_log_a(alpha: float, q: float, sigma: float) -> mp.mpf:
    """A_α = E_{z~N(0,σ²)}[((1−q) + q e^{(2z−1)/(2σ²)})^α] by mpmath quadrature."""
    f = lambda z: mp.npdf(z, 0, sigma) * ((1 - q) + q * mp.exp((2 * z - 1) / (2 * sigma * sigma))) ** alpha  # noqa: E731
    return mp.log(mp.quad(f, [-mp.inf, -10 * sigma, 0, 0.5, 10 * sigma, mp.inf]))


@pytest.mark.parametrize("sigma,q,alpha", [(5.0, 0.5, 1.05), (20.0, 0.5, 1.05), (1.0, 0.01, 1.5), (2.0, 0.3, 7.7), (0.7, 0.01, 1.1), (1.0, 0.01, 1.05)])
def test_fractional_orders_against_mpmath(sigma, q, alpha):
    with mp.workdps(40):
        ref = float(_mp_log_a(alpha, q, sigma) / (alpha - 1))
    ours = sampled_gaussian_rdp([alpha], noise_multiplier=sigma, sample_rate=q)[0]
    assert ours == pytest.approx(ref, rel=1e-9)


def test_full_sample_is_plain_gaussian():
    orders = np.array([1.5, 2.0, 10.0])
    np.testing.assert_allclose(sampled_gaussian_rdp(orders, noise_multiplier=2.0, sample_rate=1.0), orders / 8.0)


@pytest.mark.parametrize("sigma,q,steps,delta", [(1.0, 0.01, 1000, 1e-5), (0.8, 0.0304, 192, 1e-10), (3.0, 0.1, 50, 1e-6), (2.0, 0.5, 10, 1e-5)])
def test_epsilon_not_above_opacus_and_dp_accounting(sigma, q, steps, delta):
    acc = RDPAccountant()
    acc.step(mechanism=Gaussian(sigma), sample_rate=q, steps=steps, geometry="l2")
    ours = acc.get_epsilon(delta)

    opacus_orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    rdp = np.asarray(opacus_rdp.compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=opacus_orders))
    theirs_opacus, _ = opacus_rdp.get_privacy_spent(orders=opacus_orders, rdp=rdp, delta=delta)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dp_acc = dp_rdp.RdpAccountant()
        dp_acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
        theirs_dp = dp_acc.get_epsilon(delta)

    assert ours <= theirs_opacus * (1 + 1e-9)
    assert ours <= theirs_dp * (1 + 1e-9)
    # Same orders, same curve: the conversions agree.
    same, _ = rdp_to_epsilon(opacus_orders, sampled_gaussian_rdp(opacus_orders, noise_multiplier=sigma, sample_rate=q) * steps, delta=delta)
    assert same == pytest.approx(theirs_opacus, rel=1e-9)
