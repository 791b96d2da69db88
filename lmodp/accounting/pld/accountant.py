r"""Tight (ε, δ) accounting with privacy-loss distributions (PLD).

For a symmetric additive-noise mechanism (Gaussian, Laplace, LMO and other Laplace scale
mixtures) in the ``"scalar"`` geometry with sensitivity Δ and Poisson sampling rate q, each step
is represented, in both neighbouring directions (add and remove one record), by a discrete PLD
built from the exact hockey-stick curve (:mod:`lmodp.accounting.pld.hockey_stick`) by
pessimistic connect-the-dots (:mod:`lmodp.accounting.pld.connect_dots`), and steps are composed
by FFT (:mod:`lmodp.accounting.pld.compose`).

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

Grid. The interval is ``value_discretization_interval`` (default 10⁻⁴) times the least power of
two that keeps the composed PLD within ``max_grid_points`` points (default 2²⁰; ``None``: no
cap) and each step's within a sixteenth of that (all of it for the Gaussian, whose level sets
need no root-finding): the cost of a run no longer grows without bound with its ε (a noise 100
times too small for the sensitivity spreads the losses over a range 10⁴ times wider). Coarsening
by a power of two keeps the grids nested, and a pessimistic PLD moved onto the coarser grid (losses
rounded up) still dominates, so the bound stays an upper bound; the excess over the exact ε
grows with the interval (second order per step), e.g. 10⁻⁴ at ε = 3 with the interval 8·10⁻⁴.
Where the cap binds the ε is large: at ε = 13 an interval of 3.2·10⁻³ moves it by 10⁻⁴.

``get_epsilon_lower(δ)`` is an optimistic estimate (losses rounded down), so users see the
interval [get_epsilon_lower, get_epsilon] that contains the true ε.

Small δ. The truncation (``tail_mass_truncation`` τ per composition, the window mass
``window_tail`` per step) puts up to about τ of mass at +∞, which would make every δ below it
unreachable (ε = ∞) and inflate ε for δ within a factor 1000 of it. ``get_epsilon(δ)`` therefore
recomposes the history with τ' and the window mass scaled to 10⁻³·δ whenever the stored PLDs'
mass at +∞ exceeds 10⁻³·δ. Below δ = 10⁻²⁸⁰ (where float64 cannot hold the tail masses) or if
the recomposed PLD still cannot reach δ (or its window cannot reach that far into a power-law
noise tail), it returns the RDP accountant's bound for the same history with a
:class:`PLDFallbackWarning` saying why, never a bare ∞. The one ∞ it reports is for a step whose
noise is negligible for its sensitivity (:mod:`lmodp.accounting.events`), as every accountant does.
Losses above ±500 are not resolved on the grid (they count as +∞); where their probability alone
exceeds δ (a noise far too small for the sensitivity), the RDP bound is returned at once.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Mapping

from lmodp._validation import require_delta, require_nonnegative, require_positive, require_sample_rate
from lmodp.accounting.base import PrivacyAccountant
from lmodp.accounting.events import MechanismEvent
from lmodp.accounting.pld.compose import DEFAULT_TAIL_MASS, compose, self_compose, window_length
from lmodp.accounting.pld.connect_dots import pessimistic_pld
from lmodp.accounting.pld.discrete import DiscretePLD, coarsened, rounded_down_laws
from lmodp.accounting.pld.hockey_stick import LOSS_CAP, DEFAULT_WINDOW_TAIL, DIRECTIONS, grid_points, hockey_stick_curve, noise_model
from lmodp.accounting.rdp.accountant import RDPAccountant
from lmodp.mechanisms import Gaussian, Mechanism, mechanism_from_dict

DEFAULT_INTERVAL = 1e-4
_STATE_VERSION = 1
# Mass at +∞ from truncation allowed, as a share of the δ asked for; above it the history is
# recomposed with smaller truncation.
_TRUNCATION_SHARE = 1e-3
# Smallest truncation mass the recomposition uses (float64 resolves masses well above 1e-308).
_SMALLEST_TRUNCATION = 1e-283
#: Default most grid points of a composed PLD (see the module docstring, "Grid").
DEFAULT_MAX_GRID_POINTS = 2**20
#: One step's grid holds at most max_grid_points / _STEP_SHARE points where each costs root-finds.
_STEP_SHARE = 16
_MAX_DOUBLINGS = 64


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
    max_grid_points: int | None = None,
) -> DiscretePLD:
    """Discrete PLD of one Poisson-subsampled release in the scalar geometry, in one direction.

    ``pessimistic=True``: dominates the true pair (pessimistic connect-the-dots), so every ε
    read off it or its compositions is an upper bound. ``False``: the law of L under P with every
    loss rounded DOWN to the grid; δ(ε) = E_P[(1 − e^{ε−L})_+] only decreases, also after
    composition, so ε read off it is a lower bound (an optimistic estimate). ``window_tail``
    bounds the noise mass outside the window (pessimistic: it is added at +∞). With
    ``max_grid_points``, the interval is ``value_discretization_interval`` times the least power
    of two that keeps the grid within that many points (the returned PLD's ``interval``)."""
    q = require_sample_rate("sample_rate", sample_rate)
    h = require_positive("value_discretization_interval", value_discretization_interval)
    model = noise_model(mechanism, sensitivity=require_positive("sensitivity", sensitivity), window_tail=window_tail)
    if max_grid_points is not None:
        h *= doubling_factor(grid_points(model, direction=direction, sample_rate=q, interval=h), max_grid_points)
    c = hockey_stick_curve(model, direction=direction, sample_rate=q, interval=h)
    if pessimistic:
        return pessimistic_pld(c.offset, h, c.curve, c.error)
    return rounded_down_laws(c.p_tail, c.offset, h)[0]


def doubling_factor(points: int, max_points: int) -> int:
    """The least power of two 2^k with points / 2^k <= max_points (the grid is ~1/interval)."""
    return 1 if points <= max_points else 2 ** math.ceil(math.log2(points / max_points))


def compose_onto(
    previous: DiscretePLD | None,
    law_at: Callable[[float], DiscretePLD],
    steps: int,
    *,
    interval: float,
    max_grid_points: int | None,
    tail_mass: float,
) -> DiscretePLD:
    """``previous`` composed with ``steps`` copies of one step's law, on at most ``max_grid_points``.

    ``law_at(h)`` is the step's discrete PLD at interval h (or a coarser one it chose). The
    interval starts at ``interval`` (or ``previous``'s, if coarser) and doubles until the
    composed grid, estimated by the Chernoff window of :func:`~lmodp.accounting.pld.compose.window_length`,
    fits; ``previous`` is then moved onto that grid by :func:`~lmodp.accounting.pld.discrete.coarsened`
    (losses rounded in the safe direction). Nested grids (h·2^k) keep the bound valid at every
    step: a pessimistic PLD on the coarser grid dominates the finer one."""
    h = interval if previous is None else max(interval, previous.interval)
    law = law_at(h)
    if max_grid_points is not None:
        for _ in range(_MAX_DOUBLINGS):
            extent = window_length(law, steps, tail_mass=tail_mass) + (0 if previous is None else previous.probs.size)
            factor = doubling_factor(extent, max_grid_points)
            if factor == 1:
                break
            law = law_at(law.interval * factor)
    if previous is not None and previous.interval < law.interval:
        previous = coarsened(previous, round(law.interval / previous.interval))
    block = self_compose(law, steps, tail_mass=tail_mass)
    return block if previous is None else compose(previous, block, tail_mass=tail_mass)


def _beyond_grid(law: DiscretePLD) -> float:
    """A lower bound on the mass at +∞ of a step's PLD that a smaller window tail would not
    remove (its infinity mass less the window's share and a margin for rounding)."""
    return max(law.infinity_mass * (1.0 - 1e-9) - 2.0 * DEFAULT_WINDOW_TAIL, 0.0)


def _log1m(mass: float) -> float:
    """log(1 − mass), −∞ at mass 1."""
    return math.log1p(-mass) if mass < 1.0 else -math.inf


def _require_grid_points(value: Any) -> int | None:
    """``max_grid_points``: None (no cap) or an integer >= 1024."""
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1024):
        raise ValueError(f"max_grid_points must be None or an integer >= 1024, got {value!r}")
    return value


