"""The statistics of the audits against independent references: exact binomial sums in mpmath for
Clopper–Pearson and for the one-run p-value, closed forms for the error-rate bound."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")  # lmodp.audit belongs to the train extra

from lmodp.audit.clopper_pearson import clopper_pearson_upper
from lmodp.audit.hypothesis_test import epsilon_from_error_rates, epsilon_lower_bound
from lmodp.audit.one_run import audit_scores, default_guesses, one_run_epsilon_lower, one_run_p_value


def binomial_tail(r: int, q, u: int):
    """P[Bin(r, q) >= u] summed exactly in mpmath (40 digits)."""
    with mpmath.workdps(40):
        q = mpmath.mpf(q)
        return mpmath.fsum(mpmath.binomial(r, j) * q**j * (1 - q) ** (r - j) for j in range(max(u, 0), r + 1))


def binomial_cdf(n: int, p, k: int):
    return 1 - binomial_tail(n, p, k + 1)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), frac=st.floats(0, 1), significance=st.sampled_from([0.001, 0.025, 0.05, 0.2]))
def test_clopper_pearson_upper_solves_its_definition(n, frac, significance):
    """P_{p_u}[Bin(n, p_u) <= k] = significance exactly (k < n), computed independently in mpmath."""
    k = int(frac * n)
    p_u = float(clopper_pearson_upper(k, n, significance=significance))
    if k == n:
        assert p_u == 1.0
        return
    assert float(binomial_cdf(n, p_u, k)) == pytest.approx(significance, rel=1e-8)
    assert k / n <= p_u <= 1.0


def test_clopper_pearson_is_vectorised_and_validates():
    got = clopper_pearson_upper(np.array([0, 5, 10]), 10, significance=0.05)
    assert got.shape == (3,) and got[2] == 1.0 and got[0] == pytest.approx(1 - 0.05 ** (1 / 10))
    for bad in [dict(successes=11, trials=10), dict(successes=-1, trials=10), dict(successes=1, trials=0), dict(successes=1.5, trials=3)]:
        with pytest.raises(ValueError):
            clopper_pearson_upper(bad["successes"], bad["trials"], significance=0.05)
    with pytest.raises(ValueError, match="significance"):
        clopper_pearson_upper(1, 10, significance=1.5)


@pytest.mark.parametrize("scale,delta", [(1.0, 1e-6), (0.5, 1e-3), (3.0, 0.01)])
def test_error_rates_of_the_laplace_tail_test_give_its_epsilon(scale, delta):
    """Laplace(b), neighbours 0 and 1, test z >= 1: α = e^{-1/b}/2, 1 − β = 1/2, so the bound is
    1/b + log(1 − 2δ) (closed form); the mirror test gives the same through the second inequality."""
    alpha = 0.5 * math.exp(-1.0 / scale)
    expected = 1.0 / scale + math.log1p(-2.0 * delta)
    assert float(epsilon_from_error_rates(alpha, 0.5, delta=delta)) == pytest.approx(expected, rel=1e-12)
    assert float(epsilon_from_error_rates(0.5, alpha, delta=delta)) == pytest.approx(expected, rel=1e-12)


def test_error_rates_edge_cases():
    assert float(epsilon_from_error_rates(0.5, 0.5, delta=1e-5)) == 0.0
    assert float(epsilon_from_error_rates(1.0, 1.0, delta=1e-5)) == 0.0
    assert float(epsilon_from_error_rates(0.0, 0.5, delta=1e-5)) == math.inf
    with pytest.raises(ValueError, match="false_positive_rate"):
        epsilon_from_error_rates(1.5, 0.1, delta=1e-5)
    with pytest.raises(ValueError, match="delta"):
        epsilon_from_error_rates(0.1, 0.1, delta=0.0)


def test_lower_bound_splits_the_confidence_over_the_two_rates():
    eps, alpha_u, beta_u = epsilon_lower_bound(30, 1000, 400, 1000, delta=1e-5, confidence=0.9)
    assert alpha_u == clopper_pearson_upper(30, 1000, significance=0.05)
    assert beta_u == clopper_pearson_upper(400, 1000, significance=0.05)
    assert eps == pytest.approx(math.log((1 - 1e-5 - beta_u) / alpha_u))
    assert eps < math.log(0.6 / 0.03)


def reference_p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """Steinke–Nasr–Jagielski's p-value written out from the theorem, summed in mpmath (40 digits)."""
    with mpmath.workdps(40):
        q = mpmath.e**eps / (1 + mpmath.e**eps)
        pmf = [mpmath.binomial(r, j) * q**j * (1 - q) ** (r - j) for j in range(r + 1)]
        f = [mpmath.fsum(pmf[max(v - i, 0) :]) for i in range(v + 1)]
        extra = max([(f[i] - f[0]) / i for i in range(1, v + 1)], default=0)
        return float(min(f[0] + 2 * m * delta * extra, 1))


