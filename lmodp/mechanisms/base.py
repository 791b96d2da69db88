"""The interface every noise mechanism of lmodp exposes.

A mechanism here is an additive noise distribution on the real line, applied independently to
each coordinate of a query (in the style of ``prv_accountant``'s tiny mechanism classes): it
knows its density, distribution function, sampler and a few magnitudes. How it is *accounted*
lives in :mod:`lmodp.accounting`, never here.

Mechanisms are immutable once built: what a privacy ledger records (``to_dict``) is what is
sampled and accounted. Assigning an attribute raises; :meth:`Mechanism.replace` and
:meth:`Mechanism.scaled` return new mechanisms.
"""

from __future__ import annotations

import json
import math
from abc import ABCMeta, abstractmethod
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike


def _freeze(instance: Any) -> None:
    """No more attribute assignment, and read-only numpy arrays."""
    for value in vars(instance).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    object.__setattr__(instance, "_frozen", True)


def cdf_from_log_tail(y: np.ndarray, log_tail: np.ndarray) -> np.ndarray:
    """P(Y <= y) of a symmetric law from ``log_tail`` = log P(|Y| > |y|): 1 − ½P(|Y| > y) for
    y >= 0, ½P(|Y| > |y|) below (the small tail is never formed as 1 minus a number near 1)."""
    half_tail = 0.5 * np.exp(log_tail)
    return np.where(y >= 0.0, 1.0 - half_tail, half_tail)


class _ImmutableAfterInit(ABCMeta):
    """Freezes every instance once its ``__init__`` returns."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        instance = super().__call__(*args, **kwargs)
        _freeze(instance)
        return instance


class Mechanism(metaclass=_ImmutableAfterInit):
    """A symmetric additive noise distribution Y with density f(y) = f(-y)."""

    #: Short family name used in JSON ("gaussian", "laplace", "lmo", ...; see :mod:`lmodp.mechanisms.registry`).
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

    def canonical(self) -> "Mechanism":
        """The same law, as the family whose accounting is tightest (a generalized Gaussian with
        p = 2 is a Gaussian); the mechanism itself by default."""
        return self

    @abstractmethod
    def scaled(self, factor: float) -> "Mechanism":
        """The law of ``factor * Y`` (factor > 0): same shape, noise magnitude times ``factor``."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters, including ``family`` and any convention."""

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(
                f"{type(self).__name__} is immutable (cannot set {name!r}): use .replace({name}=...) or .scaled(...) "
                "for a new mechanism"
            )
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"{type(self).__name__} is immutable (cannot delete {name!r})")
        super().__delattr__(name)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled and deep-copied mechanisms are frozen too."""
        self.__dict__.update(state)
        _freeze(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Mechanism":
        """Inverse of :meth:`to_dict`: the constructor's keyword arguments are the dict's other keys."""
        return cls(**{k: v for k, v in data.items() if k not in ("family", "convention")})

    def replace(self, **changes: Any) -> "Mechanism":
        """A new mechanism of the same family with the named parameters changed (validated anew)."""
        current = self.to_dict()
        unknown = sorted(set(changes) - set(current) | ({"family", "convention"} & set(changes)))
        if unknown:
            settable = sorted(set(current) - {"family", "convention"})
            raise ValueError(f"{type(self).__name__} has no parameter {unknown}; its parameters are {settable}")
        return type(self).from_dict({**current, **changes})

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k not in ("family", "convention"))
        return f"{type(self).__name__}({args})"
