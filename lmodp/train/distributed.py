r"""Data-parallel DP-SGD on ``torch.distributed``: one logical step spread over W processes.

Inside an initialised process group of world size W > 1, :func:`~lmodp.train.make_private`
and :func:`~lmodp.train.finetune` build the classes of this module in place of their
one-process versions. Every rank holds the whole data set and a replica of the model
(parameters and buffers broadcast from rank 0 at start-up). One logical step:

1. **Budget** (:class:`CollectiveLedger`): each rank charges its replica of the privacy ledger
   (same accountant, same state); one all-reduce checks that every rank reached the same decision
   (charge, stop or raise) at the same step count before anything is released.
2. **Sampling** (:class:`ShardedPoissonSampler`): every rank draws the same N uniforms U_i from
   one generator whose state rank 0 broadcast at start-up (N = the whole data set); example i is
   in the logical batch B iff U_i < q, which is the whole data set's Poisson sample, the one a
   single process draws from that generator, and rank r keeps the i ≡ r (mod W). Each example
   is therefore on exactly one rank, and the union of the ranks' parts is B.
3. **Clipping**: each rank runs the clipping engine (book-keeping or vmap, unchanged) on its part
   B_r, giving S_r = Σ_{i∈B_r} clip_C(g_i) per parameter.
4. **Noise and reduction** (:class:`DistributedDPOptimizer`): rank 0 adds C·Y to S_0, with Y drawn
   from its noise generator (secret-seeded, the same draws one process makes); one all-reduce
   (SUM) per parameter then gives every rank Σ_r S_r + C·Y = Σ_{i∈B} clip_C(g_i) + C·Y, the
   one-process release, which each rank divides by q·N and hands to its optimizer: the replicas
   take the same step and stay equal.
5. **Statistics**: one all-reduce (SUM) of (loss sum, losses, examples, clipped examples) makes
   the step's loss, batch size and clipped share those of the logical batch B.

The noise is drawn exactly once, with the mechanism's law, because the sum of W independent
draws of a Laplace or LMO variable does not have that law (and W copies of one draw would be
W·Y): any other split would release a mechanism other than the accounted one. Drawing it on rank
0 inside the all-reduce costs no extra collective, keeps one noise generator (saved in the
checkpoint, so a run resumes with any world size) and keeps its seed on rank 0.

torch's ``DistributedDataParallel`` is not used: it all-reduces the parameters' ``.grad`` during
the backward pass, but the clipping engines give the parameters no ``.grad`` (book-keeping
swaps them for detached views inside each layer; vmap differentiates a functional copy), and an
all-reduce of unclipped gradients would be the wrong quantity anyway. FSDP and other sharded
parameters (DTensor) are refused: the per-example norm needs every example's whole gradient,
which a sharded layer only has across ranks (see docs/distributed.md).
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from dataclasses import dataclass
from itertools import chain
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

from lmodp.mechanisms import Mechanism
from lmodp.train.budget import PrivacyBudgetExhausted, PrivacyLedger
from lmodp.train.checkpoint import save_checkpoint
from lmodp.train.optimizer import DPOptimizer
from lmodp.train.sampling import Data, DPDataLoader, PoissonSampler

logger = logging.getLogger(__name__)

_CHARGED, _STOPPED, _RAISED = 0.0, 1.0, 2.0


@dataclass(frozen=True)
class Ranks:
    """This process's place in the default process group, and the device of its collectives
    (the model's device for NCCL, the CPU otherwise)."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, the rank that draws the noise and writes checkpoints."""
        return self.rank == 0

    def _reduce(self, values: Sequence[float], op: Any) -> list[float]:
        tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=op)
        return tensor.tolist()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Each value summed over the ranks (float64)."""
        return self._reduce(values, dist.ReduceOp.SUM)

    def spread(self, values: Sequence[float]) -> list[tuple[float, float]]:
        """Each value's (minimum, maximum) over the ranks, by one all-reduce (MAX) of (v, −v)."""
        high = self._reduce([*values, *(-float(v) for v in values)], dist.ReduceOp.MAX)
        n = len(values)
        return [(-high[n + i], high[i]) for i in range(n)]

    def broadcast_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``tensor`` on every rank, in place (through ``self.device`` when it lives elsewhere)."""
        if tensor.device == self.device or dist.get_backend() != "nccl":
            dist.broadcast(tensor, src=0)
            return tensor
        moved = tensor.to(self.device)
        dist.broadcast(moved, src=0)
        return tensor.copy_(moved)

    def barrier(self) -> None:
        dist.barrier()


def process_group(distributed: bool | None, device: torch.device) -> Ranks | None:
    """The ranks to spread a run over, or ``None`` to run in this process alone.

    ``distributed=None`` (the default) detects an initialised default process group of world size
    > 1; ``True`` requires an initialised group (of any size); ``False`` ignores any group (each
    rank then trains on its own, as a separate run). ``device`` is the model's device.
    """
    if distributed is not None and not isinstance(distributed, bool):
        raise ValueError(f"distributed must be None (detect), True or False, got {distributed!r}")
    initialised = dist.is_available() and dist.is_initialized()
    if distributed is None:
        distributed = initialised and dist.get_world_size() > 1
    if not distributed:
        return None
    if not initialised:
        raise ValueError(
            "distributed=True needs an initialised process group: call torch.distributed.init_process_group() "
            "first (launch with torchrun), or leave distributed=None"
        )
    if dist.get_backend() == "nccl" and device.type != "cuda":
        raise ValueError(f"the NCCL backend needs the model on a CUDA device, not {device}: move it, or use gloo")
    collective_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    return Ranks(rank=dist.get_rank(), world_size=dist.get_world_size(), device=collective_device)


def _sharding_types() -> tuple[type, ...]:
    """FSDP's wrapper (FSDP1), its module mix-in (FSDP2, ``fully_shard``) and DTensor, where this torch has them."""
    import torch.distributed.fsdp as fsdp

    found = [getattr(fsdp, name) for name in ("FullyShardedDataParallel", "FSDPModule") if hasattr(fsdp, name)]
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch < 2.4
        return tuple(found)
    return (*found, DTensor)