@pytest.mark.parametrize("m,r,v,delta", [(100, 40, 35, 1e-5), (200, 100, 80, 1e-4), (50, 50, 50, 1e-3), (100, 20, 0, 1e-5)])
def test_one_run_p_value_matches_the_theorem(m, r, v, delta):
    for eps in (0.0, 0.5, 1.3, 4.0):
        assert one_run_p_value(m, r, v, epsilon=eps, delta=delta) == pytest.approx(reference_p_value(m, r, v, eps, delta), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("m,r,v,delta", [(100, 40, 35, 1e-5), (200, 100, 80, 1e-4), (60, 60, 60, 1e-3), (100, 20, 14, 1e-5)])
def test_one_run_bound_rejects_every_smaller_epsilon(m, r, v, delta):
    """p <= significance on a fine grid of [0, ε_lower] (the property the confidence rests on), and
    the bound is tight: p exceeds the significance just above it."""
    lower = one_run_epsilon_lower(m, r, v, delta=delta, significance=0.05)
    if lower == 0.0:
        assert reference_p_value(m, r, v, 0.0, delta) > 0.05 or reference_p_value(m, r, v, 5e-4, delta) > 0.05
        return
    for eps in np.linspace(0.0, lower, 15):
        assert reference_p_value(m, r, v, float(eps), delta) <= 0.05
    assert reference_p_value(m, r, v, lower + 0.01, delta) > 0.05


def test_one_run_bound_for_perfect_guesses_without_delta_term():
    """All r guesses right and δ negligible: the bound solves q^r = significance, q = e^ε/(1 + e^ε)."""
    r = 100
    q = 0.05 ** (1 / r)
    expected = math.log(q / (1 - q))
    assert one_run_epsilon_lower(r, r, r, delta=1e-15, significance=0.05) == pytest.approx(expected, abs=1e-3)


def test_audit_scores_guesses_top_and_bottom():
    included = np.array([True, False] * 50)
    perfect = audit_scores(np.where(included, 1.0, 0.0) + np.linspace(0, 0.1, 100), included, delta=1e-5)
    assert perfect.correct == perfect.guesses_in + perfect.guesses_out
    assert perfect.epsilon_lower > 1.5 and perfect.candidates == len(default_guesses(100))
    wrong = audit_scores(np.where(included, 0.0, 1.0), included, delta=1e-5, guesses=[(10, 10)])
    assert wrong.correct == 0 and wrong.epsilon_lower == 0.0
    assert default_guesses(10) == [(1, 1), (2, 2), (5, 5)]


def test_audit_scores_validates():
    inc = np.array([True, False, True])
    with pytest.raises(ValueError, match="same"):
        audit_scores([1.0, 2.0], inc, delta=1e-5)
    with pytest.raises(ValueError, match="boolean"):
        audit_scores([1.0, 2.0, 3.0], [1, 0, 1], delta=1e-5)
    with pytest.raises(ValueError, match="finite"):
        audit_scores([1.0, np.nan, 3.0], inc, delta=1e-5)
    with pytest.raises(ValueError, match="k_in"):
        audit_scores([1.0, 2.0, 3.0], inc, delta=1e-5, guesses=[(2, 2)])
    with pytest.raises(ValueError, match="confidence"):
        audit_scores([1.0, 2.0, 3.0], inc, delta=1e-5, confidence=1.0)
    with pytest.raises(ValueError, match="correct"):
        one_run_epsilon_lower(10, 5, 6, delta=1e-5, significance=0.05)
    with pytest.raises(ValueError, match="epsilon"):
        one_run_p_value(10, 5, 3, epsilon=-1.0, delta=1e-5)
