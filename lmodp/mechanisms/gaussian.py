"""The Gaussian family N(0, sigma^2): the mechanism and its registration (closed forms throughout)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from lmodp._validation import require_positive
from lmodp.mechanisms.base import Mechanism
from lmodp.mechanisms.family import SearchSpace
from lmodp.mechanisms.registry import register_family


class Gaussian(Mechanism):
    """Additive Gaussian noise with standard deviation ``sigma``.

    E|Y| = sigma·sqrt(2/pi), Var Y = sigma^2, P(|Y| <= g) = erf(g / (sigma·sqrt 2)),
    Fisher information 1/sigma^2.
    """

    family = "gaussian"

    def __init__(self, sigma: float) -> None:
        self.sigma = require_positive("sigma", sigma)

    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return rng.normal(0.0, self.sigma, size)

    def logpdf(self, y: ArrayLike) -> np.ndarray:
        z = np.asarray(y, dtype=float) / self.sigma
        return -0.5 * z * z - math.log(self.sigma) - 0.5 * math.log(2.0 * math.pi)

    def cdf(self, y: ArrayLike) -> np.ndarray:
        return special.ndtr(np.asarray(y, dtype=float) / self.sigma)

    def mean_abs(self) -> float:
        return self.sigma * math.sqrt(2.0 / math.pi)

    def variance(self) -> float:
        return self.sigma**2

    def usefulness(self, gamma: float) -> float:
        gamma = require_positive("gamma", gamma)
        return float(special.erf(gamma / (self.sigma * math.sqrt(2.0))))

    def fisher_information(self) -> float:
        return 1.0 / self.sigma**2

    def scaled(self, factor: float) -> "Gaussian":
        return Gaussian(self.sigma * require_positive("factor", factor))

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "sigma": self.sigma}


register_family(
    Gaussian,
    rdp_law="lmodp.accounting.rdp.gaussian:GaussianLaw",
    pld_model="lmodp.accounting.pld.hockey_stick:gaussian_noise_model",
    pld_closed_form=True,  # its loss is linear: the level sets need no root-finding
    # i.i.d. Gaussian noise is rotation invariant: the l2 pair is the scalar one, so the PLD is tight in both
    accountants={"scalar": ("pld", "rdp"), "l2": ("pld", "rdp")},
    torch_sampler="lmodp.train.noise:GaussianSampler.of",
    search=SearchSpace(Gaussian(1.0), label="Gaussian"),
    describe=lambda m, num: f"Gaussian σ={num(m.sigma)}",
)
