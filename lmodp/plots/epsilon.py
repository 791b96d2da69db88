"""``epsilon_curve``: the privacy budget spent as training proceeds."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from lmodp._validation import require_count
from lmodp.accounting.api import epsilon
from lmodp.accounting.conversion import OrderGridEdgeWarning
from lmodp.accounting.interval import epsilon_interval
from lmodp.accounting.rdp.accountant import RDPAccountant
from lmodp.accounting.registry import AUTO, resolve_accountant
from lmodp.accounting.spec import RunSpec, run_and_geometries
from lmodp.mechanisms import Mechanism
from lmodp.mechanisms.describe import labelled
from lmodp.plots._style import GEOMETRY_STYLES, colour, finish, label_log_axis, legend_below, new_figure

X_AXES = ("steps", "epochs")


def step_grid(steps: int, points: int) -> np.ndarray:
    """About ``points`` distinct step counts from 1 to ``steps``, log-spaced, ending at ``steps``
    (just ``steps`` when ``points`` is 1)."""
    require_count("points", points, 1)
    if points == 1:
        return np.array([steps])
    return np.unique(np.round(np.geomspace(1, steps, points)).astype(int))


def rdp_epsilons(mechanism: Mechanism, step_counts: np.ndarray, run: RunSpec) -> np.ndarray:
    """The RDP accountant's ε after each of ``step_counts`` steps of ``run`` (its ``steps`` aside).

    The per-step RDP curve is computed once: an accountant that has recorded a step-free event
    of the mechanism holds it, and each count is a copy of that accountant stepped T times.
    For very few steps the optimal order can be the grid's largest; the value is still a valid
    upper bound (possibly loose there), so the conversion's edge warning is not repeated per point.
    """
    event = dict(mechanism=mechanism, sample_rate=run.sample_rate, sensitivity=run.sensitivity, geometry=run.geometry)
    holding_curve = RDPAccountant()
    holding_curve.step(steps=0, **event)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OrderGridEdgeWarning)
        for t in step_counts:
            acc = copy.deepcopy(holding_curve)
            acc.step(steps=int(t), **event)
            out.append(acc.get_epsilon(run.delta))
    return np.array(out)


def pld_epsilons(mechanism: Mechanism, step_counts: np.ndarray, run: RunSpec) -> np.ndarray:
    """The PLD accountant's ε after each of ``step_counts`` steps of ``run`` (one composition per count)."""
    return np.array([epsilon(mechanism, run.replace(steps=int(t)), accountant="pld") for t in step_counts])


_EPSILONS = {"rdp": rdp_epsilons, "pld": pld_epsilons}


def epsilon_curve(
    mechanisms: Mapping[str, Mechanism] | Sequence[Mechanism] | Mechanism,
    run: RunSpec | None = None,
    *,
    sample_rate: float | None = None,
    steps: int | None = None,
    delta: float | None = None,
    geometry: str | Sequence[str] | None = None,
    sensitivity: float | None = None,
    accountant: str = AUTO,
    pld: bool = False,
    x: str = "steps",
    points: int = 40,
    pld_points: int = 5,
    path: str | Path | None = None,
) -> Figure:
    """ε(δ) after 1…``steps`` Poisson-subsampled steps, for each mechanism and geometry.

    The run: ``run`` and/or its settings as keywords; ``geometry`` one geometry or several
    (default: the run's, or both without a run).

    Lines (solid: scalar geometry, dashed: l2; the legend names the accountant): the sound
    upper bound of ``accountant``, by default ``"auto"``, the tightest sound one (PLD in the
    scalar geometry and for the Gaussian, RDP for other noise in l2). With ``pld=True`` also, at
    ``pld_points`` step counts: the PLD accountant's ε in the scalar geometry (markers, where
    the line is not already the PLD), and for non-Gaussian noise in the l2 geometry the interval of
    :func:`lmodp.accounting.interval.epsilon_interval` (shaded: its lower end is the ε of
    concrete shifts, certainly reached; the upper end the sound bound). ``x="epochs"`` plots
    against steps × q.
    """
    items = labelled(mechanisms)
    spec, geometries = run_and_geometries(
        run, geometry, sample_rate=sample_rate, steps=steps, delta=delta, sensitivity=sensitivity
    )
    sample_rate, steps, delta, sensitivity = spec.sample_rate, spec.steps, spec.delta, spec.sensitivity
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if x not in X_AXES:
        raise ValueError(f"x must be one of {X_AXES}, got {x!r}")
    grid = step_grid(steps, points)
    coarse = step_grid(steps, pld_points)
    to_x = (lambda t: np.asarray(t) * sample_rate) if x == "epochs" else (lambda t: np.asarray(t))
    fig, (ax,) = new_figure(1, width=7.2, height=5.4)
    drawn = []
    for i, (label, m) in enumerate(items.items()):
        c = colour(i)
        curves: dict[tuple[str, bytes], list[str]] = {}  # identical curves are drawn once
        for g in geometries:
            used = resolve_accountant(accountant, m, g)
            eps = _EPSILONS[used](m, grid, spec.replace(geometry=g))
            curves.setdefault((used, eps.tobytes()), []).append(g)
            drawn.append(eps)
            if pld and used != "pld":
                _add_pld(ax, m, coarse, to_x, c, label, spec.replace(geometry=g))
        for (used, values), gs in curves.items():
            where = gs[0] if len(gs) == 1 else " and ".join(gs) + " (identical)"
            ax.plot(to_x(grid), np.frombuffer(values), color=c, ls=GEOMETRY_STYLES[gs[0]], lw=1.8, label=f"{label} — {used.upper()}, {where}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    label_log_axis(ax.xaxis, to_x(grid))
    label_log_axis(ax.yaxis, np.concatenate(drawn))
    ax.set_xlabel("training steps" if x == "steps" else f"epochs (steps × q, q = {sample_rate:.4g})")
    banded = any(isinstance(c, PolyCollection) for c in ax.collections)
    ax.set_ylabel(f"ε at δ = {delta:g} " + ("(lines: sound upper bounds)" if banded else "(sound upper bound)"))
    ax.set_title(
        f"Privacy spent over T = {steps} steps (Poisson rate q = {sample_rate:.4g}, δ = {delta:g}, sensitivity {sensitivity:g})",
        fontsize="medium",
    )
    legend_below(fig, ax)
    return finish(fig, path)


def _add_pld(ax, mechanism, coarse, to_x, c, label, run: RunSpec) -> None:
    if resolve_accountant(AUTO, mechanism, run.geometry) == "pld":
        eps = pld_epsilons(mechanism, coarse, run)
        ax.plot(to_x(coarse), eps, color=c, ls="none", marker="o", ms=5, label=f"{label} — PLD, {run.geometry}")
        return
    bounds = [epsilon_interval(mechanism, run.replace(steps=int(t))) for t in coarse]
    lower = [b.lower for b in bounds]
    upper = [b.upper for b in bounds]
    ax.fill_between(to_x(coarse), lower, upper, color=c, alpha=0.18, lw=0, label=f"{label} — l2 interval (lower: concrete shifts)")
