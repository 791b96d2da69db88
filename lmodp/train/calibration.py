"""Choose the noise mechanism of a fine-tuning run: given, calibrated Gaussian, or a search result.

With a ``target_epsilon`` the run (a :class:`~lmodp.accounting.spec.RunSpec`: q, T, δ, geometry) fixes the budget:

* no search result: the Gaussian whose σ :func:`lmodp.search.calibrate_gaussian` finds
  (one-sided: ε(σ) ≤ target under the sound accountant);
* a search result (a :class:`lmodp.search.SearchResult`, anything with a ``.mechanism``, or the
  path / JSON text of one): its mechanism, after checking with :func:`lmodp.epsilon` that it
  meets the target *for this run*. A search made for other settings is rejected, not trusted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lmodp._validation import require_positive
from lmodp.accounting.spec import RunSpec
from lmodp.mechanisms import Gaussian, Mechanism

logger = logging.getLogger(__name__)


def _search_mechanism(search_result: Any) -> Mechanism:
    if isinstance(search_result, (str, Path)):
        from lmodp.search import SearchResult

        search_result = SearchResult.from_json(search_result)
    mechanism = getattr(search_result, "mechanism", None)
    if not isinstance(mechanism, Mechanism):
        raise ValueError("search_result must be a lmodp.search.SearchResult, an object with a .mechanism, or its JSON")
    return mechanism


def resolve_mechanism(
    *,
    mechanism: Mechanism | None,
    target_epsilon: float | None,
    search_result: Any,
    run: RunSpec,
    accountant: str,
) -> Mechanism:
    """The mechanism to train with (see the module docstring); ValueError with guidance otherwise."""
    if mechanism is not None:
        if target_epsilon is not None or search_result is not None:
            raise ValueError("give either mechanism, or target_epsilon (optionally with search_result), not both")
        return mechanism
    if target_epsilon is None:
        raise ValueError(
            "give mechanism=... or target_epsilon=... (with private=False for a non-private baseline)"
        )
    target_epsilon = require_positive("target_epsilon", target_epsilon)
    if search_result is None:
        from lmodp.search import calibrate_gaussian

        try:
            sigma = calibrate_gaussian(target_epsilon, run, accountant=accountant)
        except ValueError as err:
            raise ValueError(
                f"target_epsilon={target_epsilon:g} is unreachable with q={run.sample_rate:.6g}, T={run.steps}, "
                f"delta={run.delta:g}: {err}. Raise target_epsilon or delta, or lower the batch size or the number of epochs"
            ) from None
        logger.info("calibrated Gaussian sigma=%.6g for epsilon=%g (q=%.6g, T=%d)", sigma, target_epsilon, run.sample_rate, run.steps)
        return Gaussian(sigma)
    from lmodp.accounting.api import epsilon

    chosen = _search_mechanism(search_result)
    spent = epsilon(chosen, run, accountant=accountant)
    if not spent <= target_epsilon:
        raise ValueError(
            f"the search result's mechanism spends epsilon={spent:.6g} > target_epsilon={target_epsilon:g} "
            f"with this run's q={run.sample_rate:.6g}, T={run.steps}, delta={run.delta:g}, geometry={run.geometry!r}: "
            "the target is unreachable with it. Rerun lmodp.search for these settings, or lower epochs / batch size"
        )
    return chosen
