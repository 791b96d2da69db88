"""User-defined noise laws for the tests: registered SymmetricDensity subclasses, as a user writes them."""

from __future__ import annotations

import numpy as np

from lmodp import SymmetricDensity, register_mechanism
from lmodp.mechanisms import LaplaceScaleMixture


@register_mechanism
class Logistic(SymmetricDensity):
    """The logistic law: log f(y) = −|y|/s − 2 log(1 + e^{−|y|/s}) + const; |d/dy log f| < 1/s."""

    family = "test_logistic"

    def __init__(self, scale: float) -> None:
        self.scale = float(scale)

    def log_density(self, y):
        z = np.abs(y) / self.scale
        return -z - 2.0 * np.log1p(np.exp(-z))

    def score_bound(self):
        return 1.0 / self.scale

    def torch_sample(self, shape, *, generator):
        import torch

        u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
        return (self.scale * torch.log(u / (1 - u))).float()

    def scaled(self, factor):
        return Logistic(self.scale * factor)

    def to_dict(self):
        return {"family": self.family, "scale": self.scale}


@register_mechanism
class TwoRateLaplace(LaplaceScaleMixture):
    """A mixture declared the legacy way, by the attributes omega_atoms and omega_weights."""

    family = "test_two_rate_laplace"

    def __init__(self, rate_a: float, rate_b: float) -> None:
        self.omega_atoms = np.array([rate_a, rate_b])
        self.omega_weights = np.array([0.25, 0.75])

    def scaled(self, factor):
        return TwoRateLaplace(*(self.omega_atoms / factor))

    def to_dict(self):
        return {"family": self.family, "rate_a": float(self.omega_atoms[0]), "rate_b": float(self.omega_atoms[1])}
