r"""An RDP accountant for heterogeneous sequences of Poisson-subsampled noise mechanisms.

*What happened* is a list of :class:`MechanismEvent` records (mechanism parameters, sampling
rate, number of steps, sensitivity, geometry); *how it is accounted* is the RDP curve: by the
composition theorem of RDP (Mironov 2017, "Rényi Differential Privacy", Prop. 1), the RDP
bounds of adaptively composed mechanisms add order by order, so the curve is
Σ_events steps · ε_event(α), with ε_event from
:func:`lmodp.accounting.rdp.subsampling.poisson_subsampled_rdp`. The conversion to (ε, δ) is
:mod:`lmodp.accounting.conversion`. In the scalar geometry the result is capped by the pure-DP
composition bound (:mod:`lmodp.accounting.pure`), the limit α → ∞, when that is smaller.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike

from lmodp._validation import require_positive
from lmodp.accounting.base import PrivacyAccountant
from lmodp.accounting.conversion import rdp_to_delta, rdp_to_epsilon
from lmodp.accounting.events import MechanismEvent, NoFiniteBoundWarning, extended_history
from lmodp.accounting.orders import DEFAULT_ORDERS, validate_orders
from lmodp.accounting.pure import pure_composition_epsilon
from lmodp.accounting.rdp.l2_sup_bound import DEFAULT_L2_TOLERANCE
from lmodp.accounting.rdp.subsampling import poisson_subsampled_rdp
from lmodp.mechanisms import Mechanism, mechanism_from_dict

_STATE_VERSION = 1


def _encode_curve(curve: np.ndarray) -> list[float | None]:
    return [None if math.isinf(v) else float(v) for v in curve]


def _decode_curve(values: list[float | None]) -> np.ndarray:
    return np.array([math.inf if v is None else float(v) for v in values])


def _epsilon_and_order(orders: np.ndarray, rdp: np.ndarray, delta: float, events: list[MechanismEvent]) -> tuple[float, float]:
    """(ε, order) of the curve ``rdp``, or (pure-DP composition ε of ``events``, ∞) where that is
    smaller (then the conversion's warning about the edge of the order grid is moot and not given)."""
    cap = pure_composition_epsilon(events)
    if math.isinf(cap):
        return rdp_to_epsilon(orders, rdp, delta=delta)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eps, order = rdp_to_epsilon(orders, rdp, delta=delta)
    if cap < eps:
        return cap, math.inf
    for warning in caught:
        warnings.warn(warning.message, warning.category, stacklevel=3)
    return eps, order


class RDPAccountant(PrivacyAccountant):
    """Accumulates the RDP curve of a training run on a fixed grid of ``orders``.

    ``l2_tolerance``: the relative slack of the dimension-free l2 bound
    (:func:`~lmodp.accounting.rdp.subsampling.poisson_subsampled_rdp`; larger is faster and
    looser, never unsound).

    Example::

        acc = RDPAccountant()
        acc.step(mechanism=Gaussian(1.0), sample_rate=0.01, steps=1000, geometry="l2")
        acc.get_epsilon(1e-5)
    """

    name = "rdp"
    reports_order = True

    def __init__(self, orders: ArrayLike = DEFAULT_ORDERS, *, l2_tolerance: float = DEFAULT_L2_TOLERANCE) -> None:
        self.l2_tolerance = require_positive("l2_tolerance", l2_tolerance)
        self._reset(orders)

    def _reset(self, orders: ArrayLike) -> None:
        self.orders = validate_orders(orders).copy()
        self.orders.setflags(write=False)
        self._rdp = np.zeros_like(self.orders)
        self._prefix: np.ndarray | None = self._rdp
        self._events: list[MechanismEvent] = []
        self._curves: dict[str, np.ndarray] = {}

    # --- what happened (step() and history come from PrivacyAccountant) --------------------
    def _record(self, event: MechanismEvent, mechanism: Mechanism | None = None) -> None:
        self._curve(event, mechanism)
        self._prefix, self._rdp = self._composed(event)
        self._append(event)

    def _composed(self, event: MechanismEvent) -> tuple[np.ndarray, np.ndarray]:
        """(curve of the history but its last event, curve of the whole) once ``event`` is appended:
        Σ steps·curve over the (merged) events in their order, so that a run of T equal steps gives
        the same floats whether it came one step at a time or at once."""
        merges = bool(self._events) and self._events[-1].key() == event.key()
        prefix = self._prefix_curve() if merges else self._rdp
        last = extended_history(self._events, event)[-1]
        return prefix, (prefix + last.steps * self._curve(last) if last.steps else prefix)

    def _prefix_curve(self) -> np.ndarray:
        """Σ steps·curve over every event but the last (recomputed after a load if needed)."""
        if self._prefix is None:
            self._prefix = np.zeros_like(self.orders)
            for event in self._events[:-1]:
                if event.steps:
                    self._prefix = self._prefix + event.steps * self._curve(event)
        return self._prefix

    def _curve(self, event: MechanismEvent, mechanism: Mechanism | None = None) -> np.ndarray:
        """The per-step RDP curve of ``event``'s release (cached per distinct release)."""
        key = event.key()
        if key not in self._curves:
            mech = mechanism if mechanism is not None else mechanism_from_dict(event.mechanism)
            self._curves[key] = self._step_curve(event, mech)
        return self._curves[key]

    def _step_curve(self, event: MechanismEvent, mechanism: Mechanism) -> np.ndarray:
        """One step's RDP curve; +inf at every order (no bound, ε = ∞) for negligible noise or
        where the bound cannot be computed (with a :class:`NoFiniteBoundWarning`), see
        :mod:`lmodp.accounting.events`."""
        unbounded = np.full(self.orders.shape, np.inf)
        if event.negligible_noise(mechanism):
            return unbounded
        try:
            return poisson_subsampled_rdp(
                mechanism, self.orders, sample_rate=event.sample_rate, sensitivity=event.sensitivity,
                geometry=event.geometry, l2_tolerance=self.l2_tolerance,
            )
        except ArithmeticError as err:
            warnings.warn(
                f"no finite RDP bound for {mechanism!r} at sensitivity {event.sensitivity:g} ({err}): "
                "counted as epsilon = inf",
                NoFiniteBoundWarning,
                stacklevel=4,
            )
            return unbounded

    # --- how it is accounted ------------------------------------------------------------
    @property
    def rdp(self) -> np.ndarray:
        """The composed RDP curve on :attr:`orders` (+inf where no bound is claimed)."""
        return self._rdp.copy()

    def get_epsilon_and_order(self, delta: float) -> tuple[float, float]:
        """(ε, optimal order) such that the whole history is (ε, δ)-DP; (0, nan) before any step.
        The order is ∞ where the pure-DP composition bound (:mod:`lmodp.accounting.pure`) is the
        smaller one."""
        if self.steps_taken == 0:
            return 0.0, math.nan
        return _epsilon_and_order(self.orders, self._rdp, delta, self._events)

    def get_epsilon(self, delta: float) -> float:
        """ε such that the whole history is (ε, δ)-DP (an upper bound)."""
        return self.get_epsilon_and_order(delta)[0]

    def _epsilon_after(self, delta: float, event: MechanismEvent, mechanism: Mechanism) -> float:
        """From the cached per-step curves (no copy; the same value as after recording ``event``)."""
        self._curve(event, mechanism)
        events = extended_history(self._events, event)
        if not any(e.steps for e in events):
            return 0.0
        return _epsilon_and_order(self.orders, self._composed(event)[1], delta, events)[0]

    def get_delta(self, epsilon: float) -> float:
        """δ such that the whole history is (ε, δ)-DP (an upper bound, at most 1; 0 from the
        pure-DP composition bound on)."""
        if self.steps_taken == 0 or epsilon >= pure_composition_epsilon(self._events):
            return 0.0
        return rdp_to_delta(self.orders, self._rdp, epsilon=epsilon)[0]

    # --- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: orders, l2 slack, history and the composed curve (+inf as ``null``)."""
        return {
            "accountant": self.name,
            "version": _STATE_VERSION,
            "orders": [float(a) for a in self.orders],
            "l2_tolerance": self.l2_tolerance,
            "history": [e.to_dict() for e in self._events],
            "rdp": _encode_curve(self._rdp),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` output: the curve is restored exactly when present,
        otherwise recomputed from the history (a state without ``l2_tolerance`` has the default)."""
        self._check_state(state, _STATE_VERSION)
        self.l2_tolerance = require_positive("l2_tolerance", state.get("l2_tolerance", DEFAULT_L2_TOLERANCE))
        self._reset(state["orders"])
        events = [MechanismEvent(**e) for e in state["history"]]
        if state.get("rdp") is None:
            for event in events:
                self._record(event)
            return
        rdp = _decode_curve(state["rdp"])
        if rdp.shape != self.orders.shape:
            raise ValueError("state rdp and orders differ in length")
        for event in events:
            self._append(event)
        self._rdp = rdp
        self._prefix = None
