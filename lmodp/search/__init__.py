"""lmodp.search: the least noise that meets a privacy budget, judged by the sound accountant.

* :func:`search` — best mechanism of a family (LMO, Laplace, Gaussian, generalized Gaussian, or
  the scale of any registered mechanism) for an objective, with
  :class:`SearchOptions` saying how to search.
* :func:`calibrate_gaussian`, :func:`calibrate_scale`, :func:`calibrate_shape` — one-sided scale
  calibration.
* :func:`equal_budget_table` — several shapes calibrated to several budgets (what
  :func:`lmodp.plots.compare_mechanisms` draws).
* :class:`SearchResult` — the outcome, with a lossless JSON round trip.
* :func:`register_search_method` — a search method beyond a family's own (``lmodp.paper``
  registers ``"paper-grid"``); ``METHODS`` lists the methods known now.
"""

from lmodp.search.api import search
from lmodp.search.calibrate import DEFAULT_TOLERANCE, Calibrated, calibrate_gaussian, calibrate_scale, calibrate_shape
from lmodp.search.equal_budget import equal_budget_table
from lmodp.search.objectives import OBJECTIVES
from lmodp.search.options import FAMILIES, SearchOptions, searchable_families
from lmodp.search.result import SearchResult
from lmodp.search.strategies import register_search_method, search_methods


def __getattr__(name: str) -> object:
    if name == "METHODS":  # the registry of methods can grow
        return search_methods()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_TOLERANCE",
    "FAMILIES",
    "METHODS",
    "OBJECTIVES",
    "Calibrated",
    "SearchOptions",
    "SearchResult",
    "calibrate_gaussian",
    "calibrate_scale",
    "calibrate_shape",
    "equal_budget_table",
    "register_search_method",
    "search",
    "search_methods",
    "searchable_families",
]