def require_replicated(model: nn.Module) -> None:
    """Raise ``ValueError`` for a model wrapped in DDP or FSDP, or with sharded (DTensor) parameters."""
    from torch.nn.parallel import DistributedDataParallel

    sharding = _sharding_types()
    for module in model.modules():
        if isinstance(module, DistributedDataParallel):
            raise ValueError(
                "make_private got a DistributedDataParallel model: pass the module itself (ddp_model.module). lmodp "
                "all-reduces the clipped gradient sums itself; DDP's all-reduce of .grad would see no gradients "
                "(the clipping engines give the parameters none) or unclipped ones"
            )
        if isinstance(module, sharding):
            raise ValueError(_SHARDED_MESSAGE)
    if any(isinstance(p, sharding) for p in model.parameters()):
        raise ValueError(_SHARDED_MESSAGE)


_SHARDED_MESSAGE = (
    "lmodp's distributed DP-SGD needs a full replica of the model on every rank: FSDP and other sharded "
    "parameters (DTensor) are not supported, because each example's gradient norm needs that example's whole "
    "gradient, which a sharded layer only holds across ranks (see docs/distributed.md). Use a model that fits "
    "one device (e.g. with LoRA adapters as the trainable parameters)"
)


def mechanism_fingerprint(mechanism: Mechanism) -> int:
    """A CRC-32 of the mechanism's ``repr`` (its type and parameters), equal across processes."""
    return zlib.crc32(repr(mechanism).encode())


def require_same_settings(ranks: Ranks, settings: Mapping[str, float]) -> None:
    """Raise ``ValueError`` on every rank unless every rank passed the same ``settings``."""
    names = sorted(settings)
    spread = ranks.spread([settings[name] for name in names])
    differ = [name for name, (low, high) in zip(names, spread) if low != high]
    if differ:
        raise ValueError(
            f"the ranks passed different {', '.join(differ)} to make_private: every rank must pass the same "
            "data set, mechanism and DP settings"
        )


def broadcast_module(model: nn.Module, ranks: Ranks) -> None:
    """Rank 0's parameters and buffers on every rank (each rank's model must have the same structure)."""
    with torch.no_grad():
        for tensor in chain(model.parameters(), model.buffers()):
            ranks.broadcast_(tensor.detach())


def shared_generator(generator: torch.Generator, ranks: Ranks) -> torch.Generator:
    """``generator`` set, on every rank, to rank 0's state (in place)."""
    generator.set_state(ranks.broadcast_(generator.get_state()).cpu())
    return generator


def prepare_replicas(model: nn.Module, ranks: Ranks, settings: Mapping[str, float]) -> None:
    """Check that every rank runs the same settings on a replicable model, then give every rank
    rank 0's parameters and buffers."""
    require_replicated(model)
    require_same_settings(ranks, settings)
    broadcast_module(model, ranks)
    logger.info("DP-SGD over %d processes: this is rank %d", ranks.world_size, ranks.rank)


