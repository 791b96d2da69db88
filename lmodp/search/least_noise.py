"""The least noise of every searchable family for one budget: what a trainer should add.

:func:`least_noise` runs :func:`~lmodp.search.search` for each family of
:data:`~lmodp.search.options.FAMILIES` whose members the accountant can account in the run's
geometry (the Gaussian always; with ``accountant="pld"`` in l2 only the Gaussian) and returns
the result whose mechanism has the best objective (least E|Y| by default), the Gaussian winning
ties. Each family's search calibrates the Gaussian to the same budget, and the LMO and
generalized Gaussian searches fall back to plain Laplace or the Gaussian when no other shape
beats them, so the winner is never worse than the Gaussian: a trainer that asks for "the
searched noise" never gets more noise than the default. The result's
``settings["candidates"]`` lists each family's best (mechanism, objective value, ε).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from lmodp.accounting.spec import RunSpec
from lmodp.mechanisms import family_class, family_of
from lmodp.search.api import search
from lmodp.search.objectives import resolve_objective
from lmodp.search.options import FAMILIES
from lmodp.search.result import SearchResult

logger = logging.getLogger(__name__)

#: The order in which families are searched; ties go to the first.
_ORDER = ("gaussian", "laplace", "lmo", "generalized_gaussian")


def fitting_families(accountant: str, geometry: str) -> list[str]:
    """The families of :data:`~lmodp.search.options.FAMILIES` that ``accountant`` can account in
    ``geometry`` (their registrations' ``accountants``; the PLD has no tight bound for
    non-Gaussian noise in l2)."""
    families = [f for f in _ORDER if f in FAMILIES]
    if accountant != "pld":
        return families
    return [f for f in families if "pld" in family_of(family_class(f)).fitting_accountants(geometry)]


def least_noise(target_epsilon: float, run: RunSpec, *, accountant: str = "auto", **settings: Any) -> SearchResult:
    """The search result of the family whose best mechanism has the best objective for the budget
    (``target_epsilon`` over ``run``), among :func:`fitting_families`; ``settings`` go to every
    :func:`~lmodp.search.search` (objective, progress, seed, ...)."""
    started = time.perf_counter()
    results: dict[str, SearchResult] = {}
    for family in fitting_families(accountant, run.geometry):
        results[family] = search(target_epsilon, run, family=family, accountant=accountant, **settings)
        logger.info("least noise: %s family: %s", family, results[family].summary())
    obj = resolve_objective(settings.get("objective", "mean_abs"), gamma=settings.get("gamma", 0.9))
    best = min(results, key=lambda f: (obj.loss(results[f].mechanism), _ORDER.index(f)))
    winner = results[best]
    winner.settings["candidates"] = {
        family: {"mechanism": r.mechanism.to_dict(), "objective_value": r.objective_value, "epsilon": r.epsilon, "summary": r.summary()}
        for family, r in results.items()
    }
    winner.settings["chosen_family"] = best
    winner.evaluations = sum(r.evaluations for r in results.values())
    winner.wall_time_s = time.perf_counter() - started
    return winner
