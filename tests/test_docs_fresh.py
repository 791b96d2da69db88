"""Generated pages cannot go stale: every generated results block in docs/ records the command
and the lmodp version that produced it, and the accounting-only cells it lists (sound ε, the
noise's E|Y|, variance and parameters, calibration claims) are recomputed here from the recorded
settings and compared with the page to its printed precision. A change to the accountants fails
this test until the pages are regenerated. Format: :mod:`lmodp._pages`.

A page opts in by carrying blocks; listing it in ``PAGES`` (with its number of blocks) makes
their presence required, so that a regenerated page cannot silently drop them.
"""

from __future__ import annotations

import functools
import json
import math
import re
import warnings
from decimal import Decimal
from pathlib import Path

import pytest

import lmodp
from lmodp import RunSpec, mechanism_from_dict
from lmodp._pages import CLOSE, KINDS, OPEN

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Pages that must carry generated blocks, and how many.
PAGES = {"search-results.md": 4, "audit.md": 3, "paper-audit.md": 2, "experiment.md": 1, "generation.md": 2}
# Relative slack for floating-point differences between machines (far below any printed digit).
_SLACK = 1e-9

_BLOCK = re.compile(re.escape(OPEN) + r"(\{.*?\}) -->\n(.*?)\n" + re.escape(CLOSE), re.S)


def blocks(page: Path) -> list[tuple[dict, str]]:
    """(record, table) of every generated block of ``page``."""
    return [(json.loads(record), table) for record, table in _BLOCK.findall(page.read_text())]


def table_cells(table: str) -> tuple[list[str], list[list[str]]]:
    """(header, data rows) of the one markdown table of a block, cells stripped."""
    lines = [line for line in table.splitlines() if line.startswith("|")]

    def cells(line: str) -> list[str]:
        return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]

    header, rows = cells(lines[0]), [cells(line) for line in lines[2:]]
    assert all(len(r) == len(header) for r in rows), "a row with a different number of cells"
    return header, rows


def shown_number(text: str) -> tuple[float, float]:
    """(value, half a unit of its last printed digit) of a cell such as ``0.29999``, ``1.2e-05``
    or ``**1.31**``; the first number in the cell."""
    match = re.search(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|∞", text)
    assert match, f"no number in the cell {text!r}"
    token = match.group(0).replace(",", "")
    if token in ("inf", "∞"):
        return math.inf, 0.0
    exponent = Decimal(token).as_tuple().exponent
    return float(token), 0.5 * 10.0 ** exponent


@functools.lru_cache(maxsize=None)
def recomputed(kind: str, arguments: str) -> float:
    """The value a check of ``kind`` describes, from its recorded arguments (JSON)."""
    a = json.loads(arguments)
    mechanism = mechanism_from_dict(a["mechanism"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an optimum at the order grid's edge only loosens a bound
        if kind == "epsilon":
            return lmodp.epsilon(mechanism, RunSpec(**a["run"]), accountant=a["accountant"])
        if kind == "mean_abs":
            return mechanism.mean_abs()
        if kind == "variance":
            return mechanism.variance()
        if kind == "parameter":
            return float(a["mechanism"][a["name"]])
    raise AssertionError(f"unknown kind {kind!r}")


def calibration_problem(check: dict) -> str | None:
    """Why a calibration claim no longer holds (None while it does): the mechanism must meet its
    target, and its shape scaled down by 1 + tolerance must not."""
    arguments = {k: check[k] for k in ("mechanism", "run", "accountant")}
    spent = recomputed("epsilon", json.dumps(arguments, sort_keys=True))
    if spent > check["target_epsilon"]:
        return f"calibrated noise {check['mechanism']} now spends {spent} > {check['target_epsilon']}"
    smaller = mechanism_from_dict(check["mechanism"]).scaled(1.0 / ((1.0 + check["tolerance"]) * (1.0 + _SLACK)))
    below = recomputed("epsilon", json.dumps({**arguments, "mechanism": smaller.to_dict()}, sort_keys=True))
    if below <= check["target_epsilon"]:
        return f"less noise ({smaller!r}) now meets the target {check['target_epsilon']} ({below})"
    return None


def stale(record: dict, table: str) -> list[str]:
    """What in one block no longer matches a recomputation (empty when it is fresh)."""
    header, rows = table_cells(table)
    problems = []
    for check in record["checks"]:
        if check["kind"] not in KINDS:
            problems.append(f"unknown kind {check['kind']!r}")
        elif check["kind"] == "calibrated":
            problems.append(calibration_problem(check))
        else:
            cell = rows[check["row"]][header.index(check["column"])]
            shown, half_digit = shown_number(cell)
            arguments = {k: v for k, v in check.items() if k not in ("kind", "row", "column")}
            value = recomputed(check["kind"], json.dumps(arguments, sort_keys=True))
            if not (value == shown or abs(value - shown) <= half_digit + _SLACK * abs(value)):
                problems.append(f"row {check['row']}, {check['column']!r} shows {cell!r}, recomputed {value!r}")
    return [p for p in problems if p is not None]


def generated_pages() -> list[str]:
    return sorted(p.name for p in DOCS.glob("*.md") if OPEN in p.read_text())


def test_listed_pages_carry_their_blocks():
    for name, count in PAGES.items():
        assert len(blocks(DOCS / name)) == count, f"docs/{name}: expected {count} generated blocks"


@pytest.mark.parametrize("name", generated_pages())
def test_generated_blocks_match_a_recomputation(name):
    found = blocks(DOCS / name)
    assert found and len(found) == (DOCS / name).read_text().count(CLOSE), f"docs/{name}: an unreadable block"
    for record, table in found:
        assert record["command"] and record["lmodp"] and record["checks"], "a block records its command, version and checks"
        problems = stale(record, table)
        assert not problems, f"docs/{name} ({record['command']}) is stale, regenerate it: " + "; ".join(problems)


def test_a_stale_page_is_caught(tmp_path):
    """The comparison itself: one printed digit off, or noise that is no longer the least, fails."""
    from lmodp import Gaussian
    from lmodp._pages import calibration_check, cell_check, generated_block
    from lmodp.search import calibrate_gaussian

    run = RunSpec(sample_rate=0.01, steps=10, delta=1e-5)
    eps = lmodp.epsilon(Gaussian(2.0), run)
    sigma = calibrate_gaussian(1.0, run, tolerance=1e-3)
    cases = [
        (f"{eps:.4g}", Gaussian(sigma), True),
        (f"{eps + 2e-4:.4g}", Gaussian(sigma), False),  # a digit off
        (f"{eps:.4g}", Gaussian(sigma * 1.01), False),  # more noise than the least that meets the target
    ]
    for shown, calibrated, fresh in cases:
        page = tmp_path / "page.md"
        checks = [
            cell_check("epsilon", 0, "ε", Gaussian(2.0), run=run, accountant="auto"),
            calibration_check(calibrated, run, target_epsilon=1.0, tolerance=1e-3),
        ]
        page.write_text("# a page\n\n" + generated_block(f"| noise | ε |\n|---|---|\n| Gaussian | {shown} |", command="test", checks=checks))
        ((record, table),) = blocks(page)
        assert (not stale(record, table)) == fresh, shown
