"""Figures for lmodp (needs the ``plots`` extra: ``pip install lmodp[plots]``, i.e. matplotlib).

Every function returns a :class:`matplotlib.figure.Figure` and, with ``path=``, also saves it
(PNG, SVG or PDF by the file's suffix). Figures use the object-oriented API only, so they need
no display (PNG is rendered by Agg). Colours are the Okabe–Ito colour-blind-safe palette; line
style marks the geometry (solid: scalar, dashed: l2); legends name the accountant and geometry.

* :func:`noise_density`: log-scale densities with sample histograms, and ω's mixing density.
* :func:`rdp_curve`: per-step RDP against the order α, exact vs the paper's MGF bound.
* :func:`epsilon_curve`: ε against steps or epochs (RDP, PLD, the l2 interval).
* :func:`compare_mechanisms`: noise magnitude against target ε at equal budget
  (:func:`plot_equal_budget` draws rows of :func:`lmodp.search.equal_budget_table`).
* :func:`training_curve`: loss / metric against ε from a fine-tune history.
"""

try:
    import matplotlib  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the installation
    raise ImportError("lmodp.plots needs matplotlib: pip install 'lmodp[plots]'") from err

from lmodp.plots.compare import compare_mechanisms, plot_equal_budget
from lmodp.plots.density import noise_density
from lmodp.plots.epsilon import epsilon_curve
from lmodp.plots.omega import omega_density
from lmodp.plots.rdp import rdp_curve
from lmodp.plots.training import training_curve

__all__ = [
    "compare_mechanisms",
    "epsilon_curve",
    "noise_density",
    "omega_density",
    "plot_equal_budget",
    "rdp_curve",
    "training_curve",
]
