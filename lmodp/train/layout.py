r"""How one logical DP-SGD step is spread over processes: the parallel layout of a run.

Every layout releases the same thing per logical step, the one-process DP-SGD gradient

.. math:: \tilde g = \frac{1}{qN}\Big(\sum_{i\in B} \mathrm{clip}_C(g_i) + C\,Y\Big),

with B the Poisson sample of the whole data set and each coordinate of Y drawn exactly once from
the mechanism; they differ in where each piece is computed:

* :class:`SingleProcess` (this module): everything here.
* :class:`~lmodp.train.distributed.Replicated`: every rank holds the whole model and clips its
  part of B; rank 0 adds the noise and one all-reduce sums the clipped sums.
* :class:`~lmodp.train.fsdp.Sharded`: the model is ``fully_shard``-ed (FSDP2); every rank clips
  its part of B, the clipped sums are reduce-scattered onto the parameters' shards, and each rank
  adds the noise of the coordinates it owns.

A layout makes, for :class:`~lmodp.train.privacy_engine.PrivacyEngine`, the pieces whose
behaviour depends on it: the Poisson sampler (this rank's part), the privacy ledger (collective
or not), the noise generator, the clipped-sum accumulator, the number of forward passes per
step, the step's statistics, the noisy release, and checkpoints.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from lmodp.train.ledger import PrivacyLedger
from lmodp.train.checkpoint import load_checkpoint, save_checkpoint
from lmodp.train.clipping import ClippedGradientSum
from lmodp.train.noise import TorchNoiseSampler
from lmodp.train.batches import Data
from lmodp.train.sampling import DPDataLoader, PoissonSampler

logger = logging.getLogger(__name__)
#: Where the notice that a known seed fixes the sampling or the noise is logged (its own logger,
#: so that a caller who derives the seeds itself, such as the training audit, can silence it alone).
seed_notices = logging.getLogger("lmodp.train.seeds")


def seeded_generator(
    generator: torch.Generator, seed: int | None, *, keyword: str, consequence: str, stream: tuple[int, ...] = ()
) -> torch.Generator:
    """Seed ``generator`` from the operating system's entropy (64 bits from :func:`secrets.randbits`)
    when ``seed`` is None; otherwise from ``seed`` (from :func:`derived_seed` of ``seed`` and
    ``stream`` when ``stream`` is not empty), with a warning that says what a known seed costs."""
    if seed is None:
        generator.manual_seed(secrets.randbits(64))
        return generator
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ValueError(f"{keyword} must be an integer or None, got {seed!r}")
    seed_notices.warning(
        "%s=%d fixes %s: the reported epsilon holds only against someone who does not know the seed. Leave "
        "%s=None (secret) for a run you release", keyword, seed, consequence, keyword,
    )
    generator.manual_seed(derived_seed(int(seed), *stream) if stream else int(seed))
    return generator


def local_part(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's part of ``tensor``: its local shard for a ``DTensor``, else the tensor itself."""
    to_local = getattr(tensor, "to_local", None)
    return tensor if to_local is None else to_local()


