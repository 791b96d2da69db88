"""Equal-budget comparison: several noise shapes, each scaled to the least noise meeting each budget.

:func:`equal_budget_table` calibrates every shape to every target ε in every geometry with
:func:`lmodp.search.calibrate.calibrate_shape` (one :class:`~lmodp.search.calibrate.Calibrated`
row each); :func:`lmodp.plots.plot_equal_budget` draws the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lmodp._progress import progress_bar
from lmodp._validation import require_positive
from lmodp.accounting.registry import AUTO, require_accountant_fits
from lmodp.accounting.spec import RunSpec, run_and_geometries
from lmodp.mechanisms import Gaussian, Laplace, Mechanism
from lmodp.mechanisms.describe import labelled
from lmodp.search.calibrate import Calibrated, calibrate_shape


def default_shapes() -> dict[str, Mechanism]:
    """Gaussian and Laplace (the paper's LMO shape beside them: :func:`lmodp.paper.comparison_shapes`)."""
    return {"Gaussian": Gaussian(1.0), "Laplace": Laplace(1.0)}


def equal_budget_table(
    targets: Sequence[float],
    run: RunSpec | None = None,
    *,
    sample_rate: float | None = None,
    steps: int | None = None,
    delta: float | None = None,
    shapes: Mapping[str, Mechanism] | Sequence[Mechanism] | None = None,
    geometry: str | Sequence[str] | None = None,
    sensitivity: float | None = None,
    accountant: str = AUTO,
    tolerance: float = 1e-3,
    progress: bool = False,
) -> list[Calibrated]:
    """Every shape (default: :func:`default_shapes`) calibrated to every target ε in every
    geometry (:func:`~lmodp.search.calibrate.calibrate_shape`).

    The run: ``run`` and/or its settings as keywords; ``geometry`` is one geometry or several
    (default: the run's, or both without a run). An accountant that cannot account a shape in a
    geometry (``"pld"`` for non-Gaussian noise in l2) is refused before any calibration.
    ``progress``: a tqdm bar on stderr (when it is a terminal)."""
    items = labelled(default_shapes() if shapes is None else shapes)
    spec, geometries = run_and_geometries(
        run, geometry, sample_rate=sample_rate, steps=steps, delta=delta, sensitivity=sensitivity
    )
    targets = [require_positive("target epsilon", t) for t in targets]
    if not targets:
        raise ValueError("targets must contain at least one ε")
    require_accountant_fits(accountant, {repr(label): shape for label, shape in items.items()}, geometries)
    jobs = [(g, label, shape, t) for g in geometries for label, shape in items.items() for t in targets]
    rows = []
    with progress_bar(total=len(jobs), desc="calibrating", unit="shape", enabled=progress) as bar:
        for g, label, shape, t in jobs:
            bar.set_postfix_str(f"{label}, ε={t:g}, {g}", refresh=False)
            rows.append(calibrate_shape(shape, t, spec.replace(geometry=g), accountant=accountant, tolerance=tolerance, label=label))
            bar.update()
    return rows
