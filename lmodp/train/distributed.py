r"""Data-parallel DP-SGD on ``torch.distributed``: the collectives, and the replicated layout.

Inside an initialised process group of world size W > 1, :class:`~lmodp.train.privacy_engine.PrivacyEngine`
(behind :func:`~lmodp.train.make_private`, :func:`~lmodp.train.finetune` and
:class:`~lmodp.train.hf.PrivateTrainer`) spreads each logical step over the W processes. Every
rank holds the whole data set. This module has what every parallel layout shares (:class:`Ranks`,
:class:`CollectiveLedger`, the checks that the ranks agree) and the **replicated** layout
(:class:`Replicated`: a whole replica of the model on every rank, parameters and buffers broadcast
from rank 0 at start-up); the **sharded** layout (FSDP2) is :mod:`lmodp.train.fsdp`. One logical
step:

1. **Budget** (:class:`CollectiveLedger`): each rank charges its replica of the privacy ledger
   (same accountant, same state); one all-reduce checks that every rank reached the same decision
   (charge, stop or raise) at the same step count before anything is released.
2. **Sampling** (:class:`~lmodp.train.sampling.PoissonSampler` with ``rank`` and ``world_size``):
   every rank draws the same N uniforms U_i from one generator whose state rank 0 broadcast at
   start-up (N = the whole data set); example i is in the logical batch B iff U_i < q, which is
   the whole data set's Poisson sample, the one a single process draws from that generator, and
   rank r keeps the i ≡ r (mod W). Each example is therefore on exactly one rank, and the union of
   the ranks' parts is B.
3. **Clipping**: each rank runs the clipping engine (book-keeping or vmap, unchanged) on its part
   B_r, giving S_r = Σ_{i∈B_r} clip_C(g_i) per parameter.
4. **Noise and reduction** (:meth:`Replicated.noisy_means`): rank 0 adds C·Y to S_0, with Y drawn
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
all-reduce of unclipped gradients would be the wrong quantity anyway; a DDP-wrapped model is
refused. FSDP1 (``FullyShardedDataParallel``) is refused too, with a pointer to ``fully_shard``.
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from dataclasses import dataclass
from itertools import chain
from typing import Any, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

from lmodp.mechanisms import Mechanism
from lmodp.train.ledger import PrivacyBudgetExhausted, PrivacyLedger
from lmodp.train.clipping import ClippedGradientSum
from lmodp.train.layout import NoisyRelease, SingleProcess

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


class CollectiveLedger(PrivacyLedger):
    """A replica of the privacy ledger on each rank, whose budget decision is checked to be the
    same on every rank.

    Every rank charges its own replica (the accounting is deterministic, so replicas in the same
    state decide alike); then one all-reduce compares the outcomes (charged, stopped, raised) and
    the step counts. Only when they agree does a rank go on: it releases the step (with ε the
    largest of the ranks' values), or all return ``None`` (``on_exhausted="stop"``), or all raise
    :class:`~lmodp.train.ledger.PrivacyBudgetExhausted`. Replicas that disagree (a checkpoint
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


def require_no_wrapper(model: nn.Module) -> None:
    """Raise ``ValueError`` for a model wrapped in ``DistributedDataParallel`` or FSDP1's
    ``FullyShardedDataParallel``: lmodp does the gradient reduction of a private step itself."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.nn.parallel import DistributedDataParallel

    for module in model.modules():
        if isinstance(module, DistributedDataParallel):
            raise ValueError(
                "make_private got a DistributedDataParallel model: pass the module itself (ddp_model.module). lmodp "
                "all-reduces the clipped gradient sums itself; DDP's all-reduce of .grad would see no gradients "
                "(the clipping engines give the parameters none) or unclipped ones"
            )
        if isinstance(module, FullyShardedDataParallel):
            raise ValueError(
                "FSDP1 (FullyShardedDataParallel) is not supported: shard the model with FSDP2 instead, "
                "torch.distributed.fsdp.fully_shard on each transformer block and then on the model (or pass "
                "shard=True to make_private/finetune, which does that); lmodp then clips each rank's examples and "
                "reduce-scatters the clipped sums itself"
            )


class Replicated(SingleProcess):
    """A whole replica of the model on every rank of a process group (see the module docstring)."""

    name = "replicated data-parallel"

    def __init__(self, ranks: Ranks) -> None:
        self.ranks = ranks

    @property
    def rank(self) -> int:  # type: ignore[override]
        return self.ranks.rank

    @property
    def world_size(self) -> int:  # type: ignore[override]
        return self.ranks.world_size

    def prepare(self, model: nn.Module, settings: Mapping[str, float]) -> None:
        """Check that every rank runs the same settings on a plain (unwrapped, unsharded) model,
        then give every rank rank 0's parameters and buffers."""
        require_no_wrapper(model)
        require_same_settings(self.ranks, settings)
        broadcast_module(model, self.ranks)
        logger.info("DP-SGD over %d processes (%s): this is rank %d", self.world_size, self.name, self.rank)

    def shared_sampling_generator(self, generator: torch.Generator) -> torch.Generator:
        return shared_generator(generator, self.ranks)

    def ledger(self, accountant: Any, **settings: Any) -> PrivacyLedger:
        return CollectiveLedger(accountant, ranks=self.ranks, **settings)

    def batch_statistics(self, sums: ClippedGradientSum) -> tuple[float | None, int, float | None]:
        loss_total, losses, examples, clipped = self.ranks.sum(
            [sums.loss_total, sums.loss_examples, sums.examples, sums.clipped_count()]
        )
        return (loss_total / losses if losses else None, int(examples), clipped / examples if examples else None)

    def noisy_means(
        self,
        sums: Mapping[str, torch.Tensor],
        *,
        parameters: Mapping[str, nn.Parameter],
        release: NoisyRelease,
    ) -> dict[str, torch.Tensor]:
        """(Σ_r S_r + C·Y)/(q·N): rank 0 adds the noise to its sums, parameter by parameter, while
        the all-reduce of the previous parameter is under way."""
        return all_reduced_noisy_means(sums, ranks=self.ranks, release=release)

    def save_checkpoint(self, directory: str | os.PathLike[str], *, model: nn.Module, optimizer: Any, state: dict[str, Any]) -> None:
        """Rank 0 writes the checkpoint (the replicas are equal), then a barrier, so that no rank
        reads the directory before the write is complete."""
        if self.is_main:
            super().save_checkpoint(directory, model=model, optimizer=optimizer, state=state)
        self.ranks.barrier()


def all_reduced_noisy_means(sums: Mapping[str, torch.Tensor], *, ranks: Ranks, release: NoisyRelease) -> dict[str, torch.Tensor]:
    """(Σ_r S_r + C·Y)/(q·N) for replicated tensors: rank 0 adds the noise to its sums, then one
    asynchronous all-reduce (SUM) per tensor."""
    pending = []
    for summed in sums.values():
        if ranks.is_main:
            release.add_noise_(summed)
        pending.append(dist.all_reduce(summed, op=dist.ReduceOp.SUM, async_op=True))
    for work in pending:
        work.wait()
    for summed in sums.values():
        release.mean_(summed)
    return dict(sums)
