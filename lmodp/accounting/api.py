"""One-call privacy accounting: ``lmodp.epsilon(mechanism, sample_rate=…, steps=…, delta=…, geometry=…)``.

The accountant is chosen by name from :data:`ACCOUNTANTS` (a mapping from name to a class with
the :class:`~lmodp.accounting.rdp_accountant.RDPAccountant` interface); adding an accountant is
one entry there.
"""

from __future__ import annotations

from typing import Any, Callable

from lmodp.accounting.pld import PLDAccountant
from lmodp.accounting.rdp_accountant import RDPAccountant
from lmodp.mechanisms import Mechanism

ACCOUNTANTS: dict[str, Callable[[], Any]] = {"rdp": RDPAccountant, "pld": PLDAccountant}


def account(
    mechanism: Mechanism, *, sample_rate: float, steps: int, geometry: str, sensitivity: float = 1.0, accountant: str = "rdp"
) -> Any:
    """A fresh accountant named ``accountant`` after ``steps`` Poisson-subsampled releases of ``mechanism``."""
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {sorted(ACCOUNTANTS)}, got {accountant!r}")
    acc = ACCOUNTANTS[accountant]()
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
    (ε, δ)-DP under add/remove neighbours, for a query with the given sensitivity and geometry."""
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
