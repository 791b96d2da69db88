r"""Dominated ("optimistic") discretisations of privacy-loss laws, second order in the grid step.

A privacy-loss law is given by its law μ under P: masses μ_i (total ≤ 1) at losses ℓ_i. Its
hockey-stick curve is H(x) = Σ_i μ_i (1 − x e^{−ℓ_i})_+ for x = e^ε ≥ 0, and δ(ε) = H(e^ε).
Rounding every loss down to a grid of step h gives a law whose curve is below H, but shifts
every loss by up to h, which adds up over compositions (n·h after n). Here the discrete law is
built from below the curve instead, with an error of second order in h. The facts used:

(F1) H is convex and non-increasing in x; its right derivative at x is
     −Σ_{ℓ_i > log x} μ_i e^{−ℓ_i} and its left derivative −Σ_{ℓ_i ≥ log x} μ_i e^{−ℓ_i}.
(F2) Chord gap. On a cell [x_0, x_1] of length Δ let a ≤ H'(x_0+), b ≥ H'(x_1−) and s the
     chord slope. H lies above both tangent lines, so at x = x_0 + tΔ
     chord(x) − H(x) ≤ min(tΔ(s − a), (1 − t)Δ(b − s)) ≤ D := Δ·min(s − a, b − s).
(F3) Values below the curve. Take v_j = H(x_j) − e_j with e_j ≥ the D of both cells at x_j
     (plus the rounding bound of H(x_j)), up to an index J*, and v_j = 0 from J* on, where the
     last cell before J* also has e_{J*−1} ≥ Δ(b − s) (J* is lowered until v_{J*−1} > 0). Then the
     piecewise-linear interpolant of the v_j is below H. Write σ_j = H(x_j) − v_j ≥ 0 and
     interp = chord − (1 − t)σ_0 − tσ_1. If neither end is 0, (1 − t)σ_0 + tσ_1 ≥ D ≥ chord − H.
     On the cell ending at J*: interp = (1 − t)v_0 and, by F2 and chord ≥ (1 − t)H(x_0),
     H ≥ (1 − t)(H(x_0) − Δ(b − s)) ≥ (1 − t)v_0. From J* on, interp = 0 ≤ H. The lower convex
     hull of the points lies below the interpolant, hence below H, and is the curve of a law
     with masses on the grid only: w_j = x_j × (increase of the hull's slope at x_j). D is
     second order in the grid step h (Δ ≈ x·h, and b − a is the mass in one cell); an atom of L
     on a grid point costs nothing (it is in no open cell, and b is its left derivative).
(F4) Composition. If H̃ ≤ H on [0, ∞) for two positive measures μ̃, μ, then for every positive
     measure ν the curve of μ̃ * ν is ∫ H̃(x e^{−m}) dν(m) ≤ the curve of μ * ν; by induction
     every composition keeps the order, so ε read off a dominated law is at most the true ε.
(F5) Symmetric pairs. A pair (P, Q) is *symmetric* if the law of the loss under Q is the mirror
     image of its law under P, μ(−ℓ) = e^{−ℓ}μ(ℓ) (every symmetric noise with its shifted copy
     is, by the reflection y ↦ Δ − y). For a genuine pair (P, Q probabilities) the curve obeys
     H(x) = 1 − x + x·H(1/x), so H on [0, 1] is fixed by H on [1, ∞). :func:`symmetric_law_below`
     returns the symmetric genuine law whose curve is a hull below H on [1, ∞) (masses w_j at
     ε_j > 0, their mirrors w_j e^{−ε_j} at −ε_j, and the rest at 0; if Σ w_j(1 + e^{−ε_j})
     exceeds 1, mass is removed from the smallest ε_j first, which only lowers the curve); by
     the identity its curve is below H on all of [0, ∞), so by Blackwell's theorem it is a
     post-processing of (P, Q): compositions, and Poisson subsampling of the pair, keep the
     order too.

What is not bounded: rounding of the masses a caller passes in (e.g. FFT convolutions); the
sums here carry a rounding bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from lmodp.accounting.pld.connect_dots import pld_from_dots
from lmodp.accounting.pld._kernels import lower_convex_hull
from lmodp.accounting.pld.discrete import DiscretePLD
from lmodp.accounting.pld.hockey_stick import HockeyStickCurve

_U = 2.0**-52


@dataclass(frozen=True)
class CurveOnGrid:
    """H(x_j) at x_j = e^{(offset + j)·interval} with a rounding bound ``error``, and per cell
    [x_j, x_{j+1}] a lower bound ``right_slope`` on H'(x_j+) and an upper bound ``left_slope``
    on H'(x_{j+1}−) (x units)."""

    offset: int
    interval: float
    values: np.ndarray
    error: np.ndarray
    right_slope: np.ndarray
    left_slope: np.ndarray

    @property
    def x(self) -> np.ndarray:
        return np.exp((self.offset + np.arange(self.values.size)) * self.interval)


