r"""Torch samplers for lmodp's noise mechanisms, drawing on the gradient's device.

Each sampler draws i.i.d. noise of a requested shape as float32 with a ``torch.Generator`` that
lives on the target device (so a CUDA gradient gets CUDA noise, with no host round trip):

* :class:`GaussianSampler`: σ·N(0, 1) (``torch.randn``).
* :class:`LaplaceSampler`: b·Laplace(0, 1), drawn by inversion of one uniform.
* :class:`ScaleMixtureSampler` (LMO mixing law): per coordinate ω = a1·θ·G_k + a3·E_λ + a4·U[lo, hi]
  with G_k ~ Gamma(shape k, scale 1), E_λ ~ Exponential(RATE λ) (mean 1/λ), U uniform, then
  Y = L/ω ~ Laplace(0, 1/ω) with L ~ Laplace(0, 1). Uniforms are float32 on a 2⁻²⁴ grid whose
  point 0 is moved to 2⁻²⁵ (the middle of its cell), so the Exponential and integer-shape Gamma
  draws are never 0 and never infinite (Yang et al. 2024, arXiv 2405.18776, Sec. 4).
* :class:`FiniteMixtureSampler` (finite mixing law, e.g. :class:`~lmodp.mechanisms.LaplaceMixture`):
  ω = ω_i with probability w_i (inversion of one uniform against the cumulative weights), Y = L/ω.
* :class:`GeneralizedGaussianSampler`: |Y| = s·W^{1/p} with W ~ Gamma(1/p, 1), a random sign.
* :class:`DensitySampler` (a user's :class:`~lmodp.mechanisms.SymmetricDensity`): its own
  ``torch_sample``.

Every mixture sampler reads the mechanism's mixing law (:mod:`lmodp.mechanisms.mixing`), the
object its accountant reads, so the sampled law is the accounted law.

``torch_sampler(mechanism)`` builds the sampler that the mechanism's family declares (its
``torch_sampler`` facet, :mod:`lmodp.mechanisms.family`) for any registered, accountable
mechanism (:func:`lmodp.mechanisms.require_registered`): one registration
(:func:`lmodp.register_family`) gives a family its accountants and its sampler. A faster
sampler of the same law may replace the declared one with :func:`register_torch_sampler`,
which refuses a type that no accountant accepts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Sequence

import numpy as np
import torch

from lmodp.mechanisms import (
    FiniteMixing,
    Gaussian,
    GeneralizedGaussian,
    Laplace,
    LaplaceScaleMixture,
    Mechanism,
    SymmetricDensity,
    family_of,
    register_family,
    registered_families,
    require_registered,
)
from lmodp.mechanisms.registry import hook

Shape = Sequence[int] | torch.Size

_MAX_UNIFORM_PRODUCT = 4


NOISE_CHUNK = 1 << 20


class TorchNoiseSampler(ABC):
    """Draws i.i.d. noise with the law of one lmodp mechanism."""

    @abstractmethod
    def sample(self, shape: Shape, *, generator: torch.Generator) -> torch.Tensor:
        """float32 noise of ``shape`` on ``generator.device``."""

    def add_scaled_(self, out: torch.Tensor, scale: float, *, generator: torch.Generator) -> torch.Tensor:
        """``out += scale · Y`` in place, Y i.i.d. noise of ``out``'s shape, drawn in chunks of
        :data:`NOISE_CHUNK` coordinates (in ``out``'s flattened order), so that the sampler's
        temporaries never exceed a chunk whatever the size of ``out``."""
        flat = out.view(-1)
        for start in range(0, flat.numel(), NOISE_CHUNK):
            part = flat[start : start + NOISE_CHUNK]
            noise = self.sample((part.numel(),), generator=generator)
            part.add_(noise.to(device=part.device, dtype=part.dtype), alpha=scale)
        return out


def _uniform(shape: Shape, generator: torch.Generator) -> torch.Tensor:
    """float32 U[0, 1) on the generator's device (largest value 1 − 2⁻²⁴)."""
    return torch.rand(tuple(shape), generator=generator, device=generator.device, dtype=torch.float32)


def _open_uniform(shape: Shape, generator: torch.Generator) -> torch.Tensor:
    """float32 uniform on (0, 1): torch's grid {0, 2⁻²⁴, …, 1 − 2⁻²⁴} with the point 0 moved to
    2⁻²⁵, the middle of its cell, so that −log U and every ω built from it are finite and > 0."""
    return _uniform(shape, generator).clamp_(min=2.0**-25)


def _log_uniform(shape: Shape, generator: torch.Generator) -> torch.Tensor:
    """log U = −Exponential(1) by inversion, in [−17.4, −6e−8]: never 0, never infinite.

    The cell U < 2⁻²⁴ (E > 16.6) is represented by E = 25·log 2 ≈ 17.3, its conditional median.
    """
    return _open_uniform(shape, generator).log_()


def _unit_laplace(shape: Shape, generator: torch.Generator) -> torch.Tensor:
    """Laplace(0, 1) from one uniform by inversion: V = 2U − (1 − 2⁻²⁴), Y = sign(V)·|log(1 − |V|)|.

    For float32 U ∈ {0, 2⁻²⁴, …, 1 − 2⁻²⁴}, V runs over the odd multiples of 2⁻²⁴ in (−1, 1),
    a grid symmetric about 0 (so Y is exactly symmetric) on which |V| < 1 (so Y is finite).
    ``copysign`` takes the magnitude of its first argument, so log(1 − |V|) <= 0 needs no negation.
    """
    v = _uniform(shape, generator).mul_(2.0).sub_(1.0 - 2.0**-24)
    return v.abs().neg_().log1p_().copysign_(v)


class GaussianSampler(TorchNoiseSampler):
    """N(0, σ²)."""

    def __init__(self, sigma: float) -> None:
        self.sigma = float(sigma)

    @classmethod
    def of(cls, mechanism: Gaussian) -> "GaussianSampler":
        return cls(mechanism.sigma)

    def sample(self, shape: Shape, *, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=generator, device=generator.device).mul_(self.sigma)


class LaplaceSampler(TorchNoiseSampler):
    """Laplace(0, b)."""

    def __init__(self, scale: float) -> None:
        self.scale = float(scale)

    @classmethod
    def of(cls, mechanism: Laplace) -> "LaplaceSampler":
        return cls(mechanism.scale)

    def sample(self, shape: Shape, *, generator: torch.Generator) -> torch.Tensor:
        return _unit_laplace(shape, generator).mul_(self.scale)


class ScaleMixtureSampler(TorchNoiseSampler):
    """Laplace(0, 1/ω) with ω = a1·Gamma(k, θ) + a3·Exponential(rate λ) + a4·Uniform[lo, hi]."""

    def __init__(self, mechanism: LaplaceScaleMixture) -> None:
        parts = mechanism.mixing.components
        self.gamma_weight, self.gamma_shape, self.gamma_scale = parts.get("gamma", (0.0, 1.0, 1.0))
        self.exponential_weight, self.exponential_rate = parts.get("exponential", (0.0, 1.0))
        self.uniform_weight, self.uniform_low, self.uniform_high = parts.get("uniform", (0.0, 0.0, 1.0))

    def _log_gamma_complement(self, shape: Shape, generator: torch.Generator) -> torch.Tensor:
        """−G for G ~ Gamma(shape k, scale 1). Integer k <= 4: log Π_{i<=k} U_i over open uniforms,
        minus a sum of k Exponential(1) (the product is >= 2⁻¹⁰⁰, a normal float32: no underflow,
        and < 1: G > 0); otherwise torch's Gamma sampler."""
        k = self.gamma_shape
        if k.is_integer() and k <= _MAX_UNIFORM_PRODUCT:
            product = _open_uniform(shape, generator)
            for _ in range(int(k) - 1):
                product.mul_(_open_uniform(shape, generator))
            return product.log_()
        concentration = torch.full(tuple(shape), k, dtype=torch.float32, device=generator.device)
        return torch._standard_gamma(concentration, generator=generator).neg_()

    def sample_omega(self, shape: Shape, *, generator: torch.Generator) -> torch.Tensor:
        """The inverse scale ω (float32), built in place to limit memory passes.

        ω > 0 always for integer Gamma shapes <= 4, the Exponential and the Uniform; torch's Gamma
        sampler (other shapes) can underflow to 0 for k < 1, which makes the noise infinite
        (:class:`~lmodp.train.optimizer.DPOptimizer` then raises).
        """
        omega = torch.zeros(tuple(shape), dtype=torch.float32, device=generator.device)
        if self.gamma_weight > 0.0:
            omega = self._log_gamma_complement(shape, generator).mul_(-self.gamma_weight * self.gamma_scale)
        if self.exponential_weight > 0.0:
            omega.add_(_log_uniform(shape, generator), alpha=-self.exponential_weight / self.exponential_rate)
        if self.uniform_weight > 0.0:
            if self.uniform_high > self.uniform_low:
                width = self.uniform_high - self.uniform_low
                omega.add_(_open_uniform(shape, generator), alpha=self.uniform_weight * width)
            omega.add_(self.uniform_weight * self.uniform_low)
        return omega

    def sample(self, shape: Shape, *, generator: torch.Generator) -> torch.Tensor:
        return _unit_laplace(shape, generator).div_(self.sample_omega(shape, generator=generator))


class FiniteMixtureSampler(TorchNoiseSampler):
    """Laplace(0, 1/ω) with ω = ω_i with probability w_i."""

    def __init__(self, law: FiniteMixing) -> None:
        self.atoms = [float(a) for a in law.atoms]
        self.cumulative = [float(c) for c in np.cumsum(law.weights)[:-1]]

    def sample(self, shape: Shape, *, generator: torch.Generator) -> torch.Tensor:
        """One uniform picks the atom (ω_i where it falls between the cumulative weights), a second
        draws L; Y = L/ω."""
        noise = _unit_laplace(shape, generator)
        if not self.cumulative:
            return noise.div_(self.atoms[0])
        u = _uniform(shape, generator)
        edges = torch.tensor(self.cumulative, dtype=torch.float32, device=generator.device)
        atoms = torch.tensor(self.atoms, dtype=torch.float32, device=generator.device)
        return noise.div_(atoms[torch.bucketize(u, edges, right=True)])


class GeneralizedGaussianSampler(TorchNoiseSampler):
    """Density ∝ exp(−|y/s|^p): |Y| = s·W^{1/p}, W ~ Gamma(1/p, 1), with a random sign."""

    def __init__(self, scale: float, power: float) -> None:
        self.scale = float(scale)
        self.power = float(power)

    @classmethod
    def of(cls, mechanism: GeneralizedGaussian) -> "GeneralizedGaussianSampler":
        return cls(mechanism.scale, mechanism.power)

    def sample(self, shape: Shape, *, generator: torch.Generator) -> torch.Tensor:
        concentration = torch.full(tuple(shape), 1.0 / self.power, dtype=torch.float32, device=generator.device)
        magnitude = torch._standard_gamma(concentration, generator=generator).pow_(1.0 / self.power).mul_(self.scale)
        sign = _uniform(shape, generator).lt_(0.5).mul_(2.0).sub_(1.0)
        return magnitude.mul_(sign)


class DensitySampler(TorchNoiseSampler):
    """A user density's own ``torch_sample`` (float32 on the generator's device)."""

    def __init__(self, mechanism: SymmetricDensity) -> None:
        self.mechanism = mechanism

    def sample(self, shape: Shape, *, generator: torch.Generator) -> torch.Tensor:
        out = self.mechanism.torch_sample(tuple(shape), generator=generator)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(shape):
            raise ValueError(f"{type(self.mechanism).__name__}.torch_sample must return a tensor of shape {tuple(shape)}")
        return out.to(device=generator.device, dtype=torch.float32)


SamplerFactory = Callable[[Mechanism], TorchNoiseSampler]


def mixture_sampler(mechanism: LaplaceScaleMixture) -> TorchNoiseSampler:
    """The sampler of a Laplace scale mixture's mixing law: finite (ω takes finitely many
    values) or LMO."""
    law = mechanism.mixing
    if isinstance(law, FiniteMixing):
        return FiniteMixtureSampler(law)
    return ScaleMixtureSampler(mechanism)


def register_torch_sampler(mechanism_type: type, factory: SamplerFactory) -> None:
    """Replace the sampler of ``mechanism_type`` (and of its subclasses that declare none of their
    own) by ``factory`` (a faster sampler of the same law): its family's ``torch_sampler`` facet
    (:func:`lmodp.register_family`). Refused with ``ValueError`` unless ``mechanism_type`` is a
    registered family whose law the accountants accept: a sampler alone would let training add
    noise that no accountant accounts. A new family is added with :func:`lmodp.register_family`,
    which gives it a sampler and its accountants at once."""
    if not (isinstance(mechanism_type, type) and issubclass(mechanism_type, Mechanism)):
        raise ValueError(f"mechanism_type must be a Mechanism subclass, got {mechanism_type!r}")
    if not family_of(mechanism_type).accountable or mechanism_type.family not in registered_families():
        raise ValueError(
            f"{mechanism_type.__name__} is not a registered family that the accountants accept: register it first "
            "with lmodp.register_family (a SymmetricDensity brings its own torch_sample, so no sampler "
            "needs registering)"
        )
    register_family(mechanism_type, torch_sampler=factory)


def torch_sampler(mechanism: Mechanism) -> TorchNoiseSampler:
    """The torch sampler that ``mechanism``'s family declares (:func:`register_torch_sampler` may
    have replaced it). ``ValueError`` for a mechanism that is not registered or not accountable
    (:func:`lmodp.mechanisms.require_registered`): nothing is sampled that no accountant accounts."""
    try:
        require_registered(mechanism)
    except ValueError as err:
        raise ValueError(f"mechanism {type(mechanism).__name__} has no torch sampler: {err}") from None
    return hook(mechanism, "torch_sampler")(mechanism)
