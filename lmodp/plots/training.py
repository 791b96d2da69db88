"""``training_curve``: loss and evaluation metric against the privacy spent, from a fine-tune history."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lmodp.mechanisms import describe, mechanism_from_dict
from lmodp.plots._style import colour, finish, new_figure

X_AXES = ("epsilon", "step")
_X_KEYS = {"epsilon": ("epsilon", "eps"), "step": ("step", "steps")}


def _plain(history: Any) -> Any:
    """A ``TrainingHistory`` (or any object with ``to_dict``, or a dataclass) as plain data."""
    if hasattr(history, "to_dict"):
        return history.to_dict()
    if dataclasses.is_dataclass(history) and not isinstance(history, type):
        return dataclasses.asdict(history)
    return history


def history_columns(history: Any) -> dict[str, np.ndarray]:
    """A fine-tune history as ``{column: float array}``, every column one entry per step.

    Accepts what :func:`lmodp.train.finetune` returns (a ``TrainingHistory``: per-step
    ``step``/``loss``/``epsilon`` and evaluations ``eval_metric`` at ``eval_step``), its
    ``to_dict()`` or JSON, a mapping of equal-length sequences, or a sequence of per-step
    records (mappings). Evaluations are placed at their step (NaN elsewhere; an evaluation
    before the first step is dropped) and ``eval_metric`` is renamed ``eval <metric_name>``.
    Non-numeric columns are dropped; missing entries (``None``) become NaN.
    """
    history = _plain(history)
    if isinstance(history, Sequence) and not isinstance(history, (str, bytes)):
        odd = next((i for i, record in enumerate(history) if not isinstance(record, Mapping)), None)
        if odd is not None:
            raise ValueError(
                f"a history given as a list must hold one record (an object of columns) per step; entry {odd} is "
                f"{type(history[odd]).__name__} {history[odd]!r}"
            )
        keys = list(dict.fromkeys(k for record in history for k in record))
        history = {k: [record.get(k) for record in history] for k in keys}
    if not isinstance(history, Mapping):
        raise ValueError(f"history must be a fine-tune history, a mapping of columns or a list of records, got {type(history).__name__}")
    metric_name = history.get("metric_name")
    columns = {}
    for key, values in history.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
            continue
        try:
            columns[str(key)] = np.array([math.nan if v is None else float(v) for v in values], dtype=float)
        except (TypeError, ValueError):
            continue
    if "eval_step" in columns and "step" in columns:
        columns = _place_evaluations(columns, columns.pop("eval_step"))
    if isinstance(metric_name, str) and "eval_metric" in columns:
        columns[f"eval {metric_name}"] = columns.pop("eval_metric")
    return columns


def _place_evaluations(columns: dict[str, np.ndarray], eval_step: np.ndarray) -> dict[str, np.ndarray]:
    """Spread the columns recorded at ``eval_step`` onto the per-step grid ``columns["step"]``."""
    step = columns["step"]
    position = {s: i for i, s in enumerate(step)}
    out = {}
    for key, values in columns.items():
        if len(values) == len(eval_step) and len(eval_step) != len(step):
            placed = np.full(len(step), np.nan)
            for s, v in zip(eval_step, values):
                if s in position:
                    placed[position[s]] = v
            out[key] = placed
        else:
            out[key] = values
    return out


def _pick(columns: dict[str, np.ndarray], names: Sequence[str], what: str) -> str:
    for name in names:
        if name in columns:
            return name
    raise ValueError(f"history has no {what} column (looked for {list(names)}; columns: {sorted(columns)})")


def history_delta(history: Any) -> float | None:
    """The δ of a fine-tune history (its ``delta`` entry, or a constant ``delta`` column), or None."""
    history = _plain(history)
    if isinstance(history, Mapping):
        value = history.get("delta")
    elif isinstance(history, Sequence) and history and isinstance(history[0], Mapping):
        values = {record.get("delta") for record in history}
        value = values.pop() if len(values) == 1 else None
    else:
        value = None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = value[0] if len(set(value)) == 1 else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def training_curve(
    history: Any,
    *,
    x: str = "epsilon",
    metrics: Sequence[str] | None = None,
    title: str = "",
    path: str | Path | None = None,
) -> Figure:
    """Training loss (left) and evaluation metrics (right) against ε spent or against the step.

    ``metrics`` names the columns to draw; by default every numeric column that is not the
    step, ε or δ: columns with "loss" in their name go to the left panel, the others (accuracy,
    eval metrics) to the right one. ε is the accountant's sound upper bound after each step, at
    the history's δ (named in the title when the history records it). The loss panel says that
    the training loss is NOT private: it is computed on the private batches without noise.
    Columns without a single value (no evaluation data) are left out, with their panel. ``title``
    replaces the first line of the title; a second line names the noise (the history's mechanism).
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {X_AXES}, got {x!r}")
    columns = history_columns(history)
    x_key = _pick(columns, _X_KEYS[x], x)
    skip = {k for keys in _X_KEYS.values() for k in keys} | {"delta", "batch_size"}
    names = [k for k in columns if k not in skip] if metrics is None else list(metrics)
    missing = [k for k in names if k not in columns]
    if missing:
        raise ValueError(f"metrics {missing} are not columns of the history (columns: {sorted(columns)})")
    if not names:
        raise ValueError(f"history has nothing to plot besides {x_key!r}")
    if metrics is None:  # a column without a single value (no evaluation data) draws nothing: left out
        names = [k for k in names if np.isfinite(columns[k]).any()]
    losses = [k for k in names if "loss" in k.lower()]
    others = [k for k in names if k not in losses]
    panels = [p for p in (losses, others) if p]
    fig, axes = new_figure(len(panels))
    xs = columns[x_key]
    delta = history_delta(history)
    at_delta = "" if delta is None else f" at δ = {delta:g}"
    for ax, panel in zip(axes, panels):
        for i, key in enumerate(panel):
            ys = columns[key]
            ok = np.isfinite(xs) & np.isfinite(ys)
            ax.plot(xs[ok], ys[ok], color=colour(i + (0 if panel is losses else len(losses))), marker="o" if ok.sum() < 30 else None, ms=4, lw=1.6, label=key)
        ax.set_xlabel(f"ε spent (sound upper bound{at_delta})" if x == "epsilon" else "optimizer step")
        if x == "step":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss (nats per example)" if panel is losses else "metric value")
        if panel is losses:
            ax.set_title("Training loss: NOT private (computed on the private batches, no noise)", fontsize="small")
        else:
            ax.set_title("Evaluation / other metrics", fontsize="small")
        ax.legend(fontsize="small")
    against = f"privacy spent (ε{at_delta})" if x == "epsilon" else "the optimizer step"
    noise = history_noise(history)
    lines = [title or f"Fine-tuning progress against {against}", *([f"noise: {noise}"] if noise else [])]
    fig.suptitle("\n".join(lines), fontsize="medium")
    return finish(fig, path)


def history_noise(history: Any) -> str | None:
    """The noise of a fine-tune history (its ``mechanism`` entry, described), or None."""
    history = _plain(history)
    mechanism = history.get("mechanism") if isinstance(history, Mapping) else None
    if not isinstance(mechanism, Mapping):
        return None
    try:
        return describe(mechanism_from_dict(dict(mechanism)), digits=4)
    except ValueError:
        return None
