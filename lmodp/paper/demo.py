"""The numbers of ``lmodp demo``: Gaussian vs LMO noise at equal, soundly accounted budgets (SST-2).

For the paper's SST-2 run (:data:`lmodp.paper.setting.SST2`: q = 2048/67350, T = 192,
δ = 1e-10) and each budget ε in (0.3, 0.7, 2, 3), in both geometries ("scalar": a
one-dimensional query; "l2": an L2-clipped gradient with i.i.d. noise per coordinate, what DP-SGD
does), the demo reports:

* the paper's own "overall ε" for its released task1 parameter set for that ε
  (:mod:`lmodp.paper.pipeline`: NOT a privacy guarantee);
* lmodp's sound ε of that released set as is (E_lambda read as a rate, as the paper's
  accountant reads it), and its noise E|Y|;
* the least noise meeting the budget, soundly, for the Gaussian, for the released LMO shape
  rescaled, and (unless disabled) for an LMO found by :func:`lmodp.search.search`, which
  reports plain Laplace when no LMO shape beats it.

Every ε comes from the tightest sound accountant (``"auto"``): the PLD in the scalar geometry
and for the Gaussian, the RDP for Laplace mixtures in l2; the table says which. This module
computes (no matplotlib needed); :mod:`lmodp.paper.demo_report` draws the figures and writes
``report.md``, ``report.html`` and ``results.json``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lmodp._progress import progress_bar
from lmodp._validation import require_positive
from lmodp.accounting.api import epsilon
from lmodp.accounting.registry import AUTO, resolve_accountant
from lmodp.accounting.spec import RunSpec
from lmodp.mechanisms import Gaussian, Laplace
from lmodp.paper.params import paper_budgets, paper_mechanism
from lmodp.paper.pipeline import PaperNumberWarning, paper_overall_epsilon
from lmodp.paper.setting import SST2
from lmodp.search.api import search
from lmodp.search.calibrate import Calibrated, calibrate_shape

logger = logging.getLogger(__name__)

PAPER_EPSILON_LABEL = "paper's ε, not a guarantee"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo computes. :data:`FULL` is the default, :data:`QUICK` the reduced one."""

    sample_rate: float = SST2.sample_rate
    steps: int = SST2.steps
    delta: float = SST2.delta
    budgets: tuple[float, ...] = (0.3, 0.7, 2.0, 3.0)
    geometries: tuple[str, ...] = ("scalar", "l2")
    tolerance: float = 1e-3
    search: bool = True
    #: The l2 searches (which find plain Laplace at every budget: in l2 the Gaussian wins, see
    #: docs/search-results.md) take two minutes on 2 cores; ``lmodp demo --search-l2`` runs them.
    search_geometries: tuple[str, ...] = ("scalar",)
    search_options: dict[str, Any] = field(default_factory=lambda: {"maxiter": 2, "popsize": 2, "polish_evaluations": 10})
    density_samples: int = 200_000

    @property
    def run(self) -> RunSpec:
        """The accounted run (q, T, δ; sensitivity 1) in the l2 geometry."""
        return RunSpec(sample_rate=self.sample_rate, steps=self.steps, delta=self.delta)


FULL = DemoSettings()
QUICK = DemoSettings(
    budgets=(0.7, 3.0),
    tolerance=1e-2,
    search_geometries=("scalar",),
    search_options={"maxiter": 1, "popsize": 1, "polish_evaluations": 4},
    density_samples=20_000,
)


@dataclass
class DemoRow:
    """One budget in one geometry. Noise magnitudes are E|Y| in units of the sensitivity."""

    budget: float
    geometry: str
    paper_epsilon: float
    released_epsilon: float
    released_mean_abs: float
    gaussian_sigma: float
    gaussian_epsilon: float
    gaussian_mean_abs: float
    laplace_mean_abs: float
    rescaled_lmo_mean_abs: float
    rescaled_lmo_epsilon: float
    accountant: str = ""
    gaussian_accountant: str = ""
    searched_lmo_mean_abs: float | None = None
    searched_lmo_epsilon: float | None = None
    searched_lmo: dict | None = None
    searched_lmo_is_laplace: bool | None = None

    def _lmo_candidates(self) -> dict[str, float]:
        """E|Y| of each LMO meeting the budget: plain Laplace (an LMO with ω a point mass), the
        released shape rescaled, and the searched shape (where searched, and not Laplace itself)."""
        out = {"plain Laplace": self.laplace_mean_abs, "released shape": self.rescaled_lmo_mean_abs}
        if self.searched_lmo_mean_abs is not None and not self.searched_lmo_is_laplace:
            out["searched shape"] = self.searched_lmo_mean_abs
        return out

    @property
    def best_lmo_mean_abs(self) -> float:
        return min(self._lmo_candidates().values())

    @property
    def best_lmo(self) -> str:
        """What the best LMO meeting the budget is: ``"plain Laplace"``, ``"searched shape"`` or
        ``"released shape"`` (rescaled), whichever has the least E|Y| (plain Laplace on a tie:
        a shape is called better only where it is)."""
        candidates = self._lmo_candidates()
        return min(candidates, key=lambda k: (candidates[k], k != "plain Laplace"))

    @property
    def lmo_over_gaussian(self) -> float:
        """E|Y| of the best LMO meeting the budget over that of the Gaussian (< 1: LMO wins)."""
        return self.best_lmo_mean_abs / self.gaussian_mean_abs

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "best_lmo": self.best_lmo, "lmo_over_gaussian": self.lmo_over_gaussian}


