"""``lmodp demo``'s rendering: figures, ``report.md``, ``report.html``, ``results.json`` and the text table.

The numbers come from :mod:`lmodp.paper.demo` (no matplotlib); :func:`run_demo` computes them,
draws the figures (matplotlib, the ``plots`` extra) and writes the report into one folder.
"""

from __future__ import annotations

import html
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

from lmodp._progress import progress_bar
from lmodp.accounting.conversion import OrderGridEdgeWarning
from lmodp.mechanisms import mechanism_from_dict
from lmodp.paper.demo import FULL, PAPER_EPSILON_LABEL, SHAPE_KEYS, DemoResult, DemoRow, DemoSettings, compute_rows
from lmodp.paper.params import paper_mechanism


def _task_count(settings: DemoSettings) -> int:
    """Progress units: every calibration, every table row and every figure."""
    cells = len(settings.geometries) * len(settings.budgets)
    return cells * len(SHAPE_KEYS) + cells + len(FIGURES)


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
        "epsilon": lambda path: plots.epsilon_curve(at_budget, settings.run, geometry=settings.geometries, x="epochs", path=path),
        "compare": lambda path: plots.plot_equal_budget(list(cal.values()), magnitude="mean_abs", run=settings.run, path=path),
    }
    for key, file in FIGURES.items():
        bar.set_postfix_str(f"drawing {file}", refresh=False)
        draw[key](out / file)
        bar.update()
    return dict(FIGURES)


def run_demo(out: str | Path = "lmodp-demo", settings: DemoSettings = FULL, *, progress: bool = False) -> DemoResult:
    """Compute the demo's numbers, draw its figures and write its report into ``out``.

    ``progress``: a tqdm bar on stderr over the calibrations, table rows and figures where stderr
    is a terminal, and a line for each of them where it is not."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = progress_bar(total=_task_count(settings), desc="lmodp demo", unit="task", enabled=progress, every=0.0)
    with warnings.catch_warnings(), tasks as bar:
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
        "* **best LMO**: the one with the least noise of plain Laplace (the LMO whose ω is a point mass), the released "
        "shape rescaled and the searched LMO. \"plain Laplace\" means no LMO shape had less noise than plain Laplace, so "
        "the best LMO is Laplace itself"
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
