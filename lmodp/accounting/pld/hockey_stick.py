r"""The exact hockey-stick curve of a Poisson-subsampled symmetric additive-noise mechanism.

Scalar query, sensitivity Δ, noise density f, f_Δ = f(· − Δ), sampling rate q. The two
neighbouring directions (add/remove one record; Zhu, Dong, Wang, "Optimal accounting of
differential privacy via characteristic function", AISTATS 2022, Sec. 5) are the pairs

* remove: P = (1 − q) f + q f_Δ,  Q = f;   L = log(1 − q + q e^{−ℓ})
* add:    P = f,  Q = (1 − q) f + q f_Δ;   L = −log(1 − q + q e^{−ℓ})

with the base loss ℓ = log f − log f_Δ. L is a monotone function of ℓ, so the set {L > ε} is a
level set {ℓ < t} (remove) or {ℓ > t} (add) with t = log q − log(e^ε − 1 + q), resp.
t = log q − log(e^{−ε} − 1 + q), and

.. math:: H(e^\varepsilon) = \int (P - e^\varepsilon Q)_+ = P(L > \varepsilon) - e^\varepsilon Q(L > \varepsilon)

is computed from the closed-form distribution function over the monotone pieces of ℓ
(:func:`lmodp.accounting.pld._kernels.level_set_masses`). The window (−R, Δ + R) is chosen with
P(|Y| > R) ≤ ``window_tail`` (default 10⁻³⁰); the mass outside it (≤ 2·``window_tail`` under f
and f_Δ) is added to the rounding bound, which makes the bound valid for the untruncated curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from scipy import special

from lmodp.accounting.pld import _kernels as K
from lmodp.accounting.pld._density import DensityNoiseModel
from lmodp.mechanisms import Gaussian, GeneralizedGaussian, LaplaceScaleMixture, Mechanism, SymmetricDensity, require_accountable
from lmodp.mechanisms.generalized_gaussian_kernels import log_tail as gg_log_tail
from lmodp.mechanisms.mixture_kernels import log_tail
from lmodp.mechanisms.registry import hook

DIRECTIONS = ("add", "remove")
#: Default bound on P(|Y| > R) outside the window of the hockey-stick curve.
DEFAULT_WINDOW_TAIL = 1e-30
_ROUND = 8.0 * 2.0**-52
#: Losses beyond ±LOSS_CAP are not resolved on the grid (the pessimistic curve puts what lies
# above at +∞; e^{±500} stays far from float64 overflow).
LOSS_CAP = 500.0


@dataclass(frozen=True)
class NoiseModel:
    """A mechanism in kernel form: ``kind``/``params`` for the kernels, shift Δ, window radius R
    with P(|Y| > R) ≤ ``outside``/2."""

    kind: int
    params: np.ndarray
    shift: float
    radius: float
    outside: float

    def loss_range(self) -> tuple[float, float]:
        """(min, max) of the base loss ℓ on the window (attained at piece ends)."""
        ends = (-self.radius, 0.0, self.shift, self.shift + self.radius)
        vals = [K.base_loss(float(y), self.kind, self.params, self.shift) for y in ends]
        return min(vals), max(vals)

    def level_set_masses(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mass, rounding bound), shape (n, 4): f{ℓ > t}, f_Δ{ℓ > t}, f{ℓ < t}, f_Δ{ℓ < t} on the window."""
        return K.level_set_masses(np.ascontiguousarray(thresholds), self.kind, self.params, self.shift, self.radius)


def noise_model(mechanism: Mechanism, *, sensitivity: float, window_tail: float = DEFAULT_WINDOW_TAIL) -> NoiseModel | DensityNoiseModel:
    """Kernel form of a mechanism with a window radius R such that P(|Y| > R) ≤ ``window_tail``,
    built by the model that its family declares (its ``pld_model`` facet: :func:`gaussian_noise_model`,
    :func:`mixture_noise_model`, :func:`generalized_gaussian_noise_model`, :func:`density_noise_model`);
    ``ValueError`` for a mechanism no accountant accepts."""
    mechanism = require_accountable(mechanism).canonical()
    return hook(mechanism, "pld_model")(mechanism, sensitivity=sensitivity, window_tail=window_tail)


def gaussian_noise_model(mechanism: Gaussian, *, sensitivity: float, window_tail: float) -> NoiseModel:
    """N(0, σ²): R = zσ with P(|Y| > zσ) = erfc(z/√2) = ``window_tail``."""
    params = np.array([mechanism.sigma])
    z = -float(special.ndtri(window_tail / 2.0))  # P(|Y| > zσ) = 2Φ(−z) = erfc(z/√2)
    return NoiseModel(K.GAUSSIAN, params, sensitivity, z * mechanism.sigma, float(special.erfc(z / math.sqrt(2.0))))


def mixture_noise_model(mechanism: LaplaceScaleMixture, *, sensitivity: float, window_tail: float) -> NoiseModel:
    """A Laplace scale mixture (LMO or finite mixing laws), in its packed mixing-law vector."""
    return _kernel_model(K.MIXTURE, mechanism.kernel_params, log_tail, 1.0 / mechanism.omega_mean(), sensitivity, window_tail)


def generalized_gaussian_noise_model(mechanism: GeneralizedGaussian, *, sensitivity: float, window_tail: float) -> NoiseModel:
    """The generalized Gaussian, ``p = [s, power]``."""
    return _kernel_model(K.GENERALIZED_GAUSSIAN, mechanism.kernel_params, gg_log_tail, mechanism.scale, sensitivity, window_tail)


