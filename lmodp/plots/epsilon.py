"""``epsilon_curve``: the privacy budget spent as training proceeds."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lmodp._validation import require_delta, require_geometry, require_positive, require_sample_rate, require_steps
from lmodp.accounting.api import AUTO, epsilon, resolve_accountant
from lmodp.accounting.conversion import OrderGridEdgeWarning, rdp_to_epsilon
from lmodp.accounting.orders import DEFAULT_ORDERS
from lmodp.accounting.interval import epsilon_interval
from lmodp.accounting.rdp.subsampling import poisson_subsampled_rdp
from lmodp.mechanisms import Mechanism
from lmodp.plots._style import GEOMETRY_STYLES, colour, finish, label_log_axis, labelled, new_figure

X_AXES = ("steps", "epochs")


def step_grid(steps: int, points: int) -> np.ndarray:
    """About ``points`` distinct step counts from 1 to ``steps``, log-spaced, ending at ``steps``
    (just ``steps`` when ``points`` is 1)."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"points must be an integer >= 1, got {points!r}")
    if points == 1:
        return np.array([steps])
    return np.unique(np.round(np.geomspace(1, steps, points)).astype(int))


def geometries_of(geometry: str | Sequence[str]) -> tuple[str, ...]:
    """One geometry or several, validated."""
    names = (geometry,) if isinstance(geometry, str) else tuple(geometry)
    if not names:
        raise ValueError("geometry must name at least one of ('scalar', 'l2')")
    return tuple(require_geometry(g) for g in names)


def rdp_epsilons(mechanism: Mechanism, step_counts: np.ndarray, *, sample_rate: float, delta: float, geometry: str, sensitivity: float) -> np.ndarray:
    """The RDP accountant's ε after each of ``step_counts`` steps (the per-step RDP curve is
    computed once on the default orders and composed by multiplying by T).

    For very few steps the optimal order can be the grid's largest; the value is still a valid
    upper bound (possibly loose there), so the conversion's edge warning is not repeated per point.
    """
    per_step = poisson_subsampled_rdp(mechanism, DEFAULT_ORDERS, sample_rate=sample_rate, sensitivity=sensitivity, geometry=geometry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OrderGridEdgeWarning)
        return np.array([rdp_to_epsilon(DEFAULT_ORDERS, t * per_step, delta=delta)[0] for t in step_counts])


def pld_epsilons(mechanism: Mechanism, step_counts: np.ndarray, *, sample_rate: float, delta: float, geometry: str, sensitivity: float) -> np.ndarray:
    """The PLD accountant's ε after each of ``step_counts`` steps (one composition per count)."""
    return np.array([
        epsilon(mechanism, sample_rate=sample_rate, steps=int(t), delta=delta, geometry=geometry, sensitivity=sensitivity, accountant="pld")
        for t in step_counts
    ])


_EPSILONS = {"rdp": rdp_epsilons, "pld": pld_epsilons}


def epsilon_curve(
    mechanisms: Mapping[str, Mechanism] | Sequence[Mechanism] | Mechanism,
    *,
    sample_rate: float,
    steps: int,
    delta: float,
    geometry: str | Sequence[str] = ("scalar", "l2"),
    sensitivity: float = 1.0,
    accountant: str = AUTO,
    pld: bool = False,
    x: str = "steps",
    points: int = 40,
    pld_points: int = 5,
    path: str | Path | None = None,
) -> Figure:
    """ε(δ) after 1…``steps`` Poisson-subsampled steps, for each mechanism and geometry.

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
    sample_rate = require_sample_rate("sample_rate", sample_rate)
    delta = require_delta("delta", delta)
    sensitivity = require_positive("sensitivity", sensitivity)
    steps = require_steps("steps", steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if x not in X_AXES:
        raise ValueError(f"x must be one of {X_AXES}, got {x!r}")
    geometries = geometries_of(geometry)
    grid = step_grid(steps, points)
    coarse = step_grid(steps, pld_points)
    to_x = (lambda t: np.asarray(t) * sample_rate) if x == "epochs" else (lambda t: np.asarray(t))
    fig, (ax,) = new_figure(1, width=7.2)
    drawn = []
    for i, (label, m) in enumerate(items.items()):
        c = colour(i)
        curves: dict[tuple[str, bytes], list[str]] = {}  # identical curves are drawn once
        for g in geometries:
            used = resolve_accountant(accountant, m, g)
            eps = _EPSILONS[used](m, grid, sample_rate=sample_rate, delta=delta, geometry=g, sensitivity=sensitivity)
            curves.setdefault((used, eps.tobytes()), []).append(g)
            drawn.append(eps)
            if pld and used != "pld":
                _add_pld(ax, m, coarse, to_x, c, label, g, sample_rate=sample_rate, delta=delta, sensitivity=sensitivity)
        for (used, values), gs in curves.items():
            where = gs[0] if len(gs) == 1 else " and ".join(gs) + " (identical)"
            ax.plot(to_x(grid), np.frombuffer(values), color=c, ls=GEOMETRY_STYLES[gs[0]], lw=1.8, label=f"{label} — {used.upper()}, {where}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    label_log_axis(ax.xaxis, to_x(grid))
    label_log_axis(ax.yaxis, np.concatenate(drawn))
    ax.set_xlabel("training steps" if x == "steps" else f"epochs (steps × q, q = {sample_rate:.4g})")
    ax.set_ylabel(f"ε at δ = {delta:g} (upper bound unless marked)")
    ax.set_title(
        f"Privacy spent over T = {steps} steps (Poisson rate q = {sample_rate:.4g}, δ = {delta:g}, sensitivity {sensitivity:g})",
        fontsize="medium",
    )
    ax.legend(fontsize="small")
    return finish(fig, path)


def _add_pld(ax, mechanism, coarse, to_x, c, label, geometry, *, sample_rate, delta, sensitivity) -> None:
    if resolve_accountant(AUTO, mechanism, geometry) == "pld":
        eps = pld_epsilons(mechanism, coarse, sample_rate=sample_rate, delta=delta, geometry=geometry, sensitivity=sensitivity)
        ax.plot(to_x(coarse), eps, color=c, ls="none", marker="o", ms=5, label=f"{label} — PLD, {geometry}")
        return
    bounds = [epsilon_interval(mechanism, sample_rate=sample_rate, steps=int(t), delta=delta, sensitivity=sensitivity) for t in coarse]
    lower = [b.lower for b in bounds]
    upper = [b.upper for b in bounds]
    ax.fill_between(to_x(coarse), lower, upper, color=c, alpha=0.18, lw=0, label=f"{label} — l2 interval (lower: concrete shifts)")
