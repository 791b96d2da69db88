"""The privacy ledger of a training run: one accountant step per logical step, and a budget.

DP-SGD releases, per step, Σ_i clip_C(g_i) + C·Y with Y i.i.d. from ``mechanism`` per coordinate,
on a Poisson sample with rate q. Adding or removing one example moves the clipped sum by at most C
in L2, and the noise is C times the mechanism, so the step is the mechanism with L2 sensitivity 1
(after dividing by C): the accountant is stepped with ``sensitivity=1.0``, ``geometry="l2"``
and the true q, whatever the realised batch size was.

**Constant cost per step.** A step is recorded in O(1): the accountants merge a run of equal
releases into one event. With ``max_epsilon`` set, the ledger computes once how many steps of
the current (mechanism, q) the budget allows (:func:`lmodp.accounting.allowance.steps_within_budget`,
a few compositions, each by one FFT power for the PLD, the first ones guided by the RDP bound),
and afterwards a step is a comparison of two integers; a step beyond the allowance is refused *before* anything is released, and the
ledger either raises :class:`PrivacyBudgetExhausted` (``on_exhausted="raise"``) or marks itself
exhausted (``on_exhausted="stop"``), so the caller stops training with ε ≤ max_epsilon.
Changing :attr:`PrivacyLedger.mechanism` or :attr:`PrivacyLedger.sample_rate` mid-run starts a
new event, and the allowance is computed again for the new release after the history so far.

**What each step reports.** :meth:`PrivacyLedger.epsilon` is the accountant's ε(δ) of the steps
so far (for the PLD: composed when asked, cached by the history). :meth:`PrivacyLedger.charge_step`
returns a sound upper bound on ε(δ) after the step without composing anything: the accountant's
own value where that costs O(1) (the RDP: a sum of cached curves), and for an accountant that
composes when asked (:attr:`~lmodp.accounting.base.PrivacyAccountant.lazy_composition`, the PLD)
the smaller of the RDP bound of the same history (kept beside it, O(1) per step) and the PLD
value of the longest run already composed that is at least as long (ε grows with the steps, so
that value bounds every shorter run): the budget's allowance, whose ε is at most
``max_epsilon``, and the run's planned end ``planned_steps`` (composed once, at the first step).
At the planned end and at the budget's last step the report is the accountant's own value,
:meth:`~PrivacyLedger.epsilon`, so the last ε of a run that ends there is the one
:meth:`~PrivacyLedger.epsilon` and ``lmodp.epsilon`` give.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

from lmodp._validation import require_delta, require_geometry, require_positive, require_sample_rate, require_steps
from lmodp.accounting.allowance import Allowance, steps_within_budget
from lmodp.accounting.base import PrivacyAccountant
from lmodp.accounting.rdp.accountant import RDPAccountant
from lmodp.accounting.registry import AUTO, make_accountant, require_accountant_fits
from lmodp.mechanisms import Mechanism, mechanism_from_dict, require_registered

logger = logging.getLogger(__name__)

ON_EXHAUSTED = ("raise", "stop")


class PrivacyBudgetExhausted(RuntimeError):
    """The next step would exceed the privacy budget; nothing was released."""


class PrivacyLedger:
    """Steps ``accountant`` once per logical DP-SGD step and enforces an optional budget (module
    docstring: what it costs and what each step reports).

    ``accountant``: ``"auto"`` (the default, the tightest sound one for ``mechanism`` in
    ``geometry``: the PLD for Gaussian noise, the RDP otherwise in l2;
    :mod:`lmodp.accounting.registry`), another registered name, or a
    :class:`~lmodp.accounting.base.PrivacyAccountant` object, used as it is."""

    def __init__(
        self,
        accountant: str | PrivacyAccountant = AUTO,
        *,
        mechanism: Mechanism,
        sample_rate: float,
        delta: float,
        geometry: str = "l2",
        max_epsilon: float | None = None,
        on_exhausted: str = "raise",
        planned_steps: int | None = None,
    ) -> None:
        if on_exhausted not in ON_EXHAUSTED:
            raise ValueError(f"on_exhausted must be one of {ON_EXHAUSTED}, got {on_exhausted!r}")
        self._mechanism = require_registered(mechanism)
        self._sample_rate = require_sample_rate("sample_rate", sample_rate)
        self.delta = require_delta("delta", delta)
        self.geometry = require_geometry(geometry)
        self.accountant = make_accountant(accountant, mechanism=mechanism, geometry=self.geometry)
        require_accountant_fits(self.accountant.name, {repr(mechanism): mechanism}, [self.geometry])
        self.max_epsilon = None if max_epsilon is None else require_positive("max_epsilon", max_epsilon)
        self.on_exhausted = on_exhausted
        self.steps = 0
        self.exhausted = False
        self._monitor = RDPAccountant() if self.accountant.lazy_composition else None
        self._allowance: Allowance | None = None
        self._allowance_from = 0
        self.planned_steps = None if planned_steps is None else require_steps("planned_steps", planned_steps)
        self._horizon: float | None = None

    # --- the release of the next steps ---------------------------------------------------------
    @property
    def mechanism(self) -> Mechanism:
        """The noise of the next steps; setting it starts a new event (a heterogeneous run)."""
        return self._mechanism

    @mechanism.setter
    def mechanism(self, mechanism: Mechanism) -> None:
        require_accountant_fits(self.accountant.name, {repr(mechanism): mechanism}, [self.geometry])
        self._mechanism = require_registered(mechanism)
        self._allowance = None
        self._horizon = None

    @property
    def sample_rate(self) -> float:
        """The Poisson sampling rate q of the next steps; setting it starts a new event."""
        return self._sample_rate

    @sample_rate.setter
    def sample_rate(self, sample_rate: float) -> None:
        self._sample_rate = require_sample_rate("sample_rate", sample_rate)
        self._allowance = None
        self._horizon = None

    def _release(self) -> dict[str, Any]:
        return {
            "mechanism": self._mechanism, "sample_rate": self._sample_rate, "sensitivity": 1.0, "geometry": self.geometry,
        }

    # --- the budget ------------------------------------------------------------------------------
    def _budget(self) -> Allowance:
        """How many more steps of the current release fit, counted from step ``_allowance_from``
        (computed once per release, after a load, or again once :data:`MAX_STEPS` were taken)."""
        if self._allowance is not None and math.isinf(self._allowance.next_epsilon):
            if self.steps >= self._allowance_from + self._allowance.steps:
                self._allowance = None
        if self._allowance is None:
            self._allowance = steps_within_budget(
                self.accountant, self.max_epsilon, delta=self.delta, guide=self._monitor, **self._release()
            )
            self._allowance_from = self.steps
        return self._allowance

    def _last_allowed_step(self) -> int:
        allowed = self._budget().steps  # first: it may set _allowance_from
        return self._allowance_from + allowed

    def next_step_fits(self) -> bool:
        """Whether one more step keeps ε(δ) <= ``max_epsilon`` (always True without a budget), charging
        nothing: a training loop can stop before it computes a step the ledger would refuse."""
        if self.exhausted:
            return False
        return self.max_epsilon is None or self.steps < self._last_allowed_step()

    # --- charging --------------------------------------------------------------------------------
    def charge_step(self) -> float | None:
        """Account one step and return a sound upper bound on ε(δ) after it (module docstring);
        ``None`` (or raise) if it would exceed the budget, before anything is recorded."""
        if self.exhausted:
            return None
        if self.max_epsilon is not None and self.steps >= self._last_allowed_step():
            upcoming = self._budget().next_epsilon
            message = (
                f"step {self.steps + 1} would raise epsilon to {upcoming:.6g} > max_epsilon={self.max_epsilon:g} "
                f"(delta={self.delta:g}); stopped before releasing it"
            )
            if self.on_exhausted == "raise":
                raise PrivacyBudgetExhausted(message)
            logger.info(message)
            self.exhausted = True
            return None
        self.accountant.step(steps=1, **self._release())
        if self._monitor is not None:
            self._monitor.step(steps=1, **self._release())
        self.steps += 1
        return self._reported_epsilon()

    def _reported_epsilon(self) -> float:
        if self._monitor is None:
            return float(self.accountant.get_epsilon(self.delta))
        last_allowed = None if self._allowance is None else self._last_allowed_step()
        if self.steps in (self.planned_steps, last_allowed):
            return self.epsilon()
        bound = float(self._monitor.get_epsilon(self.delta))
        if last_allowed is not None and self.steps <= last_allowed:
            bound = min(bound, self._allowance.epsilon)
        horizon = self._horizon_epsilon()
        if horizon is not None:
            bound = min(bound, horizon)
        return bound

    def _horizon_epsilon(self) -> float | None:
        """ε(δ) at the planned end of the run if it continues with the current release (composed
        once per release), an upper bound for every step before it; None past the end."""
        if self.planned_steps is None or self.steps > self.planned_steps:
            return None
        if self._horizon is None:
            remaining = self.planned_steps - self.steps
            self._horizon = self.accountant.epsilon_after(self.delta, steps=remaining, **self._release())
        return self._horizon

    def epsilon(self) -> float:
        """ε(δ) of the steps taken so far by the ledger's accountant (0 before the first step)."""
        return 0.0 if self.steps == 0 else float(self.accountant.get_epsilon(self.delta))

    # --- persistence -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"accountant": self.accountant.state_dict(), "steps": self.steps, "exhausted": self.exhausted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accountant.load_state_dict(copy.deepcopy(state["accountant"]))
        self.steps = int(state["steps"])
        self.exhausted = bool(state["exhausted"])
        if self._monitor is not None:
            self._monitor = RDPAccountant()
            for event in self.accountant.history:
                self._monitor.step(
                    mechanism=mechanism_from_dict(event.mechanism), sample_rate=event.sample_rate, steps=event.steps,
                    sensitivity=event.sensitivity, geometry=event.geometry,
                )
        self._allowance = None
        self._horizon = None
