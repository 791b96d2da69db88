r"""One-sided scale calibration: the least noise of a given shape that meets a privacy budget.

For a mechanism Y and a factor c > 0, ``Y.scaled(c)`` is the law of cY; its ε is non-increasing
in c (more noise, more privacy). :func:`smallest_feasible_factor` brackets the boundary
c* = inf{c : ε(c) <= target} and then shrinks the bracket [c_lo, c_hi] (ε(c_lo) > target >=
ε(c_hi)) by secant steps on log ε against log c (with bisection as the safeguard) until
c_hi / c_lo <= 1 + tolerance. It returns c_hi, a factor whose ε was
*evaluated* and found <= target: the answer is one-sided whatever the accountant's numerical
behaviour, and within a factor (1 + tolerance) of c* wherever ε is monotone in c.

Where the accountant is the PLD, the bracket is shrunk with the PLD on a grid of at most 2^16
points (:func:`fast_oracle`), whose cost does not grow with ε, and the result's ε is then
computed by the default accountant (:func:`calibrate_confirmed`): that is the ε returned. Where
it is the RDP, the bracket is found on every eighth Rényi order and the default accountant
finishes the calibration from there, in a few evaluations.

:func:`calibrate_scale` and :func:`calibrate_gaussian` return the calibrated mechanism (σ);
:func:`calibrate_shape` also the factor, the ε spent and the accountant, as a :class:`Calibrated`
record (what the equal-budget comparison, :mod:`lmodp.search.equal_budget`, tabulates).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

from lmodp._validation import require_positive, require_steps
from lmodp.accounting.orders import DEFAULT_ORDERS
from lmodp.accounting.registry import AUTO, require_accountant_name, resolve_accountant
from lmodp.accounting.spec import RunSpec, run_spec
from lmodp.mechanisms import Gaussian, Mechanism
from lmodp.search.oracle import CALIBRATION_GRID_POINTS, EpsilonOracle, accountant_epsilon, orders_epsilon

#: Default relative tolerance of a calibrated scale: c_hi / c_lo <= 1 + DEFAULT_TOLERANCE.
DEFAULT_TOLERANCE = 1e-4
#: The Rényi orders that bracket an RDP calibration before the full grid refines it.
COARSE_ORDERS = DEFAULT_ORDERS[::8]

# The bracket search gives up beyond these factors (relative to the initial guess).
_MAX_LOG_RANGE = math.log(1e30)
# Largest single step of the bracket search in log c (a factor e^3 = 20).
_MAX_STEP = 3.0
_MAX_ITERATIONS = 200


def smallest_feasible_factor(
    epsilon_at: Callable[[float], float],
    target_epsilon: float,
    *,
    initial: float = 1.0,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[float, float]:
    """(c_hi, ε(c_hi)) with ε(c_hi) <= target_epsilon and, for ε non-increasing in c,
    c_hi <= (1 + tolerance)·c*.

    ``epsilon_at(c)`` is the budget spent at scale factor c (``math.inf`` is allowed and counts
    as infeasible). Raises ``ValueError`` if no factor within 1e30 of ``initial`` meets the target.
    """
    target = require_positive("target_epsilon", target_epsilon)
    tolerance = require_positive("tolerance", tolerance)
    log_target = math.log(target)
    width_goal = math.log1p(tolerance)
    spent: dict[float, float] = {}

    def g(x: float) -> float:
        e = float(epsilon_at(math.exp(x)))
        if math.isnan(e):
            raise ValueError(f"the accountant returned NaN at scale factor {math.exp(x)!r}")
        spent[x] = e
        return math.log(e) - log_target if e > 0.0 else -math.inf

    hi = _feasible_end(g, math.log(require_positive("initial", initial)), width_goal)
    return math.exp(hi), spent[hi]


def _feasible_end(g: Callable[[float], float], x0: float, width_goal: float) -> float:
    """The feasible end hi of a bracket [lo, hi] (g(lo) > 0 >= g(hi)) no wider than ``width_goal``.

    Each step is a secant step through the two latest points (slope -1 until there are two),
    overshooting by 10% while no bracket exists and, once one does, aimed 0.4·width_goal past
    the root estimate away from the end that moved last, so that both ends close in; bisection
    whenever the estimate leaves the bracket or the bracket did not halve in two steps.
    """
    lo = hi = None
    x, gx = x0, g(x0)
    previous: tuple[float, float] | None = None
    moved = 0  # the end that moved last: +1 hi, -1 lo
    widths: list[float] = []
    for _ in range(_MAX_ITERATIONS):
        if gx <= 0.0:
            hi, moved = x, 1
        else:
            lo, moved = x, -1
        if lo is not None and hi is not None:
            widths.append(hi - lo)
            if hi - lo <= width_goal:
                return hi
        elif abs(x - x0) > _MAX_LOG_RANGE:
            break
        slope = -1.0
        if previous is not None and math.isfinite(gx) and math.isfinite(previous[1]) and previous[1] != gx:
            slope = min((gx - previous[1]) / (x - previous[0]), -1e-3)
        root = x - gx / slope if math.isfinite(gx) else math.nan
        if lo is None or hi is None:
            if math.isnan(root):
                step = _MAX_STEP if gx > 0.0 else -_MAX_STEP
            else:
                step = min(max(1.1 * (root - x), -_MAX_STEP), _MAX_STEP)
                step = step if abs(step) > width_goal else math.copysign(width_goal, step)
            x_new = x + step
        else:
            width = hi - lo
            x_new = root + (0.4 if moved < 0 else -0.4) * width_goal
            slow = len(widths) >= 3 and width > 0.5 * widths[-3]
            if math.isnan(root) or slow or not lo < x_new < hi:
                x_new = 0.5 * (lo + hi)
        previous = (x, gx)
        x, gx = x_new, g(x_new)
    raise ValueError(f"no scale factor within a factor 1e30 of {math.exp(x0)!r} meets the target epsilon")


def calibrate_with_oracle(
    oracle: Callable[[Mechanism], float],
    mechanism: Mechanism,
    target_epsilon: float,
    *,
    initial: float = 1.0,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[Mechanism, float, float]:
    """(mechanism.scaled(c), its ε, c) for the smallest feasible factor c found by :func:`smallest_feasible_factor`."""
    factor, eps = smallest_feasible_factor(
        lambda c: oracle(mechanism.scaled(c)), target_epsilon, initial=initial, tolerance=tolerance
    )
    return mechanism.scaled(factor), eps, factor


def calibrate_confirmed(
    fast: Callable[[Mechanism], float],
    full: Callable[[Mechanism], float],
    mechanism: Mechanism,
    target_epsilon: float,
    *,
    initial: float = 1.0,
    tolerance: float = DEFAULT_TOLERANCE,
    refine: bool = False,
) -> tuple[Mechanism, float, float]:
    """As :func:`calibrate_with_oracle` with the oracle ``fast`` (a looser, cheaper sound bound,
    e.g. :func:`~lmodp.search.oracle.accountant_epsilon` with ``grid_points``), its result's ε then
    computed by ``full``; where that exceeds the target (``fast`` was not above ``full`` there,
    which floating-point rounding allows), or with ``refine`` (``fast`` is looser than the
    calibration tolerance), the calibration is finished with ``full`` from that factor, which
    is near the answer and takes a few evaluations. The returned ε is ``full``'s, and <= ``target_epsilon``."""
    calibrated, spent, factor = calibrate_with_oracle(fast, mechanism, target_epsilon, initial=initial, tolerance=tolerance)
    if fast is full:
        return calibrated, spent, factor
    if not refine:
        spent = full(calibrated)
        if spent <= target_epsilon:
            return calibrated, spent, factor
    return calibrate_with_oracle(full, mechanism, target_epsilon, initial=factor, tolerance=tolerance)


