"""The LMO-DP authors' exhaustive grid (Yang et al. 2024, arXiv 2405.18776; released search code).

a1, a3, a4 ∈ {0.1, …, 0.9}; (θ, k) ∈ {(1,2), (2,2), (3,2), (5,1), (9,0.5), (7.5,1), (0.5,1)};
λ ∈ {0.1, 0.5, 1, 5}; U ∈ {[0,1], [1,2]}: 9³·7·4·2 = 40,824 mechanisms. λ is read as a RATE,
as in the authors' accountant. Here each point is judged by the sound accountant, not by the
paper's per-step MGF bound: a point qualifies if its ε under the caller's settings is <= the
target, and the qualifying point with the best objective wins.

Importing this module (``import lmodp.paper`` does) registers the search method
``"paper-grid"`` for the LMO family (:func:`lmodp.search.register_search_method`):
``lmodp.search.search(..., method="paper-grid")`` runs :func:`scan_paper_grid`. The search
itself knows no paper.
"""

from __future__ import annotations

import itertools
import math
from typing import Iterator

import numpy as np

from lmodp._progress import progress_bar
from lmodp.mechanisms import LMO, Mechanism
from lmodp.search.strategies import SearchProblem, register_search_method

WEIGHTS = tuple(round(0.1 * i, 1) for i in range(1, 10))
GAMMA_SCALE_SHAPE = ((1.0, 2.0), (2.0, 2.0), (3.0, 2.0), (5.0, 1.0), (9.0, 0.5), (7.5, 1.0), (0.5, 1.0))
EXPONENTIAL_RATES = (0.1, 0.5, 1.0, 5.0)
UNIFORM_RANGES = ((0.0, 1.0), (1.0, 2.0))

#: Number of points of the full grid (40,824).
GRID_SIZE = len(WEIGHTS) ** 3 * len(GAMMA_SCALE_SHAPE) * len(EXPONENTIAL_RATES) * len(UNIFORM_RANGES)


def _product() -> list[tuple]:
    return list(itertools.product(WEIGHTS, WEIGHTS, WEIGHTS, GAMMA_SCALE_SHAPE, EXPONENTIAL_RATES, UNIFORM_RANGES))


def grid_indices(limit: int | None, seed: int) -> np.ndarray:
    """All grid indices, or a uniform random subset of ``limit`` of them (ascending) drawn with ``seed``."""
    if limit is None or limit >= GRID_SIZE:
        return np.arange(GRID_SIZE)
    if limit < 1:
        raise ValueError(f"grid_limit must be >= 1 (or None for the full grid), got {limit!r}")
    return np.sort(np.random.default_rng(seed).choice(GRID_SIZE, size=int(limit), replace=False))


def paper_grid(limit: int | None = None, seed: int = 0) -> Iterator[LMO]:
    """The grid's mechanisms, in the authors' loop order (or a seeded subsample of ``limit`` points)."""
    product = _product()
    for i in grid_indices(limit, seed):
        a1, a3, a4, (theta, k), lam, (lo, hi) = product[i]
        yield LMO(
            gamma_weight=a1,
            gamma_shape=k,
            gamma_scale=theta,
            exponential_weight=a3,
            exponential_rate=lam,
            uniform_weight=a4,
            uniform_low=lo,
            uniform_high=hi,
        )


def scan_paper_grid(problem: SearchProblem) -> Mechanism:
    """The grid point with the least loss among those meeting the target (by ``problem.inner``),
    confirmed by ``problem.full`` (the windowed ε and the full-grid ε agree up to floating-point
    summation order)."""
    opts, target = problem.options, problem.target_epsilon
    feasible: list[tuple[float, int, Mechanism]] = []
    total = GRID_SIZE if opts.grid_limit is None else min(opts.grid_limit, GRID_SIZE)
    points = paper_grid(opts.grid_limit, opts.search_seed)
    for i, mechanism in enumerate(progress_bar(points, total=total, desc="paper grid", enabled=opts.progress)):
        if problem.inner(mechanism) <= target:
            loss = problem.objective.loss(mechanism)
            if math.isfinite(loss):
                feasible.append((loss, i, mechanism))
    for _, _, mechanism in sorted(feasible, key=lambda t: t[:2]):
        if problem.full(mechanism) <= target:
            return mechanism
    raise ValueError(f"no point of the paper's grid ({total} points scanned) meets target_epsilon={target}")


# Its fixed-scale points span large ε, where the PLD is slow: screened by the RDP bound under "auto".
register_search_method("paper-grid", family="lmo", strategy=scan_paper_grid, screens_by_rdp=True)
