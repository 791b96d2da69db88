"""The accountants by name, for every part of lmodp that takes ``accountant="..."``.

:data:`ACCOUNTANTS` maps a name to a :class:`~lmodp.accounting.base.PrivacyAccountant` subclass
(``"rdp"``, ``"pld"``); :func:`register_accountant` adds one, and from then on
:func:`lmodp.epsilon`, the search, training and the command line accept its name. The name
``"auto"`` (:data:`AUTO`) picks the tightest sound accountant for the mechanism and geometry
(:func:`tightest_accountant`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lmodp.accounting.base import PrivacyAccountant
from lmodp.accounting.pld.accountant import PLDAccountant
from lmodp.accounting.rdp.accountant import RDPAccountant
from lmodp.mechanisms import Mechanism, family_of

#: Name -> accountant class (constructed without arguments where an accountant is named).
ACCOUNTANTS: dict[str, type[PrivacyAccountant]] = {cls.name: cls for cls in (RDPAccountant, PLDAccountant)}
#: The name that resolves to :func:`tightest_accountant`.
AUTO = "auto"
#: How to get around a refused accountant, in Python terms (the command line names its flags).
PLD_FIX = "use accountant='auto' (PLD where it is tight, RDP otherwise) or 'rdp', or geometry='scalar'"


def register_accountant(cls: type[PrivacyAccountant]) -> type[PrivacyAccountant]:
    """Add ``cls`` (a :class:`PrivacyAccountant` subclass with a new ``name``) to :data:`ACCOUNTANTS`;
    returns it, so that it can decorate the class."""
    if not (isinstance(cls, type) and issubclass(cls, PrivacyAccountant)):
        raise ValueError(f"accountant must be a PrivacyAccountant subclass, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or name == AUTO:
        raise ValueError(f"{cls.__name__}.name must be a non-empty string other than {AUTO!r}, got {name!r}")
    if name in ACCOUNTANTS and ACCOUNTANTS[name] is not cls:
        raise ValueError(f"an accountant named {name!r} is already registered ({ACCOUNTANTS[name].__name__})")
    ACCOUNTANTS[name] = cls
    return cls


def accountant_choices() -> tuple[str, ...]:
    """Every name an ``accountant`` argument accepts: ``"auto"`` and the registered names."""
    return (AUTO, *sorted(ACCOUNTANTS))


def tightest_accountant(mechanism: Mechanism, geometry: str) -> str:
    """The name of the tightest sound accountant for ``mechanism`` in ``geometry``: the first of
    those its family declares fitting (its ``accountants`` facet).

    ``"pld"`` where the PLD accountant's dominating pair is tight: the scalar geometry (any
    symmetric additive noise), and Gaussian noise in the l2 geometry (a rotation makes it the
    scalar pair with Δ = C). ``"rdp"`` otherwise: for non-Gaussian noise in l2 no tight
    dominating pair is known, and the RDP bound is the upper end of
    :func:`lmodp.epsilon_interval`.
    """
    return family_of(mechanism.canonical()).fitting_accountants(geometry)[0]


def resolve_accountant(accountant: str, mechanism: Mechanism, geometry: str) -> str:
    """``accountant`` itself, or for ``"auto"`` the :func:`tightest_accountant`; ValueError for an unknown name."""
    if accountant == AUTO:
        return tightest_accountant(mechanism, geometry)
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {accountant_choices()}, got {accountant!r}")
    return accountant


def require_accountant_name(accountant: Any) -> str:
    """``accountant`` if it is one of :func:`accountant_choices`, else ValueError."""
    if accountant != AUTO and accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {accountant_choices()}, got {accountant!r}")
    return accountant


def make_accountant(
    accountant: str | PrivacyAccountant, *, mechanism: Mechanism | None = None, geometry: str = "l2"
) -> PrivacyAccountant:
    """A fresh accountant of the registered name ``accountant`` (``"auto"``: the tightest for
    ``mechanism`` in ``geometry``); an accountant object is returned as it is."""
    if isinstance(accountant, PrivacyAccountant):
        return accountant
    if not isinstance(accountant, str):
        raise ValueError(
            f"accountant must be one of {accountant_choices()} or a PrivacyAccountant, got {type(accountant).__name__}"
        )
    if accountant == AUTO and mechanism is None:
        raise ValueError(f"accountant={AUTO!r} needs the mechanism it accounts")
    name = resolve_accountant(accountant, mechanism, geometry) if mechanism is not None else require_accountant_name(accountant)
    return ACCOUNTANTS[name]()


def accountant_from_state_dict(state: Mapping[str, Any]) -> PrivacyAccountant:
    """The accountant that wrote ``state`` (its ``"accountant"`` entry names it), restored."""
    name = state.get("accountant")
    if name not in ACCOUNTANTS:
        raise ValueError(f"state['accountant'] must be one of {sorted(ACCOUNTANTS)}, got {name!r}")
    accountant = ACCOUNTANTS[name]()
    accountant.load_state_dict(state)
    return accountant


def require_accountant_fits(
    accountant: str, mechanisms: Mapping[str, Mechanism], geometries: Iterable[str], *, fix: str = PLD_FIX
) -> None:
    """Raise ValueError, before any accounting, if ``accountant`` cannot account one of
    ``mechanisms`` (named by their keys) in one of ``geometries``: the PLD for non-Gaussian noise
    in l2, where no tight dominating pair is known. The message ends with ``fix``."""
    if accountant != "pld":
        return
    for label, mechanism in mechanisms.items():
        for geometry in geometries:
            if tightest_accountant(mechanism, geometry) != "pld":
                raise ValueError(f"the PLD accountant has no tight bound for {label} (non-Gaussian noise) in the {geometry} geometry: {fix}")