class ShardedPoissonSampler(PoissonSampler):
    """Rank r's part of the whole data set's Poisson sample: the indices i ≡ r (mod W) of
    :class:`~lmodp.train.sampling.PoissonSampler`'s batch, whose generator every rank holds in the same state."""

    def __init__(
        self, num_examples: int, *, sample_rate: float, steps: int, generator: torch.Generator, ranks: Ranks
    ) -> None:
        super().__init__(num_examples, sample_rate=sample_rate, steps=steps, generator=generator)
        self.rank = ranks.rank
        self.world_size = ranks.world_size

    def __iter__(self) -> Iterator[torch.Tensor]:
        for indices in super().__iter__():
            yield indices[indices % self.world_size == self.rank]


class ShardedDPDataLoader(DPDataLoader):
    """This rank's part of each Poisson-sampled logical batch of ``data`` (the whole data set);
    ``expected_batch_size`` is the whole batch's q·N."""

    def __init__(self, data: Data, *, sample_rate: float, steps: int, generator: torch.Generator, ranks: Ranks) -> None:
        super().__init__(data, sample_rate=sample_rate, steps=steps, generator=generator)
        self.sampler = ShardedPoissonSampler(
            self.num_examples, sample_rate=sample_rate, steps=steps, generator=generator, ranks=ranks
        )


class CollectiveLedger(PrivacyLedger):
    """A replica of the privacy ledger on each rank, whose budget decision is checked to be the
    same on every rank.

    Every rank charges its own replica (the accounting is deterministic, so replicas in the same
    state decide alike); then one all-reduce compares the outcomes (charged, stopped, raised) and
    the step counts. Only when they agree does a rank go on: it releases the step (with ε the
    largest of the ranks' values), or all return ``None`` (``on_exhausted="stop"``), or all raise
    :class:`~lmodp.train.budget.PrivacyBudgetExhausted`. Replicas that disagree (a checkpoint
    loaded on some ranks only, different budgets) raise ``RuntimeError`` on every rank, before
    anything is released.
    """

    def __init__(self, accountant: Any, *, ranks: Ranks, **kwargs: Any) -> None:
        super().__init__(accountant, **kwargs)
        self.ranks = ranks

    def charge_step(self) -> float | None:
        refused: PrivacyBudgetExhausted | None = None
        try:
            epsilon = super().charge_step()
        except PrivacyBudgetExhausted as err:
            refused, epsilon = err, None
        outcome = _CHARGED if epsilon is not None else _RAISED if refused is not None else _STOPPED
        (out_low, out_high), (steps_low, steps_high), (_, eps_high) = self.ranks.spread(
            [outcome, self.steps, -math.inf if epsilon is None else epsilon]
        )
        if out_low != out_high or steps_low != steps_high:
            raise RuntimeError(
                f"the ranks' privacy ledgers disagree (rank {self.ranks.rank}: step count {self.steps}, "
                f"{'charged' if outcome == _CHARGED else 'refused'}; across ranks step counts {steps_low:g} to "
                f"{steps_high:g}): their states diverged, e.g. a checkpoint loaded on some ranks only or different "
                "budgets; nothing was released"
            )
        if refused is not None:
            raise refused
        return None if epsilon is None else eps_high


class DistributedDPOptimizer(DPOptimizer):
    """:class:`~lmodp.train.optimizer.DPOptimizer` for one rank of a data-parallel run: the noise
    is drawn on rank 0 only, the clipped sums (and rank 0's noise) are all-reduced, and the step's
    statistics are those of the whole logical batch (see the module docstring)."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, ranks: Ranks, **kwargs: Any) -> None:
        super().__init__(optimizer, **kwargs)
        self.ranks = ranks

    def _batch_statistics(self) -> tuple[float | None, int, float | None]:
        sums = self.clipping.sums
        loss_total, losses, examples, clipped = self.ranks.sum(
            [sums.loss_total, sums.loss_examples, sums.examples, sums.clipped_count()]
        )
        return (loss_total / losses if losses else None, int(examples), clipped / examples if examples else None)

    def _noisy_means(self, sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """(Σ_r S_r + C·Y)/(q·N): rank 0 adds the noise to its sums, parameter by parameter, while
        the all-reduce of the previous parameter is under way."""
        pending = []
        for summed in sums.values():
            if self.ranks.is_main:
                self.sampler.add_scaled_(summed, self.max_grad_norm, generator=self.noise_generator)
            pending.append(dist.all_reduce(summed, op=dist.ReduceOp.SUM, async_op=True))
        for work in pending:
            work.wait()
        for summed in sums.values():
            summed.div_(self.expected_batch_size)
        return sums


def save_once(ranks: Ranks | None, directory: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """:func:`~lmodp.train.checkpoint.save_checkpoint` on rank 0 only (or in a one-process run),
    then a barrier, so that no rank reads the directory before the write is complete."""
    if ranks is None or ranks.is_main:
        save_checkpoint(directory, state)
    if ranks is not None:
        ranks.barrier()
