"""Everything that reproduces the LMO-DP paper (Yang et al., arXiv 2405.18776).

* :mod:`~lmodp.paper.params` — the authors' released parameter files.
* :mod:`~lmodp.paper.pipeline` — the paper's own privacy numbers (NOT guarantees).
* :mod:`~lmodp.paper.grid` — the authors' exhaustive search grid.
* :mod:`~lmodp.paper.demo` — ``lmodp demo``: Gaussian vs LMO noise at equal budget on SST-2.
"""

from lmodp.paper.params import GROUPS, paper_budgets, paper_mechanism, paper_parameters

__all__ = ["GROUPS", "paper_budgets", "paper_mechanism", "paper_parameters"]
