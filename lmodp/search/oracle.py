"""A counted, cached privacy-budget oracle: mechanism -> ε under fixed accounting settings.

The cache is keyed by the mechanism's parameters rounded to 12 significant digits. Two
mechanisms sharing a key differ by less than 1e-12 relatively in every parameter, far below
the accountants' own stated error; and every ε a search *reports* is recomputed uncached
(:meth:`EpsilonOracle.fresh`), so the cache never decides a reported number.
"""

from __future__ import annotations

from typing import Any, Callable

from lmodp.accounting.api import epsilon
from lmodp.accounting.spec import RunSpec
from lmodp.mechanisms import Mechanism

EpsilonFunction = Callable[[Mechanism], float]

_KEY_DIGITS = 12


def _rounded(value: Any) -> Any:
    """A float to 12 significant digits; a list (e.g. a mixture's atoms) as a tuple of such."""
    if isinstance(value, float):
        return float(f"{value:.{_KEY_DIGITS}g}")
    if isinstance(value, (list, tuple)):
        return tuple(_rounded(v) for v in value)
    return value


def mechanism_key(mechanism: Mechanism) -> tuple:
    """A hashable key of the mechanism's parameters rounded to 12 significant digits."""
    return tuple((k, _rounded(v)) for k, v in sorted(mechanism.to_dict().items()))


def accountant_epsilon(run: RunSpec, *, accountant: str) -> EpsilonFunction:
    """The ε of a mechanism for ``run`` under ``accountant``, by :func:`lmodp.epsilon` (a sound upper bound)."""

    def eps(mechanism: Mechanism) -> float:
        return float(epsilon(mechanism, run, accountant=accountant))

    return eps


class EpsilonOracle:
    """Wraps an ε function with a cache and counts the evaluations that reached it."""

    def __init__(self, epsilon_function: EpsilonFunction) -> None:
        self._eps = epsilon_function
        self._cache: dict[tuple, float] = {}
        self.evaluations = 0
        self.cache_hits = 0

    def __call__(self, mechanism: Mechanism) -> float:
        key = mechanism_key(mechanism)
        if key in self._cache:
            self.cache_hits += 1
            return self._cache[key]
        value = self.fresh(mechanism)
        self._cache[key] = value
        return value

    def fresh(self, mechanism: Mechanism) -> float:
        """ε computed now, bypassing the cache (counted as an evaluation)."""
        self.evaluations += 1
        return float(self._eps(mechanism))
