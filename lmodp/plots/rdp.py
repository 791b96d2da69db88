"""``rdp_curve``: per-step Rényi DP against the order α, exact vs the paper's MGF bound."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from lmodp._validation import require_positive
from lmodp.accounting.rdp.divergence import mgf_bound_rdp, unsubsampled_rdp
from lmodp.mechanisms import Mechanism, describe, family_of
from lmodp.plots._style import OKABE_ITO, finish, label_log_axis, new_figure

_MAX_ORDER = 256.0
# Orders strictly below the MGF domain's end at which the bound is drawn, to show its blow-up:
# α* − 10^-j for j in this range.
_APPROACH_EXPONENTS = np.linspace(-0.5, -6.0, 23)


def _draws_mgf_bound(mechanism: Mechanism) -> bool:
    return "mgf_bound" in family_of(mechanism).figures.rdp_curves


def default_rdp_orders(mechanism: Mechanism, *, sensitivity: float = 1.0) -> np.ndarray:
    """120 orders log-spaced in (1, 256], plus orders crowding towards the end of the MGF
    bound's domain α* = 1 + t*/Δ (t* the sup of ω's MGF domain) when it lies in that range."""
    orders = 1.0 + np.logspace(-1.5, math.log10(_MAX_ORDER - 1.0), 120)
    if _draws_mgf_bound(mechanism):
        end = 1.0 + mechanism.omega_mgf_domain() / sensitivity
        if math.isfinite(end) and end < _MAX_ORDER:
            near = end - 10.0**_APPROACH_EXPONENTS
            orders = np.concatenate([orders, near[near > 1.0]])
    return np.unique(orders)


def rdp_curve(
    mechanism: Mechanism,
    *,
    orders: ArrayLike | None = None,
    sensitivity: float = 1.0,
    label: str = "",
    path: str | Path | None = None,
) -> Figure:
    """RDP ε(α) of ONE release (no subsampling, no composition) against the order α.

    ``label`` names the mechanism in the title (default: its description).

    Curves (from ``unsubsampled_rdp``): the exact scalar divergence D_α(f(·−Δ)‖f) and the
    dimension-free l2 bound C²·sup_{0<t≤C} h_α(t)/t² (C = ``sensitivity``),
    and for Laplace scale mixtures (families declaring the ``"mgf_bound"`` curve,
    :class:`~lmodp.mechanisms.Figures`) the LMO paper's closed-form MGF bound (``mgf_bound_rdp``),
    which is finite only for α < α* = 1 + t*/Δ where t* is the sup of the finite domain of ω's
    MGF: it is drawn up to α* (it blows up there) and α* is marked. Both axes are logarithmic.
    """
    sensitivity = require_positive("sensitivity", sensitivity)
    alphas = default_rdp_orders(mechanism, sensitivity=sensitivity) if orders is None else np.unique(np.asarray(orders, dtype=float))
    fig, (ax,) = new_figure(1, width=7.2)
    exact = unsubsampled_rdp(mechanism, alphas, sensitivity=sensitivity, geometry="scalar")
    l2 = unsubsampled_rdp(mechanism, alphas, sensitivity=sensitivity, geometry="l2")
    ax.plot(alphas, exact, color=OKABE_ITO["blue"], lw=2.0, label=f"exact divergence, scalar geometry (Δ = {sensitivity:g})")
    ax.plot(alphas, l2, color=OKABE_ITO["bluish_green"], lw=2.0, ls="--", label=f"dimension-free bound, l2 geometry (C = {sensitivity:g})")
    if _draws_mgf_bound(mechanism):
        mgf = np.asarray(mgf_bound_rdp(mechanism, alphas, sensitivity=sensitivity), dtype=float)
        finite = np.isfinite(mgf)
        ax.plot(alphas[finite], mgf[finite], color=OKABE_ITO["vermillion"], lw=1.6, ls="-.", label="paper's MGF bound (scalar; +∞ beyond its domain)")
        if finite.any() and not finite.all():
            last = np.flatnonzero(finite)[-1]
            ax.annotate("→ +∞", (alphas[last], mgf[last]), xytext=(4, 0), textcoords="offset points", color=OKABE_ITO["vermillion"], va="center")
        end = 1.0 + mechanism.omega_mgf_domain() / sensitivity
        if math.isfinite(end) and end <= alphas.max():
            ax.axvline(end, color=OKABE_ITO["black"], lw=0.9, ls=":", label=f"end of the MGF's domain, α* = {end:.4g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    label_log_axis(ax.xaxis, alphas)
    label_log_axis(ax.yaxis, [v for v in np.concatenate([exact, l2]) if np.isfinite(v)])
    ax.set_xlabel("Rényi order α (dimensionless)")
    ax.set_ylabel("RDP ε(α) of one release (nats)")
    ax.set_title(f"Per-step RDP of {label or describe(mechanism)}", fontsize="medium")
    ax.legend(fontsize="small")
    return finish(fig, path)
