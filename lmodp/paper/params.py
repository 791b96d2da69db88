"""The LMO-DP authors' released parameter files, shipped as package data, and their keys.

Groups: ``"task1"`` (GLUE/E2E runs), ``"optimized_usefulness"`` (the paper's noise plots) and
``"table3"`` (the SST-2 comparison table). The ε in each file name is the per-step ε the authors
targeted (q = 1, T = 1) under their own, unsound analysis.

A file holds the keys :data:`PAPER_KEYS`: a1 (``gamma_weight``), G_k (``gamma_shape``),
G_theta (``gamma_scale``), a3 (``exponential_weight``), E_lambda (the Exponential's λ), a4
(``uniform_weight``), U_a and U_b (``uniform_low``, ``uniform_high``) of
:class:`~lmodp.mechanisms.LMO`. The released code reads ``E_lambda`` as a scale in its sampler
and as a rate in its accountant; lmodp always means a rate, and :func:`lmo_from_paper_json`
makes the caller say which reading of a file to take.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping

from lmodp._validation import require_positive
from lmodp.mechanisms import LMO, Mechanism

GROUPS = ("task1", "optimized_usefulness", "table3")
#: The keys of the LMO-DP authors' parameter files.
PAPER_KEYS = ("a1", "a3", "a4", "G_theta", "G_k", "E_lambda", "U_a", "U_b")


def lmo_from_paper_json(data: Mapping[str, Any] | str | Path, *, exponential: Literal["rate", "scale"]) -> LMO:
    """Read one of the LMO-DP authors' parameter files (a mapping, or a path to the JSON file
    with the keys :data:`PAPER_KEYS`).

    ``exponential`` says how to read ``E_lambda``: ``"rate"`` is the released accountant's
    reading (mean 1/λ), ``"scale"`` the released sampler's (mean λ). There is no default
    because the two disagree by a factor λ² in the component's mean.
    """
    if exponential not in ("rate", "scale"):
        raise ValueError(f"exponential must be 'rate' or 'scale', got {exponential!r}")
    if isinstance(data, (str, Path)):
        data = json.loads(Path(data).read_text())
    missing = [k for k in PAPER_KEYS if k not in data]
    if missing:
        raise ValueError(f"paper parameter data lacks keys {missing}")
    e_lambda = require_positive("E_lambda", data["E_lambda"])
    return LMO(
        gamma_weight=data["a1"],
        gamma_shape=data["G_k"],
        gamma_scale=data["G_theta"],
        exponential_weight=data["a3"],
        exponential_rate=e_lambda if exponential == "rate" else 1.0 / e_lambda,
        uniform_weight=data["a4"],
        uniform_low=data["U_a"],
        uniform_high=data["U_b"],
    )


def lmo_to_paper_json(mechanism: LMO) -> dict[str, float]:
    """The paper's keys of an :class:`~lmodp.mechanisms.LMO`, with ``E_lambda`` written as a rate
    (the accountant's reading)."""
    return {
        "a1": mechanism.gamma_weight,
        "a3": mechanism.exponential_weight,
        "a4": mechanism.uniform_weight,
        "G_theta": mechanism.gamma_scale,
        "G_k": mechanism.gamma_shape,
        "E_lambda": mechanism.exponential_rate,
        "U_a": mechanism.uniform_low,
        "U_b": mechanism.uniform_high,
    }


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
    """The released parameters as an :class:`~lmodp.mechanisms.LMO` (see :func:`lmo_from_paper_json`)."""
    return lmo_from_paper_json(paper_parameters(epsilon, group), exponential=exponential)


def comparison_shapes() -> dict[str, Mechanism]:
    """Gaussian, Laplace, and the LMO shape of the paper's released task1 set for ε = 0.7
    (E_lambda read as a rate, as the paper's accountant does): the paper's comparison at equal
    budget (``shapes=`` of :func:`lmodp.search.equal_budget_table`, :func:`lmodp.plots.compare_mechanisms`)."""
    from lmodp.search.equal_budget import default_shapes  # the search stack, only when the shapes are asked for

    return {**default_shapes(), "LMO (shape of the paper's ε=0.7 set)": paper_mechanism(0.7, "task1", exponential="rate")}
