"""The registry of mechanism families: one registration gives a family every accountant, the
search, ``state_dict`` round trips and training, or is refused with the reason.

A family is a :class:`~lmodp.mechanisms.base.Mechanism` subclass with a unique ``family`` name
(the ``"family"`` key of its :meth:`~lmodp.mechanisms.base.Mechanism.to_dict`). lmodp can account
a mechanism only through what it knows about its law, so a family must derive from one of the
*accountable* classes:

* :class:`~lmodp.mechanisms.gaussian.Gaussian` (closed forms);
* :class:`~lmodp.mechanisms.mixture.LaplaceScaleMixture` with an LMO or a finite mixing law
  (:mod:`lmodp.mechanisms.mixing`; Laplace, LMO, :class:`~lmodp.mechanisms.laplace_mixture.LaplaceMixture`);
* :class:`~lmodp.mechanisms.generalized_gaussian.GeneralizedGaussian`;
* :class:`~lmodp.mechanisms.density.SymmetricDensity`: a user-defined symmetric, log-concave
  density with a bounded score, given by its log-density and a torch sampler.

:func:`register_mechanism` refuses anything else (``ValueError`` naming what is missing).
:func:`require_accountable` is what every accounting function checks;
:func:`require_registered` (accountable and registered) is what an accountant's ``step`` and the
training loop check, since a recorded history must be rebuilt by :func:`mechanism_from_dict`.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, TypeVar

from lmodp.mechanisms.base import Mechanism
from lmodp.mechanisms.density import SymmetricDensity
from lmodp.mechanisms.gaussian import Gaussian
from lmodp.mechanisms.generalized_gaussian import GeneralizedGaussian
from lmodp.mechanisms.laplace import Laplace
from lmodp.mechanisms.laplace_mixture import LaplaceMixture
from lmodp.mechanisms.lmo import LMO
from lmodp.mechanisms.mixture import LaplaceScaleMixture

#: The classes whose laws the accountants know how to account.
ACCOUNTABLE = (Gaussian, LaplaceScaleMixture, GeneralizedGaussian, SymmetricDensity)

_FAMILIES: dict[str, type[Mechanism]] = {}

M = TypeVar("M", bound=type)


def register_mechanism(cls: M) -> M:
    """Register the mechanism family ``cls`` under its ``family`` name (usable as a class decorator).

    Raises ``ValueError`` if ``cls`` is not a Mechanism subclass, has no ``family`` name, derives
    from none of :data:`ACCOUNTABLE` (no accountant could account it), or its name is taken by
    another class. Registering the same class again is a no-op.
    """
    if not (isinstance(cls, type) and issubclass(cls, Mechanism)):
        raise ValueError(f"register_mechanism takes a Mechanism subclass, got {cls!r}")
    family = getattr(cls, "family", "")
    if not isinstance(family, str) or not family:
        raise ValueError(f"{cls.__name__} must set a non-empty class attribute 'family' (its name in to_dict)")
    if not issubclass(cls, ACCOUNTABLE):
        raise ValueError(
            f"{cls.__name__} cannot be registered: no accountant can account it. Derive it from SymmetricDensity "
            "(a symmetric, log-concave log-density with a bounded score, and a torch sampler), LaplaceScaleMixture "
            "(an LMO or finite mixing law), GeneralizedGaussian or Gaussian"
        )
    taken = _FAMILIES.get(family)
    if taken is not None and taken is not cls:
        raise ValueError(f"family {family!r} is already registered to {taken.__module__}.{taken.__qualname__}")
    _FAMILIES[family] = cls
    return cls


def registered_families() -> tuple[str, ...]:
    """The names of every registered family, sorted."""
    return tuple(sorted(_FAMILIES))


def family_class(family: str) -> type[Mechanism]:
    """The class registered under ``family``; ``ValueError`` listing the registered names otherwise."""
    cls = _FAMILIES.get(family) if isinstance(family, str) else None
    if cls is None:
        raise ValueError(
            f"family must be one of {list(registered_families())}, got {family!r} (a new family needs "
            "lmodp.register_mechanism(YourClass))"
        )
    return cls


def require_accountable(mechanism: Any) -> Mechanism:
    """``mechanism`` itself if the accountants can account its law (it derives from one of
    :data:`ACCOUNTABLE`, and a Laplace scale mixture declares its mixing law); ``ValueError``
    saying what is missing otherwise."""
    if not isinstance(mechanism, Mechanism):
        raise ValueError(f"mechanism must be an lmodp Mechanism, got {type(mechanism).__name__}")
    if not isinstance(mechanism, ACCOUNTABLE):
        raise ValueError(
            f"mechanism {type(mechanism).__name__} cannot be accounted: it derives from none of "
            f"{[c.__name__ for c in ACCOUNTABLE]} (see lmodp.mechanisms.registry)"
        )
    if isinstance(mechanism, LaplaceScaleMixture):
        mechanism.mixing.kernel_params()  # ValueError when the subclass declares no mixing law
    return mechanism


def require_registered(mechanism: Any) -> Mechanism:
    """``mechanism`` itself if it is accountable (:func:`require_accountable`) and its family is
    registered, so that a history naming it can be rebuilt (``state_dict``) and it can be sampled
    in training; ``ValueError`` saying what is missing otherwise."""
    require_accountable(mechanism)
    if mechanism.family not in _FAMILIES:
        raise ValueError(
            f"mechanism family {mechanism.family!r} ({type(mechanism).__name__}) is not registered: call "
            "lmodp.register_mechanism on its class, so that accountants can rebuild it from their history"
        )
    return mechanism


def mechanism_from_dict(data: Mapping[str, Any]) -> Mechanism:
    """Rebuild a mechanism of any registered family from :meth:`Mechanism.to_dict` output; ValueError
    naming any unknown key."""
    family = data.get("family")
    cls = family_class(family)  # type: ignore[arg-type]
    parameters = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(data) - {"family", "convention"} - set(parameters))
    if unknown:
        raise ValueError(f"unknown {family} parameter(s) {unknown}; the {family} parameters are {parameters}")
    return cls.from_dict(data)


for _builtin in (Gaussian, Laplace, LMO, LaplaceMixture, GeneralizedGaussian):
    register_mechanism(_builtin)