def _check_geometry(mechanism: Mechanism, geometry: str) -> None:
    if geometry == "l2" and not isinstance(mechanism.canonical(), Gaussian):
        raise ValueError(
            "the PLD accountant has no tight bound for geometry 'l2' with non-Gaussian noise; "
            "use lmodp.epsilon_interval(...) for a [lower, upper] interval, or accountant='rdp'"
        )


class PLDAccountant(PrivacyAccountant):
    """Accumulates the composed PLDs (add and remove direction) of a training run.

    The interface of every accountant (:class:`~lmodp.accounting.base.PrivacyAccountant`)::

        acc = PLDAccountant()
        acc.step(mechanism=Laplace(2.0), sample_rate=0.01, steps=1000, geometry="scalar")
        acc.get_epsilon(1e-5)
    """

    name = "pld"

    def __init__(
        self,
        value_discretization_interval: float = DEFAULT_INTERVAL,
        tail_mass_truncation: float = DEFAULT_TAIL_MASS,
        max_grid_points: int | None = DEFAULT_MAX_GRID_POINTS,
    ) -> None:
        self.value_discretization_interval = require_positive("value_discretization_interval", value_discretization_interval)
        self.tail_mass_truncation = require_positive("tail_mass_truncation", tail_mass_truncation)
        self.max_grid_points = _require_grid_points(max_grid_points)
        self._reset()

    def _reset(self) -> None:
        self._events: list[MechanismEvent] = []
        self._steps: dict[tuple[str, str, float], DiscretePLD] = {}
        self._composed: dict[str, DiscretePLD | None] = {d: None for d in DIRECTIONS}
        self._recomposed: dict[float, list[DiscretePLD]] = {}
        self._unbounded = False  # a step with negligible noise: no finite bound
        # log P(no step's loss lies beyond its grid), per direction: what no recomposition removes
        self._log_finite: dict[str, float] = {d: 0.0 for d in DIRECTIONS}

    def _step_grid_points(self, mechanism: Mechanism) -> int | None:
        """The cap of one step's grid: a sixteenth of the composed one where each point costs
        root-finds, all of it for the Gaussian (whose level sets are closed-form)."""
        if self.max_grid_points is None or isinstance(mechanism.canonical(), Gaussian):
            return self.max_grid_points
        return self.max_grid_points // _STEP_SHARE

    # --- what happened (step() and history come from PrivacyAccountant) --------------------
    def _record(self, event: MechanismEvent, mechanism: Mechanism | None = None) -> None:
        mech = mechanism if mechanism is not None else mechanism_from_dict(event.mechanism)
        _check_geometry(mech, event.geometry)
        if event.steps and event.negligible_noise(mech):  # ε = ∞ (see lmodp.accounting.events)
            self._unbounded = True
        elif event.steps:
            for direction in DIRECTIONS:
                used: list[DiscretePLD] = []

                def law_at(h: float, direction: str = direction) -> DiscretePLD:
                    key = (event.key(), direction, h)
                    if key not in self._steps:
                        self._steps[key] = mechanism_pld(
                            mech, sample_rate=event.sample_rate, direction=direction, sensitivity=event.sensitivity,
                            value_discretization_interval=h, max_grid_points=self._step_grid_points(mech),
                        )
                    used.append(self._steps[key])
                    return used[-1]

                self._composed[direction] = compose_onto(
                    self._composed[direction], law_at, event.steps, interval=self.value_discretization_interval,
                    max_grid_points=self.max_grid_points, tail_mass=self.tail_mass_truncation,
                )
                self._log_finite[direction] += event.steps * _log1m(_beyond_grid(used[-1]))
        self._events.append(event)
        self._recomposed.clear()

    # --- how it is accounted ------------------------------------------------------------
    def composed_pld(self, direction: str) -> DiscretePLD | None:
        """The composed pessimistic PLD of one direction (None before any step)."""
        return self._composed[direction]

    def get_epsilon(self, delta: float) -> float:
        """An upper bound on ε such that the whole history is (ε, δ)-DP (max over directions).

        Any δ in (0, 1) gives a finite value (see the module docstring for small δ)."""
        delta = require_delta("delta", delta)
        if self._unbounded:
            return math.inf
        plds = [p for p in self._composed.values() if p is not None]
        if not plds:
            return 0.0
        if max(p.infinity_mass for p in plds) > _TRUNCATION_SHARE * delta:
            if -math.expm1(min(self._log_finite.values())) >= delta:
                return self._rdp_fallback(
                    delta,
                    f"the noise is too small for the PLD's grid: losses above {LOSS_CAP:g} (counted as infinite) "
                    f"have probability >= delta={delta:g}",
                )
            tail = 10.0 ** math.floor(math.log10(_TRUNCATION_SHARE * delta))
            if tail < _SMALLEST_TRUNCATION:
                return self._rdp_fallback(delta, f"delta={delta:g} is below what the PLD resolves in float64 (1e-280)")
            try:
                plds = self._recompose(tail)
            except ValueError as err:  # e.g. a window too wide for the noise's power-law tails
                return self._rdp_fallback(delta, f"the PLD cannot resolve delta={delta:g} ({err})")
        eps = max(p.get_epsilon(delta) for p in plds)
        if math.isinf(eps):
            return self._rdp_fallback(delta, f"the PLD puts more than delta={delta:g} of mass at infinity")
        return eps

    def _recompose(self, tail: float) -> list[DiscretePLD]:
        """The pessimistic composed PLDs with truncation mass ``tail`` (cached until the next step)."""
        if tail not in self._recomposed:
            window = tail / (8.0 * max(self.steps_taken, 1))
            self._recomposed[tail] = self._compose_history(
                pessimistic=True, interval=self.value_discretization_interval, tail_mass=tail, window_tail=window
            )
        return self._recomposed[tail]

    def _rdp_fallback(self, delta: float, reason: str) -> float:
        message = f"{reason}; reporting the RDP accountant's bound for the same history instead (sound, looser)"
        warnings.warn(message, PLDFallbackWarning, stacklevel=3)
        rdp = RDPAccountant()
        for e in self._events:
            rdp.step(
                mechanism=mechanism_from_dict(e.mechanism), sample_rate=e.sample_rate, steps=e.steps,
                sensitivity=e.sensitivity, geometry=e.geometry,
            )
        return rdp.get_epsilon(delta)

    def get_delta(self, epsilon: float) -> float:
        """An upper bound on δ such that the whole history is (ε, δ)-DP (max over directions)."""
        epsilon = require_nonnegative("epsilon", epsilon)
        if self._unbounded:
            return 1.0
        plds = [p for p in self._composed.values() if p is not None]
        return max((p.get_delta(epsilon) for p in plds), default=0.0)

    def get_epsilon_lower(self, delta: float) -> float:
        """An optimistic estimate: an ε that the recorded run certainly does not beat.

        Recomputed from the history with losses rounded down on a grid ten times finer
        (:func:`mechanism_pld` with ``pessimistic=False``), so ``get_epsilon_lower(δ) ≤ true ε ≤ get_epsilon(δ)``;
        the gap shows the discretisation error (at most about steps·interval/10 here)."""
        require_delta("delta", delta)
        plds = self._compose_history(
            pessimistic=False,
            interval=self.value_discretization_interval / 10.0,
            tail_mass=self.tail_mass_truncation,
            window_tail=DEFAULT_WINDOW_TAIL,
        )
        return max((p.get_epsilon(delta) for p in plds), default=0.0)

    def _compose_history(self, *, pessimistic: bool, interval: float, tail_mass: float, window_tail: float) -> list[DiscretePLD]:
        """The composed PLD of the whole history in each direction, recomputed with these settings."""
        out = []
        for direction in DIRECTIONS:
            total: DiscretePLD | None = None
            for event in self._events:
                mechanism = mechanism_from_dict(event.mechanism)
                if not event.steps or event.negligible_noise(mechanism):  # dropping a step only lowers the estimate
                    continue

                def law_at(h: float, event: MechanismEvent = event, mechanism: Mechanism = mechanism, direction: str = direction) -> DiscretePLD:
                    return mechanism_pld(
                        mechanism, sample_rate=event.sample_rate, direction=direction, sensitivity=event.sensitivity,
                        value_discretization_interval=h, pessimistic=pessimistic, window_tail=window_tail,
                        max_grid_points=self._step_grid_points(mechanism),
                    )

                total = compose_onto(
                    total, law_at, event.steps, interval=interval, max_grid_points=self.max_grid_points, tail_mass=tail_mass
                )
            if total is not None:
                out.append(total)
        return out

    # --- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: settings and history (the PLDs are rebuilt on load)."""
        return {
            "accountant": self.name,
            "version": _STATE_VERSION,
            "value_discretization_interval": self.value_discretization_interval,
            "tail_mass_truncation": self.tail_mass_truncation,
            "max_grid_points": self.max_grid_points,
            "history": [e.to_dict() for e in self._events],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` output by recomputing the history."""
        self._check_state(state, _STATE_VERSION)
        self.value_discretization_interval = require_positive(
            "value_discretization_interval", state["value_discretization_interval"]
        )
        self.tail_mass_truncation = require_positive("tail_mass_truncation", state["tail_mass_truncation"])
        # States written before the grid cap existed hold no entry: their PLDs were uncapped.
        self.max_grid_points = _require_grid_points(state.get("max_grid_points"))
        self._reset()
        for e in state["history"]:
            self._record(MechanismEvent(**e))


__all__ = ["DEFAULT_INTERVAL", "PLDAccountant", "PLDFallbackWarning", "mechanism_pld"]
