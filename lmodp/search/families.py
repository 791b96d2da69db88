r"""The LMO family as a box of *shape* coordinates, with the overall scale factored out.

Three exact symmetries of the LMO law (λ a rate) make most of its eight parameters redundant:

* :math:`a_1\,\Gamma(k,\theta) \overset{d}{=} \Gamma(k, a_1\theta)` (only :math:`a_1\theta` matters),
* :math:`a_3\,\mathrm{Exp}(\lambda) \overset{d}{=} \mathrm{Exp}(\lambda/a_3)` (only :math:`a_3/\lambda`),
* :math:`a_4\,\mathcal U[l,u] \overset{d}{=} \mathcal U[a_4 l, a_4 u]` (only :math:`a_4 l, a_4 u`),

and multiplying ω by c (all three weights times c) multiplies the noise by 1/c, which the search
fixes by a one-dimensional root-find on the privacy budget. What remains is four shape
coordinates, searched in the unit box ``x = (x_u, x_g, x_k, x_w)`` and normalised so E[ω] = 1:

* ``p_U = x_u`` is the Uniform's share of E[ω], ``p_G = (1-x_u) x_g`` the Gamma's and
  ``p_E = (1-x_u)(1-x_g)`` the Exponential's (stick breaking: the shares sum to 1);
* the Gamma shape ``k = exp(log K_MIN + x_k (log K_MAX - log K_MIN))``;
* the Uniform's relative half-width ``w = x_w``: the Uniform is U[1-w, 1+w].

The representative built is ``LMO(a1=p_G, k, θ=1/k, a3=p_E, λ=1, a4=p_U, [1-w, 1+w])``. Every
LMO with k in [K_MIN, K_MAX] is, up to the overall scale, exactly one point of this box, so the
search covers all of a1, a3, a4, k, θ, λ, u_lo, u_hi. The Uniform with w = 0 is a point mass:
``LAPLACE_SHAPE`` (x_u = 1, w = 0) is plain Laplace with E|Y| = 1.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from lmodp.mechanisms import LMO

#: Bounds of the Gamma shape k: below 0.2 the Gamma puts so much mass near ω = 0 that the noise
#: is useless; above 50 the Gamma is within 15% (coefficient of variation) of a point mass,
#: which the Uniform with w = 0 already represents exactly.
K_MIN, K_MAX = 0.2, 50.0

#: The search box: every shape coordinate lives in [0, 1].
SHAPE_BOUNDS: tuple[tuple[float, float], ...] = ((0.0, 1.0),) * 4

#: Shape coordinates of plain Laplace (the Uniform as a point mass at 1).
LAPLACE_SHAPE = np.array([1.0, 0.5, 0.5, 0.0])

# Shares below this are switched off, so that the optimiser can reach the faces of the simplex.
_MIN_SHARE = 1e-6


def _share(value: float) -> float:
    return value if value > _MIN_SHARE else 0.0


def lmo_from_shape(x: Sequence[float]) -> LMO:
    """The LMO representative with E[ω] = 1 at shape coordinates ``x`` (see the module docstring)."""
    x_u, x_g, x_k, x_w = (min(max(float(v), 0.0), 1.0) for v in x)
    k = math.exp(math.log(K_MIN) + x_k * (math.log(K_MAX) - math.log(K_MIN)))
    p_u = _share(x_u)
    p_g = _share((1.0 - x_u) * x_g)
    p_e = _share((1.0 - x_u) * (1.0 - x_g))
    return LMO(
        gamma_weight=p_g,
        gamma_shape=k,
        gamma_scale=1.0 / k,
        exponential_weight=p_e,
        exponential_rate=1.0,
        uniform_weight=p_u,
        uniform_low=1.0 - x_w,
        uniform_high=1.0 + x_w,
    )
