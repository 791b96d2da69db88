"""The ``lmodp demo``: Gaussian vs LMO noise at equal, soundly accounted budgets (SST-2 setting).

For the paper's SST-2 run (q = 2048/67350, T = 192, δ = 1e-10) and each budget ε in
(0.3, 0.7, 2, 3), in both geometries ("scalar": a one-dimensional query; "l2": an L2-clipped
gradient with i.i.d. noise per coordinate, what DP-SGD does), the demo reports:

* the paper's own "overall ε" for its released task1 parameter set for that ε
  (:mod:`lmodp.accounting.paper`: NOT a privacy guarantee);
* lmodp's sound ε of that released set as is (E_lambda read as a rate, as the paper's
  accountant reads it), and its noise E|Y|;
* the least noise meeting the budget, soundly, for the Gaussian, for the released LMO shape
  rescaled, and (unless disabled) for an LMO found by :func:`lmodp.search.search`.

It writes figures, ``report.md``, ``report.html`` and ``results.json`` into one folder.
Matplotlib (the ``plots`` extra) is needed for the figures.
"""

from __future__ import annotations

import html
import json
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from lmodp._validation import require_positive
from lmodp.accounting.api import epsilon
from lmodp.accounting.conversion import OrderGridEdgeWarning
from lmodp.accounting.paper import PaperNumberWarning, paper_overall_epsilon
from lmodp.mechanisms import Gaussian, Laplace, mechanism_from_dict
from lmodp.paper_params import paper_mechanism

logger = logging.getLogger(__name__)

PAPER_EPSILON_LABEL = "paper's ε, not a guarantee"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo computes. :data:`FULL` is the default, :data:`QUICK` the reduced one."""

    sample_rate: float = 2048 / 67350
    steps: int = 192
    delta: float = 1e-10
    budgets: tuple[float, ...] = (0.3, 0.7, 2.0, 3.0)
    geometries: tuple[str, ...] = ("scalar", "l2")
    tolerance: float = 1e-3
    search: bool = True
    #: The l2 searches take about 35 s of the demo's minute on 2 cores;
    #: ``lmodp demo --no-search-l2`` leaves them out.
    search_geometries: tuple[str, ...] = ("scalar", "l2")
    search_options: dict[str, Any] = field(default_factory=lambda: {"maxiter": 2, "popsize": 2, "polish_evaluations": 10})
    density_samples: int = 200_000


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
    searched_lmo_mean_abs: float | None = None
    searched_lmo_epsilon: float | None = None
    searched_lmo: dict | None = None

    @property
    def best_lmo_mean_abs(self) -> float:
        values = [self.rescaled_lmo_mean_abs] + ([self.searched_lmo_mean_abs] if self.searched_lmo_mean_abs is not None else [])
        return min(values)

    @property
    def lmo_over_gaussian(self) -> float:
        """E|Y| of the best LMO meeting the budget over that of the Gaussian (< 1: LMO wins)."""
        return self.best_lmo_mean_abs / self.gaussian_mean_abs

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lmo_over_gaussian": self.lmo_over_gaussian}


@dataclass
class DemoResult:
    """Everything the demo computed: the table rows, the figure files (relative to the output
    folder), every calibrated mechanism (``lmodp.plots.compare.Calibrated``) and the wall time."""

    settings: DemoSettings
    rows: list[DemoRow]
    figures: dict[str, str]
    wall_time_s: float
    calibrated: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
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


def _calibrated(settings: DemoSettings) -> dict[tuple[str, str, float], Any]:
    """Every shape (Gaussian, Laplace, each released LMO set) calibrated to its budget(s)."""
    from lmodp.plots.compare import calibrate_shape

    common = dict(sample_rate=settings.sample_rate, steps=settings.steps, delta=settings.delta, tolerance=settings.tolerance)
    out = {}
    for g in settings.geometries:
        for b in settings.budgets:
            shapes = {"Gaussian": Gaussian(1.0), "Laplace": Laplace(1.0), "LMO": paper_mechanism(b, exponential="rate")}
            for key, shape in shapes.items():
                label = "LMO (paper's released set for each ε, rescaled)" if key == "LMO" else key
                out[(key, g, b)] = calibrate_shape(shape, b, geometry=g, label=label, **common)
                logger.info("calibrated %s to ε=%g (%s): E|Y| = %.4g", key, b, g, out[(key, g, b)].mean_abs)
    return out


def _row(budget: float, geometry: str, settings: DemoSettings, cal: dict) -> DemoRow:
    released = paper_mechanism(budget, exponential="rate")
    gauss, lap, lmo = (cal[(k, geometry, budget)] for k in ("Gaussian", "Laplace", "LMO"))
    row = DemoRow(
        budget=budget,
        geometry=geometry,
        paper_epsilon=paper_epsilon(budget, settings),
        released_epsilon=epsilon(released, sample_rate=settings.sample_rate, steps=settings.steps, delta=settings.delta, geometry=geometry),
        released_mean_abs=released.mean_abs(),
        gaussian_sigma=gauss.mechanism["sigma"],
        gaussian_epsilon=gauss.epsilon,
        gaussian_mean_abs=gauss.mean_abs,
        laplace_mean_abs=lap.mean_abs,
        rescaled_lmo_mean_abs=lmo.mean_abs,
        rescaled_lmo_epsilon=lmo.epsilon,
    )
    if settings.search and geometry in settings.search_geometries:
        from lmodp.search.api import search

        found = search(budget, settings.delta, sample_rate=settings.sample_rate, steps=settings.steps, geometry=geometry, tolerance=settings.tolerance, **settings.search_options)
        row = replace(row, searched_lmo_mean_abs=found.mechanism.mean_abs(), searched_lmo_epsilon=found.epsilon, searched_lmo=found.mechanism.to_dict())
    return row


def compute_rows(settings: DemoSettings = FULL) -> tuple[list[DemoRow], dict]:
    """The demo's numbers (no figures): one :class:`DemoRow` per budget and geometry."""
    for b in settings.budgets:
        require_positive("budget", b)
    cal = _calibrated(settings)
    rows = [_row(b, g, settings, cal) for g in settings.geometries for b in settings.budgets]
    return rows, cal


