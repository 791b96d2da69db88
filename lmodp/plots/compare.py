"""``compare_mechanisms``: how much noise each mechanism needs for the same privacy budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from matplotlib.figure import Figure

from lmodp._progress import progress_bar
from lmodp._validation import require_delta, require_positive, require_sample_rate, require_steps
from lmodp.accounting.api import AUTO, require_accountant_fits, resolve_accountant
from lmodp.mechanisms import Gaussian, Laplace, Mechanism
from lmodp.plots._style import NOISE_UNIT, colour, finish, finite_or_nan, label_log_axis, labelled, marker, new_figure
from lmodp.plots.epsilon import geometries_of
from lmodp.search.calibrate import calibrate_with_oracle
from lmodp.search.oracle import EpsilonOracle, accountant_epsilon

MAGNITUDES = {"mean_abs": "E|Y|", "std": "standard deviation of Y"}
GEOMETRY_TITLES = {"scalar": "scalar geometry (a one-dimensional query)", "l2": "l2 geometry (a clipped gradient: DP-SGD)"}


@dataclass(frozen=True)
class Calibrated:
    """One shape scaled to one budget: ``factor`` × shape spends ``epsilon`` <= ``target``
    under ``accountant`` (the accountant that made the number, ``"auto"`` resolved)."""

    label: str
    geometry: str
    target: float
    factor: float
    epsilon: float
    mean_abs: float
    std: float
    mechanism: dict
    accountant: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def default_shapes() -> dict[str, Mechanism]:
    """Gaussian, Laplace, and the LMO shape of the paper's released task1 set for ε = 0.7
    (E_lambda read as a rate, as the paper's accountant does)."""
    from lmodp.paper.params import paper_mechanism

    return {
        "Gaussian": Gaussian(1.0),
        "Laplace": Laplace(1.0),
        "LMO (shape of the paper's ε=0.7 set)": paper_mechanism(0.7, "task1", exponential="rate"),
    }


def calibrate_shape(
    shape: Mechanism,
    target: float,
    *,
    sample_rate: float,
    steps: int,
    delta: float,
    geometry: str,
    sensitivity: float = 1.0,
    accountant: str = AUTO,
    tolerance: float = 1e-3,
    label: str = "",
) -> Calibrated:
    """The least multiple c·Y of ``shape`` whose sound ε (recomputed at c) is <= ``target``,
    within a factor 1 + ``tolerance`` (:func:`lmodp.search.calibrate.calibrate_with_oracle`).
    ``accountant="auto"``: the tightest sound accountant for the shape and geometry."""
    accountant = resolve_accountant(accountant, shape, geometry)
    oracle = EpsilonOracle(
        accountant_epsilon(delta=delta, sample_rate=sample_rate, steps=steps, geometry=geometry, sensitivity=sensitivity, accountant=accountant)
    )
    m, spent, factor = calibrate_with_oracle(oracle, shape, target, tolerance=tolerance)
    return Calibrated(
        label=label or repr(shape),
        geometry=geometry,
        target=target,
        factor=factor,
        epsilon=spent,
        mean_abs=m.mean_abs(),
        std=m.std(),
        mechanism=m.to_dict(),
        accountant=accountant,
    )


def equal_budget_table(
    targets: Sequence[float],
    *,
    sample_rate: float,
    steps: int,
    delta: float,
    shapes: Mapping[str, Mechanism] | Sequence[Mechanism] | None = None,
    geometry: str | Sequence[str] = ("scalar", "l2"),
    sensitivity: float = 1.0,
    accountant: str = AUTO,
    tolerance: float = 1e-3,
    progress: bool = False,
) -> list[Calibrated]:
    """Every shape calibrated to every target ε in every geometry (see :func:`calibrate_shape`).

    An accountant that cannot account a shape in a geometry (``"pld"`` for non-Gaussian noise
    in l2) is refused before any calibration. ``progress``: a tqdm bar on stderr (when it is a
    terminal)."""
    items = labelled(default_shapes() if shapes is None else shapes)
    sample_rate = require_sample_rate("sample_rate", sample_rate)
    delta = require_delta("delta", delta)
    steps = require_steps("steps", steps)
    sensitivity = require_positive("sensitivity", sensitivity)
    targets = [require_positive("target epsilon", t) for t in targets]
    if not targets:
        raise ValueError("targets must contain at least one ε")
    geometries = geometries_of(geometry)
    require_accountant_fits(accountant, {repr(label): shape for label, shape in items.items()}, geometries)
    jobs = [(g, label, shape, t) for g in geometries for label, shape in items.items() for t in targets]
    rows = []
    with progress_bar(total=len(jobs), desc="calibrating", unit="shape", enabled=progress) as bar:
        for g, label, shape, t in jobs:
            bar.set_postfix_str(f"{label}, ε={t:g}, {g}", refresh=False)
            rows.append(calibrate_shape(shape, t, sample_rate=sample_rate, steps=steps, delta=delta, geometry=g, sensitivity=sensitivity, accountant=accountant, tolerance=tolerance, label=label))
            bar.update()
    return rows


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


def plot_equal_budget(rows: Sequence[Calibrated], *, magnitude: str = "mean_abs", path: str | Path | None = None) -> Figure:
    """Draw rows of :func:`equal_budget_table`: noise magnitude against the target ε, one panel per
    geometry (shared axes), each panel naming the accountant(s) behind its numbers."""
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {sorted(MAGNITUDES)}, got {magnitude!r}")
    if not rows:
        raise ValueError("rows must not be empty")
    labels = list(dict.fromkeys(r.label for r in rows))
    geometries = list(dict.fromkeys(r.geometry for r in rows))
    targets = sorted({r.target for r in rows})
    fig, axes = new_figure(len(geometries), width=5.6, height=4.6, sharey=True)
    for ax, g in zip(axes, geometries):
        in_panel = [r for r in rows if r.geometry == g]
        for i, label in enumerate(labels):
            sel = sorted((r for r in in_panel if r.label == label), key=lambda r: r.target)
            values = [finite_or_nan(getattr(r, magnitude)) for r in sel]
            ax.plot([r.target for r in sel], values, color=colour(i), marker=marker(i), ms=5, lw=1.8, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(targets, [f"{t:g}" for t in targets], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("target ε of the whole run (sound, same δ)")
        ax.set_title(f"{GEOMETRY_TITLES[g]}\n{accountant_note(in_panel)}", fontsize="medium")
    label_log_axis(axes[0].yaxis, [getattr(r, magnitude) for r in rows])
    axes[0].set_ylabel(f"{MAGNITUDES[magnitude]} ({NOISE_UNIT})")
    axes[0].legend(fontsize="small", loc="lower left")  # the curves fall from the upper left
    fig.suptitle("Noise needed at equal budget (lower is better; a missing point is infinite)", fontsize="medium")
    return finish(fig, path)


def compare_mechanisms(
    targets: Sequence[float] = (0.3, 0.7, 2.0, 3.0),
    *,
    sample_rate: float,
    steps: int,
    delta: float,
    shapes: Mapping[str, Mechanism] | Sequence[Mechanism] | None = None,
    geometry: str | Sequence[str] = ("scalar", "l2"),
    sensitivity: float = 1.0,
    magnitude: str = "mean_abs",
    accountant: str = AUTO,
    tolerance: float = 1e-3,
    progress: bool = False,
    path: str | Path | None = None,
) -> Figure:
    """Noise magnitude (``"mean_abs"``: E|Y|, or ``"std"``) against target ε at equal budget.

    Each shape (default: Gaussian, Laplace and an LMO shape, :func:`default_shapes`) is scaled
    to the least noise whose sound ε under ``accountant`` (default ``"auto"``: the tightest sound
    one, PLD in the scalar geometry and for the Gaussian, RDP otherwise) meets each target,
    separately in each geometry (one panel each). An infinite magnitude (a heavy-tailed LMO) is
    not drawn. ``progress``: a tqdm bar on stderr (when it is a terminal).
    """
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {sorted(MAGNITUDES)}, got {magnitude!r}")
    rows = equal_budget_table(
        targets, sample_rate=sample_rate, steps=steps, delta=delta, shapes=shapes, geometry=geometry,
        sensitivity=sensitivity, accountant=accountant, tolerance=tolerance, progress=progress,
    )
    return plot_equal_budget(rows, magnitude=magnitude, path=path)
