"""How ``lmodp finetune`` names the noise it added, in its summary and JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lmodp.mechanisms import describe, mechanism_from_dict


def noise_report(mechanism: Mapping[str, Any], search: Any = None) -> dict[str, Any]:
    """``{"name", "family", "mean_abs", "std"}`` of the noise multiplier (the noise added to a
    summed gradient is this times the clip norm) and, where a search chose it, every family's
    best (``"candidates"``)."""
    m = mechanism_from_dict(dict(mechanism))
    report: dict[str, Any] = {"name": describe(m, digits=4), "family": m.family, "mean_abs": m.mean_abs(), "std": m.std()}
    if search is not None and "candidates" in search.settings:
        report["candidates"] = {f: c["summary"] for f, c in search.settings["candidates"].items()}
    return report


def noise_line(report: Mapping[str, Any]) -> str:
    """The summary line: the noise, its E|Y| and standard deviation, and what the search compared."""
    line = f"noise: {report['name']} (E|Y| = {report['mean_abs']:.4g}, std = {report['std']:.4g}, times the clip norm)"
    if "candidates" in report:
        line += "; least E|Y| among " + ", ".join(report["candidates"])
    return line
