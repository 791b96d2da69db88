"""The LMO-DP authors' released parameter files, shipped as package data.

Groups: ``"task1"`` (GLUE/E2E runs), ``"optimized_usefulness"`` (the paper's noise plots) and
``"table3"`` (the SST-2 comparison table). The ε in each file name is the per-step ε the authors
targeted (q = 1, T = 1) under their own, unsound analysis.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Literal

from lmodp.mechanisms import LMO

GROUPS = ("task1", "optimized_usefulness", "table3")


def _group_dir(group: str):
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    return resources.files("lmodp") / "data" / "paper_params" / group


def paper_budgets(group: str = "task1") -> list[float]:
    """The per-step ε values for which ``group`` has a file, ascending."""
    names = [p.name for p in _group_dir(group).iterdir() if p.name.endswith(".json")]
    return sorted(float(n[len("lmo_eps") : -len(".json")]) for n in names)


def paper_parameters(epsilon: float, group: str = "task1") -> dict[str, Any]:
    """The raw JSON content of the file for per-step ``epsilon`` in ``group``."""
    budgets = paper_budgets(group)
    if epsilon not in budgets:
        raise ValueError(f"epsilon must be one of {budgets} for group {group!r}, got {epsilon!r}")
    name = f"lmo_eps{epsilon:g}.json"
    return json.loads((_group_dir(group) / name).read_text())


def paper_mechanism(epsilon: float, group: str = "task1", *, exponential: Literal["rate", "scale"]) -> LMO:
    """The released parameters as an :class:`~lmodp.mechanisms.LMO` (see ``LMO.from_paper_json``)."""
    return LMO.from_paper_json(paper_parameters(epsilon, group), exponential=exponential)
