"""How :func:`lmodp.search.search` searches: one frozen :class:`SearchOptions` value.

The budget (the run and the target ε) is passed apart from these settings; each setting is
checked when the options are made (``ValueError`` naming the bad one).
"""

from __future__ import annotations

from dataclasses import dataclass

from lmodp._options import Settings
from lmodp._validation import require_positive, require_steps
from lmodp.accounting.registry import AUTO, PLD_FIX, require_accountant_fits, require_accountant_name
from lmodp.mechanisms import Mechanism, SearchSpace, family_class, family_of, registered_families, require_registered
from lmodp.search.calibrate import DEFAULT_TOLERANCE
from lmodp.search.objectives import ObjectiveSpec
from lmodp.search.strategies import Strategy, resolve_strategy, search_method, search_methods

#: lmodp's own searchable families (any registered family whose registration gives a
#: :class:`~lmodp.mechanisms.SearchSpace` is searchable by name: :func:`searchable_families`).
FAMILIES = ("lmo", "laplace", "gaussian", "generalized_gaussian")


def searchable_families() -> tuple[str, ...]:
    """Every family name ``SearchOptions(family=...)`` accepts: the registered families that
    declare a search space, lmodp's own first."""
    declared = [f for f in registered_families() if family_of(family_class(f)).search is not None]
    return (*FAMILIES, *(f for f in declared if f not in FAMILIES))


def __getattr__(name: str) -> object:
    if name == "METHODS":  # every method name, "optimize" and the registered ones (the registry can grow)
        return search_methods()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class SearchOptions(Settings):
    """The settings of a search (see :func:`lmodp.search.search` for what each does).

    * ``objective`` (``"mean_abs"``, ``"variance"``, ``"usefulness"`` with ``gamma``, or a
      callable), ``family`` (a name in :data:`FAMILIES`, or a mechanism of a registered family
      whose scale alone is calibrated), ``accountant`` (default ``"auto"``);
    * ``method`` (:func:`~lmodp.search.strategies.search_methods`): ``"optimize"``, the family's
      own strategy, for LMO with ``maxiter`` generations of ``popsize`` × 4 shapes and
      ``polish_evaluations`` polish steps, its draws seeded by ``search_seed`` (``seed`` is its
      deprecated name); or a registered method, such as ``"paper-grid"`` (:mod:`lmodp.paper.grid`),
      optionally a seeded subset of ``grid_limit`` points;
    * ``tolerance``: relative tolerance of the reported calibration; ``search_tolerance``: of the
      calibrations inside the optimisation; ``fast_orders``: a window of Rényi orders inside the
      loop; ``progress``: a tqdm bar on stderr.
    """

    objective: ObjectiveSpec = "mean_abs"
    family: str | Mechanism = "lmo"
    accountant: str = AUTO
    search_seed: int = 0
    method: str = "optimize"
    gamma: float = 0.9
    maxiter: int = 4
    popsize: int = 3
    polish_evaluations: int = 30
    grid_limit: int | None = None
    tolerance: float = DEFAULT_TOLERANCE
    search_tolerance: float = 2e-3
    fast_orders: bool = True
    progress: bool = False
    seed: int | None = None

    RENAMED = {"seed": "search_seed"}

    def __post_init__(self) -> None:
        self._take_renamed()
        if isinstance(self.family, Mechanism):
            require_registered(self.family)
        elif self.family not in searchable_families():
            raise ValueError(f"family must be one of {searchable_families()} or a registered mechanism, got {self.family!r}")
        registered = search_method(self.method)
        if registered is not None and self.family_name != registered.family:
            raise ValueError(
                f"method={self.method!r} searches the {registered.family} family; family must be "
                f"{registered.family!r}, got {self.family_name!r}"
            )
        require_accountant_name(self.accountant)
        require_steps("maxiter", self.maxiter)
        require_steps("polish_evaluations", self.polish_evaluations)
        if require_steps("popsize", self.popsize) < 1:
            raise ValueError(f"popsize must be >= 1, got {self.popsize!r}")
        require_positive("tolerance", self.tolerance)
        require_positive("search_tolerance", self.search_tolerance)

    @property
    def family_name(self) -> str:
        """The searched family's name (a mechanism's ``family`` where ``family`` is a mechanism)."""
        return self.family.family if isinstance(self.family, Mechanism) else self.family

    def search_space(self) -> SearchSpace:
        """The searched family's :class:`~lmodp.mechanisms.SearchSpace` (from its registration)."""
        return family_of(family_class(self.family_name)).search  # type: ignore[return-value]  # checked on creation

    def strategy(self) -> Strategy | None:
        """How the family is searched: the registered method's strategy, or (``"optimize"``) the
        family's own; None where only the representative's scale is calibrated (or ``family`` is
        a mechanism)."""
        if isinstance(self.family, Mechanism):
            return None
        registered = search_method(self.method)
        return resolve_strategy(registered.strategy if registered is not None else self.search_space().strategy)

    def require_accountant_fits(self, geometry: str, *, fix: str = PLD_FIX) -> None:
        """ValueError, before any accounting, if ``accountant`` cannot account the searched family
        in ``geometry`` (:func:`lmodp.accounting.registry.require_accountant_fits`, judged on a
        member of the family: its representative); the message ends with ``fix``."""
        member = self.family if isinstance(self.family, Mechanism) else self.search_space().representative
        require_accountant_fits(self.accountant, {f"the {self.family_name} family": member}, [geometry], fix=fix)
