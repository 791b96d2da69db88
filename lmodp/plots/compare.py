"""``compare_mechanisms``: how much noise each mechanism needs for the same privacy budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from matplotlib.figure import Figure

from lmodp._validation import require_delta, require_positive, require_sample_rate, require_steps
from lmodp.mechanisms import Gaussian, Laplace, Mechanism
from lmodp.plots._style import GEOMETRY_STYLES, NOISE_UNIT, colour, finish, finite_or_nan, labelled, new_figure
from lmodp.plots.epsilon import geometries_of
from lmodp.search.calibrate import calibrate_with_oracle
from lmodp.search.oracle import EpsilonOracle, accountant_epsilon

MAGNITUDES = {"mean_abs": "E|Y|", "std": "standard deviation of Y"}


@dataclass(frozen=True)
class Calibrated:
    """One shape scaled to one budget: ``factor`` × shape spends ``epsilon`` <= ``target``."""

    label: str
    geometry: str
    target: float
    factor: float
    epsilon: float
    mean_abs: float
    std: float
    mechanism: dict

    def to_dict(self) -> dict:
        return asdict(self)


def default_shapes() -> dict[str, Mechanism]:
    """Gaussian, Laplace, and the LMO shape of the paper's released task1 set for ε = 0.7
    (E_lambda read as a rate, as the paper's accountant does)."""
    from lmodp.paper_params import paper_mechanism

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
    accountant: str = "rdp",
    tolerance: float = 1e-3,
    label: str = "",
) -> Calibrated:
    """The least multiple c·Y of ``shape`` whose sound ε (recomputed at c) is <= ``target``,
    within a factor 1 + ``tolerance`` (:func:`lmodp.search.calibrate.calibrate_with_oracle`)."""
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
    accountant: str = "rdp",
    tolerance: float = 1e-3,
) -> list[Calibrated]:
    """Every shape calibrated to every target ε in every geometry (see :func:`calibrate_shape`)."""
    items = labelled(default_shapes() if shapes is None else shapes)
    sample_rate = require_sample_rate("sample_rate", sample_rate)
    delta = require_delta("delta", delta)
    steps = require_steps("steps", steps)
    sensitivity = require_positive("sensitivity", sensitivity)
    targets = [require_positive("target epsilon", t) for t in targets]
    if not targets:
        raise ValueError("targets must contain at least one ε")
    return [
        calibrate_shape(shape, t, sample_rate=sample_rate, steps=steps, delta=delta, geometry=g, sensitivity=sensitivity, accountant=accountant, tolerance=tolerance, label=label)
        for g in geometries_of(geometry)
        for label, shape in items.items()
        for t in targets
    ]


def plot_equal_budget(rows: Sequence[Calibrated], *, magnitude: str = "mean_abs", accountant: str = "rdp", path: str | Path | None = None) -> Figure:
    """Draw rows of :func:`equal_budget_table`: noise magnitude against the target ε."""
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {sorted(MAGNITUDES)}, got {magnitude!r}")
    if not rows:
        raise ValueError("rows must not be empty")
    labels = list(dict.fromkeys(r.label for r in rows))
    fig, (ax,) = new_figure(1, width=7.2)
    for i, label in enumerate(labels):
        for g in dict.fromkeys(r.geometry for r in rows):
            sel = sorted((r for r in rows if r.label == label and r.geometry == g), key=lambda r: r.target)
            if sel:
                values = [finite_or_nan(getattr(r, magnitude)) for r in sel]
                ax.plot([r.target for r in sel], values, color=colour(i), ls=GEOMETRY_STYLES[g], marker="o", ms=4, lw=1.8, label=f"{label} — {g} geometry")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("target ε (sound upper bound, same δ)")
    ax.set_ylabel(f"{MAGNITUDES[magnitude]} ({NOISE_UNIT})")
    ax.set_title(f"Noise needed at equal budget ({accountant.upper()} accountant; missing point = infinite)", fontsize="medium")
    ax.legend(fontsize="small", loc="lower left")  # the curves fall from the upper left
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
    accountant: str = "rdp",
    tolerance: float = 1e-3,
    path: str | Path | None = None,
) -> Figure:
    """Noise magnitude (``"mean_abs"``: E|Y|, or ``"std"``) against target ε at equal budget.

    Each shape (default: Gaussian, Laplace and an LMO shape, :func:`default_shapes`) is scaled
    to the least noise whose sound ε under ``accountant`` meets each target, separately in each
    geometry (solid: scalar, dashed: l2). An infinite magnitude (a heavy-tailed LMO) is not drawn.
    """
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {sorted(MAGNITUDES)}, got {magnitude!r}")
    rows = equal_budget_table(
        targets, sample_rate=sample_rate, steps=steps, delta=delta, shapes=shapes, geometry=geometry,
        sensitivity=sensitivity, accountant=accountant, tolerance=tolerance,
    )
    return plot_equal_budget(rows, magnitude=magnitude, accountant=accountant, path=path)
