"""The interface every noise mechanism of lmodp exposes.

A mechanism here is an additive noise distribution on the real line, applied independently to
each coordinate of a query (in the style of ``prv_accountant``'s tiny mechanism classes): it
knows its density, distribution function, sampler and a few magnitudes. How it is *accounted*
lives in :mod:`lmodp.accounting`, never here.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


class Mechanism(ABC):
    """A symmetric additive noise distribution Y with density f(y) = f(-y)."""

    #: Short family name used in JSON ("gaussian", "laplace", "lmo").
    family: str = ""

    @abstractmethod
    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draw i.i.d. noise of the given shape with a numpy ``Generator``."""

    @abstractmethod
    def logpdf(self, y: ArrayLike) -> np.ndarray:
        """log f(y), accurate in the far tails."""

    def pdf(self, y: ArrayLike) -> np.ndarray:
        """f(y) = exp(logpdf(y))."""
        return np.exp(self.logpdf(y))

    @abstractmethod
    def cdf(self, y: ArrayLike) -> np.ndarray:
        """P(Y <= y)."""

    @abstractmethod
    def mean_abs(self) -> float:
        """E|Y| (``math.inf`` where it diverges)."""

    @abstractmethod
    def variance(self) -> float:
        """Var Y = E[Y^2] (``math.inf`` where it diverges)."""

    def std(self) -> float:
        """sqrt(Var Y) (``math.inf`` where the variance diverges)."""
        return math.sqrt(self.variance())

    @abstractmethod
    def usefulness(self, gamma: float) -> float:
        """P(|Y| <= gamma), the LMO-DP paper's usefulness criterion."""

    @abstractmethod
    def fisher_information(self) -> float:
        """Location Fisher information I = ∫ f'(y)^2 / f(y) dy."""

    @abstractmethod
    def scaled(self, factor: float) -> "Mechanism":
        """The law of ``factor * Y`` (factor > 0): same shape, noise magnitude times ``factor``."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters, including ``family`` and any convention."""

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k not in ("family", "convention"))
        return f"{type(self).__name__}({args})"
