"""The one registry of noise families: a family's registration (:class:`~lmodp.mechanisms.family.NoiseFamily`)
gives it every accountant, the search, training, the figures and ``state_dict`` round trips, or
is refused with the reason.

Each family module ends with :func:`register_family`, which declares the family's facets
(:mod:`lmodp.mechanisms.family`) and registers its ``family`` name (the ``"family"`` key of its
:meth:`~lmodp.mechanisms.base.Mechanism.to_dict`). Base classes declare facets that their
subclasses inherit:

* :class:`~lmodp.mechanisms.mixture.LaplaceScaleMixture` (an LMO or a finite mixing law;
  Laplace, LMO, :class:`~lmodp.mechanisms.laplace_mixture.LaplaceMixture`);
* :class:`~lmodp.mechanisms.density.SymmetricDensity`: a user-defined symmetric, log-concave
  density with a bounded score, given by its log-density and a torch sampler, accounted by
  quadrature with controlled error (what a new family without closed forms gets);
* :class:`~lmodp.mechanisms.gaussian.Gaussian` and
  :class:`~lmodp.mechanisms.generalized_gaussian.GeneralizedGaussian` (closed forms).

Every layer asks :func:`family_of` for a mechanism's facets, never ``isinstance``.
:func:`require_accountable` is what every accounting function checks; :func:`require_registered`
(accountable and registered) is what an accountant's ``step`` and the training loop check,
since a recorded history must be rebuilt by :func:`mechanism_from_dict`.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, TypeVar

from lmodp._lazy import resolve
from lmodp.mechanisms.base import Mechanism
from lmodp.mechanisms.family import FACETS, SCALAR_PLD, Figures, Hook, NoiseFamily

M = TypeVar("M", bound=type)

# What each class declares itself; a class's family is its declarations merged down its MRO.
_DECLARED: dict[type, NoiseFamily] = {
    Mechanism: NoiseFamily(Mechanism, pld_closed_form=False, accountants=SCALAR_PLD, figures=Figures())
}
# Registered family names -> their classes (what mechanism_from_dict rebuilds).
_FAMILIES: dict[str, type[Mechanism]] = {}


def _require_mechanism_class(cls: Any, function: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Mechanism)):
        raise ValueError(f"{function} takes a Mechanism subclass, got {cls!r}")


def _declaration(cls: type[Mechanism], facets: Mapping[str, Any]) -> NoiseFamily:
    """What ``cls`` declares after adding ``facets`` (None: not given) to its declaration so far."""
    unknown = sorted(set(facets) - set(FACETS))
    if unknown:
        raise ValueError(f"unknown facet(s) {unknown}; a family declares some of {list(FACETS)}")
    declared = NoiseFamily(cls, **{name: value for name, value in facets.items() if value is not None})
    return declared.over(_DECLARED[cls]) if cls in _DECLARED else declared


def _merged(cls: type, declared: Mapping[type, NoiseFamily]) -> NoiseFamily:
    family = NoiseFamily(cls)
    for base in cls.__mro__:
        if base in declared:
            family = family.over(declared[base])
    return family


def family_of(mechanism: Mechanism | type[Mechanism]) -> NoiseFamily:
    """The facets of ``mechanism``'s class (or of the class itself): each one from the nearest
    class in its MRO that declares it (the root, :class:`Mechanism`, declares the defaults)."""
    return _merged(mechanism if isinstance(mechanism, type) else type(mechanism), _DECLARED)


def register_family(cls: M, **facets: Hook | Any) -> M:
    """Declare the facets of ``cls`` (:mod:`lmodp.mechanisms.family`) and register its ``family``
    name; returns ``cls``. A base class with no ``family`` name only declares facets for its
    subclasses. Registering again adds or replaces facets.

    Raises ``ValueError`` if ``cls`` is not a Mechanism subclass, if a named family can be
    accounted by no accountant (no RDP law or PLD model declared on it or a base class: derive
    it from SymmetricDensity, LaplaceScaleMixture, GeneralizedGaussian or Gaussian, or declare
    both), or if its name is taken by another class."""
    _require_mechanism_class(cls, "register_family")
    family = getattr(cls, "family", "")
    if not isinstance(family, str):
        raise ValueError(f"{cls.__name__}.family must be a string (its name in to_dict), got {family!r}")
    taken = _FAMILIES.get(family)
    if taken is not None and taken is not cls:
        raise ValueError(f"family {family!r} is already registered to {taken.__module__}.{taken.__qualname__}")
    declared = _declaration(cls, facets)
    if family and not _merged(cls, {**_DECLARED, cls: declared}).accountable:
        raise ValueError(
            f"{cls.__name__} cannot be registered: no accountant can account it. Derive it from SymmetricDensity "
            "(a symmetric, log-concave log-density with a bounded score, and a torch sampler), LaplaceScaleMixture "
            "(an LMO or finite mixing law), GeneralizedGaussian or Gaussian, or declare its rdp_law and pld_model"
        )
    _DECLARED[cls] = declared
    if family:
        _FAMILIES[family] = cls
    return cls


def register_mechanism(cls: M) -> M:
    """Register the family ``cls`` under its ``family`` name with the facets it inherits (usable as
    a class decorator); :func:`register_family` also declares facets of its own.

    Raises ``ValueError`` if ``cls`` is not a Mechanism subclass, has no ``family`` name, or
    cannot be registered (:func:`register_family`). Registering the same class again is a no-op.
    """
    _require_mechanism_class(cls, "register_mechanism")
    family = getattr(cls, "family", "")
    if not isinstance(family, str) or not family:
        raise ValueError(f"{cls.__name__} must set a non-empty class attribute 'family' (its name in to_dict)")
    return register_family(cls)


def registered_families() -> tuple[str, ...]:
    """The names of every registered family, sorted."""
    return tuple(sorted(_FAMILIES))


def family_class(family: str) -> type[Mechanism]:
    """The class registered under ``family``; ``ValueError`` listing the registered names otherwise."""
    cls = _FAMILIES.get(family) if isinstance(family, str) else None
    if cls is None:
        raise ValueError(
            f"family must be one of {list(registered_families())}, got {family!r} (a new family needs "
            "lmodp.register_family(YourClass, ...) or lmodp.register_mechanism(YourClass))"
        )
    return cls


def require_accountable(mechanism: Any) -> Mechanism:
    """``mechanism`` itself if the accountants can account its law (its family declares an RDP law
    and a PLD model, and its ``check`` passes: a Laplace scale mixture declares its mixing law);
    ``ValueError`` saying what is missing otherwise."""
    if not isinstance(mechanism, Mechanism):
        raise ValueError(f"mechanism must be an lmodp Mechanism, got {type(mechanism).__name__}")
    family = family_of(mechanism)
    if not family.accountable:
        accountable = sorted(c.__name__ for c in _DECLARED if c is not Mechanism and family_of(c).accountable)
        raise ValueError(
            f"mechanism {type(mechanism).__name__} cannot be accounted: it derives from none of {accountable} "
            "and declares no rdp_law and pld_model (see lmodp.mechanisms.registry)"
        )
    if family.check is not None:
        family.check(mechanism)
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


def hook(mechanism: Mechanism, facet: str) -> Any:
    """The callable that ``mechanism``'s family declares as ``facet`` (imported on first use);
    ``ValueError`` where it declares none."""
    reference = getattr(family_of(mechanism), facet)
    if reference is None:
        raise ValueError(f"mechanism family {mechanism.family!r} ({type(mechanism).__name__}) declares no {facet}")
    return resolve(reference)


def __getattr__(name: str) -> Any:
    if name == "ACCOUNTABLE":  # the classes that declare an RDP law and a PLD model (the registry can grow)
        return tuple(c for c, d in _DECLARED.items() if d.rdp_law is not None and d.pld_model is not None)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
