"""``noise_density``: what the noise looks like, on a log scale, with samples and ω's law."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lmodp._validation import require_count, require_positive
from lmodp.mechanisms import LaplaceScaleMixture, Mechanism, family_of
from lmodp.mechanisms.describe import labelled
from lmodp.plots._style import NOISE_UNIT, OKABE_ITO, colour, finish, new_figure
from lmodp.plots.omega import omega_density


def noise_density(
    mechanisms: Mapping[str, Mechanism] | Sequence[Mechanism] | Mechanism,
    *,
    samples: int = 200_000,
    seed: int = 0,
    x_max: float | None = None,
    quantile: float = 0.995,
    path: str | Path | None = None,
) -> Figure:
    """Densities log f(y) (closed form) over sample histograms, and the density of ω.

    Left: each mechanism's density on a logarithmic axis, drawn from ``logpdf``, with a
    histogram of ``samples`` draws from its own sampler on top (the two must agree: a visual
    check of sampler against density). Right (when a mechanism's family declares the ``"omega"``
    panel, :class:`~lmodp.mechanisms.Figures`: the Laplace scale mixtures): the density of the inverse scale ω, from :func:`lmodp.plots.omega.omega_density`; where ω takes
    finitely many values (a plain Laplace: one; a finite Laplace mixture: several) it has no
    density: each value is drawn as an upward arrow (a Dirac delta; heights proportional to the
    probabilities, not to a density scale) and named so in the legend. ``x_max`` defaults to the largest
    ``quantile`` of |Y| over the mechanisms (estimated from the samples).
    """
    items = labelled(mechanisms)
    require_count("samples", samples, 100)
    if not 0.5 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0.5, 1), got {quantile!r}")
    rng = np.random.default_rng(seed)
    draws = {label: m.sample(samples, rng) for label, m in items.items()}
    if x_max is None:
        x_max = max(float(np.quantile(np.abs(d), quantile)) for d in draws.values())
    x_max = require_positive("x_max", x_max)
    mixtures = {label: m for label, m in items.items() if "omega" in family_of(m).figures.density_panels}
    fig, axes = new_figure(2 if mixtures else 1)
    ax = axes[0]
    y = np.linspace(-x_max, x_max, 2001)
    edges = np.linspace(-x_max, x_max, 121)
    for i, (label, m) in enumerate(items.items()):
        c = colour(i)
        ax.plot(y, m.pdf(y), color=c, lw=1.8, label=label)
        counts, _ = np.histogram(draws[label], bins=edges)
        heights = np.where(counts > 0, counts / (samples * np.diff(edges)), np.nan)
        ax.stairs(heights, edges, color=c, alpha=0.6, lw=1.0)
    ax.stairs([np.nan], [0.0, 1.0], color=OKABE_ITO["black"], alpha=0.6, lw=1.0, label=f"thin steps: histograms of {samples:,} samples")
    ax.set_yscale("log")
    # Down to a tenth of one sample per bin: below that the histograms say nothing and a light
    # tail (the Gaussian's) would squeeze everything else into the top of the panel.
    peak = max(float(np.max(m.pdf(y))) for m in items.values())
    ax.set_ylim(0.1 / (samples * (edges[1] - edges[0])), 2.0 * peak)
    ax.set_xlim(-x_max, x_max)
    ax.set_xlabel(f"noise y ({NOISE_UNIT})")
    ax.set_ylabel("density f(y) (per unit of y, log scale)")
    ax.set_title("Noise density: closed form (thick) vs sampler (thin)")
    ax.legend(fontsize="small", loc="lower center")  # below the peak: empty for symmetric unimodal noise
    if mixtures:
        _plot_omega(axes[1], mixtures, list(items))
    return finish(fig, path)


def _note_without_omega(ax, items: list[str], mixtures: dict[str, LaplaceScaleMixture]) -> None:
    """A legend entry for each mechanism that is not a Laplace scale mixture (it has no ω)."""
    for label in items:
        if label not in mixtures:
            ax.plot([], [], color=colour(items.index(label)), lw=0, marker="x", label=f"{label}: not a Laplace mixture, no ω")


#: Curves and arrows fill the lower part of the ω panel, up to this fraction of its height; the
#: legend takes the top.
_DATA_TOP = 0.6


def _plot_omega(ax, mixtures: dict[str, LaplaceScaleMixture], order: list[str]) -> None:
    along_x = ax.get_xaxis_transform()  # x in data units, y as a fraction of the panel's height
    atoms: list[float] = []
    without_density = 0
    peak = 0.0
    for label, m in mixtures.items():
        c = colour(order.index(label))
        od = omega_density(m)
        if od.atoms.size:
            for atom, weight in zip(od.atoms, od.atom_weights):
                top = _DATA_TOP * weight / od.atom_weights.max()
                ax.annotate("", xy=(atom, top), xycoords=along_x, xytext=(atom, 0.0), textcoords=along_x,
                            arrowprops=dict(arrowstyle="-|>", color=c, lw=1.8, mutation_scale=14))
            ax.plot([], [], color=c, lw=1.8, marker="^", label=label)
            atoms.extend(od.atoms.tolist())
            without_density += 1
        else:
            ax.plot(od.x, od.density, color=c, lw=1.8, label=label)
            peak = max(peak, float(od.density.max()))
        ax.axvline(m.omega_mean(), color=c, lw=0.8, ls=":")
    if atoms:
        ax.plot([], [], color=OKABE_ITO["black"], lw=1.8, marker="^", label="arrows: point masses of ω, no density (height ∝ probability)")
    ax.axvline(np.nan, color=OKABE_ITO["black"], lw=0.8, ls=":", label="E[ω] (dotted)")
    ax.autoscale_view()
    ax.set_xlim(left=0.0, right=max([ax.get_xlim()[1], *(1.25 * a for a in atoms)]))
    ax.set_xlabel("inverse Laplace scale ω (1 / noise unit)")
    if without_density == len(mixtures):  # nothing has a density: no density scale to show
        ax.set_ylim(0.0, 1.0)
        ax.set_yticks([])
        ax.set_ylabel("ω has point masses only (no density)")
    else:
        ax.set_ylim(0.0, peak / _DATA_TOP)
        ax.set_ylabel("density of ω (per unit of ω)")
    _note_without_omega(ax, order, mixtures)
    ax.set_title("Mixing law of ω" + (" (densities by numerical convolution)" if without_density < len(mixtures) else " (point masses)"))
    ax.legend(fontsize="small", loc="upper right")