def calibration_run(target_epsilon: float, run: RunSpec | None, *, accountant: str, **settings: Any) -> RunSpec:
    """The checked run of a calibration to ``target_epsilon``: ``run`` and the run ``settings``
    (:func:`~lmodp.accounting.spec.run_spec`), with at least one step."""
    require_positive("target_epsilon", target_epsilon)
    require_accountant_name(accountant)
    spec = run_spec(run, **settings)
    if require_steps("steps", spec.steps) < 1:
        raise ValueError("steps must be >= 1 to calibrate a noise scale (no step spends no budget)")
    return spec


def _calibrate(
    mechanism: Mechanism, target_epsilon: float, run: RunSpec, *, accountant: str, tolerance: float
) -> tuple[Mechanism, float, float]:
    """(calibrated mechanism, its ε, the factor) under :func:`lmodp.epsilon` with ``run`` and
    ``accountant`` (bracketed with the fast PLD, confirmed by the default one: :func:`calibrate_confirmed`)."""
    full = EpsilonOracle(accountant_epsilon(run, accountant=accountant))
    fast, refine = fast_oracle(run, accountant=accountant, mechanism=mechanism)
    return calibrate_confirmed(fast or full, full, mechanism, target_epsilon, tolerance=tolerance, refine=refine)


def fast_oracle(run: RunSpec, *, accountant: str, mechanism: Mechanism) -> tuple[EpsilonOracle | None, bool]:
    """(the oracle to bracket ``mechanism``'s calibration with, whether the default accountant
    must then refine it; :func:`calibrate_confirmed`): where ``accountant`` resolves to the PLD,
    the PLD on a capped grid (:func:`~lmodp.search.oracle.accountant_epsilon` with
    :data:`~lmodp.search.oracle.CALIBRATION_GRID_POINTS`; close enough, no refinement); to the
    RDP, the RDP on every eighth of its orders (:data:`COARSE_ORDERS`, 4-5 times faster in l2,
    up to a few % looser, so refined); None (the default accountant) for another accountant."""
    used = resolve_accountant(accountant, mechanism, run.geometry)
    if used == "pld":
        return EpsilonOracle(accountant_epsilon(run, accountant=accountant, grid_points=CALIBRATION_GRID_POINTS)), False
    if used == "rdp":
        return EpsilonOracle(orders_epsilon(list(COARSE_ORDERS), run)), True
    return None, False


