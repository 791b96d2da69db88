"""``lmodp demo`` end to end on reduced settings (``--quick``), into a temporary folder."""

from __future__ import annotations

import io
import json
import re
import sys

import pytest

pytest.importorskip("matplotlib")

from lmodp.cli import main  # noqa: E402
from lmodp.paper.demo import PAPER_EPSILON_LABEL, QUICK  # noqa: E402
from lmodp.paper.demo_report import TABLE_HEADER  # noqa: E402

# The paper's published "overall ε" on SST-2 for its task1 sets (Yang et al. 2024).
PUBLISHED = {0.3: 0.157, 0.7: 0.261, 2.0: 0.823, 3.0: 1.347}


class Terminal(io.StringIO):
    """A stderr that says it is a terminal (tqdm shows its bar only on one)."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "lmodp-demo"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stderr", Terminal())
        code = main(["demo", "--quick", "--out", str(out), "--json"])
        progress = sys.stderr.getvalue()
    return out, code, progress


def test_progress_bar_on_a_terminal(demo_run):
    _, _, progress = demo_run
    assert "lmodp demo" in progress and "100%" in progress


def test_budget_without_a_released_set_fails_at_once(capsys, tmp_path):
    assert main(["demo", "--budgets", "0.5", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[0.3, 0.7, 2.0, 3.0]" in err and "got 0.5" in err


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_turns_the_progress_bar_off(tmp_path, monkeypatch, capsys, quiet):
    import lmodp.paper.demo_report

    asked = {}

    def record(out, settings, *, progress):
        asked["progress"] = progress
        raise ValueError("stopped by the test")

    monkeypatch.setattr(lmodp.paper.demo_report, "run_demo", record)
    assert main(["demo", "--out", str(tmp_path / "d"), *(["--quiet"] if quiet else [])]) == 2
    assert asked == {"progress": not quiet}


def test_exit_code_and_files(demo_run):
    out, code, _ = demo_run
    assert code == 0
    for name in ("report.md", "report.html", "results.json"):
        assert (out / name).is_file()
    results = json.loads((out / "results.json").read_text())
    for file in results["figures"].values():
        assert (out / file).stat().st_size > 5_000
    report = (out / "report.md").read_text()
    assert PAPER_EPSILON_LABEL in report
    for number, file in enumerate(results["figures"].values(), start=1):
        assert f"]({file})" in report
        assert f"*Figure {number}. " in report  # every figure has a caption
    assert "Figure 1. " in (out / "report.html").read_text()
    assert "; — where not searched" not in report  # the old garbled sentence
    assert "(run in the scalar geometry only: the l2 rows show a dash)" in report
    table = [line for line in report.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(results["rows"])
    for line in table:  # "E|Y|" in a header must not split a Markdown cell
        assert len(re.split(r"(?<!\\)\|", line)) == len(TABLE_HEADER) + 2


def test_numbers(demo_run):
    out, _, _ = demo_run
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {(r["budget"], r["geometry"]) for r in rows} == {(b, g) for b in QUICK.budgets for g in QUICK.geometries}
    for r in rows:
        # calibrated mechanisms meet the budget (one-sided), soundly
        assert r["gaussian_epsilon"] <= r["budget"]
        assert r["rescaled_lmo_epsilon"] <= r["budget"]
        assert r["gaussian_mean_abs"] > 0 and r["rescaled_lmo_mean_abs"] > 0
        assert r["paper_epsilon"] == pytest.approx(PUBLISHED[r["budget"]], abs=6e-4)
        best = min(v for v in (r["laplace_mean_abs"], r["rescaled_lmo_mean_abs"], r["searched_lmo_mean_abs"]) if v is not None)
        assert r["lmo_over_gaussian"] == pytest.approx(best / r["gaussian_mean_abs"])
        # "best LMO" never names a shape with more noise than plain Laplace (an LMO too)
        assert r["best_lmo"] == "plain Laplace" or best < r["laplace_mean_abs"]
        if r["searched_lmo_epsilon"] is not None:
            assert r["searched_lmo_epsilon"] <= r["budget"]
        # the tightest sound accountant, named per row
        assert r["gaussian_accountant"] == "pld"
        assert r["accountant"] == ("pld" if r["geometry"] == "scalar" else "rdp")
    for b in QUICK.budgets:
        by_geometry = {r["geometry"]: r for r in rows if r["budget"] == b}
        # the l2 geometry never needs less noise than the scalar one
        assert by_geometry["l2"]["released_epsilon"] >= by_geometry["scalar"]["released_epsilon"] * (1 - 1e-9)


def test_text_table(tmp_path, monkeypatch):
    """The plain-text summary table (tiny run: one budget, scalar geometry only)."""
    from dataclasses import replace

    from lmodp.paper.demo_report import run_demo, text_table

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    result = run_demo(tmp_path, replace(QUICK, budgets=(3.0,), geometries=("scalar",), search=False, density_samples=2_000))
    assert terminal.getvalue() == ""  # progress is off unless asked for, even on a terminal
    table = text_table(result)
    assert all(h in table for h in TABLE_HEADER)
    assert len(table.splitlines()) == 3


def test_best_lmo_is_reported_as_plain_laplace(demo_run):
    """Every searched row of the demo is won by plain Laplace: results.json stores it as a Laplace
    and the report's "best LMO" column says so (not an LMO with a point-mass ω)."""
    out, _, _ = demo_run
    results = json.loads((out / "results.json").read_text())
    searched = [r for r in results["rows"] if r["searched_lmo"] is not None]
    assert searched
    for r in searched:
        assert r["searched_lmo"]["family"] == "laplace" and r["searched_lmo_is_laplace"] is True
        assert r["best_lmo"] == "plain Laplace"
        assert r["searched_lmo_mean_abs"] == pytest.approx(r["laplace_mean_abs"], rel=1e-12)
    report = (out / "report.md").read_text()
    assert report.count("| plain Laplace |") == sum(r["best_lmo"] == "plain Laplace" for r in results["rows"])
    assert "no LMO shape had less noise than plain Laplace" in report
    assert "| PLD |" in report and "| RDP (Gaussian: PLD) |" in report


def test_steps_are_printed_when_stderr_is_not_a_terminal(tmp_path, monkeypatch):
    """Redirected, the demo prints one plain line per step (no carriage returns)."""
    from dataclasses import replace

    import lmodp.paper.demo_report
    from lmodp.paper.demo_report import run_demo

    def no_figures(out, settings, rows, cal, bar):  # the figures are tested above; here only the steps
        bar.set_postfix_str("drawing the figures")
        return {}

    monkeypatch.setattr(lmodp.paper.demo_report, "_figures", no_figures)
    redirected = io.StringIO()
    monkeypatch.setattr(sys, "stderr", redirected)
    run_demo(tmp_path, replace(QUICK, budgets=(3.0,), geometries=("scalar",), search=False), progress=True)
    lines = redirected.getvalue().splitlines()
    assert "\r" not in redirected.getvalue()
    assert [line.split(", ", 1)[1] for line in lines[:3]] == [f"calibrating {k} to ε=3 (scalar)" for k in ("Gaussian", "Laplace", "LMO")]
    assert "drawing the figures" in lines[-2] and lines[-1].endswith("done")
