r"""How many more steps a privacy budget allows: :func:`steps_within_budget`.

Given an accountant's history, a release (mechanism, q, sensitivity, geometry) and a budget ε_max,
the allowance is the largest k ≥ 0 with ε(δ) of the history followed by k releases ≤ ε_max
(:meth:`~lmodp.accounting.base.PrivacyAccountant.epsilon_after`). The accountants' ε grows with
the steps (more releases can only spend more), so the set of such k is an interval starting at
0 and the largest is found by bracketing and bisection, each probe one
:meth:`~lmodp.accounting.base.PrivacyAccountant.epsilon_after`: for the PLD one FFT power, whose
cost hardly depends on k; for the RDP a sum of cached curves.

The search never takes a computed value on trust beyond what it probed: the returned k has
ε(k) ≤ ε_max evaluated, and k + 1 has ε(k + 1) > ε_max evaluated (the value is returned too, for
the message that refuses that step). Soundness does not rest on the computed values being
monotone: every run of j ≤ k steps is a prefix of the run of k, so its true ε is at most the true
ε of k steps, which the evaluated upper bound ε(k) ≤ ε_max bounds. In the bracketing phase each probe is at least twice the
last (where a power of k through the last two values reaches the budget, at most 64 times the
last); inside the bracket the next probe is the secant of the last two probes on log ε against
log k (ε grows about like a power of k, so the guess is soon within a step, and the next one
closes the bracket), and four secant probes on the same side are followed by a bisection, so
the bracket shrinks at least geometrically.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from lmodp.accounting.base import PrivacyAccountant
from lmodp.mechanisms import Mechanism

#: The largest allowance looked for at once (ten million steps; a caller past it asks again).
MAX_STEPS = 10**7
# A guide's allowance below this is dominated by its conversion constant, not a shape to scale.
_GUIDED_FROM = 16
# Rescalings of the guide to the accountant's value at the last guess.
_GUIDED_ROUNDS = 3
# Secant probes on the same side of the answer before a bisection (a secant can crawl).
_SAME_SIDE = 4


@dataclass(frozen=True)
class Allowance:
    """``steps`` more releases fit the budget (ε(δ) after them: ``epsilon``); one more would
    bring ε(δ) to ``next_epsilon`` (> the budget; ∞ when ``steps`` is :data:`MAX_STEPS`)."""

    steps: int
    epsilon: float
    next_epsilon: float


def steps_within_budget(
    accountant: PrivacyAccountant,
    max_epsilon: float,
    *,
    delta: float,
    mechanism: Mechanism,
    sample_rate: float,
    sensitivity: float = 1.0,
    geometry: str = "l2",
    guide: PrivacyAccountant | None = None,
) -> Allowance:
    """The most releases of ``mechanism`` that can follow ``accountant``'s history with ε(δ) ≤
    ``max_epsilon`` (module docstring); ``steps`` is 0 when not even one fits.

    ``guide``: a cheaper accountant with the same history (the RDP beside a PLD) whose ε, scaled
    to agree with ``accountant`` at the guide's own allowance, gives the first probes; the result
    does not depend on it, only the number of probes of ``accountant``."""
    release = {"mechanism": mechanism, "sample_rate": sample_rate, "sensitivity": sensitivity, "geometry": geometry}

    def spent(k: int) -> float:
        return accountant.epsilon_after(delta, steps=k, **release)

    guesses: tuple[int, ...] = ()
    if guide is not None:

        def guided(k: int) -> float:
            return guide.epsilon_after(delta, steps=k, **release)

        guess = largest_within(guided, max_epsilon).steps
        probed: list[int] = []
        for _ in range(_GUIDED_ROUNDS if guess >= _GUIDED_FROM else 0):
            probed.append(guess)
            ratio = spent(guess) / guided(guess)
            guess = largest_within(lambda k: guided(k) * ratio, max_epsilon).steps
            if guess in probed:
                break
        guesses = (*probed, guess, guess + 1) if probed else ()
    return largest_within(spent, max_epsilon, guesses=guesses)


def largest_within(spent: Callable[[int], float], limit: float, *, guesses: tuple[int, ...] = ()) -> Allowance:
    """The largest k in [0, :data:`MAX_STEPS`] with ``spent(k) <= limit`` for a nondecreasing
    ``spent`` (module docstring), found with O(log k) calls; ``guesses`` are probed first."""
    lo, eps_lo = 0, spent(0)
    if eps_lo > limit:
        return Allowance(0, eps_lo, eps_lo)
    hi, eps_hi = MAX_STEPS + 1, math.inf
    for guess in guesses:
        if lo < guess < hi:
            eps = spent(guess)
            if eps > limit:
                hi, eps_hi = guess, eps
            else:
                lo, eps_lo = guess, eps
    previous = (0, 0.0)
    while hi > MAX_STEPS:
        if lo == MAX_STEPS:
            return Allowance(MAX_STEPS, eps_lo, math.inf)
        probe = 1 if lo == 0 else min(_extrapolated(*previous, lo, eps_lo, limit), MAX_STEPS)
        eps = spent(probe)
        if eps > limit:
            hi, eps_hi = probe, eps
        else:
            previous, (lo, eps_lo) = (lo, eps_lo), (probe, eps)
    sides: list[bool] = []
    recent = [(lo, eps_lo), (hi, eps_hi)]
    while hi - lo > 1:
        bisect = len(sides) >= _SAME_SIDE and len(set(sides[-_SAME_SIDE:])) == 1
        probe = (lo + hi) // 2 if bisect else _secant(*recent[-2], *recent[-1], limit, lo, hi)
        eps = spent(probe)
        if eps > limit:
            hi, eps_hi = probe, eps
        else:
            lo, eps_lo = probe, eps
        sides = [] if bisect else [*sides, eps > limit]
        recent.append((probe, eps))
    return Allowance(lo, eps_lo, eps_hi)


def _extrapolated(k0: int, eps0: float, k: int, eps: float, limit: float) -> int:
    """The next probe above k: where ε would reach ``limit`` if it grew like the power of k through
    (k0, eps0) and (k, eps) (linearly from a single point), at least 2k and at most 64k."""
    power = 1.0
    if k0 > 0 and 0.0 < eps0 < eps:
        power = min(max(math.log(eps / eps0) / math.log(k / k0), 0.1), 1.0)
    guess = k * math.exp(min(math.log(limit / eps) / power, math.log(64.0))) if eps > 0.0 else 64.0 * k
    return int(max(guess, 2.0 * k))


def _secant(k0: int, eps0: float, k1: int, eps1: float, limit: float, lo: int, hi: int) -> int:
    """A probe strictly inside (lo, hi): where the line through the last two probes, on log ε
    against log k, reaches ``limit`` (the midpoint where that line is undefined)."""
    guess = 0.5 * (lo + hi)
    if min(k0, k1) > 0 and k0 != k1 and 0.0 < min(eps0, eps1, limit) and max(eps0, eps1) < math.inf:
        slope = (math.log(eps1) - math.log(eps0)) / (math.log(k1) - math.log(k0))
        if slope > 0.0:
            guess = math.exp(min(math.log(k1) + (math.log(limit) - math.log(eps1)) / slope, math.log(hi)))
    return min(max(int(guess), lo + 1), hi - 1)


__all__ = ["MAX_STEPS", "Allowance", "largest_within", "steps_within_budget"]
