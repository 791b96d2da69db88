r"""Connect-the-dots discretisation of a hockey-stick curve (Doroshenko, Ghazi, Kamath, Kumar,
Manurangsi, "Connect the Dots: Tighter Discrete Approximations of Privacy Loss Distributions",
PETS 2022, Algorithm 1), made robust to rounding.

Write H(x) = ∫(P − xQ)_+ with x = e^ε. H is convex and decreasing, H(0) = 1, and a discrete PLD
with masses w_j at ℓ_j and w_∞ at +∞ has hockey-stick curve Σ_j w_j (1 − x e^{−ℓ_j})_+ + w_∞:
piecewise linear in x with kinks at x_j = e^{ℓ_j}. Conversely a convex, decreasing piecewise
linear function through (0, 1) with kinks on the grid is the curve of the PLD with
w_j = x_j (s_j − s_{j−1}) (s the slopes) and w_∞ its limit at ∞; its Q-mass −s_0 is at most 1.

Pessimistic: take upper bounds v_i ≥ H(x_i) (the computed value plus its rounding bound), make
them non-increasing (H decreases, so min_{j≤i} v_j still bounds H(x_i)), and take the LOWER
CONVEX HULL of (0, 1) and the (x_i, v_i) with a flat ray after the last point. Because H is
convex and below every point, it lies below each hull segment (a convex combination of points
above H); hence the result dominates the mechanism (H̃ ≥ H everywhere), so by Blackwell's
theorem every composition of it dominates the composed mechanism. Without rounding, the hull is
exactly the connect-the-dots interpolation. Mass beyond the last grid point sits at +∞.
"""

from __future__ import annotations

import numpy as np

from lmodp.accounting.pld._kernels import lower_convex_hull
from lmodp.accounting.pld.discrete import DiscretePLD


def pld_from_dots(offset: int, interval: float, values: np.ndarray, *, start: float = 1.0, pessimistic: bool = True) -> DiscretePLD:
    """The PLD whose curve is the lower convex hull of (0, ``start``) and (e^{(offset+i)h},
    values_i), flat after the last point (its value is the mass at +∞)."""
    n = values.size
    eps = (offset + np.arange(n)) * interval
    x = np.concatenate(([0.0], np.exp(eps)))
    v = np.concatenate(([start], values))
    hull = lower_convex_hull(x, v)
    hx = x[hull]
    hv = v[hull]
    slopes = np.diff(hv) / np.diff(hx)
    slopes = np.minimum(slopes, 0.0)
    right = np.append(slopes, 0.0)[1:]
    masses = hx[1:] * (right - slopes)
    probs = np.zeros(n)
    probs[hull[1:] - 1] = np.maximum(masses, 0.0)
    return DiscretePLD(interval, offset, probs, float(hv[-1]), pessimistic=pessimistic)


def pessimistic_pld(offset: int, interval: float, curve: np.ndarray, error: np.ndarray) -> DiscretePLD:
    """Dominating PLD on the grid from H((offset+i)h) ≈ ``curve[i]`` with |error| ≤ ``error[i]``."""
    upper = np.minimum.accumulate(np.minimum(curve + error, 1.0))
    return pld_from_dots(offset, interval, upper)
