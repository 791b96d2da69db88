"""The interface every lmodp privacy accountant has: :class:`PrivacyAccountant`.

An accountant keeps *what happened* (a list of :class:`~lmodp.accounting.events.MechanismEvent`,
recorded by :meth:`~PrivacyAccountant.step`) apart from *how it is accounted* (the subclass: an
RDP curve, composed PLDs, ...), as dp-accounting does; like Opacus' accountants it is stateful
and persists through :meth:`~PrivacyAccountant.state_dict` / :meth:`~PrivacyAccountant.load_state_dict`.
Every ε and δ an accountant reports is an upper bound for the whole recorded history.

A subclass sets :attr:`~PrivacyAccountant.name` (its key in
:data:`lmodp.accounting.registry.ACCOUNTANTS` and in its state dicts) and implements ``_record``
(appending with :meth:`~PrivacyAccountant._append`, which merges a repeated release into the
previous event: k then m releases of the same law compose like k + m),
:meth:`~PrivacyAccountant.get_epsilon`, :meth:`~PrivacyAccountant.get_delta`, ``state_dict`` and
``load_state_dict``; it may override :meth:`~PrivacyAccountant.epsilon_after` with something
cheaper than a copy.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

from lmodp.accounting.events import MechanismEvent, extended_history
from lmodp.mechanisms import Mechanism


class PrivacyAccountant(ABC):
    """Records Poisson-subsampled releases of noise mechanisms and bounds the privacy they spend.

    Example (any registered accountant, here by name)::

        acc = make_accountant("rdp")
        acc.step(mechanism=Gaussian(1.0), sample_rate=0.01, steps=1000, geometry="l2")
        acc.get_epsilon(1e-5)
    """

    #: The accountant's name: its key in the registry and the ``"accountant"`` entry of its state.
    name: ClassVar[str]
    #: Whether :meth:`get_epsilon_and_order` reports the Rényi order at which ε is attained.
    reports_order: ClassVar[bool] = False
    #: Whether :meth:`get_epsilon` composes the history when asked (a full composition per new
    #: history, cached until the next step) rather than keeping it composed step by step: a
    #: caller that needs a value after every step (:class:`~lmodp.train.ledger.PrivacyLedger`)
    #: should not ask this accountant every step.
    lazy_composition: ClassVar[bool] = False

    _events: list[MechanismEvent]

    def step(
        self,
        *,
        mechanism: Mechanism,
        sample_rate: float,
        steps: int = 1,
        sensitivity: float = 1.0,
        geometry: str = "l2",
    ) -> None:
        """Record ``steps`` releases of ``mechanism``, each on a Poisson sample of rate
        ``sample_rate``, for a query of the given ``sensitivity`` and ``geometry`` (each argument
        checked: ``ValueError`` naming the bad one)."""
        event = MechanismEvent.validated(
            mechanism, sample_rate=sample_rate, steps=steps, sensitivity=sensitivity, geometry=geometry
        )
        self._record(event, mechanism)

    @abstractmethod
    def _record(self, event: MechanismEvent, mechanism: Mechanism | None = None) -> None:
        """Account ``event`` (``mechanism`` is its live object when available) and append it."""

    def _append(self, event: MechanismEvent) -> None:
        """Append ``event`` to the history (:func:`~lmodp.accounting.events.extended_history`: a
        run of T equal steps is one event, whatever T)."""
        self._events = extended_history(self._events, event)

    def epsilon_after(
        self,
        delta: float,
        *,
        mechanism: Mechanism,
        sample_rate: float,
        steps: int,
        sensitivity: float = 1.0,
        geometry: str = "l2",
    ) -> float:
        """ε(δ) of the history followed by ``steps`` more releases (the arguments of :meth:`step`),
        without recording them: what the history would spend (subclasses: ``_epsilon_after``)."""
        event = MechanismEvent.validated(
            mechanism, sample_rate=sample_rate, steps=steps, sensitivity=sensitivity, geometry=geometry
        )
        return self._epsilon_after(delta, event, mechanism)

    def _epsilon_after(self, delta: float, event: MechanismEvent, mechanism: Mechanism) -> float:
        """ε(δ) of the history followed by ``event`` (of the live ``mechanism``); this default
        records it in a copy."""
        ahead = copy.deepcopy(self)
        ahead._record(event, mechanism)
        return ahead.get_epsilon(delta)

    @abstractmethod
    def get_epsilon(self, delta: float) -> float:
        """An upper bound on ε such that the whole history is (ε, δ)-DP (0 before any step)."""

    @abstractmethod
    def get_delta(self, epsilon: float) -> float:
        """An upper bound on δ (at most 1) such that the whole history is (ε, δ)-DP (0 before any step)."""

    def get_epsilon_and_order(self, delta: float) -> tuple[float, float]:
        """(ε, the Rényi order that attains it); the order is NaN for accountants without one
        (:attr:`reports_order` False) and before any step."""
        return self.get_epsilon(delta), math.nan

    @property
    def history(self) -> list[MechanismEvent]:
        """The recorded events, oldest first."""
        return list(self._events)

    @property
    def steps_taken(self) -> int:
        """Total number of steps over all events."""
        return sum(e.steps for e in self._events)

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state, with ``"accountant"`` (:attr:`name`), ``"version"`` and ``"history"``."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` output (``ValueError`` for another accountant's state)."""

    def _check_state(self, state: Mapping[str, Any], version: int) -> None:
        """ValueError unless ``state`` is this accountant's state dict of format ``version``."""
        if state.get("accountant") != self.name or state.get("version") != version:
            raise ValueError(f"state must come from {type(self).__name__}.state_dict (version {version})")
