"""Searches at large budgets: bounded cost, sound numbers, and progress that shows when stderr is
not a terminal (issue 22, item 3)."""

from __future__ import annotations

import io
import logging
import time

import pytest

import lmodp
from lmodp import Gaussian, Laplace, RunSpec
from lmodp._progress import LineProgress
from lmodp.cli import main
from lmodp.search import calibrate_gaussian, search
from lmodp.search.calibrate import calibrate_confirmed
from lmodp.search.families import lmo_from_shape
from lmodp.search.oracle import CALIBRATION_GRID_POINTS, SHAPE_GRID_POINTS, EpsilonOracle, accountant_epsilon

RUN = RunSpec(sample_rate=0.01, steps=100, delta=1e-5, geometry="scalar")
SEARCH = ["search", "--delta", "1e-5", "--sample-rate", "0.01", "--steps", "100", "--geometry", "scalar"]


@pytest.mark.parametrize(
    "mechanism",
    [Gaussian(0.35), Laplace(0.05), Laplace(0.86), lmo_from_shape([0.3, 0.5, 0.5, 0.5]).scaled(0.15)],
    ids=["gaussian", "laplace-eps100", "laplace-eps1", "lmo"],
)
@pytest.mark.parametrize("points, slack", [(CALIBRATION_GRID_POINTS, 1e-4), (SHAPE_GRID_POINTS, 1e-3)])
def test_the_capped_pld_of_the_search_is_sound_and_close(mechanism, points, slack):
    """The capped PLD is an upper bound of the default one (nested grids), close to it (the
    calibrations' grid within 1e-4 relative, the shapes' grid, which only ranks, within 1e-3)."""
    fine = lmodp.epsilon(mechanism, RUN, accountant="pld")
    capped = accountant_epsilon(RUN, accountant="auto", grid_points=points)(mechanism)
    assert fine <= capped <= fine * (1 + slack)


def test_calibrate_confirmed_reports_the_full_accountant_and_meets_the_target():
    full = EpsilonOracle(accountant_epsilon(RUN, accountant="pld"))
    fast = EpsilonOracle(accountant_epsilon(RUN, accountant="pld", grid_points=CALIBRATION_GRID_POINTS))
    mechanism, spent, factor = calibrate_confirmed(fast, full.fresh, Gaussian(1.0), 5.0, tolerance=1e-4)
    assert spent == lmodp.epsilon(mechanism, RUN, accountant="pld") <= 5.0
    assert mechanism == Gaussian(factor)
    # a fast bound that is *below* the full one: the calibration is finished with the full one
    optimistic = EpsilonOracle(lambda m: 0.999 * full(m))
    mechanism, spent, _ = calibrate_confirmed(optimistic, full, Gaussian(1.0), 5.0, tolerance=1e-4)
    assert spent == full(mechanism) <= 5.0


@pytest.mark.parametrize("target", [1000.0])
def test_a_large_budget_search_ends_soon_and_meets_the_budget(target):
    started = time.perf_counter()
    result = search(target, RUN, maxiter=1, popsize=1, polish_evaluations=2)
    assert time.perf_counter() - started < 60.0  # it did not end in 5 minutes before
    assert result.epsilon <= target
    assert result.epsilon == lmodp.epsilon(result.mechanism, RUN, accountant="auto")
    assert result.baseline_epsilon == lmodp.epsilon(result.baseline, RUN, accountant="auto") <= target


def test_calibration_at_a_large_budget_is_fast():
    started = time.perf_counter()
    sigma = calibrate_gaussian(300.0, RUN)
    assert time.perf_counter() - started < 30.0
    assert lmodp.epsilon(Gaussian(sigma), RUN, accountant="pld") <= 300.0 < lmodp.epsilon(Gaussian(sigma / 1.001), RUN, accountant="pld")


def test_line_progress_writes_plain_lines():
    out = io.StringIO()
    with LineProgress(total=3, desc="lmodp demo", unit="task", every=0, stream=out) as bar:
        for step in ("calibrating", "searching", "drawing"):
            bar.set_postfix_str(step)
            bar.update()
    text = out.getvalue()
    assert "\r" not in text
    assert "lmodp demo: 0/3 task" in text and "calibrating" in text and "drawing" in text and "3/3 task" in text
    quiet = io.StringIO()
    with LineProgress(total=3, desc="x", every=3600, stream=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""  # a short run writes nothing


def test_search_progress_prints_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr("lmodp._progress.LINE_INTERVAL", 0.0)
    assert main([*SEARCH, "--target-epsilon", "5", "--maxiter", "1", "--popsize", "1"]) == 0
    err = capsys.readouterr().err
    assert "LMO search: 1/2 gen" in err and "\r" not in err
    assert main([*SEARCH, "--target-epsilon", "5", "--maxiter", "1", "--popsize", "1", "--quiet"]) == 0
    assert "LMO search" not in capsys.readouterr().err


def test_verbose_after_the_subcommand_logs_the_stages(capsys, caplog):
    with caplog.at_level(logging.INFO, logger="lmodp"):
        assert main([*SEARCH, "--target-epsilon", "5", "--maxiter", "1", "--popsize", "1", "-q", "-v"]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("Gaussian baseline calibrated" in m for m in messages)
    assert any("generation 1 of 1 done" in m for m in messages)
