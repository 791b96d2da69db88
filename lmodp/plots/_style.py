"""Shared look of lmodp's figures: a colour-blind-safe palette, labels, and saving.

Figures are built with matplotlib's object-oriented API (:class:`matplotlib.figure.Figure`,
never ``pyplot``), so no display, GUI backend or global figure registry is involved: PNG is
rendered by the Agg backend and SVG by the SVG backend whatever ``MPLBACKEND`` says, which makes
every function here safe on a headless machine. In a notebook the returned Figure displays itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure


#: Okabe & Ito (2008), "Color Universal Design": distinguishable under all common colour-vision
#: deficiencies. Black is kept for reference lines.
OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "black": "#000000",
}
_CYCLE = ("blue", "vermillion", "bluish_green", "orange", "reddish_purple", "sky_blue", "yellow")
#: Markers cycled with the colours, so that curves differ in shape as well as hue.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: Line style of each sensitivity geometry.
GEOMETRY_STYLES = {"scalar": "-", "l2": "--"}
SAVE_FORMATS = (".png", ".svg", ".pdf")
NOISE_UNIT = "units of the sensitivity (Δ or C)"


def colour(index: int) -> str:
    """The ``index``-th colour of the Okabe–Ito cycle (black excluded)."""
    return OKABE_ITO[_CYCLE[index % len(_CYCLE)]]


def marker(index: int) -> str:
    """The ``index``-th marker, paired with :func:`colour`."""
    return _MARKERS[index % len(_MARKERS)]


def new_figure(ncols: int = 1, *, width: float = 6.4, height: float = 4.4, sharey: bool = False) -> tuple[Figure, list]:
    """A Figure with ``ncols`` side-by-side axes (sharing the y axis if ``sharey``) and constrained layout."""
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False, sharey=sharey)[0]
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
    return fig, list(axes)


def label_log_axis(axis, values: Sequence[float]) -> None:
    """Label a logarithmic ``axis`` with plain numbers: 1-2-5 steps spanning ``values`` (finite ones),
    finer steps (1-2-3-5, then 1-2-...-9) where those put fewer than three labels within the range
    of the values (a narrow range), and the smallest and largest value themselves where even those
    put fewer than two; no minor ticks. Suits axes spanning a few decades at most."""
    from matplotlib.ticker import FixedLocator, NullLocator

    finite = [v for v in values if math.isfinite(v) and v > 0]
    if not finite:
        return
    lowest, highest = min(finite), max(finite)
    low, high = math.floor(math.log10(lowest)), math.ceil(math.log10(highest))
    for mantissas in ((1, 2, 5), (1, 2, 3, 5), tuple(range(1, 10))):
        ticks = sorted({float(f"{m * 10.0**e:.12g}") for e in range(low, high + 1) for m in mantissas})
        ticks = [t for t in ticks if lowest / 1.5 <= t <= highest * 1.5]
        if sum(lowest <= t <= highest for t in ticks) >= 3:
            break
    if sum(lowest <= t <= highest for t in ticks) < 2:
        ticks = sorted({*ticks, lowest, highest})
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(lambda v, _: f"{v:g}")
    axis.set_minor_locator(NullLocator())


def legend_below(fig: Figure, ax, *, columns: int = 1) -> None:
    """The legend of ``ax`` under the axes, outside them, so that it never covers a curve."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", fontsize="small", ncols=columns, frameon=False)


def finite_or_nan(x: float) -> float:
    """Matplotlib draws nothing for NaN: used for values that are +inf (no finite bound)."""
    return x if math.isfinite(x) else math.nan


def finish(fig: Figure, path: str | Path | None) -> Figure:
    """Save ``fig`` to ``path`` (.png, .svg or .pdf, parent folders created) and return it."""
    if path is not None:
        path = Path(path)
        if path.suffix.lower() not in SAVE_FORMATS:
            raise ValueError(f"path must end in one of {SAVE_FORMATS}, got {str(path)!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150)
    return fig
