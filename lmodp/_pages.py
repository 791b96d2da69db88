"""Generated results blocks of the documentation, with the record that lets a test recompute them.

A generator (``benchmarks/search_table.py``, ``docs/gen_paper_audit.py``, ...) writes each
results table as :func:`generated_block`::

    <!-- lmodp-generated {"command": "...", "lmodp": "0.1.0", "checks": [...]} -->
    | a | markdown | table |
    <!-- /lmodp-generated -->

The JSON record names the command and the lmodp version that produced the table, and its
``checks`` say how the accounting-only cells can be recomputed from the recorded settings alone:
each check is a mapping with ``"kind"`` (one of :data:`KINDS`), the cell it describes
(``"row"``, 0-based among the table's data rows, and ``"column"``, the header text; no cell for a
``"calibrated"`` claim) and the arguments of its kind:

* ``"epsilon"``: ``mechanism`` (its ``to_dict()``), ``run`` (a :class:`~lmodp.accounting.spec.RunSpec`
  as a dict), ``accountant`` — the cell is ``lmodp.epsilon(mechanism, run, accountant=...)``;
* ``"mean_abs"``, ``"variance"``: ``mechanism`` — its E|Y| or variance;
* ``"parameter"``: ``mechanism``, ``name`` — one of its parameters (σ, b, ...);
* ``"calibrated"``: ``mechanism``, ``run``, ``accountant``, ``target_epsilon``, ``tolerance`` —
  the claim that the mechanism is the least multiple of its shape meeting the target: its ε is at
  most the target, and the shape scaled down by 1 + tolerance spends more.

``tests/test_docs_fresh.py`` recomputes every check of every block in docs/ and compares it with
the page to the printed precision, so a change to the accountants fails until the pages are
regenerated. A page opts in by carrying such blocks (and is listed in that test's ``PAGES`` so
that losing them fails too).
"""

from __future__ import annotations

import json
from typing import Any

from lmodp import __version__
from lmodp.accounting.spec import RunSpec
from lmodp.mechanisms import Mechanism

#: What a check can recompute.
KINDS = ("epsilon", "mean_abs", "variance", "parameter", "calibrated")
OPEN = "<!-- lmodp-generated "
CLOSE = "<!-- /lmodp-generated -->"


def generated_block(table: str, *, command: str, checks: list[dict[str, Any]]) -> str:
    """``table`` (markdown) between the opening record and the closing marker."""
    record = {"command": command, "lmodp": __version__, "checks": checks}
    return f"{OPEN}{json.dumps(record, separators=(',', ':'))} -->\n{table.rstrip()}\n{CLOSE}"


def cell_check(kind: str, row: int, column: str, mechanism: Mechanism, **arguments: Any) -> dict[str, Any]:
    """A check of the cell (``row``, ``column``) holding ``kind`` of ``mechanism``; a ``run`` given
    as a :class:`RunSpec` is recorded as its dict."""
    if kind not in KINDS or kind == "calibrated":
        raise ValueError(f"kind must be one of {KINDS[:-1]}, got {kind!r}")
    return {"kind": kind, "row": row, "column": column, "mechanism": mechanism.to_dict(), **_recorded(arguments)}


def calibration_check(
    mechanism: Mechanism, run: RunSpec, *, target_epsilon: float, tolerance: float, accountant: str = "auto"
) -> dict[str, Any]:
    """The claim that ``mechanism`` was calibrated to ``target_epsilon`` for ``run`` (see the module docstring)."""
    return {
        "kind": "calibrated", "mechanism": mechanism.to_dict(), "run": run.to_dict(), "accountant": accountant,
        "target_epsilon": target_epsilon, "tolerance": tolerance,
    }


def _recorded(arguments: dict[str, Any]) -> dict[str, Any]:
    return {name: value.to_dict() if isinstance(value, RunSpec) else value for name, value in arguments.items()}


__all__ = ["CLOSE", "KINDS", "OPEN", "calibration_check", "cell_check", "generated_block"]
