"""``lmodp demo`` end to end on reduced settings (``--quick``), into a temporary folder."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("matplotlib")

from lmodp.cli import main  # noqa: E402
from lmodp.demo import PAPER_EPSILON_LABEL, QUICK, TABLE_HEADER  # noqa: E402

# The paper's published "overall ε" on SST-2 for its task1 sets (Yang et al. 2024).
PUBLISHED = {0.3: 0.157, 0.7: 0.261, 2.0: 0.823, 3.0: 1.347}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "lmodp-demo"
    return out, main(["demo", "--quick", "--out", str(out), "--json"])


def test_exit_code_and_files(demo_run):
    out, code = demo_run
    assert code == 0
    for name in ("report.md", "report.html", "results.json"):
        assert (out / name).is_file()
    results = json.loads((out / "results.json").read_text())
    for file in results["figures"].values():
        assert (out / file).stat().st_size > 5_000
    report = (out / "report.md").read_text()
    assert PAPER_EPSILON_LABEL in report
    for file in results["figures"].values():
        assert f"]({file})" in report
    table = [line for line in report.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(results["rows"])
    for line in table:  # "E|Y|" in a header must not split a Markdown cell
        assert len(re.split(r"(?<!\\)\|", line)) == len(TABLE_HEADER) + 2


def test_numbers(demo_run):
    out, _ = demo_run
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {(r["budget"], r["geometry"]) for r in rows} == {(b, g) for b in QUICK.budgets for g in QUICK.geometries}
    for r in rows:
        # calibrated mechanisms meet the budget (one-sided), soundly
        assert r["gaussian_epsilon"] <= r["budget"]
        assert r["rescaled_lmo_epsilon"] <= r["budget"]
        assert r["gaussian_mean_abs"] > 0 and r["rescaled_lmo_mean_abs"] > 0
        assert r["paper_epsilon"] == pytest.approx(PUBLISHED[r["budget"]], abs=6e-4)
        best = min(v for v in (r["rescaled_lmo_mean_abs"], r["searched_lmo_mean_abs"]) if v is not None)
        assert r["lmo_over_gaussian"] == pytest.approx(best / r["gaussian_mean_abs"])
        if r["searched_lmo_epsilon"] is not None:
            assert r["searched_lmo_epsilon"] <= r["budget"]
    for b in QUICK.budgets:
        by_geometry = {r["geometry"]: r for r in rows if r["budget"] == b}
        # the l2 geometry never needs less noise than the scalar one
        assert by_geometry["l2"]["released_epsilon"] >= by_geometry["scalar"]["released_epsilon"] * (1 - 1e-9)


def test_text_table(tmp_path):
    """The plain-text summary table (tiny run: one budget, scalar geometry only)."""
    from dataclasses import replace

    from lmodp.demo import run_demo, text_table

    result = run_demo(tmp_path, replace(QUICK, budgets=(3.0,), geometries=("scalar",), density_samples=2_000))
    table = text_table(result)
    assert all(h in table for h in TABLE_HEADER)
    assert len(table.splitlines()) == 3
