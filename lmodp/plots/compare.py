"""``compare_mechanisms``: how much noise each mechanism needs for the same privacy budget.

The numbers come from :func:`lmodp.search.equal_budget_table`; this module only draws them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from lmodp.accounting.registry import AUTO
from lmodp.accounting.spec import RunSpec, run_and_geometries
from lmodp.mechanisms import Mechanism
from lmodp.plots._style import NOISE_UNIT, colour, finish, finite_or_nan, label_log_axis, legend_below, marker, new_figure
from lmodp.search.calibrate import Calibrated
from lmodp.search.equal_budget import equal_budget_table

MAGNITUDES = {"mean_abs": "E|Y|", "std": "standard deviation of Y"}
GEOMETRY_TITLES = {"scalar": "scalar geometry (a one-dimensional query)", "l2": "l2 geometry (a clipped gradient: DP-SGD)"}


def accountant_note(rows: Sequence[Calibrated]) -> str:
    """Which accountant made the numbers of ``rows``, e.g. ``"ε by PLD"`` or ``"ε by PLD (Gaussian), RDP (the others)"``."""
    used = {r.accountant.upper() or "?" for r in rows}
    if len(used) == 1:
        return f"ε by {used.pop()}"
    gaussian = {r.accountant.upper() for r in rows if r.mechanism.get("family") == "gaussian"}
    others = {r.accountant.upper() for r in rows if r.mechanism.get("family") != "gaussian"}
    if len(gaussian) == len(others) == 1:
        return f"ε by {gaussian.pop()} (Gaussian), {others.pop()} (the others)"
    return "ε by " + " and ".join(sorted(used))


#: Horizontal offset between the series, as a factor on the log ε axis, so that equal values of
#: two shapes (Laplace and an LMO close to it) show both markers side by side.
_DODGE = 1.035


def plot_equal_budget(
    rows: Sequence[Calibrated], *, magnitude: str = "mean_abs", run: RunSpec | None = None, path: str | Path | None = None
) -> Figure:
    """Draw rows of :func:`equal_budget_table`: noise magnitude against the target ε, one panel per
    geometry (shared axes), each panel naming the accountant(s) behind its numbers; ``run`` (its
    q, T, δ and sensitivity) is named in the title. The series are slightly offset in ε and
    their markers hollow, so that coinciding values stay visible; the legend is below the panels."""
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {sorted(MAGNITUDES)}, got {magnitude!r}")
    if not rows:
        raise ValueError("rows must not be empty")
    labels = list(dict.fromkeys(r.label for r in rows))
    geometries = list(dict.fromkeys(r.geometry for r in rows))
    targets = sorted({r.target_epsilon for r in rows})
    fig, axes = new_figure(len(geometries), width=5.6, height=5.2, sharey=True)
    for ax, g in zip(axes, geometries):
        in_panel = [r for r in rows if r.geometry == g]
        for i, label in enumerate(labels):
            sel = sorted((r for r in in_panel if r.label == label), key=lambda r: r.target_epsilon)
            values = [finite_or_nan(getattr(r, magnitude)) for r in sel]
            shift = _DODGE ** (i - (len(labels) - 1) / 2)
            ax.plot([r.target_epsilon * shift for r in sel], values, color=colour(i), marker=marker(i), ms=6, mfc="white",
                    mew=1.6, lw=1.6, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(targets, [f"{t:g}" for t in targets], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("target ε of the whole run (sound, same δ)")
        ax.set_title(f"{GEOMETRY_TITLES[g]}\n{accountant_note(in_panel)}", fontsize="medium")
    label_log_axis(axes[0].yaxis, [getattr(r, magnitude) for r in rows])
    axes[0].set_ylabel(f"{MAGNITUDES[magnitude]} ({NOISE_UNIT})")
    legend_below(fig, axes[0], columns=min(len(labels), 3))
    setting = "" if run is None else (
        f": q = {run.sample_rate:.4g}, T = {run.steps}, δ = {run.delta:g}, sensitivity {run.sensitivity:g}"
    )
    fig.suptitle(f"Noise needed at equal budget{setting}\n(each shape rescaled to the least noise meeting ε; lower is "
                 "better; a missing point is infinite)", fontsize="medium")
    return finish(fig, path)


def compare_mechanisms(
    targets: Sequence[float] = (0.3, 0.7, 2.0, 3.0),
    run: RunSpec | None = None,
    *,
    sample_rate: float | None = None,
    steps: int | None = None,
    delta: float | None = None,
    shapes: Mapping[str, Mechanism] | Sequence[Mechanism] | None = None,
    geometry: str | Sequence[str] | None = None,
    sensitivity: float | None = None,
    magnitude: str = "mean_abs",
    accountant: str = AUTO,
    tolerance: float = 1e-3,
    progress: bool = False,
    path: str | Path | None = None,
) -> Figure:
    """Noise magnitude (``"mean_abs"``: E|Y|, or ``"std"``) against target ε at equal budget.

    Each shape (default: Gaussian and Laplace, :func:`lmodp.search.equal_budget.default_shapes`;
    :func:`lmodp.paper.comparison_shapes` adds the paper's LMO shape) is scaled to the least noise whose sound ε
    under ``accountant`` (default ``"auto"``: the tightest sound one, PLD in the scalar geometry
    and for the Gaussian, RDP otherwise) meets each target, separately in each geometry (one
    panel each; the run and geometries as in :func:`lmodp.search.equal_budget_table`). An
    infinite magnitude (a heavy-tailed LMO) is not drawn. ``progress``: a tqdm bar on stderr (when
    it is a terminal).
    """
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {sorted(MAGNITUDES)}, got {magnitude!r}")
    spec, geometries = run_and_geometries(run, geometry, sample_rate=sample_rate, steps=steps, delta=delta, sensitivity=sensitivity)
    rows = equal_budget_table(
        targets, spec, shapes=shapes, geometry=geometries, accountant=accountant, tolerance=tolerance, progress=progress,
    )
    return plot_equal_budget(rows, magnitude=magnitude, run=spec, path=path)
