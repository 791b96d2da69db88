"""Everything that reproduces the LMO-DP paper (Yang et al., arXiv 2405.18776).

* :mod:`~lmodp.paper.setting` — the paper's runs as :class:`~lmodp.accounting.spec.RunSpec`
  values; :data:`SST2` is lmodp's running example.
* :mod:`~lmodp.paper.params` — the authors' released parameter files, and their keys
  (:func:`lmo_from_paper_json`, :func:`lmo_to_paper_json`).
* :mod:`~lmodp.paper.pipeline` — the paper's own privacy numbers (NOT guarantees).
* :mod:`~lmodp.paper.grid` — the authors' exhaustive search grid, registered as the search
  method ``"paper-grid"`` of the LMO family when this package is imported.
* :mod:`~lmodp.paper.demo` (numbers) and :mod:`~lmodp.paper.demo_report` (figures and report) —
  ``lmodp demo``: Gaussian vs LMO noise at equal budget on SST-2.
"""

from lmodp.paper import grid as _grid  # noqa: F401  (registers the search method "paper-grid")
from lmodp.paper.params import (
    GROUPS,
    PAPER_KEYS,
    comparison_shapes,
    lmo_from_paper_json,
    lmo_to_paper_json,
    paper_budgets,
    paper_mechanism,
    paper_parameters,
)
from lmodp.paper.setting import PAPER_BATCH_SIZE, PAPER_DATASETS, PAPER_DELTA, SST2, paper_run

__all__ = [
    "GROUPS",
    "PAPER_BATCH_SIZE",
    "PAPER_DATASETS",
    "PAPER_DELTA",
    "PAPER_KEYS",
    "SST2",
    "comparison_shapes",
    "lmo_from_paper_json",
    "lmo_to_paper_json",
    "paper_budgets",
    "paper_mechanism",
    "paper_parameters",
    "paper_run",
]
