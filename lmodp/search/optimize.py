"""The shape search: global optimisation over the LMO shape box, each shape calibrated to the budget.

For a shape x (:func:`lmodp.search.families.lmo_from_shape`, E[ω] = 1) the loss is the
objective of ``lmo_from_shape(x).scaled(c*(x))``, where c*(x) is the smallest scale factor
meeting the budget (:func:`lmodp.search.calibrate.smallest_feasible_factor`). Because every
objective is monotone in the scale, this is the best that shape can do, and the search is a
4-dimensional box-constrained problem: scipy's ``differential_evolution`` (seeded, with the
Laplace point in its initial population) followed by a bounded Nelder–Mead polish of its best
point. Candidates the objective rejects (infinite value, e.g. infinite variance) get a loss of
:data:`REJECTED` before any accountant call, so they are never ranked. :func:`search_lmo` is
the LMO family's search strategy (what its registration names).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import optimize

from lmodp._progress import progress_bar
from lmodp.mechanisms import Mechanism
from lmodp.search.calibrate import smallest_feasible_factor
from lmodp.search.families import LAPLACE_SHAPE, SHAPE_BOUNDS, lmo_from_shape
from lmodp.search.objectives import Objective
from lmodp.search.strategies import SearchProblem, beats_laplace

logger = logging.getLogger(__name__)

#: Loss of a rejected candidate: finite (so that the optimiser's statistics stay finite) and
#: larger than any real noise magnitude.
REJECTED = 1e300


@dataclass
class Candidate:
    """A calibrated shape: its coordinates, the mechanism at the feasible scale, ε and loss."""

    shape: np.ndarray
    mechanism: Mechanism
    epsilon: float
    loss: float
    factor: float


class ShapeProblem:
    """The loss over the shape box for one budget, remembering the best calibrated candidate.

    ``oracle`` maps a mechanism to its ε (a sound upper bound); ``initial_factor`` is the first
    scale tried for every shape (e.g. the calibrated Laplace scale, since every shape has E[ω] = 1).
    """

    def __init__(
        self,
        oracle: Callable[[Mechanism], float],
        objective: Objective,
        target_epsilon: float,
        *,
        initial_factor: float,
        tolerance: float,
    ) -> None:
        self.oracle = oracle
        self.objective = objective
        self.target_epsilon = target_epsilon
        self.initial_factor = initial_factor
        self.tolerance = tolerance
        self.best: Candidate | None = None
        self.shapes_evaluated = 0

    def shape(self, x: np.ndarray) -> Mechanism:
        """The mechanism at shape coordinates ``x`` (here the LMO shape box)."""
        return lmo_from_shape(x)

    def initial(self, shape: Mechanism) -> float:
        """The first scale factor tried for ``shape``: that of the best shape so far (the
        shapes tried next are mostly near it), ``initial_factor`` before any."""
        return self.initial_factor if self.best is None else self.best.factor

    def calibrate(self, x: np.ndarray) -> Candidate | None:
        """The shape at its smallest feasible scale, or None if the objective rejects it."""
        shape_mechanism = self.shape(x)
        if not math.isfinite(self.objective.loss(shape_mechanism)):
            return None
        factor, eps = smallest_feasible_factor(
            lambda c: self.oracle(shape_mechanism.scaled(c)),
            self.target_epsilon,
            initial=self.initial(shape_mechanism),
            tolerance=self.tolerance,
        )
        mechanism = shape_mechanism.scaled(factor)
        return Candidate(np.array(x, dtype=float), mechanism, eps, self.objective.loss(mechanism), factor)

    def __call__(self, x: np.ndarray) -> float:
        self.shapes_evaluated += 1
        candidate = self.calibrate(x)
        if candidate is None or not math.isfinite(candidate.loss):
            return REJECTED
        if self.best is None or candidate.loss < self.best.loss:
            self.best = candidate
            logger.info("shape %d: new best loss %.6g at %s", self.shapes_evaluated, candidate.loss, candidate.mechanism)
        return candidate.loss


def optimize_shape(
    problem: ShapeProblem,
    *,
    seed: int,
    maxiter: int,
    popsize: int,
    polish_evaluations: int,
    on_generation: Callable[[], None] | None = None,
) -> Candidate:
    """Differential evolution over the shape box, then a bounded Nelder–Mead polish; the best candidate seen."""
    problem(LAPLACE_SHAPE)

    def callback(*_args, **_kwargs) -> bool:
        if on_generation is not None:
            on_generation()
        return False

    if maxiter > 0:
        optimize.differential_evolution(
            problem,
            SHAPE_BOUNDS,
            seed=seed,
            maxiter=maxiter,
            popsize=popsize,
            init="latinhypercube",
            x0=LAPLACE_SHAPE,
            polish=False,
            tol=0.0,
            updating="immediate",
            callback=callback,
        )
    if polish_evaluations > 0 and problem.best is not None:
        optimize.minimize(
            problem,
            problem.best.shape,
            method="Nelder-Mead",
            bounds=SHAPE_BOUNDS,
            options={"maxfev": polish_evaluations, "xatol": 1e-3, "fatol": 0.0, "initial_simplex": _simplex(problem.best.shape)},
        )
    if problem.best is None:
        raise ValueError("every candidate shape was rejected by the objective")
    return problem.best


def _simplex(x: np.ndarray, step: float = 0.1) -> np.ndarray:
    """A Nelder–Mead start simplex around x that stays inside the unit box."""
    vertices = [np.array(x, dtype=float)]
    for i in range(len(x)):
        v = np.array(x, dtype=float)
        v[i] = v[i] - step if v[i] + step > 1.0 else v[i] + step
        vertices.append(v)
    return np.array(vertices)


def search_lmo(problem: SearchProblem) -> Mechanism:
    """The LMO family's strategy (its registration's ``SearchSpace.strategy``): differential
    evolution over the shape box from the calibrated Laplace's scale, the best shape
    re-calibrated by ``problem.settle``; returned only if it :func:`~lmodp.search.strategies.beats_laplace`,
    otherwise the calibrated Laplace is."""
    opts, obj = problem.options, problem.objective
    shapes = ShapeProblem(problem.inner, obj, problem.target_epsilon, initial_factor=problem.laplace.scale, tolerance=opts.search_tolerance)
    with progress_bar(total=opts.maxiter + 1, desc="LMO search", unit="gen", enabled=opts.progress) as bar:

        generations = iter(range(1, opts.maxiter + 1))

        def generation() -> None:
            bar.update()
            best = "none yet" if shapes.best is None else f"{shapes.best.loss:.6g}"
            bar.set_postfix_str(f"{shapes.shapes_evaluated} shapes, best {obj.name} {best}", refresh=False)
            logger.info("LMO search: generation %d of %d done, %d shapes calibrated, best %s %s",
                        next(generations), opts.maxiter, shapes.shapes_evaluated, obj.name, best)

        found = optimize_shape(
            shapes, seed=opts.search_seed, maxiter=opts.maxiter, popsize=opts.popsize,
            polish_evaluations=opts.polish_evaluations, on_generation=generation,
        )
        bar.update()
    best = problem.settle(found.mechanism, "best LMO shape")
    logger.info("LMO search: %d shapes, best %s", shapes.shapes_evaluated, best)
    return best if beats_laplace(best, problem.laplace, obj, opts.tolerance) else problem.laplace
