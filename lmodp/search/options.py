"""How :func:`lmodp.search.search` searches: one frozen :class:`SearchOptions` value.

The budget (the run and the target ε) is passed apart from these settings; each setting is
checked when the options are made (``ValueError`` naming the bad one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lmodp._options import Settings
from lmodp._validation import require_positive, require_steps
from lmodp.accounting.registry import AUTO, PLD_FIX, require_accountant_fits, require_accountant_name
from lmodp.mechanisms import GeneralizedGaussian, Laplace, Mechanism, require_registered
from lmodp.search.calibrate import DEFAULT_TOLERANCE
from lmodp.search.objectives import ObjectiveSpec

FAMILIES = ("lmo", "laplace", "gaussian", "generalized_gaussian")
METHODS = ("optimize", "paper-grid")
#: A member of each searched family, to check up front that the accountant can account it
#: (Laplace for a family not listed).
_REPRESENTATIVES: dict[str, Mechanism] = {"generalized_gaussian": GeneralizedGaussian(1.0, 1.5)}


@dataclass(frozen=True)
class SearchOptions(Settings):
    """The settings of a search (see :func:`lmodp.search.search` for what each does).

    * ``objective`` (``"mean_abs"``, ``"variance"``, ``"usefulness"`` with ``gamma``, or a
      callable), ``family`` (a name in :data:`FAMILIES`, or a mechanism of a registered family
      whose scale alone is calibrated), ``accountant`` (default ``"auto"``);
    * ``method`` (:data:`METHODS`): ``"optimize"`` with ``maxiter`` generations of ``popsize`` × 4
      shapes and ``polish_evaluations`` polish steps, its draws seeded by ``search_seed`` (``seed``
      is its deprecated name); or ``"paper-grid"``,
      optionally a seeded subset of ``grid_limit`` points;
    * ``tolerance``: relative tolerance of the reported calibration; ``search_tolerance``: of the
      calibrations inside the optimisation; ``fast_orders``: a window of Rényi orders inside the
      loop; ``progress``: a tqdm bar on stderr.
    """

    objective: ObjectiveSpec = "mean_abs"
    family: str | Mechanism = "lmo"
    accountant: str = AUTO
    search_seed: int = 0
    method: Literal["optimize", "paper-grid"] = "optimize"
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
        elif self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES} or a registered mechanism, got {self.family!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.method == "paper-grid" and self.family_name != "lmo":
            raise ValueError(f"method='paper-grid' searches the LMO family; family must be 'lmo', got {self.family_name!r}")
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

    def require_accountant_fits(self, geometry: str, *, fix: str = PLD_FIX) -> None:
        """ValueError, before any accounting, if ``accountant`` cannot account the searched family
        in ``geometry`` (:func:`lmodp.accounting.registry.require_accountant_fits`, judged on a
        member of the family); the message ends with ``fix``."""
        family = self.family_name
        if family == "gaussian":
            return
        member = self.family if isinstance(self.family, Mechanism) else _REPRESENTATIVES.get(family, Laplace(1.0))
        require_accountant_fits(self.accountant, {f"the {family} family": member}, [geometry], fix=fix)
