"""lmodp.search: the least noise that meets a privacy budget, judged by the sound accountant.

* :func:`search` — best mechanism of a family (LMO, Laplace, Gaussian, generalized Gaussian, or
  the scale of any registered mechanism) for an objective.
* :func:`calibrate_gaussian`, :func:`calibrate_scale` — one-sided scale calibration.
* :class:`SearchResult` — the outcome, with a lossless JSON round trip.
"""

from lmodp.search.api import FAMILIES, METHODS, search
from lmodp.search.calibrate import DEFAULT_TOLERANCE, calibrate_gaussian, calibrate_scale
from lmodp.search.objectives import OBJECTIVES
from lmodp.search.result import SearchResult

__all__ = [
    "DEFAULT_TOLERANCE",
    "FAMILIES",
    "METHODS",
    "OBJECTIVES",
    "SearchResult",
    "calibrate_gaussian",
    "calibrate_scale",
    "search",
]
