r"""A privacy-loss distribution on a uniform grid, and the (ε, δ) curve it defines.

A :class:`DiscretePLD` is the law, under P, of the privacy loss L = log(dP/dQ) of a pair (P, Q),
supported on the grid {(offset + j)·h} plus an atom at +∞ (``infinity_mass`` = P(Q = 0)). The
hockey-stick divergence is

.. math:: \delta(\varepsilon) = E_P[(1 - e^{\varepsilon - L})_+]
          = P(L=\infty) + \sum_j p_j\,(1 - e^{\varepsilon - \ell_j})_+ ,

(Sommer, Meiser, Mohammadi, PETS 2019; Koskela et al. 2020). Whether the numbers are upper or
lower bounds of the true mechanism's δ is recorded in ``pessimistic``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from lmodp._validation import require_delta, require_nonnegative


@dataclass(frozen=True)
class DiscretePLD:
    """Masses ``probs[j]`` at loss ``(offset + j) * interval``, plus ``infinity_mass`` at +∞."""

    interval: float
    offset: int
    probs: np.ndarray
    infinity_mass: float
    pessimistic: bool

    @property
    def losses(self) -> np.ndarray:
        """The grid of loss values carrying ``probs``."""
        return (self.offset + np.arange(self.probs.size)) * self.interval

    def get_delta(self, epsilon: float) -> float:
        """δ(ε) = P(L = ∞) + Σ_j p_j (1 − e^{ε − ℓ_j})_+ for ε ≥ 0."""
        epsilon = require_nonnegative("epsilon", epsilon)
        losses = self.losses
        above = losses > epsilon
        delta = self.infinity_mass + float(np.sum(self.probs[above] * -np.expm1(epsilon - losses[above])))
        return min(delta, 1.0)

    def get_epsilon(self, delta: float) -> float:
        r"""The smallest ε ≥ 0 with δ(ε) ≤ ``delta`` (``math.inf`` if P(L = ∞) ≥ δ).

        On [ℓ_{k−1}, ℓ_k], δ(ε) = A_k − e^{ε − ℓ_k} C_k with A_k = P(L=∞) + Σ_{j≥k} p_j and
        C_k = Σ_{j≥k} p_j e^{−(ℓ_j − ℓ_k)}, which obeys C_k = p_k + e^{−h} C_{k+1}; the root
        on the first interval where δ drops below ``delta`` is solved in closed form.
        """
        delta = require_delta("delta", delta)
        if self.infinity_mass >= delta:
            return math.inf
        if self.get_delta(0.0) <= delta:
            return 0.0
        h = self.interval
        probs = self.probs
        tail = self.infinity_mass + np.cumsum(probs[::-1])[::-1]
        c = signal.lfilter([1.0], [1.0, -math.exp(-h)], probs[::-1])[::-1]
        # δ at each atom ℓ_k: A_{k+1} − e^{−h} C_{k+1}
        delta_at = np.empty(probs.size)
        delta_at[:-1] = tail[1:] - math.exp(-h) * c[1:]
        delta_at[-1] = self.infinity_mass
        k = int(np.argmax(delta_at <= delta))
        loss_k = (self.offset + k) * h
        ratio = (tail[k] - delta) / c[k]
        eps = loss_k + math.log(ratio) if ratio > 0.0 else loss_k
        if k > 0:
            eps = max(eps, loss_k - h)
        return max(eps, 0.0)


def trim_tails(pld: DiscretePLD, tail_mass: float) -> DiscretePLD:
    """Drop at most ``tail_mass`` from each end of the grid, in the safe direction.

    Pessimistic: the upper tail goes to +∞ and the lower tail is moved up onto the first kept
    atom (both only increase every δ(ε)). Optimistic: the lower tail is dropped (loss −∞) and
    the upper tail moved down onto the last kept atom (both only decrease every δ(ε)).
    """
    probs = np.maximum(pld.probs, 0.0)
    if probs.size == 0:
        return pld
    low_cum = np.cumsum(probs)
    high_cum = np.cumsum(probs[::-1])
    start = int(np.searchsorted(low_cum, tail_mass, side="right"))
    stop = probs.size - int(np.searchsorted(high_cum, tail_mass, side="right"))
    if stop <= start:
        start, stop = (stop - 1, stop) if stop > 0 else (0, 1)
    low = float(low_cum[start - 1]) if start > 0 else 0.0
    high = float(high_cum[probs.size - stop - 1]) if stop < probs.size else 0.0
    kept = probs[start:stop].copy()
    infinity = pld.infinity_mass
    if pld.pessimistic:
        kept[0] += low
        infinity += high
    else:
        kept[-1] += high
    return DiscretePLD(pld.interval, pld.offset + start, kept, infinity, pld.pessimistic)


def coarsened(pld: DiscretePLD, factor: int) -> DiscretePLD:
    """The same law on the grid of ``factor`` × the interval, each loss rounded in the safe
    direction: up for a pessimistic PLD (every δ(ε) only increases, so it still dominates),
    down for an optimistic one (every δ(ε) only decreases)."""
    if factor == 1:
        return pld
    index = pld.offset + np.arange(pld.probs.size)
    coarse = -((-index) // factor) if pld.pessimistic else index // factor
    first = int(coarse[0])
    probs = np.bincount(coarse - first, weights=np.maximum(pld.probs, 0.0))
    return DiscretePLD(pld.interval * factor, first, probs, pld.infinity_mass, pld.pessimistic)


def mirror(law: DiscretePLD) -> DiscretePLD:
    """The law of −L."""
    return DiscretePLD(law.interval, -(law.offset + law.probs.size - 1), law.probs[::-1].copy(), 0.0, pessimistic=False)


def rounded_down_laws(tail: np.ndarray, offset: int, interval: float) -> tuple[DiscretePLD, DiscretePLD]:
    """From P(λ > ε_i) on the grid: (law of λ rounded down, law of −λ rounded down, i.e. the
    mirror of λ rounded up). Mass below the grid is dropped by the first, mass above the grid
    by the second (deleting mass only lowers δ)."""
    bucket = np.maximum(-np.diff(tail), 0.0)
    down = np.append(bucket, max(float(tail[-1]), 0.0))
    up = np.concatenate(([max(1.0 - float(tail[0]), 0.0)], bucket))
    floor_law = DiscretePLD(interval, offset, down, 0.0, pessimistic=False)
    ceil_law = DiscretePLD(interval, offset, up, 0.0, pessimistic=False)
    return floor_law, mirror(ceil_law)