def _figures(out: Path, settings: DemoSettings, rows: list[DemoRow], cal: dict) -> dict[str, str]:
    from lmodp import plots

    mid = settings.budgets[len(settings.budgets) // 2 - 1] if len(settings.budgets) > 1 else settings.budgets[0]
    g = "l2" if "l2" in settings.geometries else settings.geometries[0]
    at_budget = {
        f"Gaussian at ε={mid:g} ({g})": mechanism_from_dict(cal[("Gaussian", g, mid)].mechanism),
        f"LMO at ε={mid:g} ({g}, released shape)": mechanism_from_dict(cal[("LMO", g, mid)].mechanism),
    }
    released = paper_mechanism(mid, exponential="rate")
    figures = {"density": "noise_density.png", "rdp": "rdp_curve.png", "epsilon": "epsilon_curve.png", "compare": "compare_mechanisms.png"}
    plots.noise_density({**at_budget, f"paper's released set ε={mid:g}": released}, samples=settings.density_samples, path=out / figures["density"])
    plots.rdp_curve(released, path=out / figures["rdp"])
    plots.epsilon_curve(at_budget, sample_rate=settings.sample_rate, steps=settings.steps, delta=settings.delta, geometry=settings.geometries, x="epochs", path=out / figures["epsilon"])
    plots.plot_equal_budget(list(cal.values()), magnitude="mean_abs", path=out / figures["compare"])
    return figures


def run_demo(out: str | Path = "lmodp-demo", settings: DemoSettings = FULL) -> DemoResult:
    """Compute the demo's numbers, draw its figures and write its report into ``out``."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # Large ε (the released sets in the l2 geometry) put the optimal Rényi order at the
        # grid's edge: the value is still a valid upper bound, possibly loose; not worth a warning here.
        warnings.simplefilter("ignore", OrderGridEdgeWarning)
        rows, cal = compute_rows(settings)
        figures = _figures(out, settings, rows, cal)
    result = DemoResult(settings=settings, rows=rows, figures=figures, wall_time_s=time.perf_counter() - started, calibrated=list(cal.values()))
    (out / "results.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    (out / "report.md").write_text(markdown_report(result))
    (out / "report.html").write_text(html_report(result))
    return result


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "—"
    if not math.isfinite(x):
        return "∞"
    return f"{x:.{digits}g}"


TABLE_HEADER = (
    "budget ε",
    "geometry",
    PAPER_EPSILON_LABEL,
    "released LMO: sound ε",
    "released LMO: E|Y|",
    "Gaussian σ",
    "Gaussian E|Y|",
    "Laplace E|Y|",
    "LMO (released shape) E|Y|",
    "searched LMO E|Y|",
    "best LMO / Gaussian",
)


def table_rows(result: DemoResult) -> list[list[str]]:
    """The summary table as strings, one list per row (columns: :data:`TABLE_HEADER`)."""
    return [
        [
            _fmt(r.budget),
            r.geometry,
            _fmt(r.paper_epsilon),
            _fmt(r.released_epsilon),
            _fmt(r.released_mean_abs),
            _fmt(r.gaussian_sigma),
            _fmt(r.gaussian_mean_abs),
            _fmt(r.laplace_mean_abs),
            _fmt(r.rescaled_lmo_mean_abs),
            _fmt(r.searched_lmo_mean_abs),
            _fmt(r.lmo_over_gaussian, 3),
        ]
        for r in result.rows
    ]


def text_table(result: DemoResult) -> str:
    """The summary table as aligned plain text (what ``lmodp demo`` prints)."""
    body = table_rows(result)
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(TABLE_HEADER)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(TABLE_HEADER, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join(lines)


def _intro(result: DemoResult) -> list[str]:
    s = result.settings
    return [
        f"Setting: the paper's SST-2 run, Poisson rate q = {s.sample_rate:.6g} (2048/67350), T = {s.steps} steps, "
        f"δ = {s.delta:g}, sensitivity (clip norm) 1. Noise magnitudes are E|Y| per coordinate in units of the sensitivity.",
        "",
        "* **budget ε**: the privacy budget of the whole run (all T steps, at this δ) that the calibrated mechanisms meet, "
        "soundly; it also names the paper's released parameter set (the paper calls its set for per-step ε = 0.3 \"ε = 0.3\").",
        f"* **{PAPER_EPSILON_LABEL}**: the LMO-DP paper's \"overall ε\" for its released task1 parameter set of that budget, "
        "reproduced with its own pipeline (a Gaussian's ε attached to the LMO run; see docs/concepts.md). It is not an upper bound on anything.",
        "* **released LMO: sound ε**: lmodp's upper bound on ε for that released set used as is (E_lambda read as a rate), "
        "Poisson-subsampled and composed over T steps, in each geometry.",
        "* **Gaussian / Laplace / LMO E|Y|**: the least noise of each shape whose sound ε (RDP accountant) is at most the budget, "
        f"to relative tolerance {s.tolerance:g}"
        + (f", and an LMO found by `lmodp.search.search` (geometries: {', '.join(s.search_geometries)}; — where not searched)" if s.search else "")
        + ".",
        "* **best LMO / Gaussian** < 1 means LMO needs less noise than the Gaussian at the same budget; in the l2 geometry "
        "(DP-SGD) the Gaussian is expected to win, because the accounting is governed by the noise's Fisher information.",
    ]


def markdown_report(result: DemoResult) -> str:
    """report.md: the setting, the table, and the figures."""
    lines = ["# lmodp demo: Gaussian vs LMO noise at equal budget", ""] + _intro(result) + [""]
    lines.append("| " + " | ".join(h.replace("|", "\\|") for h in TABLE_HEADER) + " |")
    lines.append("|" + "---|" * len(TABLE_HEADER))
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    lines += ["", "## Figures", ""]
    for name, file in result.figures.items():
        lines += [f"![{name}]({file})", ""]
    lines.append(f"Computed in {result.wall_time_s:.1f} s. Numbers: results.json.")
    return "\n".join(lines) + "\n"


def html_report(result: DemoResult) -> str:
    """report.html: the same content as report.md, as a standalone page."""
    intro = "".join(f"<p>{html.escape(line.lstrip('* ').replace('**', ''))}</p>" for line in _intro(result) if line)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in TABLE_HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table_rows(result))
    figures = "".join(f'<figure><img src="{html.escape(f)}" alt="{html.escape(n)}" style="max-width:100%"><figcaption>{html.escape(n)}</figcaption></figure>' for n, f in result.figures.items())
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>lmodp demo</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:3px 6px;text-align:right}</style></head><body>"
        f"<h1>lmodp demo: Gaussian vs LMO noise at equal budget</h1>{intro}<table><tr>{head}</tr>{body}</table>"
        f"<h2>Figures</h2>{figures}<p>Computed in {result.wall_time_s:.1f} s. Numbers: results.json.</p></body></html>\n"
    )
