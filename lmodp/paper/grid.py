"""The LMO-DP authors' exhaustive grid (Yang et al. 2024, arXiv 2405.18776; released search code).

a1, a3, a4 ∈ {0.1, …, 0.9}; (θ, k) ∈ {(1,2), (2,2), (3,2), (5,1), (9,0.5), (7.5,1), (0.5,1)};
λ ∈ {0.1, 0.5, 1, 5}; U ∈ {[0,1], [1,2]}: 9³·7·4·2 = 40,824 mechanisms. λ is read as a RATE,
as in the authors' accountant. Here each point is judged by the sound accountant, not by the
paper's per-step MGF bound: a point qualifies if its ε under the caller's settings is <= the
target, and the qualifying point with the best objective wins.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np

from lmodp.mechanisms import LMO

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
