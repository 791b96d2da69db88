"""The privacy ledger of a training run: one accountant step per logical step, and a budget.

DP-SGD releases, per step, Σ_i clip_C(g_i) + C·Y with Y i.i.d. from ``mechanism`` per coordinate,
on a Poisson sample with rate q. Adding or removing one example moves the clipped sum by at most C
in L2, and the noise is C times the mechanism, so the step is the mechanism with L2 sensitivity 1
(after dividing by C): the accountant is stepped with ``sensitivity=1.0``, ``geometry="l2"``
and the true q, whatever the realised batch size was.

With ``max_epsilon`` set, a step whose accounting would push ε(δ) above the budget is refused
*before* anything is released (a copy of the accountant kept one step ahead tells what the next
step would cost), and the ledger either raises
:class:`PrivacyBudgetExhausted` (``on_exhausted="raise"``) or marks itself exhausted
(``on_exhausted="stop"``), so the caller stops training with ε ≤ max_epsilon.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from lmodp._validation import require_delta, require_geometry, require_positive, require_sample_rate
from lmodp.accounting.base import PrivacyAccountant
from lmodp.accounting.registry import make_accountant
from lmodp.mechanisms import Mechanism

logger = logging.getLogger(__name__)

ON_EXHAUSTED = ("raise", "stop")


class PrivacyBudgetExhausted(RuntimeError):
    """The next step would exceed the privacy budget; nothing was released."""


class PrivacyLedger:
    """Steps ``accountant`` once per logical DP-SGD step and enforces an optional budget.

    ``accountant``: a registered name (``"rdp"``, ``"pld"``, ``"auto"``: the tightest sound one
    for ``mechanism`` in ``geometry``; :mod:`lmodp.accounting.registry`) or a
    :class:`~lmodp.accounting.base.PrivacyAccountant` object, used as it is."""

    def __init__(
        self,
        accountant: str | PrivacyAccountant,
        *,
        mechanism: Mechanism,
        sample_rate: float,
        delta: float,
        geometry: str = "l2",
        max_epsilon: float | None = None,
        on_exhausted: str = "raise",
    ) -> None:
        if on_exhausted not in ON_EXHAUSTED:
            raise ValueError(f"on_exhausted must be one of {ON_EXHAUSTED}, got {on_exhausted!r}")
        self.mechanism = mechanism
        self.sample_rate = require_sample_rate("sample_rate", sample_rate)
        self.delta = require_delta("delta", delta)
        self.geometry = require_geometry(geometry)
        self.accountant = make_accountant(accountant, mechanism=mechanism, geometry=self.geometry)
        self.max_epsilon = None if max_epsilon is None else require_positive("max_epsilon", max_epsilon)
        self.on_exhausted = on_exhausted
        self.steps = 0
        self.exhausted = False
        self._reset_lookahead()

    def epsilon(self) -> float:
        """ε(δ) of the steps taken so far (0 before the first step)."""
        return 0.0 if self.steps == 0 else float(self.accountant.get_epsilon(self.delta))

    def _step(self, accountant: PrivacyAccountant) -> None:
        accountant.step(
            mechanism=self.mechanism, sample_rate=self.sample_rate, steps=1, sensitivity=1.0, geometry=self.geometry
        )

    def _reset_lookahead(self) -> None:
        """A copy of the accountant one step ahead: the ε the next step would bring."""
        if self.max_epsilon is None:
            self._lookahead = None
            return
        self._lookahead = copy.deepcopy(self.accountant)
        self._step(self._lookahead)

    def next_step_fits(self) -> bool:
        """Whether one more step keeps ε(δ) <= ``max_epsilon`` (always True without a budget), charging
        nothing: a training loop can stop before it computes a step the ledger would refuse."""
        if self.exhausted:
            return False
        return self._lookahead is None or float(self._lookahead.get_epsilon(self.delta)) <= self.max_epsilon

    def charge_step(self) -> float | None:
        """Account one step and return ε(δ) after it; ``None`` (or raise) if it would exceed the budget."""
        if self.exhausted:
            return None
        if self._lookahead is not None:
            upcoming = float(self._lookahead.get_epsilon(self.delta))
            if upcoming > self.max_epsilon:
                message = (
                    f"step {self.steps + 1} would raise epsilon to {upcoming:.6g} > max_epsilon={self.max_epsilon:g} "
                    f"(delta={self.delta:g}); stopped before releasing it"
                )
                if self.on_exhausted == "raise":
                    raise PrivacyBudgetExhausted(message)
                logger.info(message)
                self.exhausted = True
                return None
            self._step(self._lookahead)
        self._step(self.accountant)
        self.steps += 1
        return float(self.accountant.get_epsilon(self.delta))

    def state_dict(self) -> dict[str, Any]:
        return {"accountant": copy.deepcopy(self.accountant.state_dict()), "steps": self.steps, "exhausted": self.exhausted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accountant.load_state_dict(copy.deepcopy(state["accountant"]))
        self.steps = int(state["steps"])
        self.exhausted = bool(state["exhausted"])
        self._reset_lookahead()
