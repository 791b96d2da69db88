"""What happened in a training run, independent of how it is accounted.

A :class:`MechanismEvent` records ``steps`` Poisson-subsampled releases of one mechanism; an
accountant (:class:`lmodp.accounting.base.PrivacyAccountant`) keeps the list of its events.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
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
        """Identifies the per-step RDP curve (everything but ``steps``); computed once per event."""
        key = self.__dict__.get("_key")
        if key is None:
            key = json.dumps([dict(self.mechanism), self.sample_rate, self.sensitivity, self.geometry], sort_keys=True)
            object.__setattr__(self, "_key", key)
        return key

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["mechanism"] = dict(self.mechanism)
        return d


def extended_history(events: list[MechanismEvent], event: MechanismEvent) -> list[MechanismEvent]:
    """``events`` followed by ``event``, merged into the last event when they differ only in their
    step counts (k then m releases of the same law compose like k + m)."""
    if events and events[-1].key() == event.key():
        return [*events[:-1], replace(events[-1], steps=events[-1].steps + event.steps)]
    return [*events, event]
