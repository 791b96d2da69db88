r"""Composition of discrete PLDs by FFT, with truncation handled in the safe direction.

The PLD of a composition is the convolution of the PLDs (the losses add), and P(L = ∞) of the
composition is 1 − Π(1 − P(L_i = ∞)) (Meiser & Mohammadi, CCS 2018; Koskela, Jälkö, Honkela,
AISTATS 2020).

Self-composition T times on a window. A Chernoff bound gives, for every λ > 0,
P(S_T ≥ u) ≤ exp(T·K(λ) − λu) with K(λ) = log Σ_j p_j e^{λ j} (index units), and likewise for the
lower tail with λ < 0; the window [u_lo, u_hi] is chosen so that both bounds are ≤ τ/4 (τ the
``tail_mass``; per-step tails of ≤ τ/(4T) and final tails of ≤ τ/4 are trimmed as in
:func:`lmodp.accounting.pld.discrete.trim_tails`). The T-th power of the discrete Fourier
transform of length N ≥ window computes the *circular* convolution: mass of S_T outside the
window is folded back into it. Mass folded from above lands at a lower loss and mass folded from
below at a higher one. Pessimistic: τ/4 (the bound on what lies above) is added to P(L = ∞);
what came from below only raises δ. Optimistic (a law whose losses were rounded down): τ/4 (the
bound on what came from below) and the rounding noise (the negative entries) are removed from the
top of the window; what came from above only lowers δ. Remaining floating-point error
of the FFT power is about count·u times the largest entry; where the result falls below 1e-8 of
its largest entry, the upper tail is recomputed with exponential tilting (relative precision,
see :func:`_tilted_power`), again from wherever the tilted result itself falls below its noise
floor (successive tilts reach the far tail that tiny δ needs); each tilt adds at most τ/2 of
folded mass (pessimistic: it only raises δ; optimistic: removed from the top). The remaining
rounding is not bounded rigorously.

``full_support=True`` uses a transform long enough for the whole support (no folding).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft
from scipy import signal

from lmodp.accounting.pld._kernels import log_mgf_grid, tilt_for_mean
from lmodp.accounting.pld.discrete import DiscretePLD, trim_tails

DEFAULT_TAIL_MASS = 1e-15
# Chernoff parameters λ in index units (λ·interval per unit of loss).
_LAMBDAS = np.geomspace(1e-10, 1.0, 40)
# Below this fraction of the largest entry, an FFT power is dominated by rounding (≈ count·u).
_NOISE_FLOOR = 1e-8
# Far tails (tiny δ) are reached by successive tilts, each resolving ~8 more decades.
_MAX_TILTS = 64


def _chernoff_window(probs: np.ndarray, count: int, tail_mass: float) -> tuple[int, int]:
    """Index range [lo, hi] of the T-fold sum outside which each tail has mass ≤ tail_mass/2."""
    nonzero = np.flatnonzero(probs > 0.0)
    first, last = int(nonzero[0]), int(nonzero[-1])
    log_target = math.log(tail_mass / 2.0)
    with np.errstate(divide="ignore"):
        log_probs = np.log(probs)
    k_pos = log_mgf_grid(log_probs, _LAMBDAS)
    k_neg = log_mgf_grid(log_probs, -_LAMBDAS)
    hi = np.min((count * k_pos - log_target) / _LAMBDAS)
    lo = -np.min((count * k_neg - log_target) / _LAMBDAS)
    lo_index = int(max(math.floor(lo), count * first))
    return lo_index, max(int(min(math.ceil(hi), count * last)), lo_index)


def self_compose(
    pld: DiscretePLD, count: int, *, tail_mass: float = DEFAULT_TAIL_MASS, full_support: bool = False
) -> DiscretePLD:
    """The PLD of ``count`` independent copies (see the module docstring for the bounds)."""
    if count == 0:
        return DiscretePLD(pld.interval, 0, np.ones(1), 0.0, pld.pessimistic)
    if count == 1:
        return pld
    step = trim_tails(pld, tail_mass / (4.0 * count))
    probs = np.maximum(step.probs, 0.0)
    infinity = -math.expm1(count * math.log1p(-min(step.infinity_mass, 1.0))) if step.infinity_mass < 1.0 else 1.0
    if not probs.any():  # the step's whole mass is at +∞ (almost no noise): so is the composition's
        return DiscretePLD(pld.interval, count * step.offset, np.zeros(1), infinity, pld.pessimistic)
    n = probs.size
    full = count * (n - 1) + 1
    if full_support:
        lo, hi, folded = 0, full - 1, False
    else:
        lo, hi = _chernoff_window(probs, count, tail_mass / 2.0)
        folded = hi - lo + 1 < full
    folded_in = tail_mass / 4.0 if folded else 0.0
    out = _circular_power(probs, count, lo, hi)
    start = _noisy_from(out)
    for _ in range(_MAX_TILTS):
        if start is None:
            break
        out[start:], noisy = _tilted_power(probs, count, lo, hi, lo + start, tail_mass)
        folded_in += tail_mass / 2.0
        start = None if noisy is None or noisy == 0 else start + noisy
    negative = float(-out[out < 0.0].sum())
    out = np.maximum(out, 0.0)
    if pld.pessimistic:
        if folded:
            infinity += tail_mass / 4.0
    else:
        _remove_from_top(out, negative + folded_in)
    composed = DiscretePLD(pld.interval, count * step.offset + lo, out, min(infinity, 1.0), pld.pessimistic)
    return trim_tails(composed, tail_mass / 4.0)


def window_length(pld: DiscretePLD, count: int, *, tail_mass: float = DEFAULT_TAIL_MASS) -> int:
    """Grid points in the window that :func:`self_compose` uses for ``count`` copies (its cost)."""
    if count <= 1:
        return pld.probs.size
    step = trim_tails(pld, tail_mass / (4.0 * count))
    lo, hi = _chernoff_window(np.maximum(step.probs, 0.0), count, tail_mass / 2.0)
    return hi - lo + 1


def _circular_power(probs: np.ndarray, count: int, lo: int, hi: int) -> np.ndarray:
    """Entries lo..hi of the ``count``-fold circular self-convolution (length ≥ hi − lo + 1)."""
    length = sfft.next_fast_len(max(hi - lo + 1, probs.size), real=True)
    out = sfft.irfft(sfft.rfft(probs, length) ** count, length)
    return np.roll(out, -(lo % length))[: hi - lo + 1]


def _noisy_from(out: np.ndarray) -> int | None:
    """First index above the mode where the FFT result falls below its noise floor."""
    mode = int(np.argmax(out))
    below = np.flatnonzero(out[mode:] < _NOISE_FLOOR * out[mode])
    return None if below.size == 0 else mode + int(below[0])


def _tilted_power(
    probs: np.ndarray, count: int, lo: int, hi: int, start: int, tail_mass: float
) -> tuple[np.ndarray, int | None]:
    r"""Entries start..hi of the ``count``-fold self-convolution computed in relative precision,
    and the offset (from ``start``) where this tilted result in turn falls below its noise floor
    (None if nowhere: the caller tilts again from there).

    The FFT power has an absolute error of about count·u times the largest entry, which swamps
    the far upper tail. Exponential tilting commutes with convolution:
    (p e^{λ·})^{*T} = p^{*T} e^{λ·}, so with p̃_j = p_j e^{λj − K(λ)} (a probability vector),
    p^{*T}_k = p̃^{*T}_k e^{T K(λ) − λk}; λ puts the mean of p̃^{*T} at ``start``, where the
    entries are needed. The window [lo, hi'] is widened so that what the circular convolution
    folds from above hi' into [start, hi] is at most tail_mass/4 after untilting:
    e^{−λ·start} E[e^{λS}; S > hi'] ≤ exp(T K(λ + μ) − μ hi' − λ start) ≤ tail_mass/4 for the
    best μ > 0 (Chernoff); what it folds from below lo is multiplied by e^{−λN} ≤ 1.
    """
    with np.errstate(divide="ignore"):
        log_probs = np.log(probs)
    lam = tilt_for_mean(log_probs, start / count)
    k_lam = float(log_mgf_grid(log_probs, np.array([lam]))[0])
    k_plus = log_mgf_grid(log_probs, lam + _LAMBDAS)
    widened = np.min((count * k_plus - lam * start - math.log(tail_mass / 4.0)) / _LAMBDAS)
    hi_t = int(min(max(math.ceil(widened), hi), count * (probs.size - 1)))
    tilted = np.exp(log_probs + lam * np.arange(probs.size) - k_lam)
    raw = _circular_power(tilted, count, lo, hi_t)[start - lo : hi - lo + 1]
    k = np.arange(start, hi + 1)
    return raw * np.exp(count * k_lam - lam * k), _noisy_from(raw)


def compose(first: DiscretePLD, second: DiscretePLD, *, tail_mass: float = DEFAULT_TAIL_MASS) -> DiscretePLD:
    """The PLD of two independent mechanisms (same grid and direction of rounding)."""
    if first.interval != second.interval or first.pessimistic != second.pessimistic:
        raise ValueError("PLDs to compose must share value_discretization_interval and rounding direction")
    out = signal.fftconvolve(np.maximum(first.probs, 0.0), np.maximum(second.probs, 0.0))
    negative = float(-out[out < 0.0].sum())
    out = np.maximum(out, 0.0)
    if not first.pessimistic:
        _remove_from_top(out, negative)
    infinity = 1.0 - (1.0 - first.infinity_mass) * (1.0 - second.infinity_mass)
    composed = DiscretePLD(first.interval, first.offset + second.offset, out, infinity, first.pessimistic)
    return trim_tails(composed, tail_mass / 2.0)


def _remove_from_top(probs: np.ndarray, amount: float) -> None:
    """Delete ``amount`` of mass from the highest losses (in place; lowers every δ(ε))."""
    if amount <= 0.0:
        return
    cum = np.cumsum(probs[::-1])
    k = int(np.searchsorted(cum, amount, side="left"))
    top = probs.size - 1 - k
    probs[top + 1 :] = 0.0
    if top >= 0:
        probs[top] = max(cum[k] - amount, 0.0) if k < cum.size else 0.0
