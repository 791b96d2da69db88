r"""Tight (ε, δ) accounting with privacy-loss distributions (PLD).

For a symmetric additive-noise mechanism (Gaussian, Laplace, LMO and other Laplace scale
mixtures) in the ``"scalar"`` geometry with sensitivity Δ and Poisson sampling rate q, each step
is represented, in both neighbouring directions (add and remove one record), by a discrete PLD
built from the exact hockey-stick curve (:mod:`lmodp.accounting.pld.hockey_stick`) by
pessimistic connect-the-dots (:mod:`lmodp.accounting.pld.connect_dots`), and steps are composed
by FFT (:mod:`lmodp.accounting.pld.compose`) when an ε or δ is asked for: a run of equal steps is
one event, composed by one FFT power whatever its length, and the results are cached.

What the returned ε bounds. ``get_epsilon(δ)`` is the largest over the two directions of the
smallest ε ≥ 0 at which the composed discrete PLD has δ(ε) ≤ δ. The discrete PLD of every step
dominates the true pair (its hockey-stick curve lies above the true one at every ε, rounding of
the closed-form distribution functions included), domination is preserved by composition, and
truncation moves mass only in the safe direction, so the returned ε is an upper bound on the
true ε of the run (up to the floating-point error of the FFT, see
:mod:`lmodp.accounting.pld.compose`). It exceeds the exact value by a discretisation error that
vanishes with ``value_discretization_interval`` (connect-the-dots makes it second order per
step) plus at most ``tail_mass_truncation`` per composition in δ.

Geometry ``"l2"``: only Gaussian noise is accepted, for which the pair N(0, σ²I) vs
N(v, σ²I) is, after a rotation, the scalar pair with Δ = ‖v‖ ≤ C (tight). For other noise no
tight dominating pair is known, and this accountant raises ValueError rather than return a point
value as if it were tight; :func:`lmodp.accounting.interval.epsilon_interval` gives an
interval (an RDP upper bound and a PLD lower bound that is certainly achieved).

``get_epsilon_lower(δ)`` is an optimistic estimate (losses rounded down), so users see the
interval [get_epsilon_lower, get_epsilon] that contains the true ε.

Small δ. The truncation (``tail_mass_truncation`` τ per composition, the window mass
``window_tail`` per step) puts up to about τ of mass at +∞, which would make every δ below it
unreachable (ε = ∞) and inflate ε for δ within a factor 1000 of it. ``get_epsilon(δ)`` therefore
recomposes the history with τ' and the window mass scaled to 10⁻³·δ whenever the stored PLDs'
mass at +∞ exceeds 10⁻³·δ. Below δ = 10⁻²⁸⁰ (where float64 cannot hold the tail masses) or if
the recomposed PLD still cannot reach δ (or its window cannot reach that far into a power-law
noise tail), it returns the RDP accountant's bound for the same history with a
:class:`PLDFallbackWarning` saying why, never a bare ∞. In the scalar geometry every ε is also
capped by the pure-DP composition bound (:mod:`lmodp.accounting.pure`) where that is smaller
(bounded-loss noise at small δ), without a warning: it holds at every δ.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from typing import Any, Mapping

from lmodp._validation import require_delta, require_nonnegative, require_positive, require_sample_rate
from lmodp.accounting.base import PrivacyAccountant
from lmodp.accounting.events import MechanismEvent, extended_history
from lmodp.accounting.pld.compose import DEFAULT_TAIL_MASS, compose, self_compose
from lmodp.accounting.pld.connect_dots import pessimistic_pld
from lmodp.accounting.pld.discrete import DiscretePLD, rounded_down_laws
from lmodp.accounting.pure import pure_composition_epsilon
from lmodp.accounting.pld.hockey_stick import DEFAULT_WINDOW_TAIL, DIRECTIONS, hockey_stick_curve, noise_model
from lmodp.accounting.rdp.accountant import RDPAccountant
from lmodp.mechanisms import Gaussian, Mechanism, mechanism_from_dict

DEFAULT_INTERVAL = 1e-4
_STATE_VERSION = 1
# Mass at +∞ from truncation allowed, as a share of the δ asked for; above it the history is
# recomposed with smaller truncation.
_TRUNCATION_SHARE = 1e-3
# Smallest truncation mass the recomposition uses (float64 resolves masses well above 1e-308).
_SMALLEST_TRUNCATION = 1e-283
# Self-composed blocks and composed histories kept (each up to a few MB for long runs).
_CACHED_PLDS = 6
# ε values kept, by history and δ.
_CACHED_EPSILONS = 4096


class PLDFallbackWarning(UserWarning):
    """The PLD could not resolve the δ asked for; the (sound, looser) RDP bound was returned."""


def mechanism_pld(
    mechanism: Mechanism,
    *,
    sample_rate: float,
    direction: str,
    sensitivity: float = 1.0,
    value_discretization_interval: float = DEFAULT_INTERVAL,
    pessimistic: bool = True,
    window_tail: float = DEFAULT_WINDOW_TAIL,
) -> DiscretePLD:
    """Discrete PLD of one Poisson-subsampled release in the scalar geometry, in one direction.

    ``pessimistic=True``: dominates the true pair (pessimistic connect-the-dots), so every ε
    read off it or its compositions is an upper bound. ``False``: the law of L under P with every
    loss rounded DOWN to the grid; δ(ε) = E_P[(1 − e^{ε−L})_+] only decreases, also after
    composition, so ε read off it is a lower bound (an optimistic estimate). ``window_tail``
    bounds the noise mass outside the window (pessimistic: it is added at +∞)."""
    q = require_sample_rate("sample_rate", sample_rate)
    h = require_positive("value_discretization_interval", value_discretization_interval)
    model = noise_model(mechanism, sensitivity=require_positive("sensitivity", sensitivity), window_tail=window_tail)
    c = hockey_stick_curve(model, direction=direction, sample_rate=q, interval=h)
    if pessimistic:
        return pessimistic_pld(c.offset, h, c.curve, c.error)
    return rounded_down_laws(c.p_tail, c.offset, h)[0]


def _check_geometry(mechanism: Mechanism, geometry: str) -> None:
    if geometry == "l2" and not isinstance(mechanism.canonical(), Gaussian):
        raise ValueError(
            "the PLD accountant has no tight bound for geometry 'l2' with non-Gaussian noise; "
            "use lmodp.epsilon_interval(...) for a [lower, upper] interval, or accountant='rdp'"
        )


def _signature(events: list[MechanismEvent]) -> tuple[tuple[str, int], ...]:
    """What a composition depends on: each event's release and step count, in order."""
    return tuple((e.key(), e.steps) for e in events)