def derived_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed from ``seed`` and ``parts`` (SHA-256), distinct for distinct parts."""
    digest = hashlib.sha256(":".join(str(int(x)) for x in (seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def sampling_generator(seed: int | None) -> torch.Generator:
    """The CPU generator of the Poisson batch sampling: secret (OS entropy) unless ``seed`` is given.

    Amplification by subsampling, which the accountant credits, assumes nobody knows which
    examples each batch holds: with a known seed an observer knows the steps at which any given
    example would be used, so a warning is logged."""
    return seeded_generator(
        torch.Generator(), seed, keyword="sampling_seed",
        consequence="the batch sampling (amplification by subsampling assumes it is secret)",
    )


@dataclass(frozen=True)
class NoisyRelease:
    """What one step does to the clipped sum S before it is released: S + C·Y, Y i.i.d. from the
    mechanism (``sampler``, drawn with ``generator`` on the sum's device,
    :meth:`~lmodp.train.noise.TorchNoiseSampler.add_scaled_`), then divided by q·N."""

    sampler: TorchNoiseSampler
    max_grad_norm: float
    generator: torch.Generator
    expected_batch_size: float

    def add_noise_(self, summed: torch.Tensor) -> None:
        """``summed += C·Y`` in place."""
        self.sampler.add_scaled_(summed, self.max_grad_norm, generator=self.generator)

    def mean_(self, summed: torch.Tensor) -> None:
        """``summed /= q·N`` in place."""
        summed.div_(self.expected_batch_size)


class SingleProcess:
    """The whole run in this process (see the module docstring): the base of the other layouts."""

    name = "single process"
    rank = 0
    world_size = 1

    @property
    def is_main(self) -> bool:
        """True on the rank that writes checkpoints and shows progress (always, here)."""
        return self.rank == 0

    def prepare(self, model: nn.Module, settings: Mapping[str, float]) -> None:
        """Check (and, in a parallel layout, align across ranks) the model before the run."""

    def shared_sampling_generator(self, generator: torch.Generator) -> torch.Generator:
        """The sampling generator every rank draws from (rank 0's state on every rank)."""
        return generator

    def data_loader(self, data: Data, *, sample_rate: float, steps: int, generator: torch.Generator) -> DPDataLoader:
        """This rank's part of ``steps`` Poisson-sampled logical batches of ``data``."""
        return DPDataLoader(
            data, sample_rate=sample_rate, steps=steps, generator=generator, rank=self.rank, world_size=self.world_size
        )

    def poisson_sampler(self, num_examples: int, *, sample_rate: float, steps: int, generator: torch.Generator) -> PoissonSampler:
        """This rank's part of ``steps`` Poisson samples of ``range(num_examples)``."""
        return PoissonSampler(
            num_examples, sample_rate=sample_rate, steps=steps, generator=generator, rank=self.rank,
            world_size=self.world_size,
        )

    def ledger(self, accountant: Any, **settings: Any) -> PrivacyLedger:
        """The privacy ledger of the run (see :class:`~lmodp.train.ledger.PrivacyLedger`)."""
        return PrivacyLedger(accountant, **settings)

    def noise_generator(self, device: torch.device, noise_seed: int | None, *, steps_done: int = 0) -> torch.Generator:
        """The generator of the privacy noise on ``device``: secret (OS entropy) unless ``noise_seed``
        is given, in which case a warning says the run is private only against someone who does not
        know the seed (the noise would be a known function of the data). A run resumed after
        ``steps_done`` > 0 steps without its generator's saved state seeds it from (``noise_seed``,
        rank, ``steps_done``), so that no noise is drawn twice."""
        return seeded_generator(
            torch.Generator(device=device), noise_seed, keyword="noise_seed", consequence="the privacy noise",
            stream=self.noise_stream(steps_done),
        )

    def noise_stream(self, steps_done: int) -> tuple[int, ...]:
        """What a given ``noise_seed`` is combined with to seed this rank's noise generator: nothing at
        the start of a run (rank 0 draws the noise the one-process run draws), (rank,
        ``steps_done``) in a resumed run."""
        return () if steps_done == 0 else (self.rank, steps_done)

    def gradient_sums(self, parameters: Mapping[str, nn.Parameter], *, max_grad_norm: float) -> ClippedGradientSum:
        """The running clipped sum of a logical batch (the clipping engine fills it)."""
        return ClippedGradientSum(parameters, max_grad_norm=max_grad_norm)

    def passes(self, local_passes: int) -> int:
        """The forward passes this rank runs for a logical batch that needs ``local_passes`` here."""
        return local_passes

    def filler(self) -> Mapping[str, torch.Tensor] | None:
        """An example for the zero-weight passes of :meth:`passes` beyond this rank's own (none here)."""
        return None

    def batch_statistics(self, sums: ClippedGradientSum) -> tuple[float | None, int, float | None]:
        """The logical batch's mean loss, size and clipped share (see :class:`~lmodp.train.optimizer.StepOutput`)."""
        return sums.mean_loss(), sums.examples, sums.clipped_fraction()

    def noisy_means(
        self,
        sums: Mapping[str, torch.Tensor],
        *,
        parameters: Mapping[str, nn.Parameter],
        release: NoisyRelease,
    ) -> dict[str, torch.Tensor]:
        """(clipped sum + C·Y) / (q·N) in place of each parameter's sum (see :class:`NoisyRelease`)."""
        for summed in sums.values():
            release.add_noise_(summed)
            release.mean_(summed)
        return dict(sums)

    def all_finite(self, tensors: Iterable[torch.Tensor]) -> bool:
        """Whether every entry of ``tensors`` (the released gradients) is finite."""
        return bool(torch.stack([torch.isfinite(local_part(t)).all() for t in tensors]).all())

    def save_checkpoint(self, directory: str | os.PathLike[str], *, model: nn.Module, optimizer: Any, state: dict[str, Any]) -> None:
        """Write the run's checkpoint: ``model`` and ``optimizer`` (a DP optimizer, or a torch one)
        with ``state`` (schedule, sampler, history)."""
        save_checkpoint(directory, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), **state})

    def load_checkpoint(self, directory: str | os.PathLike[str], *, model: nn.Module, optimizer: Any) -> dict[str, Any] | None:
        """Restore ``model`` and ``optimizer`` from the checkpoint in ``directory`` and return the
        rest of its state, or ``None`` when there is none."""
        from lmodp.train.fsdp import is_sharded_checkpoint, load_sharded_checkpoint

        if is_sharded_checkpoint(directory):
            return load_sharded_checkpoint(directory, model=model, optimizer=optimizer, layout=self)
        state = load_checkpoint(directory)
        if state is None:
            return None
        model.load_state_dict(state.pop("model"))
        optimizer.load_state_dict(state.pop("optimizer"))
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, world_size={self.world_size})"