def calibrate_scale(
    mechanism: Mechanism,
    target_epsilon: float,
    run: RunSpec | None = None,
    *,
    delta: float | None = None,
    sample_rate: float | None = None,
    steps: int | None = None,
    geometry: str | None = None,
    sensitivity: float | None = None,
    accountant: str = AUTO,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Mechanism:
    """``mechanism.scaled(c)`` for the smallest factor c (to relative ``tolerance``) whose ε <= target.

    The run: ``run`` (a :class:`~lmodp.accounting.spec.RunSpec`) and/or its settings as keywords.
    One-sided: the returned mechanism's ε under :func:`lmodp.epsilon` with these settings was
    evaluated and is <= ``target_epsilon``; no factor below c / (1 + tolerance) meets the target
    (where ε is monotone in the scale) by the bound that brackets it, which for the PLD is the
    PLD on a grid of at most 2^16 points (:func:`calibrate_confirmed`; its ε lies above the
    default's by about 1e-5 relative at most, so c may exceed the least factor by as much more).
    ``accountant="auto"`` (the default) is the tightest sound accountant (:func:`lmodp.accounting.registry.tightest_accountant`: PLD in the scalar geometry
    and for Gaussian noise, RDP otherwise).
    """
    spec = calibration_run(
        target_epsilon, run, accountant=accountant,
        delta=delta, sample_rate=sample_rate, steps=steps, geometry=geometry, sensitivity=sensitivity,
    )
    return _calibrate(mechanism, target_epsilon, spec, accountant=accountant, tolerance=tolerance)[0]


def calibrate_gaussian(
    target_epsilon: float,
    run: RunSpec | None = None,
    *,
    delta: float | None = None,
    sample_rate: float | None = None,
    steps: int | None = None,
    geometry: str | None = None,
    sensitivity: float | None = None,
    accountant: str = AUTO,
    tolerance: float = DEFAULT_TOLERANCE,
) -> float:
    """The noise multiplier σ of the Gaussian mechanism calibrated to (target_epsilon, δ).

    σ is the standard deviation of the noise for a query of the given ``sensitivity`` (with
    ``sensitivity=1`` it is the usual noise multiplier). One-sided: ε(σ) <= target_epsilon was
    evaluated with the sound accountant, and σ <= (1 + tolerance)·σ* where σ* is the least σ
    meeting the target. The default accountant ``"auto"`` is the PLD, exact for the Gaussian in
    both geometries. The run as in :func:`calibrate_scale`.
    """
    spec = calibration_run(
        target_epsilon, run, accountant=accountant,
        delta=delta, sample_rate=sample_rate, steps=steps, geometry=geometry, sensitivity=sensitivity,
    )
    return _calibrate(Gaussian(1.0), target_epsilon, spec, accountant=accountant, tolerance=tolerance)[0].sigma


@dataclass(frozen=True)
class Calibrated:
    """One shape scaled to one budget: ``factor`` × shape spends ``epsilon`` <= ``target_epsilon``
    in ``geometry`` under ``accountant`` (the accountant that made the number, ``"auto"`` resolved);
    ``mechanism`` is the calibrated mechanism's ``to_dict()``."""

    label: str
    geometry: str
    target_epsilon: float
    factor: float
    epsilon: float
    mean_abs: float
    std: float
    mechanism: dict
    accountant: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate_shape(
    shape: Mechanism,
    target_epsilon: float,
    run: RunSpec | None = None,
    *,
    sample_rate: float | None = None,
    steps: int | None = None,
    delta: float | None = None,
    geometry: str | None = None,
    sensitivity: float | None = None,
    accountant: str = AUTO,
    tolerance: float = 1e-3,
    label: str = "",
) -> Calibrated:
    """The least multiple c·Y of ``shape`` whose sound ε (recomputed at c) is <= ``target_epsilon``,
    within a factor 1 + ``tolerance``, as a :class:`Calibrated` record (labelled ``label``, by
    default the shape's repr). The run as in :func:`calibrate_scale`; ``accountant="auto"``: the
    tightest sound accountant for the shape and geometry."""
    spec = calibration_run(
        target_epsilon, run, accountant=accountant,
        delta=delta, sample_rate=sample_rate, steps=steps, geometry=geometry, sensitivity=sensitivity,
    )
    used = resolve_accountant(accountant, shape, spec.geometry)
    m, spent, factor = _calibrate(shape, target_epsilon, spec, accountant=used, tolerance=tolerance)
    return Calibrated(
        label=label or repr(shape),
        geometry=spec.geometry,
        target_epsilon=target_epsilon,
        factor=factor,
        epsilon=spent,
        mean_abs=m.mean_abs(),
        std=m.std(),
        mechanism=m.to_dict(),
        accountant=used,
    )
