"""What "least noise" means: the objectives a search can rank mechanisms by.

Every built-in objective is monotone in the noise scale (E|cY| = c·E|Y|, Var cY = c²·Var Y,
P(|cY| <= γ) = P(|Y| <= γ/c)), so for a fixed shape the best member meeting a budget is the one
with the smallest feasible scale. A user-supplied callable is assumed to share that property
(a noise magnitude that does not decrease when the noise is scaled up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Union

from lmodp._validation import require_positive
from lmodp.mechanisms import Mechanism

OBJECTIVES = ("mean_abs", "variance", "usefulness")

ObjectiveSpec = Union[str, Callable[[Mechanism], float]]


@dataclass(frozen=True)
class Objective:
    """A named measure of a mechanism, with the direction in which it is better."""

    name: str
    sense: Literal["min", "max"]
    measure: Callable[[Mechanism], float]

    def value(self, mechanism: Mechanism) -> float:
        """The measure in its natural units (E|Y|, Var Y, P(|Y| <= γ), or the callable's value)."""
        return float(self.measure(mechanism))

    def loss(self, mechanism: Mechanism) -> float:
        """The value to minimise; ``math.inf`` marks a rejected candidate (e.g. infinite variance)."""
        v = self.value(mechanism)
        if math.isnan(v):
            raise ValueError(f"objective {self.name!r} returned NaN for {mechanism!r}")
        return -v if self.sense == "max" else v


def resolve_objective(objective: ObjectiveSpec, *, gamma: float) -> Objective:
    """The :class:`Objective` for a name in :data:`OBJECTIVES` or a callable (mechanism -> value to minimise)."""
    if callable(objective):
        name = getattr(objective, "__qualname__", type(objective).__name__)
        return Objective(f"callable:{getattr(objective, '__module__', '?')}.{name}", "min", objective)
    if objective == "mean_abs":
        return Objective("mean_abs", "min", lambda m: m.mean_abs())
    if objective == "variance":
        return Objective("variance", "min", lambda m: m.variance())
    if objective == "usefulness":
        gamma = require_positive("gamma", gamma)
        return Objective("usefulness", "max", lambda m: m.usefulness(gamma))
    raise ValueError(f"objective must be one of {OBJECTIVES} or a callable, got {objective!r}")
