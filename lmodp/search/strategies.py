"""How :func:`lmodp.search.search` searches a family's shape: the problem a strategy solves, and
the search methods beyond a family's own.

A family whose registration gives its :class:`~lmodp.mechanisms.SearchSpace` a ``strategy``
(LMO: :func:`lmodp.search.optimize.search_lmo`; the generalized Gaussian:
:func:`lmodp.search.power.search_power`) is searched by it with ``method="optimize"``; a family
without one has its representative's scale calibrated. Other methods are registered by the
package that provides them (:func:`register_search_method`; :mod:`lmodp.paper.grid` adds
``"paper-grid"``, the LMO-DP authors' grid), so that the search knows no paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from lmodp._lazy import resolve
from lmodp.mechanisms import Gaussian, Laplace, Mechanism
from lmodp.mechanisms.family import Hook
from lmodp.search.objectives import Objective
from lmodp.search.oracle import EpsilonOracle

if TYPE_CHECKING:
    from lmodp.search.options import SearchOptions

#: The method every search has: the family's own strategy (or the calibration of its scale).
OWN_METHOD = "optimize"


@dataclass
class SearchProblem:
    """What a strategy gets, for one search.

    ``inner`` judges candidate shapes (an RDP bound on a window of orders where the loop uses
    the RDP, else a cheaper sound bound); ``full`` is the reported accountant's ε;
    ``settle(mechanism, what)`` is ``mechanism``'s scale calibrated to the budget, confirmed by
    ``full`` (``what`` names it in the log); ``laplace`` and ``baseline`` are
    plain Laplace and the Gaussian so calibrated (the references a shape must beat).
    ``settings`` collects what the strategy reports besides its winner (in the result's
    ``settings``)."""

    inner: EpsilonOracle
    full: EpsilonOracle
    settle: Callable[[Mechanism, str], Mechanism]
    objective: Objective
    target_epsilon: float
    laplace: Laplace
    baseline: Gaussian
    options: "SearchOptions"
    settings: dict[str, Any] = field(default_factory=dict)


#: A strategy: the winner of a :class:`SearchProblem`, a mechanism whose ε meets the target.
Strategy = Callable[[SearchProblem], Mechanism]


@dataclass(frozen=True)
class SearchMethod:
    """A search method other than the family's own: it searches ``family`` by ``strategy`` (a
    hook). ``screens_by_rdp``: with ``accountant="auto"`` resolving to the PLD, candidates are
    screened by the (faster) RDP bound and the winner confirmed by the PLD."""

    family: str
    strategy: Hook
    screens_by_rdp: bool = False


_METHODS: dict[str, SearchMethod] = {}


def register_search_method(name: str, *, family: str, strategy: Hook, screens_by_rdp: bool = False) -> None:
    """Add the search method ``name`` for ``family`` (``SearchOptions(method=name)``)."""
    if not isinstance(name, str) or not name or name == OWN_METHOD:
        raise ValueError(f"a search method needs a name other than {OWN_METHOD!r}, got {name!r}")
    _METHODS[name] = SearchMethod(family, strategy, screens_by_rdp)


def search_methods() -> tuple[str, ...]:
    """Every method name ``SearchOptions(method=...)`` accepts: ``"optimize"`` and the registered ones."""
    return (OWN_METHOD, *_METHODS)


def search_method(name: str) -> SearchMethod | None:
    """The registered method ``name`` (None for ``"optimize"``); ``ValueError`` for an unknown one."""
    if name == OWN_METHOD:
        return None
    if name not in _METHODS:
        raise ValueError(
            f"method must be one of {search_methods()}, got {name!r} (other methods are added by "
            "lmodp.search.strategies.register_search_method; lmodp.paper adds 'paper-grid')"
        )
    return _METHODS[name]


def resolve_strategy(reference: Hook | None) -> Strategy | None:
    """The strategy a hook names (None stays None)."""
    return None if reference is None else resolve(reference)


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
