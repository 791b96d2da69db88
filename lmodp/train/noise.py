r"""Torch samplers for lmodp's noise mechanisms, drawing on the gradient's device.

Each sampler draws i.i.d. noise of a requested shape as float32 with a ``torch.Generator`` that
lives on the target device (so a CUDA gradient gets CUDA noise, with no host round trip):

* :class:`GaussianSampler`: σ·N(0, 1) (``torch.randn``).
* :class:`LaplaceSampler`: b·Laplace(0, 1), drawn by inversion of one uniform.
* :class:`ScaleMixtureSampler` (LMO and every :class:`~lmodp.mechanisms.mixture.LaplaceScaleMixture`):
  per coordinate ω = a1·θ·G_k + a3·E_λ + a4·U[lo, hi] with G_k ~ Gamma(shape k, scale 1),
  E_λ ~ Exponential(RATE λ) (mean 1/λ), U uniform, then Y = L/ω ~ Laplace(0, 1/ω) with L ~ Laplace(0, 1).
  Uniforms are float32 on a 2⁻²⁴ grid whose point 0 is moved to 2⁻²⁵ (the middle of its cell), so
  the Exponential and integer-shape Gamma draws are never 0 and never infinite.
  (Yang et al. 2024, arXiv 2405.18776, Sec. 4). The parameters are read from the mechanism's
  packed vector ``[a1, k, θ, a3, λ, a4, lo, hi]``, the same one its accountant reads, so the
  sampled law is the accounted law.

``torch_sampler(mechanism)`` picks the sampler; other mechanism types raise ``ValueError`` unless
a sampler was registered for them with :func:`register_torch_sampler`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Sequence

import torch

from lmodp.mechanisms import Gaussian, Laplace, Mechanism
from lmodp.mechanisms import _mixture_kernels as K
from lmodp.mechanisms.mixture import LaplaceScaleMixture

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

    def sample(self, shape: Shape, *, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=generator, device=generator.device).mul_(self.sigma)


class LaplaceSampler(TorchNoiseSampler):
    """Laplace(0, b)."""

    def __init__(self, scale: float) -> None:
        self.scale = float(scale)

    def sample(self, shape: Shape, *, generator: torch.Generator) -> torch.Tensor:
        return _unit_laplace(shape, generator).mul_(self.scale)


class ScaleMixtureSampler(TorchNoiseSampler):
    """Laplace(0, 1/ω) with ω = a1·Gamma(k, θ) + a3·Exponential(rate λ) + a4·Uniform[lo, hi]."""

    def __init__(self, mechanism: LaplaceScaleMixture) -> None:
        p = [float(v) for v in mechanism.params]
        self.gamma_weight, self.gamma_shape, self.gamma_scale = p[K.A1], p[K.K], p[K.THETA]
        self.exponential_weight, self.exponential_rate = p[K.A3], p[K.LAM]
        self.uniform_weight, self.uniform_low, self.uniform_high = p[K.A4], p[K.LO], p[K.HI]

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


SamplerFactory = Callable[[Mechanism], TorchNoiseSampler]

_REGISTRY: dict[type, SamplerFactory] = {
    Gaussian: lambda m: GaussianSampler(m.sigma),  # type: ignore[attr-defined]
    Laplace: lambda m: LaplaceSampler(m.scale),  # type: ignore[attr-defined]
    LaplaceScaleMixture: lambda m: ScaleMixtureSampler(m),  # type: ignore[arg-type]
}


def register_torch_sampler(mechanism_type: type, factory: SamplerFactory) -> None:
    """Teach :func:`torch_sampler` to sample ``mechanism_type`` (and its subclasses)."""
    if not (isinstance(mechanism_type, type) and issubclass(mechanism_type, Mechanism)):
        raise ValueError(f"mechanism_type must be a Mechanism subclass, got {mechanism_type!r}")
    _REGISTRY[mechanism_type] = factory


def torch_sampler(mechanism: Mechanism) -> TorchNoiseSampler:
    """The torch sampler for ``mechanism`` (most specific registered class wins)."""
    for cls in type(mechanism).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls](mechanism)
    raise ValueError(
        f"mechanism {type(mechanism).__name__} has no torch sampler: lmodp.train can add Gaussian, Laplace "
        "and LMO (any LaplaceScaleMixture) noise; for another mechanism call "
        "lmodp.train.noise.register_torch_sampler(YourMechanism, factory) with a factory returning a "
        "TorchNoiseSampler"
    )