@dataclass
class DemoResult:
    """Everything the demo computed: the table rows, the figure files (relative to the output
    folder), every calibrated mechanism (:class:`~lmodp.search.calibrate.Calibrated`) and the wall time."""

    settings: DemoSettings
    rows: list[DemoRow]
    figures: dict[str, str]
    wall_time_s: float
    calibrated: list[Calibrated] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "accountant": f"{AUTO}: the tightest sound accountant (PLD in the scalar geometry and for the Gaussian, RDP for Laplace mixtures in l2); each row names its own",
            "rows": [r.to_dict() for r in self.rows],
            "figures": self.figures,
            "wall_time_s": self.wall_time_s,
            "calibrated": [c.to_dict() for c in self.calibrated],
            "paper_epsilon_note": f"paper_epsilon is the {PAPER_EPSILON_LABEL}",
        }


def paper_epsilon(budget: float, settings: DemoSettings) -> float:
    """The paper's "overall ε" for the released set with nominal per-step ε = ``budget``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaperNumberWarning)
        return paper_overall_epsilon(budget, sample_rate=settings.sample_rate, steps=settings.steps, delta=settings.delta)[0]


SHAPE_KEYS = ("Gaussian", "Laplace", "LMO")


def _calibrated(settings: DemoSettings, bar: Any) -> dict[tuple[str, str, float], Calibrated]:
    """Every shape (Gaussian, Laplace, each released LMO set) calibrated to its budget(s)."""
    out = {}
    for g in settings.geometries:
        for b in settings.budgets:
            shapes = {"Gaussian": Gaussian(1.0), "Laplace": Laplace(1.0), "LMO": paper_mechanism(b, exponential="rate")}
            for key, shape in shapes.items():
                bar.set_postfix_str(f"calibrating {key} to ε={b:g} ({g})", refresh=False)
                label = "LMO (paper's released set for each ε, rescaled)" if key == "LMO" else key
                out[(key, g, b)] = calibrate_shape(shape, b, settings.run.replace(geometry=g), tolerance=settings.tolerance, label=label)
                logger.info("calibrated %s to ε=%g (%s): E|Y| = %.4g", key, b, g, out[(key, g, b)].mean_abs)
                bar.update()
    return out


def _row(budget: float, geometry: str, settings: DemoSettings, cal: dict, bar: Any) -> DemoRow:
    released = paper_mechanism(budget, exponential="rate")
    gauss, lap, lmo = (cal[(k, geometry, budget)] for k in SHAPE_KEYS)
    row = DemoRow(
        budget=budget,
        geometry=geometry,
        paper_epsilon=paper_epsilon(budget, settings),
        released_epsilon=epsilon(released, settings.run.replace(geometry=geometry), accountant=AUTO),
        released_mean_abs=released.mean_abs(),
        gaussian_sigma=gauss.mechanism["sigma"],
        gaussian_epsilon=gauss.epsilon,
        gaussian_mean_abs=gauss.mean_abs,
        laplace_mean_abs=lap.mean_abs,
        rescaled_lmo_mean_abs=lmo.mean_abs,
        rescaled_lmo_epsilon=lmo.epsilon,
        accountant=resolve_accountant(AUTO, released, geometry),
        gaussian_accountant=gauss.accountant,
    )
    if settings.search and geometry in settings.search_geometries:
        bar.set_postfix_str(f"searching LMO shapes for ε={budget:g} ({geometry})", refresh=False)
        found = search(budget, settings.run.replace(geometry=geometry), tolerance=settings.tolerance, **settings.search_options)
        row = replace(
            row, searched_lmo_mean_abs=found.mechanism.mean_abs(), searched_lmo_epsilon=found.epsilon,
            searched_lmo=found.mechanism.to_dict(), searched_lmo_is_laplace=found.laplace_is_best,
        )
    bar.update()
    return row


def compute_rows(settings: DemoSettings = FULL, *, bar: Any = None) -> tuple[list[DemoRow], dict]:
    """The demo's numbers (no figures): one :class:`DemoRow` per budget and geometry."""
    released = paper_budgets("task1")
    for b in settings.budgets:
        if require_positive("budget", b) not in released:
            raise ValueError(f"budgets must be among the ε of the paper's released task1 sets, {released}, got {b:g}")
    bar = progress_bar(enabled=False) if bar is None else bar
    cal = _calibrated(settings, bar)
    rows = [_row(b, g, settings, cal, bar) for g in settings.geometries for b in settings.budgets]
    return rows, cal
