r"""The generalized Gaussian family searched over its power p, each p calibrated to the budget.

For p in [1, 2] (:class:`~lmodp.mechanisms.GeneralizedGaussian`, density ∝ exp(−|y/s|^p)) the
loss of p is the objective of GG(s*(p), p), s*(p) the smallest scale meeting the budget
(:func:`lmodp.search.calibrate.smallest_feasible_factor`; every built-in objective is monotone
in the scale, so this is the best that p can do). The search evaluates p on a grid of
:data:`GRID_POWERS` (the ends are Laplace and the Gaussian) and then refines around the best
grid point by bounded Brent minimisation (scipy ``minimize_scalar``) to :data:`POWER_TOLERANCE`.
:func:`search_power` is the family's search strategy (what its registration names).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import optimize

from lmodp._progress import progress_bar
from lmodp.mechanisms import GeneralizedGaussian, Mechanism
from lmodp.search.optimize import Candidate, ShapeProblem
from lmodp.search.strategies import SearchProblem, beats_laplace

logger = logging.getLogger(__name__)

#: Powers evaluated before the refinement (1: Laplace, 2: Gaussian).
GRID_POWERS = (1.0, 1.25, 1.5, 1.75, 2.0)
#: Resolution of the refinement in p.
POWER_TOLERANCE = 0.01


class PowerProblem(ShapeProblem):
    """:class:`~lmodp.search.optimize.ShapeProblem` over the one coordinate p in [1, 2].

    ``initial_factor`` is the E|Y| the first scale tried for every p aims at (e.g. that of the
    calibrated Laplace mechanism)."""

    def shape(self, x: np.ndarray) -> Mechanism:
        return GeneralizedGaussian(1.0, float(np.clip(np.atleast_1d(x)[0], 1.0, 2.0)))

    def initial(self, shape: Mechanism) -> float:
        return self.initial_factor / shape.mean_abs()


def optimize_power(problem: PowerProblem) -> Candidate:
    """The grid of :data:`GRID_POWERS`, then Brent's method between the neighbours of the best grid point."""
    losses = [problem(np.array([p])) for p in GRID_POWERS]
    i = int(np.argmin(losses))
    lo, hi = GRID_POWERS[max(i - 1, 0)], GRID_POWERS[min(i + 1, len(GRID_POWERS) - 1)]
    optimize.minimize_scalar(lambda p: problem(np.array([p])), bounds=(lo, hi), method="bounded", options={"xatol": POWER_TOLERANCE})
    if problem.best is None:
        raise ValueError("every power was rejected by the objective")
    return problem.best


def search_power(problem: SearchProblem) -> Mechanism:
    """The generalized Gaussian family's strategy: the best power (:func:`optimize_power`),
    re-calibrated by ``problem.settle``, is the winner only if it beats both Laplace and the
    Gaussian (:func:`~lmodp.search.strategies.beats_laplace` against each); otherwise the better of
    those two is. The best generalized Gaussian goes to ``problem.settings["best_generalized_gaussian"]``."""
    opts, obj = problem.options, problem.objective
    powers = PowerProblem(problem.inner, obj, problem.target_epsilon, initial_factor=problem.laplace.mean_abs(), tolerance=opts.search_tolerance)
    with progress_bar(total=1, desc="power search", unit="search", enabled=opts.progress) as bar:
        found = optimize_power(powers)
        bar.update()
    best = problem.settle(found.mechanism, "best generalized Gaussian")
    logger.info("generalized Gaussian search: %d powers, best %s", powers.shapes_evaluated, best)
    problem.settings["best_generalized_gaussian"] = best.to_dict()
    ends = sorted((problem.laplace, problem.baseline), key=obj.loss)
    return best if all(beats_laplace(best, end, obj, opts.tolerance) for end in ends) else ends[0]