def density_noise_model(mechanism: SymmetricDensity, *, sensitivity: float, window_tail: float) -> DensityNoiseModel:
    """A user-defined log-concave density (:class:`~lmodp.accounting.pld._density.DensityNoiseModel`)."""
    return DensityNoiseModel.of(mechanism, sensitivity=sensitivity, window_tail=window_tail)


def _kernel_model(
    kind: int, params: np.ndarray, tail: Callable[[float, np.ndarray], float], start: float, sensitivity: float, window_tail: float
) -> NoiseModel:
    """The radius doubled from ``start`` until log P(|Y| > R) = ``tail(R, params)`` ≤ log ``window_tail``."""
    log_target = math.log(window_tail)
    params = np.ascontiguousarray(params, dtype=float)
    radius = start
    while tail(radius, params) > log_target:
        radius *= 2.0
        if radius > 1e250:
            raise ValueError(f"mechanism tails are too heavy for the PLD window (P(|Y| > 1e250) > window_tail = {window_tail:g})")
    return NoiseModel(kind, params, sensitivity, radius, 2.0 * math.exp(tail(radius, params)))


def loss_range(model: NoiseModel | DensityNoiseModel, *, direction: str, sample_rate: float) -> tuple[float, float]:
    """(min, max) of the subsampled loss L over the window, clipped to ±500."""
    lmin, lmax = model.loss_range()
    q = sample_rate

    def transform(ell: float) -> float:
        if q == 1.0:
            return -ell
        if ell > -LOSS_CAP:
            return math.log1p(q * math.expm1(-ell))
        # log(1 − q + q e^{−ℓ}) = log q − ℓ + log1p((1 − q) e^{ℓ} / q) without overflowing e^{−ℓ}
        return math.log(q) - ell + math.log1p((1.0 - q) * math.exp(ell) / q)

    lo, hi = transform(lmax), transform(lmin)
    if direction == "add":
        lo, hi = -hi, -lo
    return max(lo, -LOSS_CAP), min(hi, LOSS_CAP)


def grid_points(model: NoiseModel | DensityNoiseModel, *, direction: str, sample_rate: float, interval: float) -> int:
    """Number of grid points of :func:`hockey_stick_curve` at ``interval`` (its cost)."""
    lo, hi = loss_range(model, direction=direction, sample_rate=sample_rate)
    return math.ceil(hi / interval) - math.floor(lo / interval) + 3


@dataclass(frozen=True)
class HockeyStickCurve:
    """H(e^{ε_i}), P(L > ε_i) and Q(L > ε_i) on ε_i = (offset + i)·interval; ``error`` bounds
    the rounding of H and ``q_error`` that of Q(L > ε_i) (outside-window mass included in both);
    ``q_at_least`` is a lower bound on Q(L ≥ ε_i) (which differs where L has an atom)."""

    offset: int
    interval: float
    curve: np.ndarray
    error: np.ndarray
    p_tail: np.ndarray
    q_tail: np.ndarray
    q_error: np.ndarray
    q_at_least: np.ndarray


def hockey_stick_curve(model: NoiseModel | DensityNoiseModel, *, direction: str, sample_rate: float, interval: float) -> HockeyStickCurve:
    """The curve on the grid of multiples of ``interval`` covering the range of L."""
    lo, hi = loss_range(model, direction=direction, sample_rate=sample_rate)
    offset = math.floor(lo / interval) - 1  # one point strictly below every loss
    count = math.ceil(hi / interval) - offset + 2  # and one point strictly above
    eps = (offset + np.arange(count)) * interval
    q = sample_rate
    if direction == "remove":
        arg = np.expm1(eps) + q
        with np.errstate(divide="ignore"):
            t = np.where(arg > 0.0, math.log(q) - np.log(np.maximum(arg, 1e-300)), np.inf)
        mass, err = model.level_set_masses(t)
        p_set = (1.0 - q) * mass[:, 2] + q * mass[:, 3]
        p_err = (1.0 - q) * err[:, 2] + q * err[:, 3]
        q_set, q_err = mass[:, 2], err[:, 2]
        q_complement, c_err = mass[:, 0], err[:, 0]
    elif direction == "add":
        arg = np.expm1(-eps) + q
        empty = arg <= 0.0
        t = np.where(empty, np.inf, math.log(q) - np.log(np.where(empty, 1.0, arg)))
        mass, err = model.level_set_masses(t)
        p_set, p_err = mass[:, 0], err[:, 0]
        q_set = (1.0 - q) * mass[:, 0] + q * mass[:, 1]
        q_err = (1.0 - q) * err[:, 0] + q * err[:, 1]
        q_complement = (1.0 - q) * mass[:, 2] + q * mass[:, 3]
        c_err = (1.0 - q) * err[:, 2] + q * err[:, 3]
    else:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    x = np.exp(eps)
    curve = np.maximum(p_set - x * q_set, 0.0)
    error = p_err + x * q_err + _ROUND * (p_set + x * q_set) + model.outside
    q_error = q_err + _ROUND * q_set + model.outside
    # Q(L ≥ ε) = 1 − Q(L < ε) ≥ 1 − (window mass of {L < ε}) − (mass outside the window)
    q_at_least = np.maximum(1.0 - q_complement - c_err - _ROUND - model.outside, q_set - q_error)
    return HockeyStickCurve(offset, interval, curve, error, p_set, q_set, q_error, q_at_least)
