r"""The generalized Gaussian mechanism: density ∝ exp(−|y/s|^p), 1 ≤ p ≤ 2.

.. math:: f(y) = \frac{p}{2s\,\Gamma(1/p)}\,e^{-|y/s|^p}

(Subbotin 1923; Nadarajah 2005, "A generalized normal distribution", J. Appl. Stat. 32(7)). It
interpolates Laplace (p = 1: Laplace(0, s)) and Gaussian (p = 2: N(0, s²/2)). With
W = |Y/s|^p ~ Gamma(1/p, 1):

* :math:`P(|Y| > y) = Q(1/p, (y/s)^p)` (regularized upper incomplete gamma), so
  :math:`P(|Y|\le\gamma) = P(1/p, (\gamma/s)^p)`;
* :math:`E|Y|^r = s^r\,\Gamma((r+1)/p)/\Gamma(1/p)`: E|Y| = sΓ(2/p)/Γ(1/p), Var Y = s²Γ(3/p)/Γ(1/p);
* Fisher information :math:`I = E[(p|Y|^{p-1}/s^p)^2] = p^2\,\Gamma(2-1/p)/(s^2\,\Gamma(1/p))`
  (1/s² at p = 1, 2/s² at p = 2);
* sampling: |Y| = s·W^{1/p} with a random sign.

log f is concave for p ≥ 1 (the loss of a shift is monotone in y), the density is symmetric and
unimodal; the accounting of this family is in :mod:`lmodp.accounting` (docs/l2-geometry.md for
the l2 geometry), declared with its sampler and search by the registration at the end.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from lmodp._validation import require_positive
from lmodp.mechanisms import generalized_gaussian_kernels as GK
from lmodp.mechanisms.base import Mechanism, cdf_from_log_tail
from lmodp.mechanisms.family import SearchSpace
from lmodp.mechanisms.registry import register_family

#: The allowed range of the power p.
POWER_RANGE = (1.0, 2.0)


class GeneralizedGaussian(Mechanism):
    """Additive noise with density p/(2sΓ(1/p))·exp(−|y/s|^p), ``scale`` s > 0, ``power`` p in [1, 2].

    ``GeneralizedGaussian(b, 1.0)`` is ``Laplace(b)``; ``GeneralizedGaussian(s, 2.0)`` is
    ``Gaussian(s / sqrt(2))``.
    """

    family = "generalized_gaussian"

    def __init__(self, scale: float, power: float) -> None:
        self.scale = require_positive("scale", scale)
        power = require_positive("power", power)
        if not POWER_RANGE[0] <= power <= POWER_RANGE[1]:
            raise ValueError(f"power must lie in [{POWER_RANGE[0]:g}, {POWER_RANGE[1]:g}], got {power}")
        self.power = power
        self.kernel_params = np.array([self.scale, self.power])

    def _moment(self, r: float) -> float:
        """E|Y|^r = s^r Γ((r+1)/p)/Γ(1/p)."""
        p = self.power
        return self.scale**r * math.exp(math.lgamma((r + 1.0) / p) - math.lgamma(1.0 / p))

    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        magnitude = self.scale * rng.gamma(1.0 / self.power, 1.0, size) ** (1.0 / self.power)
        return np.where(rng.random(size) < 0.5, -magnitude, magnitude)

    def logpdf(self, y: ArrayLike) -> np.ndarray:
        return GK.log_normalizer(self.kernel_params) - np.abs(np.asarray(y, dtype=float) / self.scale) ** self.power

    def log_tail(self, s: ArrayLike) -> np.ndarray:
        """log P(|Y| > s) = log Q(1/p, (s/scale)^p), accurate far into the tail."""
        s = np.abs(np.asarray(s, dtype=float))
        return np.array([GK.log_tail(float(v), self.kernel_params) for v in s.ravel()]).reshape(s.shape)

    def cdf(self, y: ArrayLike) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        return cdf_from_log_tail(y, self.log_tail(y))

    def mean_abs(self) -> float:
        return self._moment(1.0)

    def variance(self) -> float:
        return self._moment(2.0)

    def usefulness(self, gamma: float) -> float:
        gamma = require_positive("gamma", gamma)
        log_z = self.power * (math.log(gamma) - math.log(self.scale))
        return float(special.gammainc(1.0 / self.power, math.exp(log_z) if log_z < 700.0 else math.inf))

    def fisher_information(self) -> float:
        p = self.power
        return p * p * math.exp(math.lgamma(2.0 - 1.0 / p) - math.lgamma(1.0 / p)) / self.scale**2

    def canonical(self) -> Mechanism:
        """``Laplace(s)`` at p = 1, ``Gaussian(s/√2)`` at p = 2 (the same laws), else itself."""
        if self.power == 1.0:
            from lmodp.mechanisms.laplace import Laplace

            return Laplace(self.scale)
        if self.power == 2.0:
            from lmodp.mechanisms.gaussian import Gaussian

            return Gaussian(self.scale / math.sqrt(2.0))
        return self

    def scaled(self, factor: float) -> "GeneralizedGaussian":
        return GeneralizedGaussian(self.scale * require_positive("factor", factor), self.power)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "scale": self.scale, "power": self.power}


register_family(
    GeneralizedGaussian,
    rdp_law="lmodp.accounting.rdp.noise_laws:GeneralizedGaussianLaw",
    pld_model="lmodp.accounting.pld.hockey_stick:generalized_gaussian_noise_model",
    torch_sampler="lmodp.train.noise:GeneralizedGaussianSampler.of",
    # searched over the power p in [1, 2] (lmodp.search.power), each p calibrated
    search=SearchSpace(GeneralizedGaussian(1.0, 1.5), strategy="lmodp.search.power:search_power", label="generalized Gaussian"),
    describe=lambda m, num: f"generalized Gaussian s={num(m.scale)}, p={num(m.power)}",
)
