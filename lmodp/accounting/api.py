"""One-call privacy accounting: ``lmodp.epsilon(mechanism, run)`` or
``lmodp.epsilon(mechanism, sample_rate=…, steps=…, delta=…, geometry=…)``.

The run is a :class:`~lmodp.accounting.spec.RunSpec` or its settings as keywords (a keyword
given with ``run`` replaces that setting). The accountant is chosen by name from the registry
(:mod:`lmodp.accounting.registry`); ``"auto"`` picks the tightest sound one for the mechanism and
geometry.
"""

from __future__ import annotations

from lmodp.accounting.base import PrivacyAccountant
from lmodp.accounting.registry import make_accountant
from lmodp.accounting.spec import RunSpec, run_spec
from lmodp.mechanisms import Mechanism


def account(mechanism: Mechanism, run: RunSpec, *, accountant: str | PrivacyAccountant = "rdp") -> PrivacyAccountant:
    """The accountant ``accountant`` (a registered name, ``"auto"`` for the tightest sound one, or
    an accountant object) after the ``run.steps`` Poisson-subsampled releases of ``mechanism``
    that ``run`` describes."""
    acc = make_accountant(accountant, mechanism=mechanism, geometry=run.geometry)
    acc.step(mechanism=mechanism, sample_rate=run.sample_rate, steps=run.steps, sensitivity=run.sensitivity, geometry=run.geometry)
    return acc


def epsilon(
    mechanism: Mechanism,
    run: RunSpec | None = None,
    *,
    sample_rate: float | None = None,
    steps: int | None = None,
    delta: float | None = None,
    geometry: str | None = None,
    sensitivity: float | None = None,
    accountant: str = "rdp",
) -> float:
    """An upper bound on ε such that ``steps`` Poisson-subsampled releases of ``mechanism`` are
    (ε, δ)-DP under add/remove neighbours, for a query with the given sensitivity (default 1) and
    geometry (default ``"l2"``); the settings come from ``run`` and/or the keywords.

    ``accountant``: a registered name (``"rdp"``, ``"pld"``) or ``"auto"`` for the tightest sound
    one (:func:`~lmodp.accounting.registry.tightest_accountant`: PLD in the scalar geometry and
    for Gaussian noise in l2)."""
    spec = run_spec(run, sample_rate=sample_rate, steps=steps, delta=delta, geometry=geometry, sensitivity=sensitivity)
    return account(mechanism, spec, accountant=accountant).get_epsilon(spec.delta)


def epsilon_and_order(
    mechanism: Mechanism,
    run: RunSpec | None = None,
    *,
    sample_rate: float | None = None,
    steps: int | None = None,
    delta: float | None = None,
    geometry: str | None = None,
    sensitivity: float | None = None,
    accountant: str = "rdp",
) -> tuple[float, float]:
    """Like :func:`epsilon`, also returning the optimal Rényi order (for accountants that have one)."""
    spec = run_spec(run, sample_rate=sample_rate, steps=steps, delta=delta, geometry=geometry, sensitivity=sensitivity)
    acc = account(mechanism, spec, accountant=accountant)
    if not acc.reports_order:
        raise ValueError(f"accountant {accountant!r} has no optimal order; use epsilon()")
    return acc.get_epsilon_and_order(spec.delta)
