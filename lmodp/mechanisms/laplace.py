"""The Laplace family Laplace(0, b): the Laplace scale mixture whose ω is the point mass 1/b (its
accounting is the mixtures', :mod:`lmodp.mechanisms.mixture`; its registration at the end)."""

from __future__ import annotations

from typing import Any

import numpy as np

from lmodp._validation import require_positive
from lmodp.mechanisms.family import SearchSpace
from lmodp.mechanisms.mixing import FiniteMixing
from lmodp.mechanisms.mixture import LaplaceScaleMixture
from lmodp.mechanisms.registry import register_family


class Laplace(LaplaceScaleMixture):
    """Additive Laplace noise with scale ``scale`` (density e^{-|y|/b} / 2b).

    E|Y| = b, Var Y = 2b^2, Fisher information 1/b^2, P(|Y| <= g) = 1 - e^{-g/b}.
    """

    family = "laplace"

    def __init__(self, scale: float) -> None:
        self.scale = require_positive("scale", scale)
        self._mixing = FiniteMixing((1.0 / self.scale,), (1.0,))

    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return rng.laplace(0.0, self.scale, size)

    def mean_abs(self) -> float:
        return self.scale

    def variance(self) -> float:
        return 2.0 * self.scale**2

    def fisher_information(self) -> float:
        return 1.0 / self.scale**2

    def scaled(self, factor: float) -> "Laplace":
        return Laplace(self.scale * require_positive("factor", factor))

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "scale": self.scale}


register_family(
    Laplace,
    torch_sampler="lmodp.train.noise:LaplaceSampler.of",
    search=SearchSpace(Laplace(1.0), label="Laplace"),
    describe=lambda m, num: f"Laplace b={num(m.scale)}",
)
