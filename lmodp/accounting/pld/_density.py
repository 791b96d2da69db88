r"""Level sets of the privacy loss for a user-defined log-concave density (the PLD's input).

For a :class:`~lmodp.mechanisms.density.SymmetricDensity` with g = log f concave, the base loss
ℓ(y) = g(y) − g(y − Δ) is non-increasing in y on the whole line (ℓ'(y) = g'(y) − g'(y − Δ) ≤ 0,
g' being non-increasing), so on the window (−R, Δ + R)

    {ℓ > t} = (−R, r⁺(t)),   {ℓ < t} = (r⁻(t), Δ + R),   r⁺ = sup{ℓ > t},  r⁻ = inf{ℓ < t}

(r⁺ < r⁻ only where ℓ is flat at t, e.g. the constant loss of a Laplace-like tail). The two
ends are found by bisection in the coordinate asinh(y) (vectorised over all thresholds, to
float64 resolution), and the masses of the intervals under f and under f(· − Δ) are
differences of the density's quadrature survival function
(:meth:`~lmodp.mechanisms.density.SymmetricDensity.survival`), each with its error bound, the
small tail taken on the side where it is small. :class:`DensityNoiseModel` has the interface of
:class:`~lmodp.accounting.pld.hockey_stick.NoiseModel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lmodp.mechanisms.density import SymmetricDensity, half_line_mass

_BISECTIONS = 64
# Window radius search: doublings of the density's score length 1/S.
_MAX_DOUBLINGS = 200


@dataclass(frozen=True)
class DensityNoiseModel:
    """A user-defined density shifted by Δ = ``shift`` on the window (−R, Δ + R), P(|Y| > R) ≤ ``outside``/2."""

    density: SymmetricDensity
    shift: float
    radius: float
    outside: float

    @classmethod
    def of(cls, density: SymmetricDensity, *, sensitivity: float, window_tail: float) -> "DensityNoiseModel":
        """The model with the smallest radius 2^j/S whose tail bound P(|Y| > R) is ≤ ``window_tail``."""
        log_target = math.log(window_tail)
        radius = 1.0 / density.score_bound()
        for _ in range(_MAX_DOUBLINGS):
            log_tail = float(density.log_tail(radius))
            if log_tail <= log_target:
                return cls(density, float(sensitivity), radius, 2.0 * math.exp(log_tail))
            radius *= 2.0
        raise ValueError(f"{type(density).__name__}: no window radius reaches P(|Y| > R) <= {window_tail:g}")

    def base_loss(self, y: np.ndarray) -> np.ndarray:
        """ℓ(y) = g(y) − g(y − Δ)."""
        y = np.asarray(y, dtype=float)
        return self.density._g(y) - self.density._g(y - self.shift)

    def loss_range(self) -> tuple[float, float]:
        """(min, max) of ℓ on the window: ℓ(Δ + R) and ℓ(−R) (ℓ is non-increasing)."""
        ends = self.base_loss(np.array([self.shift + self.radius, -self.radius]))
        return float(ends[0]), float(ends[1])

    def _boundary(self, thresholds: np.ndarray, strict_above: bool) -> np.ndarray:
        """sup{y : ℓ(y) > t} (``strict_above``) or inf{y : ℓ(y) < t}, clipped to the window."""
        lo = np.full(thresholds.shape, math.asinh(-self.radius))
        hi = np.full(thresholds.shape, math.asinh(self.shift + self.radius))
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo + hi)
            loss = self.base_loss(np.sinh(mid))
            left = loss > thresholds if strict_above else loss >= thresholds
            lo = np.where(left, mid, lo)
            hi = np.where(left, hi, mid)
        return np.sinh(hi if strict_above else lo)

    def level_set_masses(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mass, error bound), shape (n, 4): f{ℓ > t}, f_Δ{ℓ > t}, f{ℓ < t}, f_Δ{ℓ < t} on the window."""
        t = np.asarray(thresholds, dtype=float)
        low, high = self.loss_range()
        left_end, right_end = -self.radius, self.shift + self.radius
        above = np.where(t >= high, left_end, np.where(t < low, right_end, self._boundary(t, True)))
        below = np.where(t <= low, right_end, np.where(t > high, left_end, self._boundary(t, False)))
        mass = np.empty((t.size, 4))
        err = np.empty((t.size, 4))
        for col, (a, b) in enumerate(((left_end, above), (left_end, above), (below, right_end), (below, right_end))):
            moved = self.shift if col % 2 == 1 else 0.0
            mass[:, col], err[:, col] = _interval_masses(
                self.density, np.broadcast_to(a, t.shape) - moved, np.broadcast_to(b, t.shape) - moved
            )
        return mass, err


def _interval_masses(density: SymmetricDensity, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(a < Y < b), error bound) for arrays of ends, each tail taken on the side where it is small."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    ends = np.concatenate([np.abs(a), np.abs(b)])
    value, err = half_line_mass(density, ends)
    sa, sb = value[: a.size], value[a.size :]
    ea, eb = err[: a.size], err[a.size :]
    right = a >= 0.0
    left = b <= 0.0
    mass = np.where(right, sa - sb, np.where(left, sb - sa, 1.0 - sa - sb))
    mass = np.where(b <= a, 0.0, np.maximum(mass, 0.0))
    bound = np.where(b <= a, 0.0, ea + eb + np.where(right | left, 0.0, 2.0**-50))
    return mass, bound