def _cache_put(cache: OrderedDict, key: Any, value: Any, *, size: int = _CACHED_PLDS) -> None:
    """Store ``value``, dropping the least recently used entries beyond ``size``."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def _compose_events(
    events: list[MechanismEvent], *, pessimistic: bool, interval: float, tail_mass: float, window_tail: float
) -> list[DiscretePLD]:
    """The composed PLD of ``events`` in each direction, recomputed with these settings."""
    out = []
    for direction in DIRECTIONS:
        total: DiscretePLD | None = None
        for event in events:
            if not event.steps:
                continue
            law = mechanism_pld(
                mechanism_from_dict(event.mechanism),
                sample_rate=event.sample_rate,
                direction=direction,
                sensitivity=event.sensitivity,
                value_discretization_interval=interval,
                pessimistic=pessimistic,
                window_tail=window_tail,
            )
            block = self_compose(law, event.steps, tail_mass=tail_mass)
            total = block if total is None else compose(total, block, tail_mass=tail_mass)
        if total is not None:
            out.append(total)
    return out


class PLDAccountant(PrivacyAccountant):
    """Records the releases of a training run and composes their PLDs (add and remove direction)
    when an ε or δ is asked for.

    Composition is lazy: :meth:`step` only records (a run of equal steps is one event), and
    :meth:`get_epsilon` composes each event by one FFT power, whose cost hardly depends on its
    step count, then the events by convolution. The per-step PLDs, the self-composed blocks (by
    mechanism, q, sensitivity, geometry and steps) and the composed history are cached, so asking
    again costs nothing until the next step, and a longer run of the same release costs one
    power. The interface of every accountant (:class:`~lmodp.accounting.base.PrivacyAccountant`)::

        acc = PLDAccountant()
        acc.step(mechanism=Laplace(2.0), sample_rate=0.01, steps=1000, geometry="scalar")
        acc.get_epsilon(1e-5)
    """

    name = "pld"
    lazy_composition = True

    def __init__(
        self, value_discretization_interval: float = DEFAULT_INTERVAL, tail_mass_truncation: float = DEFAULT_TAIL_MASS
    ) -> None:
        self.value_discretization_interval = require_positive("value_discretization_interval", value_discretization_interval)
        self.tail_mass_truncation = require_positive("tail_mass_truncation", tail_mass_truncation)
        self._reset()

    def _reset(self) -> None:
        self._events: list[MechanismEvent] = []
        self._mechanisms: dict[str, Mechanism] = {}
        self._steps: dict[tuple[str, str], DiscretePLD] = {}
        self._blocks: OrderedDict[tuple[str, str, int], DiscretePLD] = OrderedDict()
        self._histories: OrderedDict[tuple[tuple[str, int], ...], dict[str, DiscretePLD]] = OrderedDict()
        self._epsilons: OrderedDict[tuple[tuple[tuple[str, int], ...], float], tuple[float, str | None]] = OrderedDict()
        self._recomposed: dict[tuple[tuple[tuple[str, int], ...], float], list[DiscretePLD]] = {}

    # --- what happened (step() and history come from PrivacyAccountant) --------------------
    def _record(self, event: MechanismEvent, mechanism: Mechanism | None = None) -> None:
        self._mechanism(event, mechanism)
        self._append(event)

    def _mechanism(self, event: MechanismEvent, mechanism: Mechanism | None = None) -> Mechanism:
        """The live mechanism of ``event`` (checked against its geometry once per distinct release)."""
        key = event.key()
        if key not in self._mechanisms:
            mech = mechanism if mechanism is not None else mechanism_from_dict(event.mechanism)
            _check_geometry(mech, event.geometry)
            self._mechanisms[key] = mech
        return self._mechanisms[key]

    # --- how it is accounted ------------------------------------------------------------
    def _step_pld(self, event: MechanismEvent, direction: str) -> DiscretePLD:
        key = (event.key(), direction)
        if key not in self._steps:
            self._steps[key] = mechanism_pld(
                self._mechanism(event),
                sample_rate=event.sample_rate,
                direction=direction,
                sensitivity=event.sensitivity,
                value_discretization_interval=self.value_discretization_interval,
            )
        return self._steps[key]

    def _block(self, event: MechanismEvent, direction: str) -> DiscretePLD:
        """The PLD of ``event.steps`` releases of ``event`` (one FFT power, cached)."""
        key = (event.key(), direction, event.steps)
        if key not in self._blocks:
            _cache_put(self._blocks, key, self_compose(self._step_pld(event, direction), event.steps, tail_mass=self.tail_mass_truncation))
        self._blocks.move_to_end(key)
        return self._blocks[key]

    def _composed_history(self, events: list[MechanismEvent]) -> dict[str, DiscretePLD]:
        """The composed pessimistic PLD of ``events`` in each direction (none before any step; cached)."""
        signature = _signature(events)
        if signature not in self._histories:
            composed: dict[str, DiscretePLD] = {}
            for direction in DIRECTIONS:
                for event in events:
                    if event.steps:
                        block = self._block(event, direction)
                        previous = composed.get(direction)
                        composed[direction] = block if previous is None else compose(previous, block, tail_mass=self.tail_mass_truncation)
            _cache_put(self._histories, signature, composed)
        self._histories.move_to_end(signature)
        return self._histories[signature]

    def composed_pld(self, direction: str) -> DiscretePLD | None:
        """The composed pessimistic PLD of one direction (None before any step)."""
        return self._composed_history(self._events).get(direction)

    def get_epsilon(self, delta: float) -> float:
        """An upper bound on ε such that the whole history is (ε, δ)-DP (max over directions),
        capped by the pure-DP composition bound (:mod:`lmodp.accounting.pure`) where that is smaller.

        Any δ in (0, 1) gives a finite value (see the module docstring for small δ)."""
        return self._epsilon_of(self._events, require_delta("delta", delta))

    def _epsilon_after(self, delta: float, event: MechanismEvent, mechanism: Mechanism) -> float:
        """Composed from the cached blocks (no copy; the same value as after recording ``event``)."""
        self._mechanism(event, mechanism)
        return self._epsilon_of(extended_history(self._events, event), require_delta("delta", delta))

    def _epsilon_of(self, events: list[MechanismEvent], delta: float) -> float:
        """ε(δ) of ``events`` (cached with the reason for a fallback, which is warned at every ask)."""
        key = (_signature(events), delta)
        if key not in self._epsilons:
            _cache_put(self._epsilons, key, self._compute_epsilon(events, delta), size=_CACHED_EPSILONS)
        eps, fallback = self._epsilons[key]
        if fallback is not None:
            warnings.warn(fallback, PLDFallbackWarning, stacklevel=3)
        return eps

    def _compute_epsilon(self, events: list[MechanismEvent], delta: float) -> tuple[float, str | None]:
        """(ε(δ) of ``events``, why the PLD was not used or None)."""
        plds = list(self._composed_history(events).values())
        if not plds:
            return 0.0, None
        cap = pure_composition_epsilon(events)
        if max(p.infinity_mass for p in plds) > _TRUNCATION_SHARE * delta:
            tail = 10.0 ** math.floor(math.log10(_TRUNCATION_SHARE * delta))
            if tail < _SMALLEST_TRUNCATION:
                return self._fallback(events, delta, cap, f"delta={delta:g} is below what the PLD resolves in float64 (1e-280)")
            try:
                plds = self._recompose(events, tail)
            except ValueError as err:  # e.g. a window too wide for the noise's power-law tails
                return self._fallback(events, delta, cap, f"the PLD cannot resolve delta={delta:g} ({err})")
        eps = max(p.get_epsilon(delta) for p in plds)
        if math.isinf(eps):
            return self._fallback(events, delta, cap, f"the PLD puts more than delta={delta:g} of mass at infinity")
        return min(eps, cap), None

    def _recompose(self, events: list[MechanismEvent], tail: float) -> list[DiscretePLD]:
        """The pessimistic composed PLDs of ``events`` with truncation mass ``tail`` (cached)."""
        key = (_signature(events), tail)
        if key not in self._recomposed:
            window = tail / (8.0 * max(sum(e.steps for e in events), 1))
            self._recomposed.clear()
            self._recomposed[key] = _compose_events(
                events, pessimistic=True, interval=self.value_discretization_interval, tail_mass=tail, window_tail=window
            )
        return self._recomposed[key]

    def _fallback(self, events: list[MechanismEvent], delta: float, cap: float, reason: str) -> tuple[float, str | None]:
        """The smaller of the pure-DP composition bound and the RDP bound of ``events``, and the
        warning to give when it is the RDP bound."""
        rdp = RDPAccountant()
        for e in events:
            rdp.step(
                mechanism=self._mechanism(e), sample_rate=e.sample_rate, steps=e.steps, sensitivity=e.sensitivity,
                geometry=e.geometry,
            )
        eps = rdp.get_epsilon(delta)
        if cap <= eps:
            return cap, None
        return eps, f"{reason}; reporting the RDP accountant's bound for the same history instead (sound, looser)"

    def get_delta(self, epsilon: float) -> float:
        """An upper bound on δ such that the whole history is (ε, δ)-DP (max over directions; 0
        from the pure-DP composition bound on)."""
        epsilon = require_nonnegative("epsilon", epsilon)
        plds = list(self._composed_history(self._events).values())
        if not plds or epsilon >= pure_composition_epsilon(self._events):
            return 0.0
        return max(p.get_delta(epsilon) for p in plds)

    def get_epsilon_lower(self, delta: float) -> float:
        """An optimistic estimate: an ε that the recorded run certainly does not beat.

        Recomputed from the history with losses rounded down on a grid ten times finer
        (:func:`mechanism_pld` with ``pessimistic=False``), so ``get_epsilon_lower(δ) ≤ true ε ≤ get_epsilon(δ)``;
        the gap shows the discretisation error (at most about steps·interval/10 here)."""
        require_delta("delta", delta)
        plds = _compose_events(
            self._events,
            pessimistic=False,
            interval=self.value_discretization_interval / 10.0,
            tail_mass=self.tail_mass_truncation,
            window_tail=DEFAULT_WINDOW_TAIL,
        )
        return max((p.get_epsilon(delta) for p in plds), default=0.0)

    # --- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: settings and history (the PLDs are rebuilt on load)."""
        return {
            "accountant": self.name,
            "version": _STATE_VERSION,
            "value_discretization_interval": self.value_discretization_interval,
            "tail_mass_truncation": self.tail_mass_truncation,
            "history": [e.to_dict() for e in self._events],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` output by recomputing the history."""
        self._check_state(state, _STATE_VERSION)
        self.value_discretization_interval = require_positive(
            "value_discretization_interval", state["value_discretization_interval"]
        )
        self.tail_mass_truncation = require_positive("tail_mass_truncation", state["tail_mass_truncation"])
        self._reset()
        for e in state["history"]:
            self._record(MechanismEvent(**e))


__all__ = ["DEFAULT_INTERVAL", "PLDAccountant", "PLDFallbackWarning", "mechanism_pld"]
