"""The ``lmodp demo``: Gaussian vs LMO noise at equal, soundly accounted budgets (SST-2 setting).

For the paper's SST-2 run (q = 2048/67350, T = 192, δ = 1e-10) and each budget ε in
(0.3, 0.7, 2, 3), in both geometries ("scalar": a one-dimensional query; "l2": an L2-clipped
gradient with i.i.d. noise per coordinate, what DP-SGD does), the demo reports:

* the paper's own "overall ε" for its released task1 parameter set for that ε
  (:mod:`lmodp.paper.pipeline`: NOT a privacy guarantee);
* lmodp's sound ε of that released set as is (E_lambda read as a rate, as the paper's
  accountant reads it), and its noise E|Y|;
* the least noise meeting the budget, soundly, for the Gaussian, for the released LMO shape
  rescaled, and (unless disabled) for an LMO found by :func:`lmodp.search.search`, which
  reports plain Laplace when no LMO shape beats it.

Every ε comes from the tightest sound accountant (``"auto"``): the PLD in the scalar geometry
and for the Gaussian, the RDP for Laplace mixtures in l2; the table says which. It writes
figures, ``report.md``, ``report.html`` and ``results.json`` into one folder. Matplotlib (the
``plots`` extra) is needed for the figures.
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

from lmodp._progress import progress_bar
from lmodp._validation import require_positive
from lmodp.accounting.api import AUTO, epsilon, resolve_accountant
from lmodp.accounting.conversion import OrderGridEdgeWarning
from lmodp.paper.pipeline import PaperNumberWarning, paper_overall_epsilon
from lmodp.mechanisms import Gaussian, Laplace, describe, mechanism_from_dict
from lmodp.paper.params import paper_budgets, paper_mechanism

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
    accountant: str = ""
    gaussian_accountant: str = ""
    searched_lmo_mean_abs: float | None = None
    searched_lmo_epsilon: float | None = None
    searched_lmo: dict | None = None
    searched_lmo_is_laplace: bool | None = None

    @property
    def best_lmo_mean_abs(self) -> float:
        values = [self.rescaled_lmo_mean_abs] + ([self.searched_lmo_mean_abs] if self.searched_lmo_mean_abs is not None else [])
        return min(values)

    @property
    def best_lmo(self) -> str:
        """What the best LMO meeting the budget is: ``"plain Laplace"`` (the search found no LMO
        shape better than Laplace), ``"searched shape"`` or ``"released shape"`` (rescaled)."""
        if self.searched_lmo_mean_abs is not None and self.searched_lmo_mean_abs <= self.rescaled_lmo_mean_abs:
            return "plain Laplace" if self.searched_lmo_is_laplace else "searched shape"
        return "released shape"

    @property
    def lmo_over_gaussian(self) -> float:
        """E|Y| of the best LMO meeting the budget over that of the Gaussian (< 1: LMO wins)."""
        return self.best_lmo_mean_abs / self.gaussian_mean_abs

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "best_lmo": self.best_lmo, "lmo_over_gaussian": self.lmo_over_gaussian}


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


_SHAPE_KEYS = ("Gaussian", "Laplace", "LMO")


def _calibrated(settings: DemoSettings, bar: Any) -> dict[tuple[str, str, float], Any]:
    """Every shape (Gaussian, Laplace, each released LMO set) calibrated to its budget(s)."""
    from lmodp.plots.compare import calibrate_shape

    common = dict(sample_rate=settings.sample_rate, steps=settings.steps, delta=settings.delta, tolerance=settings.tolerance)
    out = {}
    for g in settings.geometries:
        for b in settings.budgets:
            shapes = {"Gaussian": Gaussian(1.0), "Laplace": Laplace(1.0), "LMO": paper_mechanism(b, exponential="rate")}
            for key, shape in shapes.items():
                bar.set_postfix_str(f"calibrating {key} to ε={b:g} ({g})", refresh=False)
                label = "LMO (paper's released set for each ε, rescaled)" if key == "LMO" else key
                out[(key, g, b)] = calibrate_shape(shape, b, geometry=g, label=label, **common)
                logger.info("calibrated %s to ε=%g (%s): E|Y| = %.4g", key, b, g, out[(key, g, b)].mean_abs)
                bar.update()
    return out


def _row(budget: float, geometry: str, settings: DemoSettings, cal: dict, bar: Any) -> DemoRow:
    released = paper_mechanism(budget, exponential="rate")
    gauss, lap, lmo = (cal[(k, geometry, budget)] for k in _SHAPE_KEYS)
    row = DemoRow(
        budget=budget,
        geometry=geometry,
        paper_epsilon=paper_epsilon(budget, settings),
        released_epsilon=epsilon(released, sample_rate=settings.sample_rate, steps=settings.steps, delta=settings.delta, geometry=geometry, accountant=AUTO),
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
        from lmodp.search.api import search

        bar.set_postfix_str(f"searching LMO shapes for ε={budget:g} ({geometry})", refresh=False)
        found = search(budget, settings.delta, sample_rate=settings.sample_rate, steps=settings.steps, geometry=geometry, tolerance=settings.tolerance, **settings.search_options)
        row = replace(
            row, searched_lmo_mean_abs=found.mechanism.mean_abs(), searched_lmo_epsilon=found.epsilon,
            searched_lmo=found.mechanism.to_dict(), searched_lmo_is_laplace=found.laplace_is_best,
        )
    bar.update()
    return row


def _task_count(settings: DemoSettings) -> int:
    """Progress units: every calibration, every table row and every figure."""
    cells = len(settings.geometries) * len(settings.budgets)
    return cells * len(_SHAPE_KEYS) + cells + len(FIGURES)


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


#: The figures of the demo: key -> file name (captions: :func:`figure_captions`).
FIGURES = {
    "density": "noise_density.png",
    "rdp": "rdp_curve.png",
    "epsilon": "epsilon_curve.png",
    "compare": "compare_mechanisms.png",
}


def _middle_budget(settings: DemoSettings) -> float:
    return settings.budgets[len(settings.budgets) // 2 - 1] if len(settings.budgets) > 1 else settings.budgets[0]


def _figures(out: Path, settings: DemoSettings, rows: list[DemoRow], cal: dict, bar: Any) -> dict[str, str]:
    from lmodp import plots

    mid = _middle_budget(settings)
    g = "l2" if "l2" in settings.geometries else settings.geometries[0]
    at_budget = {
        f"Gaussian at ε={mid:g} ({g})": mechanism_from_dict(cal[("Gaussian", g, mid)].mechanism),
        f"LMO at ε={mid:g} ({g}, released shape)": mechanism_from_dict(cal[("LMO", g, mid)].mechanism),
    }
    released = paper_mechanism(mid, exponential="rate")
    released_eps = next(r.released_epsilon for r in rows if r.budget == mid and r.geometry == g)
    released_label = f"paper's released \"ε={mid:g}\" set, as is (sound ε={released_eps:.4g}, {g})"
    draw = {
        "density": lambda path: plots.noise_density({**at_budget, released_label: released}, samples=settings.density_samples, path=path),
        "rdp": lambda path: plots.rdp_curve(released, path=path),
        "epsilon": lambda path: plots.epsilon_curve(
            at_budget, sample_rate=settings.sample_rate, steps=settings.steps, delta=settings.delta, geometry=settings.geometries,
            x="epochs", path=path,
        ),
        "compare": lambda path: plots.plot_equal_budget(list(cal.values()), magnitude="mean_abs", path=path),
    }
    for key, file in FIGURES.items():
        bar.set_postfix_str(f"drawing {file}", refresh=False)
        draw[key](out / file)
        bar.update()
    return dict(FIGURES)


def run_demo(out: str | Path = "lmodp-demo", settings: DemoSettings = FULL, *, progress: bool = False) -> DemoResult:
    """Compute the demo's numbers, draw its figures and write its report into ``out``.

    ``progress``: a tqdm bar on stderr (shown only when stderr is a terminal) over the
    calibrations, table rows and figures."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), progress_bar(total=_task_count(settings), desc="lmodp demo", unit="task", enabled=progress) as bar:
        # Large ε (the released sets in the l2 geometry) put the optimal Rényi order at the
        # grid's edge: the value is still a valid upper bound, possibly loose; not worth a warning here.
        warnings.simplefilter("ignore", OrderGridEdgeWarning)
        rows, cal = compute_rows(settings, bar=bar)
        figures = _figures(out, settings, rows, cal, bar)
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
    "accountant",
    PAPER_EPSILON_LABEL,
    "released LMO: sound ε",
    "released LMO: E|Y|",
    "Gaussian σ",
    "Gaussian E|Y|",
    "Laplace E|Y|",
    "LMO (released shape) E|Y|",
    "searched LMO E|Y|",
    "best LMO",
    "best LMO / Gaussian",
)


