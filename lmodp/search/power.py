r"""The generalized Gaussian family searched over its power p, each p calibrated to the budget.

For p in [1, 2] (:class:`~lmodp.mechanisms.GeneralizedGaussian`, density ∝ exp(−|y/s|^p)) the
loss of p is the objective of GG(s*(p), p), s*(p) the smallest scale meeting the budget
(:func:`lmodp.search.calibrate.smallest_feasible_factor`; every built-in objective is monotone
in the scale, so this is the best that p can do). The search evaluates p on a grid of
:data:`GRID_POWERS` (the ends are Laplace and the Gaussian) and then refines around the best
grid point by bounded Brent minimisation (scipy ``minimize_scalar``) to ``xatol`` = 0.01 in p.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import optimize

from lmodp.mechanisms import GeneralizedGaussian, Mechanism
from lmodp.search.optimize import REJECTED, Candidate
from lmodp.search.calibrate import smallest_feasible_factor
from lmodp.search.objectives import Objective

#: Powers evaluated before the refinement (1: Laplace, 2: Gaussian).
GRID_POWERS = (1.0, 1.25, 1.5, 1.75, 2.0)
#: Resolution of the refinement in p.
POWER_TOLERANCE = 0.01


class PowerProblem:
    """The loss over p in [1, 2] for one budget, remembering the best calibrated candidate.

    ``oracle`` maps a mechanism to its ε (a sound upper bound); ``mean_abs`` is the E|Y| the
    first scale tried for every p aims at (e.g. the calibrated Laplace scale)."""

    def __init__(
        self, oracle: Callable[[Mechanism], float], objective: Objective, target_epsilon: float, *, mean_abs: float, tolerance: float
    ) -> None:
        self.oracle = oracle
        self.objective = objective
        self.target_epsilon = target_epsilon
        self.mean_abs = mean_abs
        self.tolerance = tolerance
        self.best: Candidate | None = None
        self.powers_evaluated = 0

    def __call__(self, power: float) -> float:
        self.powers_evaluated += 1
        p = float(min(max(power, 1.0), 2.0))
        shape = GeneralizedGaussian(1.0, p)
        factor, eps = smallest_feasible_factor(
            lambda c: self.oracle(shape.scaled(c)), self.target_epsilon, initial=self.mean_abs / shape.mean_abs(),
            tolerance=self.tolerance,
        )
        mechanism = shape.scaled(factor)
        loss = self.objective.loss(mechanism)
        if not math.isfinite(loss):
            return REJECTED
        if self.best is None or loss < self.best.loss:
            self.best = Candidate(np.array([p]), mechanism, eps, loss)
        return loss


def optimize_power(problem: PowerProblem) -> Candidate:
    """The grid of :data:`GRID_POWERS`, then Brent's method between the neighbours of the best grid point."""
    losses = [problem(p) for p in GRID_POWERS]
    i = int(np.argmin(losses))
    lo, hi = GRID_POWERS[max(i - 1, 0)], GRID_POWERS[min(i + 1, len(GRID_POWERS) - 1)]
    optimize.minimize_scalar(problem, bounds=(lo, hi), method="bounded", options={"xatol": POWER_TOLERANCE})
    if problem.best is None:
        raise ValueError("every power was rejected by the objective")
    return problem.best
