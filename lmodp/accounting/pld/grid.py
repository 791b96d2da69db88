r"""The grid cap of the PLD accountant: how coarse a grid keeps a composition within
``max_grid_points`` points.

Every interval used is the accountant's ``value_discretization_interval`` h times a power of two,
so the grids are nested: a pessimistic PLD moved onto a coarser grid (losses rounded up,
:func:`~lmodp.accounting.pld.discrete.coarsened`) still dominates the finer one, and an optimistic
one (losses rounded down) is still dominated, so every bound keeps its direction. A block of T
equal steps is self-composed on the least h·2^k whose composed window (the Chernoff window of
:func:`~lmodp.accounting.pld.compose.window_length`) fits the cap (:func:`capped_power`); blocks on
different grids are composed on the coarser one, doubled again until both fit
(:func:`composed_on_common_grid`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from lmodp.accounting.pld.compose import compose, self_compose, window_length
from lmodp.accounting.pld.discrete import DiscretePLD, coarsened
from lmodp.mechanisms import Mechanism, family_of

#: Default most grid points of a composed PLD (see :mod:`lmodp.accounting.pld.accountant`, "Grid").
DEFAULT_MAX_GRID_POINTS = 2**20
#: One step's grid holds at most max_grid_points / _STEP_SHARE points where each costs root-finds.
_STEP_SHARE = 16
_MAX_DOUBLINGS = 64


def doubling_factor(points: int, max_points: int) -> int:
    """The least power of two 2^k with points / 2^k <= max_points (the grid is ~1/interval)."""
    return 1 if points <= max_points else 2 ** math.ceil(math.log2(points / max_points))


def require_grid_points(value: Any) -> int | None:
    """``max_grid_points``: None (no cap) or an integer >= 1024."""
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1024):
        raise ValueError(f"max_grid_points must be None or an integer >= 1024, got {value!r}")
    return value


def step_grid_points(mechanism: Mechanism, max_grid_points: int | None) -> int | None:
    """The cap of one step's grid: a sixteenth of the composed one where each point costs
    root-finds, all of it where the family declares its level sets closed forms (the Gaussian's
    ``pld_closed_form``)."""
    if max_grid_points is None or family_of(mechanism.canonical()).pld_closed_form:
        return max_grid_points
    return max_grid_points // _STEP_SHARE


def capped_power(
    law_at: Callable[[float], DiscretePLD], steps: int, *, interval: float, max_grid_points: int | None, tail_mass: float
) -> DiscretePLD:
    """``steps`` copies of one step's law composed (one FFT power) on at most ``max_grid_points``.

    ``law_at(h)`` is the step's discrete PLD at interval h (or a coarser one it chose). The
    interval starts at ``interval`` and doubles until the composed window fits."""
    law = law_at(interval)
    if max_grid_points is not None:
        for _ in range(_MAX_DOUBLINGS):
            factor = doubling_factor(window_length(law, steps, tail_mass=tail_mass), max_grid_points)
            if factor == 1:
                break
            law = law_at(law.interval * factor)
    return self_compose(law, steps, tail_mass=tail_mass)


def composed_on_common_grid(
    previous: DiscretePLD | None, block: DiscretePLD, *, max_grid_points: int | None, tail_mass: float
) -> DiscretePLD:
    """``previous`` (None: nothing yet) composed with ``block``, both moved onto the coarser of
    their nested grids, doubled until the composition's support fits ``max_grid_points``."""
    if previous is None:
        return block
    interval = max(previous.interval, block.interval)
    if max_grid_points is not None:
        extent = math.ceil((previous.probs.size * previous.interval + block.probs.size * block.interval) / interval)
        interval *= doubling_factor(extent, max_grid_points)
    previous = coarsened(previous, round(interval / previous.interval))
    block = coarsened(block, round(interval / block.interval))
    return compose(previous, block, tail_mass=tail_mass)


__all__ = [
    "DEFAULT_MAX_GRID_POINTS",
    "capped_power",
    "composed_on_common_grid",
    "doubling_factor",
    "require_grid_points",
    "step_grid_points",
]
