"""lmodp.paper.pipeline reproduces the LMO-DP paper's own (unsound) numbers, with a warning."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmodp.paper.pipeline import (
    PAPER_MANAGER_ORDERS,
    PaperNumberWarning,
    paper_numbers,
    paper_overall_epsilon,
    paper_rdp_curve,
    paper_step_epsilon,
)
from lmodp.paper.params import lmo_from_paper_json, paper_parameters

SST2_Q = 2048 / 67350


@pytest.mark.parametrize("eps,expected", [(0.3, 0.157), (0.7, 0.261), (2, 0.823), (3, 1.347)])
def test_task1_overall_epsilon_matches_the_paper(eps, expected):
    with pytest.warns(PaperNumberWarning):
        numbers = paper_numbers(eps, "task1", dataset="SST-2")
    assert round(numbers["overall_epsilon"], 3) == expected


def test_table3_file_carries_the_authors_outputs():
    data = paper_parameters(5, "table3")
    with pytest.warns(PaperNumberWarning):
        step_eps, order = paper_step_epsilon(data)
    assert step_eps == pytest.approx(data["eps"], abs=1e-9)
    assert order == data["order"]
    with pytest.warns(PaperNumberWarning):
        overall, _, _ = paper_overall_epsilon(5.0, sample_rate=SST2_Q, steps=192, orders=PAPER_MANAGER_ORDERS)
    assert overall == pytest.approx(data["overall_privacy"], rel=1e-10)


def _mgf(p, t):
    """M_ω(t) in exact arithmetic where finite (independent re-derivation, E_lambda as a rate)."""
    gamma = (1 - p["a1"] * t * p["G_theta"]) ** (-p["G_k"])
    expo = p["E_lambda"] / (p["E_lambda"] - p["a3"] * t)
    u = p["a4"] * t
    unif = (math.exp(u * p["U_b"]) - math.exp(u * p["U_a"])) / (u * (p["U_b"] - p["U_a"]))
    return gamma * expo * unif


def test_rdp_curve_inside_the_domain_is_the_mgf_formula():
    p = paper_parameters(0.3, "task1")  # domain: alpha - 1 < min(1/(a1 theta), lam/a3) = 20
    with pytest.warns(PaperNumberWarning):
        curve = paper_rdp_curve(p)
    for alpha in range(2, 21):
        ref = math.log((alpha * _mgf(p, alpha - 1) + (alpha - 1) * _mgf(p, -alpha)) / (2 * alpha - 1)) / (alpha - 1)
        assert curve[alpha - 2] == pytest.approx(ref, rel=1e-12)


def test_rdp_curve_outside_the_domain_reproduces_the_released_garbage():
    """Past the Gamma pole (α = 21) the Gamma factor is negative: NaN → inf up to the Exponential
    pole (α = 51); beyond it both factors are negative, the product positive, and the released code
    keeps a finite, meaningless value — which is where its per-step ε=0.29 comes from (order 128)."""
    p = paper_parameters(0.3, "task1")
    with pytest.warns(PaperNumberWarning):
        curve = paper_rdp_curve(p)
    assert np.all(np.isinf(curve[21 - 2 : 51 - 2 + 1]))
    assert np.all(np.isfinite(curve[52 - 2 :]))
    with pytest.warns(PaperNumberWarning):
        step_eps, order = paper_step_epsilon(p)
    assert order == 128
    assert step_eps == pytest.approx(0.2932, abs=1e-4)


def test_lmo_input_equals_paper_dict_input():
    p = paper_parameters(2, "task1")
    with pytest.warns(PaperNumberWarning):
        a = paper_rdp_curve(p)
    with pytest.warns(PaperNumberWarning):
        b = paper_rdp_curve(lmo_from_paper_json(p, exponential="rate"))
    np.testing.assert_array_equal(a, b)


def test_released_domain_check_rejects():
    p = dict(paper_parameters(0.3, "task1"), G_theta=20.0)  # a1·θ = 2 > 1: fails at alpha = 2
    with pytest.warns(PaperNumberWarning), pytest.raises(ValueError, match="domain check"):
        paper_rdp_curve(p)


def test_bad_arguments():
    with pytest.warns(PaperNumberWarning), pytest.raises(ValueError, match="dataset"):
        paper_numbers(0.3, dataset="IMDB")
    with pytest.warns(PaperNumberWarning), pytest.raises(ValueError, match="step_epsilon"):
        paper_overall_epsilon(0.0, sample_rate=0.1, steps=10)
