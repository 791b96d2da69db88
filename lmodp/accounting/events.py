"""What happened in a training run, independent of how it is accounted.

A :class:`MechanismEvent` records ``steps`` Poisson-subsampled releases of one mechanism;
:class:`EventHistory` is the list of events an accountant (RDP or PLD) keeps.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from lmodp._validation import require_geometry, require_positive, require_sample_rate, require_steps
from lmodp.mechanisms import Mechanism, require_registered


@dataclass(frozen=True)
class MechanismEvent:
    """``steps`` releases of ``mechanism`` (its ``to_dict()``), each on a Poisson sample of rate
    ``sample_rate``, for a query of the given ``sensitivity`` and ``geometry``."""

    mechanism: Mapping[str, Any]
    sample_rate: float
    steps: int
    sensitivity: float
    geometry: str

    @classmethod
    def validated(
        cls, mechanism: Mechanism, *, sample_rate: float, steps: int, sensitivity: float, geometry: str
    ) -> "MechanismEvent":
        """The event for these arguments, each checked (``ValueError`` naming the bad one); the
        mechanism must be accountable and its family registered
        (:func:`lmodp.mechanisms.require_registered`), so that the history can be rebuilt."""
        require_registered(mechanism)
        return cls(
            mechanism=mechanism.to_dict(),
            sample_rate=require_sample_rate("sample_rate", sample_rate),
            steps=require_steps("steps", steps),
            sensitivity=require_positive("sensitivity", sensitivity),
            geometry=require_geometry(geometry),
        )

    def key(self) -> str:
        """Identifies the per-step RDP curve (everything but ``steps``)."""
        return json.dumps([dict(self.mechanism), self.sample_rate, self.sensitivity, self.geometry], sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["mechanism"] = dict(self.mechanism)
        return d


class EventHistory(ABC):
    """What an accountant records: ``step()`` validates an event and hands it to the subclass's
    ``_record`` (how it is accounted), which appends it to ``self._events``."""

    _events: list[MechanismEvent]

    def step(
        self,
        *,
        mechanism: Mechanism,
        sample_rate: float,
        steps: int = 1,
        sensitivity: float = 1.0,
        geometry: str,
    ) -> None:
        """Record ``steps`` Poisson-subsampled releases of ``mechanism`` (each argument checked)."""
        event = MechanismEvent.validated(
            mechanism, sample_rate=sample_rate, steps=steps, sensitivity=sensitivity, geometry=geometry
        )
        self._record(event, mechanism)

    @abstractmethod
    def _record(self, event: MechanismEvent, mechanism: Mechanism | None = None) -> None:
        """Account ``event`` (``mechanism`` is its live object when available) and append it."""

    @property
    def history(self) -> list[MechanismEvent]:
        """The recorded events, oldest first."""
        return list(self._events)

    @property
    def steps_taken(self) -> int:
        """Total number of steps over all events."""
        return sum(e.steps for e in self._events)
