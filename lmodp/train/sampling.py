"""Poisson sampling of logical batches (the sampling the subsampled accountants assume).

At every step each of the N examples joins the batch independently with probability q, so the
batch size is Binomial(N, q): variable, and sometimes 0. An empty batch is still a step (it gets
noise and is accounted); skipping it would change the privacy analysis. Physical micro-batches
are cut later by the clipping engine.

Data sets and batches: :mod:`lmodp.train.batches`.
"""

from __future__ import annotations

import copy
from typing import Iterator

import torch

from lmodp._validation import require_sample_rate, require_steps
from lmodp.train.batches import Data, dataset_length, gather

class PoissonSampler:
    """Index tensors of ``steps`` Poisson-sampled logical batches: i ∈ batch iff U_i < q.

    The one Poisson sampler of lmodp. In a run spread over ``world_size`` processes every rank
    draws the same N uniforms from a generator in the same state (rank 0's, broadcast at start-up)
    and keeps its own part of the logical batch, the indices i ≡ ``rank`` (mod ``world_size``):
    each example of the batch is on exactly one rank and the union of the parts is the
    one-process sample. :meth:`micro_batch_lists` splits each part into index lists for a
    ``DataLoader``'s ``batch_sampler``.
    """

    def __init__(
        self,
        num_examples: int,
        *,
        sample_rate: float,
        steps: int,
        generator: torch.Generator,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if require_steps("num_examples", num_examples) < 1:
            raise ValueError("num_examples must be >= 1")
        if require_steps("world_size", world_size) < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size) with world_size >= 1, got rank={rank}, world_size={world_size}")
        self.num_examples = int(num_examples)
        self.sample_rate = require_sample_rate("sample_rate", sample_rate)
        self.steps = require_steps("steps", steps)
        self.generator = generator
        self.rank = int(rank)
        self.world_size = int(world_size)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[torch.Tensor]:
        for _ in range(self.steps):
            u = torch.rand(self.num_examples, generator=self.generator, dtype=torch.float64)
            indices = torch.nonzero(u < self.sample_rate).flatten()
            yield indices if self.world_size == 1 else indices[indices % self.world_size == self.rank]

    def micro_batch_lists(self, micro_batches: int) -> "MicroBatchLists":
        """Each logical batch (this rank's part) split in order into ``micro_batches`` index lists."""
        return MicroBatchLists(self, micro_batches)


class MicroBatchLists:
    """Index lists for a ``DataLoader``'s ``batch_sampler``: each logical batch of a
    :class:`PoissonSampler` split in order into ``micro_batches`` near-equal, possibly empty,
    lists. Every iteration draws fresh samples from the sampler's generator."""

    def __init__(self, sampler: PoissonSampler, micro_batches: int) -> None:
        if require_steps("micro_batches", micro_batches) < 1:
            raise ValueError(f"micro_batches must be >= 1, got {micro_batches}")
        self.sampler = sampler
        self.micro_batches = int(micro_batches)

    def __len__(self) -> int:
        return len(self.sampler) * self.micro_batches

    def __iter__(self) -> Iterator[list[int]]:
        for indices in self.sampler:
            for part in indices.tensor_split(self.micro_batches):
                yield part.tolist()


class DPDataLoader:
    """Yields ``steps`` Poisson-sampled logical batches of ``data`` (possibly empty): this rank's
    part of each when ``world_size`` > 1 (see :class:`PoissonSampler`).

    ``expected_batch_size`` = q·N (the whole logical batch's, whatever the world size) is the
    denominator DP-SGD divides the noisy gradient sum by.
    """

    def __init__(
        self, data: Data, *, sample_rate: float, steps: int, generator: torch.Generator, rank: int = 0, world_size: int = 1
    ) -> None:
        self.data = data
        self.num_examples = dataset_length(data)
        self.sampler = PoissonSampler(
            self.num_examples, sample_rate=sample_rate, steps=steps, generator=generator, rank=rank, world_size=world_size
        )

    @property
    def sample_rate(self) -> float:
        return self.sampler.sample_rate

    @property
    def steps(self) -> int:
        return self.sampler.steps

    @property
    def expected_batch_size(self) -> float:
        return self.sample_rate * self.num_examples

    def __len__(self) -> int:
        return len(self.sampler)

    def with_steps(self, steps: int) -> DPDataLoader:
        """This loader for ``steps`` steps: same data, rate and sampler (its generator shared, so
        the batches continue where this loader's stream is)."""
        loader = copy.copy(self)
        loader.sampler = copy.copy(self.sampler)
        loader.sampler.steps = require_steps("steps", steps)
        return loader

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for indices in self.sampler:
            yield gather(self.data, indices)
