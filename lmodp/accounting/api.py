"""One-call privacy accounting: ``lmodp.epsilon(mechanism, sample_rate=…, steps=…, delta=…, geometry=…)``.

The accountant is chosen by name from :data:`ACCOUNTANTS` (a mapping from name to a class with
the :class:`~lmodp.accounting.rdp.accountant.RDPAccountant` interface); adding an accountant is
one entry there. The name ``"auto"`` picks the tightest sound accountant for the mechanism and
geometry (:func:`tightest_accountant`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable

from lmodp.accounting.pld import PLDAccountant
from lmodp.accounting.rdp.accountant import RDPAccountant
from lmodp.mechanisms import Gaussian, Mechanism

ACCOUNTANTS: dict[str, Callable[[], Any]] = {"rdp": RDPAccountant, "pld": PLDAccountant}
#: The name that resolves to :func:`tightest_accountant`.
AUTO = "auto"
#: Every name :func:`account` accepts.
ACCOUNTANT_CHOICES = (AUTO, *sorted(ACCOUNTANTS))


def tightest_accountant(mechanism: Mechanism, geometry: str) -> str:
    """The name of the tightest sound accountant for ``mechanism`` in ``geometry``.

    ``"pld"`` where the PLD accountant's dominating pair is tight: the scalar geometry (any
    symmetric additive noise), and Gaussian noise in the l2 geometry (a rotation makes it the
    scalar pair with Δ = C). ``"rdp"`` otherwise: for non-Gaussian noise in l2 no tight
    dominating pair is known, and the RDP bound is the upper end of
    :func:`lmodp.epsilon_interval`.
    """
    return "pld" if geometry == "scalar" or isinstance(mechanism, Gaussian) else "rdp"


def resolve_accountant(accountant: str, mechanism: Mechanism, geometry: str) -> str:
    """``accountant`` itself, or for ``"auto"`` the :func:`tightest_accountant`; ValueError for an unknown name."""
    if accountant == AUTO:
        return tightest_accountant(mechanism, geometry)
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {ACCOUNTANT_CHOICES}, got {accountant!r}")
    return accountant


#: How to get around a refused accountant, in Python terms (the command line names its flags).
PLD_FIX = "use accountant='auto' (PLD where it is tight, RDP otherwise) or 'rdp', or geometry='scalar'"


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


def account(
    mechanism: Mechanism, *, sample_rate: float, steps: int, geometry: str, sensitivity: float = 1.0, accountant: str = "rdp"
) -> Any:
    """A fresh accountant named ``accountant`` (see :func:`resolve_accountant`) after ``steps``
    Poisson-subsampled releases of ``mechanism``."""
    acc = ACCOUNTANTS[resolve_accountant(accountant, mechanism, geometry)]()
    acc.step(mechanism=mechanism, sample_rate=sample_rate, steps=steps, sensitivity=sensitivity, geometry=geometry)
    return acc


def epsilon(
    mechanism: Mechanism,
    *,
    sample_rate: float,
    steps: int,
    delta: float,
    geometry: str,
    sensitivity: float = 1.0,
    accountant: str = "rdp",
) -> float:
    """An upper bound on ε such that ``steps`` Poisson-subsampled releases of ``mechanism`` are
    (ε, δ)-DP under add/remove neighbours, for a query with the given sensitivity and geometry.

    ``accountant``: ``"rdp"``, ``"pld"``, or ``"auto"`` for the tightest sound one
    (:func:`tightest_accountant`: PLD in the scalar geometry and for Gaussian noise in l2)."""
    acc = account(
        mechanism, sample_rate=sample_rate, steps=steps, geometry=geometry, sensitivity=sensitivity, accountant=accountant
    )
    return acc.get_epsilon(delta)


def epsilon_and_order(
    mechanism: Mechanism,
    *,
    sample_rate: float,
    steps: int,
    delta: float,
    geometry: str,
    sensitivity: float = 1.0,
    accountant: str = "rdp",
) -> tuple[float, float]:
    """Like :func:`epsilon`, also returning the optimal Rényi order (for accountants that have one)."""
    acc = account(
        mechanism, sample_rate=sample_rate, steps=steps, geometry=geometry, sensitivity=sensitivity, accountant=accountant
    )
    if not hasattr(acc, "get_epsilon_and_order"):
        raise ValueError(f"accountant {accountant!r} has no optimal order; use epsilon()")
    return acc.get_epsilon_and_order(delta)