def curve_of_atoms(cells: np.ndarray, excess: np.ndarray, masses: np.ndarray, interval: float, first_cell: int) -> CurveOnGrid:
    r"""The curve of atoms at losses ε_{c_i} + d_i (ε_c = c·h, d_i = ``excess`` ∈ [0, h]) on the grid
    ε_j, j = ``first_cell`` … max(c) + 1 (H = 0 at the last point).

    With R_k = Σ_{i∈k} μ_i e^{−d_i} and V_j = Σ_{k≥j} e^{−(k−j)h} R_k = R_j + e^{−h}V_{j+1}:
    H(x_j) = Σ_{i∈j} μ_i(1 − e^{−d_i}) + H(x_{j+1}) + (1 − e^{−h})V_{j+1} (a sum of positive
    terms, accurate in relative terms), H'(x_j+) = −e^{−ε_j}V_j and
    H'(x_{j+1}−) = −e^{−ε_{j+1}}(V_{j+1} + Σ_{i∈j, d_i = h} μ_i).
    """
    k = cells - first_cell
    n = int(k.max()) + 2
    own = np.bincount(k, weights=masses * -np.expm1(-excess), minlength=n)
    r = np.bincount(k, weights=masses * np.exp(-excess), minlength=n)
    on_top = np.bincount(k, weights=np.where(excess >= interval, masses, 0.0), minlength=n)
    v = signal.lfilter([1.0], [1.0, -math.exp(-interval)], r[::-1])[::-1]
    step = own[:-1] + -math.expm1(-interval) * v[1:]
    values = np.append(np.cumsum(step[::-1])[::-1], 0.0)
    eps = (first_cell + np.arange(n)) * interval
    bound = 4.0 * n * _U
    right = -np.exp(-eps[:-1]) * v[:-1] * (1.0 + bound)
    left = -np.exp(-eps[1:]) * (v[1:] + on_top[:-1]) * (1.0 - bound)
    return CurveOnGrid(first_cell, interval, values, bound * values, right, left)


def curve_of_hockey_stick(c: HockeyStickCurve, first: int = 0) -> CurveOnGrid:
    """:class:`CurveOnGrid` of a closed-form curve from grid index ``first`` on."""
    return CurveOnGrid(
        c.offset + first,
        c.interval,
        c.curve[first:],
        c.error[first:],
        -(c.q_tail[first:-1] + c.q_error[first:-1]),
        -c.q_at_least[first + 1 :],
    )


def dominated_values(curve: CurveOnGrid) -> np.ndarray:
    """Values below the curve whose interpolant lies below it (F3)."""
    width = np.diff(curve.x)
    h = curve.values
    chord = np.diff(h) / width
    slack = (curve.error[:-1] + curve.error[1:]) / width
    rise = np.maximum(chord - curve.right_slope, 0.0) + slack
    fall = np.maximum(curve.left_slope - chord, 0.0) + slack
    gap = width * np.minimum(rise, fall)
    e = curve.error + np.maximum(np.append(gap, 0.0), np.append(0.0, gap))
    v = h - e
    below = np.flatnonzero(v <= 0.0)
    top = int(below[0]) if below.size else v.size
    while top > 0 and top < v.size:
        e[top - 1] = max(e[top - 1], width[top - 1] * fall[top - 1] + curve.error[top - 1])
        v[top - 1] = h[top - 1] - e[top - 1]
        if v[top - 1] > 0.0:
            break
        top -= 1
    v[top:] = 0.0
    return v


def law_below(curve: CurveOnGrid, total: float) -> DiscretePLD:
    """A law on the grid whose curve is below H on [0, ∞) (F3), given H(0) = ``total`` and no
    loss at or below the first grid point (H is then linear on [0, x_0])."""
    return pld_from_dots(curve.offset, curve.interval, dominated_values(curve), start=total, pessimistic=False)


def symmetric_law_below(curve: CurveOnGrid) -> DiscretePLD:
    """The symmetric genuine law (F5) whose curve lies below H, from H on [1, ∞) (``curve``
    must start at ε = 0), on the grid −J…J."""
    if curve.offset != 0:
        raise ValueError("the curve must start at loss 0")
    x = curve.x
    v = dominated_values(curve)
    hull = lower_convex_hull(x, v)
    hx, hv = x[hull], v[hull]
    slopes = np.minimum(np.diff(hv) / np.diff(hx), 0.0)
    kinks = hx[1:] * (np.append(slopes[1:], 0.0) - slopes)
    weights = np.zeros(x.size)
    weights[hull[1:]] = np.maximum(kinks, 0.0)
    eps = np.arange(x.size) * curve.interval
    both = weights * (1.0 + np.exp(-eps))
    excess = float(both.sum()) - 1.0
    if excess > 0.0:  # P̃ + Q̃ of the losses > 0 must stay <= 1: remove mass next to 0 (lowers H̃)
        cut = np.minimum(both, np.maximum(excess - np.concatenate(([0.0], np.cumsum(both)[:-1])), 0.0))
        weights -= cut / (1.0 + np.exp(-eps))
        both = weights * (1.0 + np.exp(-eps))
    probs = np.concatenate((weights[:0:-1] * np.exp(-eps[:0:-1]), [max(1.0 - float(both[1:].sum()), 0.0)], weights[1:]))
    return DiscretePLD(curve.interval, -(x.size - 1), probs, 0.0, pessimistic=False)


__all__ = ["CurveOnGrid", "curve_of_atoms", "curve_of_hockey_stick", "dominated_values", "law_below", "symmetric_law_below"]