def accountant_cell(row: DemoRow) -> str:
    """The accountant(s) behind a row's ε values, e.g. ``PLD`` or ``RDP (Gaussian: PLD)``."""
    if row.accountant == row.gaussian_accountant:
        return row.accountant.upper()
    return f"{row.accountant.upper()} (Gaussian: {row.gaussian_accountant.upper()})"


def table_rows(result: DemoResult) -> list[list[str]]:
    """The summary table as strings, one list per row (columns: :data:`TABLE_HEADER`)."""
    return [
        [
            _fmt(r.budget),
            r.geometry,
            accountant_cell(r),
            _fmt(r.paper_epsilon),
            _fmt(r.released_epsilon),
            _fmt(r.released_mean_abs),
            _fmt(r.gaussian_sigma),
            _fmt(r.gaussian_mean_abs),
            _fmt(r.laplace_mean_abs),
            _fmt(r.rescaled_lmo_mean_abs),
            _fmt(r.searched_lmo_mean_abs),
            r.best_lmo,
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


def _search_note(s: DemoSettings) -> str:
    if not s.search:
        return " (the LMO search was not run: its column shows —)"
    skipped = [g for g in s.geometries if g not in s.search_geometries]
    note = ", and the LMO with the least noise found by `lmodp.search.search`"
    if skipped:
        note += f" (run in the {', '.join(s.search_geometries) or 'no'} geometry only: the {', '.join(skipped)} rows show a dash)"
    return note


def _intro(result: DemoResult) -> list[str]:
    s = result.settings
    laplace_rows = [r for r in result.rows if r.best_lmo == "plain Laplace"]
    return [
        f"Setting: the paper's SST-2 run, Poisson rate q = {s.sample_rate:.6g} (2048/67350), T = {s.steps} steps, "
        f"δ = {s.delta:g}, sensitivity (clip norm) 1. Noise magnitudes are E|Y| per coordinate in units of the sensitivity.",
        "",
        "* **budget ε**: the privacy budget of the whole run (all T steps, at this δ) that the calibrated mechanisms meet, "
        "soundly; it also names the paper's released parameter set (the paper calls its set for per-step ε = 0.3 \"ε = 0.3\").",
        "* **accountant**: the accountant behind the row's ε values, the tightest sound one for each mechanism: the PLD "
        "(exact up to its stated discretisation) in the scalar geometry and for the Gaussian in both; the RDP bound for "
        "Laplace mixtures in the l2 geometry, where no tight PLD is known (the true ε lies between `lmodp.epsilon_interval`'s ends).",
        f"* **{PAPER_EPSILON_LABEL}**: the LMO-DP paper's \"overall ε\" for its released task1 parameter set of that budget, "
        "reproduced with its own pipeline (a Gaussian's ε attached to the LMO run; see docs/concepts.md). It is not an upper bound on anything.",
        "* **released LMO: sound ε**: lmodp's upper bound on ε for that released set used as is (E_lambda read as a rate), "
        "Poisson-subsampled and composed over T steps, in each geometry.",
        "* **Gaussian / Laplace / LMO E|Y|**: the least noise of each shape whose sound ε is at most the budget, "
        f"to relative tolerance {s.tolerance:g}{_search_note(s)}.",
        "* **best LMO**: the one with less noise of the released shape rescaled and the searched LMO. \"plain Laplace\" "
        "means the search found no LMO shape with less noise than plain Laplace (the LMO whose ω is a point mass), so the "
        "best LMO is Laplace itself"
        + (f" (here: {len(laplace_rows)} of {len(result.rows)} rows)." if laplace_rows else "."),
        "* **best LMO / Gaussian** < 1 means LMO needs less noise than the Gaussian at the same budget; in the l2 geometry "
        "(DP-SGD) the Gaussian is expected to win, because the accounting is governed by the noise's Fisher information.",
    ]


def figure_captions(result: DemoResult) -> dict[str, str]:
    """One caption per figure of :data:`FIGURES` (report.md and report.html)."""
    s = result.settings
    mid = _middle_budget(s)
    g = "l2" if "l2" in s.geometries else s.geometries[0]
    released_eps = next((r.released_epsilon for r in result.rows if r.budget == mid and r.geometry == g), math.nan)
    return {
        "density": (
            f"Noise densities on a log scale (closed form, thick) over histograms of {s.density_samples:,} samples (thin), and "
            f"the law of the inverse scale ω (right): the Gaussian and the released LMO shape, each calibrated to ε = {mid:g} "
            f"in the {g} geometry, and the paper's released \"ε = {mid:g}\" set used as is, whose sound ε there is {_fmt(released_eps)}."
        ),
        "rdp": (
            f"Per-step RDP of the paper's released \"ε = {mid:g}\" set (one release, no subsampling) against the order α: the "
            "exact scalar divergence, the dimension-free l2 bound, and the paper's MGF bound, which is +∞ beyond α*, the end of its domain."
        ),
        "epsilon": (
            f"ε spent against epochs over the SST-2 run (T = {s.steps} steps, δ = {s.delta:g}) by the mechanisms calibrated to "
            f"ε = {mid:g} in the {g} geometry, in each geometry (solid: scalar, dashed: l2); the legend names the accountant of each line."
        ),
        "compare": (
            "The least noise E|Y| of each shape meeting each budget, one panel per geometry; each panel names the accountant(s)."
        ),
    }


def markdown_report(result: DemoResult) -> str:
    """report.md: the setting, the table, and the figures with captions."""
    lines = ["# lmodp demo: Gaussian vs LMO noise at equal budget", ""] + _intro(result) + [""]
    lines.append("| " + " | ".join(h.replace("|", "\\|") for h in TABLE_HEADER) + " |")
    lines.append("|" + "---|" * len(TABLE_HEADER))
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result)]
    lines += ["", "## Figures", ""]
    captions = figure_captions(result)
    for number, (key, file) in enumerate(result.figures.items(), start=1):
        lines += [f"![{captions[key]}]({file})", "", f"*Figure {number}. {captions[key]}*", ""]
    lines.append(f"Computed in {result.wall_time_s:.1f} s. Numbers: results.json.")
    return "\n".join(lines) + "\n"


def html_report(result: DemoResult) -> str:
    """report.html: the same content as report.md, as a standalone page."""
    intro = "".join(f"<p>{html.escape(line.lstrip('* ').replace('**', '').replace('`', ''))}</p>" for line in _intro(result) if line)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in TABLE_HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table_rows(result))
    captions = figure_captions(result)
    figures = "".join(
        f'<figure><img src="{html.escape(f)}" alt="{html.escape(captions[k])}" style="max-width:100%">'
        f"<figcaption>Figure {n}. {html.escape(captions[k])}</figcaption></figure>"
        for n, (k, f) in enumerate(result.figures.items(), start=1)
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>lmodp demo</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:3px 6px;text-align:right}</style></head><body>"
        f"<h1>lmodp demo: Gaussian vs LMO noise at equal budget</h1>{intro}<table><tr>{head}</tr>{body}</table>"
        f"<h2>Figures</h2>{figures}<p>Computed in {result.wall_time_s:.1f} s. Numbers: results.json.</p></body></html>\n"
    )
