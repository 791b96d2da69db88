"""One-call privacy accounting: ``lmodp.epsilon(mechanism, run)`` or
``lmodp.epsilon(mechanism, sample_rate=…, steps=…, delta=…, geometry=…)``.

The run is a :class:`~lmodp.accounting.spec.RunSpec` or its settings as keywords (a keyword
given with ``run`` replaces that setting). The accountant is chosen by name from the registry
(:mod:`lmodp.accounting.registry`); ``"auto"`` picks the tightest sound one for the mechanism and
geometry.
"""

from __future__ import annotations

from lmodp.accounting.base import PrivacyAccountant
from lmodp.accounting.registry import ACCOUNTANTS, AUTO, make_accountant, resolve_accountant
from lmodp.accounting.spec import RunSpec, run_spec
from lmodp.mechanisms import Mechanism


def account(mechanism: Mechanism, run: RunSpec, *, accountant: str | PrivacyAccountant = AUTO) -> PrivacyAccountant:
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
    accountant: str = AUTO,
) -> float:
    """An upper bound on ε such that ``steps`` Poisson-subsampled releases of ``mechanism`` are
    (ε, δ)-DP under add/remove neighbours, for a query with the given sensitivity (default 1) and
    geometry (default ``"l2"``); the settings come from ``run`` and/or the keywords.

    ``accountant``: ``"auto"`` (the default), the tightest sound one
    (:func:`~lmodp.accounting.registry.tightest_accountant`: PLD in the scalar geometry and for
    Gaussian noise in l2, RDP for other noise in l2), or a registered name (``"rdp"``, ``"pld"``);
    :func:`~lmodp.accounting.registry.resolve_accountant` says which one ``"auto"`` picks."""
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
    accountant: str = AUTO,
) -> tuple[float, float]:
    """Like :func:`epsilon`, also returning the optimal Rényi order of the RDP bound (∞ where the
    pure-DP composition bound is the smaller).

    Only an accountant with orders (the RDP) has one: with ``"auto"`` (the default) resolving to
    the PLD (the scalar geometry, or Gaussian noise in l2), or with ``"pld"`` named, this raises
    a ValueError that says so; pass ``accountant="rdp"`` for the order."""
    spec = run_spec(run, sample_rate=sample_rate, steps=steps, delta=delta, geometry=geometry, sensitivity=sensitivity)
    name = resolve_accountant(accountant, mechanism, spec.geometry)
    if not ACCOUNTANTS[name].reports_order:
        chosen = (
            f"accountant='auto' chose {name!r}, the tightest sound accountant for {mechanism!r} in the {spec.geometry} geometry"
            if accountant == AUTO else f"accountant {name!r}"
        )
        raise ValueError(
            f"{chosen}, and it has no Rényi order: pass accountant='rdp' for the RDP bound and its optimal order, "
            "or call lmodp.epsilon() for epsilon alone"
        )
    return account(mechanism, spec, accountant=name).get_epsilon_and_order(spec.delta)
