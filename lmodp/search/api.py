"""``lmodp.search.search``: the least noise of a family that meets a privacy budget, soundly.

Every ε this module reports comes from :func:`lmodp.epsilon` (the sound accountant; by default
``"auto"``, the tightest sound one for each mechanism) evaluated on the exact returned mechanism,
uncached, and is <= the target. Inside the optimisation, where the accountant is the RDP, it
may run on a short window of Rényi orders around the Laplace baseline's optimal
order (``fast_orders``): the RDP-to-(ε, δ) conversion minimises over the orders it is given, so
fewer orders give a larger (up to floating-point rounding), still valid ε. (In the l2 geometry
the per-order bound interpolates between anchor orders, so its values shift slightly, about
1e-3 relative, with the set of orders asked for; each is an upper bound.) The winner is always
re-calibrated (``optimize``) or re-checked (``paper-grid``) on the full grid of orders, and
only full-grid numbers are reported. Where the accountant is the PLD, shapes are judged and every
calibration is bracketed by the PLD on a grid of at most 2^14, resp. 2^16 points with the
truncation 10⁻³·δ (:func:`~lmodp.search.oracle.accountant_epsilon` with ``grid_points``): an
evaluation then costs about the same at any ε, and that bound is sound and above the default
PLD's; the ε reported for each calibrated mechanism is the default PLD's
(:func:`~lmodp.search.calibrate.calibrate_confirmed`).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

from lmodp._progress import progress_bar
from lmodp.accounting.registry import AUTO, resolve_accountant
from lmodp.accounting.spec import RunSpec
from lmodp.mechanisms import Gaussian, GeneralizedGaussian, Laplace, Mechanism
from lmodp.paper.grid import GRID_SIZE, paper_grid
from lmodp.search.calibrate import calibrate_confirmed, calibration_run, fast_oracle
from lmodp.search.objectives import Objective, resolve_objective
from lmodp.search.optimize import ShapeProblem, optimize_shape
from lmodp.search.options import SearchOptions
from lmodp.search.power import PowerProblem, optimize_power
from lmodp.search.oracle import SHAPE_GRID_POINTS, EpsilonOracle, accountant_epsilon, order_window, orders_epsilon
from lmodp.search.result import SearchResult

logger = logging.getLogger(__name__)

#: Calibrates a mechanism's scale to the budget (its second argument names it in the log).
Settle = Callable[[Mechanism, str], Mechanism]



def search(
    target_epsilon: float,
    run: RunSpec | None = None,
    *,
    options: SearchOptions | None = None,
    delta: float | None = None,
    sample_rate: float | None = None,
    steps: int | None = None,
    geometry: str | None = None,
    sensitivity: float | None = None,
    **settings: Any,
) -> SearchResult:
    """Find the member of ``family`` with the best ``objective`` whose ε is <= ``target_epsilon``.

    Budget: the run ``run`` (a :class:`~lmodp.accounting.spec.RunSpec`) and/or its settings as
    keywords: ``steps`` Poisson-subsampled releases (rate ``sample_rate``) of a query with the
    given ``sensitivity`` (default 1) and ``geometry`` (default ``"l2"``), accounted by
    ``accountant`` at failure probability ``delta``. How to search: ``options``
    (:class:`~lmodp.search.options.SearchOptions`) and/or its settings as keywords (a keyword
    replaces that setting of ``options``):

    ``accountant``: ``"auto"``, the default, is the tightest sound accountant for each mechanism
    (PLD in the scalar geometry and for the Gaussian, RDP for non-Gaussian noise in l2).
    ``family``: a name in :data:`~lmodp.search.options.FAMILIES`, or a mechanism of any
    registered family (e.g. a :class:`~lmodp.mechanisms.SymmetricDensity` or a
    :class:`~lmodp.mechanisms.LaplaceMixture`), whose shape is kept and whose scale is
    calibrated. Objectives: ``"mean_abs"`` (E|Y|), ``"variance"`` (Var Y; infinite-variance candidates are
    rejected), ``"usefulness"`` (maximise P(|Y| <= gamma)), or a callable (mechanism -> value to
    minimise, non-decreasing in the noise scale).

    ``method="optimize"`` (family "lmo") runs differential evolution (``maxiter`` generations of
    ``popsize`` × 4 shapes, seeded by ``seed``) and a Nelder–Mead polish (``polish_evaluations``
    shapes) over the shape box of :mod:`lmodp.search.families`, calibrating each shape's scale to
    relative ``search_tolerance``; the winner is re-calibrated to ``tolerance`` and compared with
    the calibrated plain Laplace mechanism (a member of the family): it is returned only if it
    beats every Laplace the calibration tolerance allows (:func:`beats_laplace`), otherwise the
    ``Laplace`` instance is (``SearchResult.laplace_is_best``), so calibration noise never
    decides a tie and a Laplace-shaped LMO is never reported as an LMO.
    ``method="paper-grid"`` scans the authors' grid (:mod:`lmodp.paper.grid`; a seeded random
    ``grid_limit`` points of it, or all 40,824) and keeps the best point whose sound ε meets the
    target (with ``"auto"`` the points are screened by the RDP bound and the winner's ε is the
    PLD's, see :func:`_loop_uses_rdp`). Families "laplace" and "gaussian" only calibrate the
    scale. ``family="generalized_gaussian"`` searches the power p in [1, 2] of density
    ∝ exp(−|y/s|^p), each p with its scale calibrated (:mod:`lmodp.search.power`); its winner is
    returned only if it beats both ends of the family, plain Laplace (p = 1) and the Gaussian
    (p = 2), by more than the calibration tolerance, otherwise the better of those two is (the
    best generalized Gaussian found is then in ``settings["best_generalized_gaussian"]``).
    ``progress=True`` shows a tqdm bar on stderr when stderr is a terminal, and a line at most
    every 10 s where it is not (:mod:`lmodp._progress`); each stage is logged at INFO level.
    """
    started = time.perf_counter()
    opts = SearchOptions.merged(options, **settings)
    spec = calibration_run(
        target_epsilon, run, accountant=opts.accountant,
        delta=delta, sample_rate=sample_rate, steps=steps, geometry=geometry, sensitivity=sensitivity,
    )
    shape = opts.family if isinstance(opts.family, Mechanism) else None
    family = opts.family_name
    opts.require_accountant_fits(spec.geometry)
    obj = resolve_objective(opts.objective, gamma=opts.gamma)
    full = EpsilonOracle(accountant_epsilon(spec, accountant=opts.accountant))
    shapes = EpsilonOracle(accountant_epsilon(spec, accountant=opts.accountant, grid_points=SHAPE_GRID_POINTS))
    reported: dict[Mechanism, float] = {}  # ε computed uncached by ``full`` for a calibrated mechanism
    brackets: list[EpsilonOracle] = []

    def settle(mechanism: Mechanism, what: str) -> Mechanism:
        """``mechanism`` calibrated: bracketed by the cheaper bound of :func:`fast_oracle` and
        finished or confirmed (uncached) by ``full`` (:func:`calibrate_confirmed`)."""
        started_at = time.perf_counter()
        quick, refine = fast_oracle(spec, accountant=opts.accountant, mechanism=mechanism)
        brackets.extend([quick] if quick is not None else [])
        calibrated, spent, _ = calibrate_confirmed(
            quick or full, full.fresh, mechanism, target_epsilon, tolerance=opts.tolerance, refine=refine
        )
        reported[calibrated] = spent
        logger.info("%s calibrated in %.1f s: %s, epsilon %.6g", what, time.perf_counter() - started_at, calibrated, spent)
        return calibrated

    baseline = settle(Gaussian(1.0), "Gaussian baseline")
    laplace = None
    search_orders: list[float] | None = None
    inner_evaluations = 0
    extra: dict[str, Any] = {}
    if shape is not None:
        winner = settle(shape, f"the {family} shape")
    elif family == "gaussian":
        winner = baseline
    else:
        # From the same start as calibrate_scale(Laplace(1.0), ...), so that both give the very same Laplace.
        laplace = settle(Laplace(1.0), "plain Laplace")
        winner = laplace
    if shape is None and family in ("lmo", "generalized_gaussian"):
        inner = shapes
        if opts.fast_orders and _loop_uses_rdp(opts.accountant, opts.method, laplace, spec.geometry):
            search_orders = order_window(laplace, spec)
            inner = EpsilonOracle(orders_epsilon(search_orders, spec))
        if family == "generalized_gaussian":
            winner, best_power = _optimize_power(inner, settle, obj, target_epsilon, laplace, baseline, opts)
            extra["best_generalized_gaussian"] = best_power.to_dict()
        elif opts.method == "optimize":
            winner = _optimize(inner, settle, obj, target_epsilon, laplace, opts)
        else:
            winner = _scan_grid(inner, full, obj, target_epsilon, opts)
        inner_evaluations = inner.evaluations

    achieved = reported[winner] if winner in reported else full.fresh(winner)
    if achieved > target_epsilon:
        raise RuntimeError(f"internal error: the winner's recomputed ε {achieved} exceeds the target {target_epsilon}")
    accounting = dict(
        delta=spec.delta, sample_rate=spec.sample_rate, steps=spec.steps, geometry=spec.geometry,
        sensitivity=spec.sensitivity, accountant=opts.accountant,
    )
    result_settings: dict[str, Any] = dict(
        target_epsilon=target_epsilon, **accounting, objective=obj.name, gamma=opts.gamma, family=family,
        method=opts.method, seed=opts.search_seed, maxiter=opts.maxiter, popsize=opts.popsize,
        polish_evaluations=opts.polish_evaluations, grid_limit=opts.grid_limit, tolerance=opts.tolerance,
        search_tolerance=opts.search_tolerance, search_orders=search_orders,
        accountants={
            name: resolve_accountant(opts.accountant, m, spec.geometry)
            for name, m in (("mechanism", winner), ("baseline", baseline), ("laplace", laplace)) if m is not None
        },
        **extra,
    )
    return SearchResult(
        mechanism=winner,
        epsilon=achieved,
        objective=obj.name,
        sense=obj.sense,
        objective_value=obj.value(winner),
        baseline=baseline,
        baseline_epsilon=reported[baseline] if baseline in reported else full.fresh(baseline),
        baseline_objective_value=obj.value(baseline),
        noise_ratio=winner.mean_abs() / baseline.mean_abs(),
        evaluations=full.evaluations + sum(b.evaluations for b in brackets) + inner_evaluations,
        wall_time_s=time.perf_counter() - started,
        settings=result_settings,
        laplace=laplace,
        laplace_objective_value=None if laplace is None else obj.value(laplace),
    )


def _loop_uses_rdp(accountant: str, method: str, laplace: Laplace, geometry: str) -> bool:
    """Whether the windowed RDP accountant judges candidates inside the loop (``fast_orders``).

    Where the reported accountant is the RDP, always. Where ``"auto"`` resolves to the PLD, for
    the paper grid only: its 40,824 points have fixed scales, many with a large ε at which the
    PLD's loss grid is wide and slow (about 0.4 s a point), so they are screened by the RDP
    bound and the survivors confirmed by the PLD; a point that only the PLD would accept is not
    considered. The optimiser calibrates every shape to the target, where the PLD is fast.
    """
    loop = resolve_accountant(accountant, laplace, geometry)
    return loop == "rdp" or (accountant == AUTO and method == "paper-grid")


def _optimize(
    inner: EpsilonOracle, settle: Settle, obj: Objective, target_epsilon: float, laplace: Laplace, opts: SearchOptions
) -> Mechanism:
    problem = ShapeProblem(inner, obj, target_epsilon, initial_factor=laplace.scale, tolerance=opts.search_tolerance)
    with progress_bar(total=opts.maxiter + 1, desc="LMO search", unit="gen", enabled=opts.progress) as bar:

        generations = iter(range(1, opts.maxiter + 1))

        def generation() -> None:
            bar.update()
            best = "none yet" if problem.best is None else f"{problem.best.loss:.6g}"
            bar.set_postfix_str(f"{problem.shapes_evaluated} shapes, best {obj.name} {best}", refresh=False)
            logger.info("LMO search: generation %d of %d done, %d shapes calibrated, best %s %s",
                        next(generations), opts.maxiter, problem.shapes_evaluated, obj.name, best)

        found = optimize_shape(
            problem, seed=opts.search_seed, maxiter=opts.maxiter, popsize=opts.popsize,
            polish_evaluations=opts.polish_evaluations, on_generation=generation,
        )
        bar.update()
    best = settle(found.mechanism, "best LMO shape")
    logger.info("LMO search: %d shapes, best %s", problem.shapes_evaluated, best)
    return best if beats_laplace(best, laplace, obj, opts.tolerance) else laplace


def _optimize_power(
    inner: EpsilonOracle,
    settle: Settle,
    obj: Objective,
    target_epsilon: float,
    laplace: Laplace,
    gaussian: Gaussian,
    opts: SearchOptions,
) -> tuple[Mechanism, GeneralizedGaussian]:
    """(winner, best generalized Gaussian): the best power (:mod:`lmodp.search.power`),
    re-calibrated by ``settle``, is the winner only if it beats both Laplace and the Gaussian
    (:func:`beats_laplace` against each); otherwise the better of those two is."""
    problem = PowerProblem(inner, obj, target_epsilon, initial_factor=laplace.mean_abs(), tolerance=opts.search_tolerance)
    with progress_bar(total=1, desc="power search", unit="search", enabled=opts.progress) as bar:
        found = optimize_power(problem)
        bar.update()
    best = settle(found.mechanism, "best generalized Gaussian")
    logger.info("generalized Gaussian search: %d powers, best %s", problem.shapes_evaluated, best)
    ends = sorted((laplace, gaussian), key=obj.loss)
    if all(beats_laplace(best, end, obj, opts.tolerance) for end in ends):
        return best, best
    return ends[0], best


def beats_laplace(candidate: Mechanism, laplace: Mechanism, obj: Objective, tolerance: float) -> bool:
    """Whether ``candidate`` is better than every Laplace mechanism meeting the budget (or every
    member of another one-scale family, e.g. the Gaussian, passed as ``laplace``).

    ``laplace`` was calibrated to relative ``tolerance``: its scale b satisfies b* <= b <= (1 +
    tolerance)·b*, b* the least feasible Laplace scale. The candidate wins only if its loss is
    below that of Laplace(b / (1 + tolerance)), the best a Laplace could be; an objective
    monotone in the scale makes this a strict test, and a candidate that is itself a Laplace
    (ω a point mass) at a feasible scale can never pass it.
    """
    return obj.loss(candidate) < obj.loss(laplace.scaled(1.0 / (1.0 + tolerance)))


def _scan_grid(inner: EpsilonOracle, full: EpsilonOracle, obj: Objective, target_epsilon: float, opts: SearchOptions) -> Mechanism:
    """The grid point with the least loss among those meeting the target (by ``inner``), confirmed by ``full``."""
    feasible: list[tuple[float, int, Mechanism]] = []
    total = GRID_SIZE if opts.grid_limit is None else min(opts.grid_limit, GRID_SIZE)
    points = paper_grid(opts.grid_limit, opts.search_seed)
    for i, mechanism in enumerate(progress_bar(points, total=total, desc="paper grid", enabled=opts.progress)):
        if inner(mechanism) <= target_epsilon:
            loss = obj.loss(mechanism)
            if math.isfinite(loss):
                feasible.append((loss, i, mechanism))
    # The windowed ε and the full-grid ε agree up to floating-point summation order: confirm.
    for _, _, mechanism in sorted(feasible, key=lambda t: t[:2]):
        if full(mechanism) <= target_epsilon:
            return mechanism
    raise ValueError(f"no point of the paper's grid ({total} points scanned) meets target_epsilon={target_epsilon}")
