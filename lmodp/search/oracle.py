"""A counted, cached privacy-budget oracle: mechanism -> ε under fixed accounting settings.

The cache is keyed by the mechanism's parameters rounded to 12 significant digits. Two
mechanisms sharing a key differ by less than 1e-12 relatively in every parameter, far below
the accountants' own stated error; and every ε a search *reports* is recomputed uncached
(:meth:`EpsilonOracle.fresh`), so the cache never decides a reported number.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np

from lmodp.accounting.api import account, epsilon, epsilon_and_order
from lmodp.accounting.conversion import OrderGridEdgeWarning
from lmodp.accounting.events import NoFiniteBoundWarning
from lmodp.accounting.orders import DEFAULT_ORDERS
from lmodp.accounting.pld.accountant import PLDAccountant, PLDFallbackWarning
from lmodp.accounting.pld.compose import DEFAULT_TAIL_MASS
from lmodp.accounting.rdp.accountant import RDPAccountant
from lmodp.accounting.registry import resolve_accountant
from lmodp.accounting.spec import RunSpec
from lmodp.mechanisms import Mechanism

EpsilonFunction = Callable[[Mechanism], float]

_KEY_DIGITS = 12
#: Grid cap of the PLD that brackets a calibration (:func:`accountant_epsilon`); the
#: accountant's default, 2^20, makes the reported numbers.
CALIBRATION_GRID_POINTS = 2**16
#: Grid cap of the PLD that ranks the shapes inside a search (coarser: it only ranks them).
SHAPE_GRID_POINTS = 2**14
#: Number of Rényi orders in the window the optimisation's accountant uses (``fast_orders``).
FAST_ORDER_COUNT = 12
#: Relative slack of the dimension-free l2 sup inside the optimisation (the reported ε uses
#: the accountant's default, 5e-3).
SEARCH_L2_TOLERANCE = 2e-2


def _rounded(value: Any) -> Any:
    """A float to 12 significant digits; a list (e.g. a mixture's atoms) as a tuple of such."""
    if isinstance(value, float):
        return float(f"{value:.{_KEY_DIGITS}g}")
    if isinstance(value, (list, tuple)):
        return tuple(_rounded(v) for v in value)
    return value


def mechanism_key(mechanism: Mechanism) -> tuple:
    """A hashable key of the mechanism's parameters rounded to 12 significant digits."""
    return tuple((k, _rounded(v)) for k, v in sorted(mechanism.to_dict().items()))


def accountant_epsilon(run: RunSpec, *, accountant: str, grid_points: int | None = None) -> EpsilonFunction:
    """The ε of a mechanism for ``run`` under ``accountant``, by :func:`lmodp.epsilon` (a sound upper bound).

    ``grid_points``: where ``accountant`` is (or resolves to) the PLD, its grid holds at most
    that many points (a sixteenth of that per step of non-Gaussian noise; :class:`~lmodp.accounting.pld.accountant.PLDAccountant`'s
    ``max_grid_points``), so that an evaluation costs about the same at any ε, and its truncation
    mass is 10⁻³·δ (rounded down to a power of ten), what the PLD accepts at +∞ before it
    recomposes for δ. The bound is as sound, and above the default accountant's up to
    floating-point rounding (its interval is a power-of-two multiple of the default one, and a
    pessimistic PLD on a coarser nested grid dominates); with :data:`CALIBRATION_GRID_POINTS`
    the excess is 1e-6 to 2e-5 relative at ε = 2-6 (Gaussian, Laplace, LMO, SST-2 and q = 0.01,
    T = 100). Its warnings (a PLD that falls back to the RDP bound, an optimal order at the edge
    of the grid, a step without a finite bound) are silenced: they concern the candidates a
    search tries, and the ε it reports is computed without ``grid_points``."""
    truncation = max(DEFAULT_TAIL_MASS, 10.0 ** math.floor(math.log10(1e-3 * run.delta)))

    def eps(mechanism: Mechanism) -> float:
        if grid_points is None:
            return float(epsilon(mechanism, run, accountant=accountant))
        used: str | PLDAccountant = accountant
        if resolve_accountant(accountant, mechanism, run.geometry) == "pld":
            used = PLDAccountant(tail_mass_truncation=truncation, max_grid_points=grid_points)
        with warnings.catch_warnings():  # about candidates the search tries, not about what it reports
            for category in (PLDFallbackWarning, OrderGridEdgeWarning, NoFiniteBoundWarning):
                warnings.simplefilter("ignore", category)
            return float(epsilon(mechanism, run, accountant=used))

    return eps


class EpsilonOracle:
    """Wraps an ε function with a cache and counts the evaluations that reached it."""

    def __init__(self, epsilon_function: EpsilonFunction) -> None:
        self._eps = epsilon_function
        self._cache: dict[tuple, float] = {}
        self.evaluations = 0
        self.cache_hits = 0

    def __call__(self, mechanism: Mechanism) -> float:
        key = mechanism_key(mechanism)
        if key in self._cache:
            self.cache_hits += 1
            return self._cache[key]
        value = self.fresh(mechanism)
        self._cache[key] = value
        return value

    def fresh(self, mechanism: Mechanism) -> float:
        """ε computed now, bypassing the cache (counted as an evaluation)."""
        self.evaluations += 1
        return float(self._eps(mechanism))


def order_window(mechanism: Mechanism, run: RunSpec, count: int = FAST_ORDER_COUNT) -> list[float]:
    """About ``count`` orders of DEFAULT_ORDERS, log-spaced in α − 1 over [α*/2.5, 2.5·α*], where α*
    is the optimal order of ``mechanism`` for ``run`` under the RDP accountant (every order has a
    bound in both geometries)."""
    _, best = epsilon_and_order(mechanism, run, accountant="rdp")
    pool = DEFAULT_ORDERS
    best = min(best, float(pool[-1]))  # ∞: the pure-DP composition bound, the limit of the largest orders
    window = pool[(pool >= best / 2.5) & (pool <= best * 2.5)]
    if window.size == 0:
        window = pool[[int(np.argmin(np.abs(pool - best)))]]
    wanted = 1.0 + np.geomspace(window[0] - 1.0, window[-1] - 1.0, count)
    picks = np.unique(np.searchsorted(window, wanted).clip(0, window.size - 1))
    chosen = {float(a) for a in window[picks]}
    if best in window:
        chosen.add(float(best))
    return sorted(chosen)


def orders_epsilon(orders: list[float], run: RunSpec) -> EpsilonFunction:
    """ε for ``run`` by an :class:`~lmodp.accounting.rdp.accountant.RDPAccountant` on ``orders``
    only, with the l2 sup to the looser :data:`SEARCH_L2_TOLERANCE` (faster). Still a sound upper
    bound; the search re-calibrates its winner with the full accountant, so these values only
    rank shapes."""

    def eps(mechanism: Mechanism) -> float:
        acc = account(mechanism, run, accountant=RDPAccountant(orders, l2_tolerance=SEARCH_L2_TOLERANCE))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OrderGridEdgeWarning)  # an optimum at the window's edge only loosens this bound
            return acc.get_epsilon(run.delta)

    return eps
