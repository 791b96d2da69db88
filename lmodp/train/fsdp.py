r"""Sharded DP-SGD on FSDP2 (``torch.distributed.fsdp.fully_shard``): the sharded layout.

A model whose transformer blocks (and root) are ``fully_shard``-ed holds, on each of the W
ranks, only a shard of every parameter (dimension 0 cut in W near-equal pieces, a ``DTensor``);
FSDP gathers a block's parameters for its forward and backward pass and frees them after. One
logical DP-SGD step of :class:`Sharded` (the steps shared with the replicated layout, the
collective budget and the Poisson sample's parts, are in :mod:`lmodp.train.distributed`):

1. **Passes.** Every rank runs the same number of forward and backward passes, because FSDP's
   gathers are collectives: the largest number any rank needs for its part of the batch (one
   all-reduce); a rank with fewer examples runs the rest on a filler example with loss weight 0,
   whose gradients are exact zeros and which the statistics leave out.
2. **Per-example norms and clipping** (book-keeping, :mod:`lmodp.train.book_keeping`): each rank
   forms its own examples' gradient factors from the layers' inputs and output gradients while
   the block is gathered; norms, clip factors κ_i = min(1, C/‖g_i‖) and the clipped sum
   S_r = Σ_{i∈B_r} κ_i g_i follow at the end of the backward pass. Autograd gives the
   parameters no gradient, so FSDP's own reduce-scatter of ``.grad`` has nothing to do.
3. **Reduction** (:class:`ShardedGradientSum`): each pass's clipped sum of a sharded parameter is
   reduce-scattered at once (a ``Partial`` DTensor redistributed onto the parameter's own
   placement, on FSDP's device mesh), so a rank keeps only the shard of Σ_r S_r it owns, in
   float32 (FSDP2's ``MixedPrecisionPolicy`` casts the gathered parameters, not these sums).
4. **Noise.** Each rank adds C·Y to the coordinates of its own shard, Y drawn from the mechanism
   with its own secret generator, and divides by q·N: the released sharded gradient is
   (Σ_{i∈B} clip_C(g_i) + C·Y)/(qN), the one-process release, with each coordinate's noise drawn
   exactly once in the world. Parameters that no ``fully_shard`` covers stay replicated and go
   the replicated way (rank 0's noise, one all-reduce).
5. **Update.** The sharded optimizer steps on the sharded gradients (``DTensor``).

Tied parameters (one parameter in two layers, e.g. GPT-2's and Llama's tied embeddings) work as
in one process: book-keeping sums each example's uses before its norm. A mesh of more than one
dimension (HSDP, tensor parallelism) is refused: its replicated dimension would need the noise
drawn once and broadcast.

Checkpoints (:func:`save_sharded_checkpoint`) write the model and optimizer with
``torch.distributed.checkpoint`` (each rank its shards) and the ledger, sampler and history on
rank 0, in one directory per save switched in by an atomic pointer; any world size, sharded or
not, resumes them with the same ε. The noise generators are not saved: a resumed run draws fresh
secret ones (or, with ``noise_seed``, ones derived from the seed, the rank and the step count, so
that no noise is ever drawn twice).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, Partial, Shard

from lmodp.train.checkpoint import capture_rng_states, checkpoint_path, restore_rng_states
from lmodp.train.clipping import ClippedGradientSum
from lmodp.train.distributed import (
    Ranks,
    Replicated,
    all_reduced_noisy_means,
    broadcast_module,
    require_no_wrapper,
    require_same_settings,
)
from lmodp.train.layout import NoisyRelease
from lmodp.train.batches import Data, gather
from lmodp.train.sampling import DPDataLoader

logger = logging.getLogger(__name__)

LATEST_NAME = "latest"
RUN_STATE_NAME = "run.pt"


@dataclass(frozen=True)
class Sharding:
    """How :func:`shard_model` applies ``fully_shard``: ``param_dtype`` is the dtype of the
    gathered parameters in forward and backward (e.g. ``torch.bfloat16``; None keeps theirs),
    ``reshard_after_forward`` frees a block's gathered parameters between its forward and
    backward pass (less memory, one more gather). The sharded parameters, the clipped sums, their
    reduction and the noise stay in float32 whatever ``param_dtype`` is."""

    param_dtype: torch.dtype | None = None
    reshard_after_forward: bool = True

    def policy(self) -> MixedPrecisionPolicy:
        return MixedPrecisionPolicy(param_dtype=self.param_dtype, reduce_dtype=torch.float32)


def is_fully_sharded(model: nn.Module) -> bool:
    """Whether ``fully_shard`` was applied to ``model`` or to one of its submodules."""
    return any(isinstance(module, FSDPModule) for module in model.modules())


def _block_classes(model: nn.Module) -> set[str]:
    """The class names of a Hugging Face model's transformer blocks (``_no_split_modules``),
    looked up on the wrapped model of a ``peft`` model too."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    return names


def shard_model(model: nn.Module, *, sharding: Sharding | None = None, ranks: Ranks | None = None) -> nn.Module:
    """Shard ``model`` in place with FSDP2: ``fully_shard`` on each transformer block (a Hugging
    Face model's ``_no_split_modules`` classes) and then on the root, after every rank received
    rank 0's parameters and buffers (so that the shards are pieces of one model). A model without
    known blocks is sharded as one group (the root). Needs an initialised process group."""
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "shard=True needs an initialised process group: call torch.distributed.init_process_group() first "
            "(launch with torchrun)"
        )
    if is_fully_sharded(model):
        raise ValueError("shard=True got a model that is already sharded with fully_shard: pass shard=False")
    require_no_wrapper(model)
    sharding = sharding or Sharding()
    device = next(model.parameters()).device
    if ranks is None:
        ranks = Ranks(rank=dist.get_rank(), world_size=dist.get_world_size(),
                      device=device if dist.get_backend() == "nccl" else torch.device("cpu"))
    broadcast_module(model, ranks)
    blocks = _block_classes(model)
    options = {"mp_policy": sharding.policy(), "reshard_after_forward": sharding.reshard_after_forward}
    count = 0
    for module in model.modules():
        if module is not model and type(module).__name__ in blocks:
            fully_shard(module, **options)
            count += 1
    fully_shard(model, **options)
    logger.info("sharded the model with fully_shard: %d blocks and the root", count)
    return model


def require_supported_sharding(model: nn.Module) -> None:
    """Raise ``ValueError`` for a sharded model this layout cannot train privately: a
    ``fully_shard``-ed module that owns trainable parameters directly (book-keeping hooks and, for
    layers without a closed form, recomputes the layer that owns a parameter: shard a module that
    contains it, e.g. its block), or a parameter on a mesh of more than one dimension."""
    owners = [
        name or type(module).__name__
        for name, module in model.named_modules()
        if isinstance(module, FSDPModule) and any(p.requires_grad for p in module.parameters(recurse=False))
    ]
    if owners:
        raise ValueError(
            f"fully_shard was applied directly to layers with trainable parameters ({', '.join(owners[:5])}): "
            "book-keeping clipping needs each such layer inside a sharded module, not sharded itself; apply "
            "fully_shard to the blocks that contain them and to the root (or pass shard=True)"
        )
    for name, p in model.named_parameters():
        if isinstance(p, DTensor) and p.device_mesh.ndim != 1:
            raise ValueError(
                f"parameter {name!r} lives on a {p.device_mesh.ndim}-dimensional device mesh (HSDP or tensor "
                "parallelism): lmodp shards DP-SGD over a 1-dimensional mesh only (fully_shard with its default mesh)"
            )


class ShardedGradientSum(ClippedGradientSum):
    """:class:`~lmodp.train.clipping.ClippedGradientSum` whose sharded (DTensor) parameters keep
    only this rank's shard: each pass's clipped sum is reduce-scattered onto the parameter's
    placement as soon as it is added (zeros for a pass that did not reach the parameter, so that
    every rank makes the same collectives). Replicated parameters accumulate whole sums.

    FSDP2's placement ``Shard(0)`` cuts dimension 0 into W chunks of ⌈n/W⌉ rows (the last ones
    shorter or empty): the sum is padded to W·⌈n/W⌉ rows and reduce-scattered with one
    ``reduce_scatter_tensor``, issued asynchronously so that it runs while the next parameter's
    clipped sum is formed (one in flight, so that at most two whole sums are alive). Any other
    placement goes through DTensor's redistribution."""

    def reset(self) -> None:
        super().reset()
        self._in_flight: tuple[str, Any, torch.Tensor, int, torch.Tensor] | None = None

    def _settle(self) -> None:
        """Wait for the reduce-scatter in flight and add its shard."""
        if self._in_flight is None:
            return
        name, work, out, rows, _ = self._in_flight
        self._in_flight = None
        work.wait()
        self._accumulate(name, out[:rows])

    def _accumulate(self, name: str, local: torch.Tensor) -> None:
        if name in self._sums:
            self._sums[name] += local
        else:
            self._sums[name] = local.clone()

    def add(self, name: str, summed: torch.Tensor | None) -> None:
        p = self.parameters[name]
        if not isinstance(p, DTensor):
            super().add(name, summed)
            return
        dtype = torch.promote_types(p.dtype, torch.float32)
        whole = torch.zeros(p.shape, dtype=dtype, device=p.device) if summed is None else summed.reshape(p.shape).to(dtype)
        if tuple(p.placements) != (Shard(0),):
            partial = DTensor.from_local(whole, p.device_mesh, [Partial()], run_check=False)
            self._accumulate(name, partial.redistribute(p.device_mesh, p.placements).to_local())
            return
        world = p.device_mesh.size()
        chunk = -(-p.shape[0] // world)
        padded = whole if chunk * world == p.shape[0] else torch.cat([whole, whole.new_zeros(chunk * world - p.shape[0], *p.shape[1:])])
        out = whole.new_empty(chunk, *p.shape[1:])
        self._settle()
        padded = padded.contiguous()
        work = dist.reduce_scatter_tensor(out, padded, group=p.device_mesh.get_group(), async_op=True)
        self._in_flight = (name, work, out, p.to_local().shape[0], padded)  # the input stays alive until the wait

    def totals(self) -> dict[str, torch.Tensor]:
        """This rank's shard of each sharded parameter's sum, the whole sum of the others."""
        self._settle()
        for name, p in self.parameters.items():
            if name not in self._sums and isinstance(p, DTensor):
                local = p.to_local()
                self._sums[name] = torch.zeros(local.shape, dtype=torch.promote_types(p.dtype, torch.float32), device=local.device)
        return super().totals()


class Sharded(Replicated):
    """A ``fully_shard``-ed model over a process group (see the module docstring)."""

    name = "sharded data-parallel (FSDP2)"

    def __init__(self, ranks: Ranks) -> None:
        super().__init__(ranks)
        self._filler: dict[str, torch.Tensor] | None = None

    def prepare(self, model: nn.Module, settings: Mapping[str, float]) -> None:
        """Check the sharding and that every rank runs the same settings (the shards are not
        broadcast: each rank's shard is its own piece of the model)."""
        require_no_wrapper(model)
        require_supported_sharding(model)
        require_same_settings(self.ranks, settings)
        logger.info("DP-SGD over %d processes (%s): this is rank %d", self.world_size, self.name, self.rank)

    def data_loader(self, data: Data, *, sample_rate: float, steps: int, generator: torch.Generator) -> DPDataLoader:
        self._filler = gather(data, torch.zeros(1, dtype=torch.long))
        return super().data_loader(data, sample_rate=sample_rate, steps=steps, generator=generator)

    def noise_stream(self, steps_done: int) -> tuple[int, ...]:
        """(rank, ``steps_done``) on every rank: each rank draws its own noise."""
        return (self.rank, steps_done)

    def gradient_sums(self, parameters: Mapping[str, nn.Parameter], *, max_grad_norm: float) -> ClippedGradientSum:
        return ShardedGradientSum(parameters, max_grad_norm=max_grad_norm)

    def passes(self, local_passes: int) -> int:
        """The most passes any rank needs (one all-reduce): FSDP's gathers need them all."""
        (_, most), = self.ranks.spread([local_passes])
        return int(most)

    def filler(self) -> Mapping[str, torch.Tensor] | None:
        return self._filler

    def noisy_means(
        self,
        sums: Mapping[str, torch.Tensor],
        *,
        parameters: Mapping[str, nn.Parameter],
        release: NoisyRelease,
    ) -> dict[str, torch.Tensor]:
        """This rank's shard of (Σ_r S_r + C·Y)/(qN) for each sharded parameter, its own noise added
        (as a DTensor of the parameter's placement); replicated parameters the replicated way."""
        released: dict[str, torch.Tensor] = {}
        replicated = {name: summed for name, summed in sums.items() if not isinstance(parameters[name], DTensor)}
        for name, local in sums.items():
            p = parameters[name]
            if not isinstance(p, DTensor):
                continue
            release.add_noise_(local)
            release.mean_(local)
            released[name] = DTensor.from_local(
                local, p.device_mesh, p.placements, run_check=False, shape=p.shape, stride=p.stride()
            )
        released.update(all_reduced_noisy_means(replicated, ranks=self.ranks, release=release))
        return {name: released[name] for name in sums}

    def all_finite(self, tensors: Iterable[torch.Tensor]) -> bool:
        """Whether every rank's shards are finite (one all-reduce, so every rank decides alike)."""
        (low, _), = self.ranks.spread([float(super().all_finite(tensors))])
        return bool(low)

    def save_checkpoint(self, directory: str | os.PathLike[str], *, model: nn.Module, optimizer: Any, state: dict[str, Any]) -> None:
        save_sharded_checkpoint(directory, model=model, optimizer=optimizer, state=state, ranks=self.ranks)

    def load_checkpoint(self, directory: str | os.PathLike[str], *, model: nn.Module, optimizer: Any) -> dict[str, Any] | None:
        """Only checkpoints of :func:`save_sharded_checkpoint` (from any world size): a one-process
        checkpoint holds one noise generator state, which every rank would then share."""
        if not is_sharded_checkpoint(directory) and checkpoint_path(directory).exists():
            raise ValueError(
                f"{directory} holds a one-process checkpoint (checkpoint.pt); a sharded run resumes only sharded "
                "checkpoints: resume it in one process or replicated, or start the sharded run afresh"
            )
        return super().load_checkpoint(directory, model=model, optimizer=optimizer)


def _original(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "original_optimizer", optimizer)


def is_sharded_checkpoint(directory: str | os.PathLike[str] | None) -> bool:
    """Whether ``directory`` holds a checkpoint written by :func:`save_sharded_checkpoint`."""
    return directory is not None and (Path(directory) / LATEST_NAME).is_file()


def save_sharded_checkpoint(
    directory: str | os.PathLike[str], *, model: nn.Module, optimizer: Any, state: dict[str, Any], ranks: Ranks
) -> None:
    """Every rank writes its shards of the model and optimizer (``torch.distributed.checkpoint``)
    into a new folder ``directory/step-<n>``; rank 0 adds ``run.pt`` (the ledger and ``state``, the
    global random states) and then points ``directory/latest`` at the folder by an atomic rename
    and removes the previous one. An interrupted save leaves the previous checkpoint in force."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    root = Path(directory)
    ledger = getattr(optimizer, "ledger", None)
    steps = 0 if ledger is None else ledger.steps
    folder = root / f"step-{steps:08d}"
    if ranks.is_main:
        shutil.rmtree(folder, ignore_errors=True)
    ranks.barrier()
    model_state, optimizer_state = get_state_dict(model, _original(optimizer))
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(folder))
    if ranks.is_main:
        run = {**state, "ledger": None if ledger is None else ledger.state_dict(), "rng": capture_rng_states()}
        torch.save(run, folder / RUN_STATE_NAME)
        pointer = root / LATEST_NAME
        previous = pointer.read_text().strip() if pointer.is_file() else None
        tmp = root / (LATEST_NAME + ".tmp")
        tmp.write_text(folder.name)
        os.replace(tmp, pointer)
        if previous and previous != folder.name:
            shutil.rmtree(root / previous, ignore_errors=True)
    ranks.barrier()


def load_sharded_checkpoint(directory: str | os.PathLike[str], *, model: nn.Module, optimizer: Any, layout: Any) -> dict[str, Any]:
    """Restore ``model`` and ``optimizer`` (and the optimizer's ledger) from a checkpoint of
    :func:`save_sharded_checkpoint`, whatever this run's layout and world size, and return the
    rest of its state (the global random states already restored)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    folder = Path(directory) / Path(directory, LATEST_NAME).read_text().strip()
    run = torch.load(folder / RUN_STATE_NAME, map_location="cpu", weights_only=False)
    model_state, optimizer_state = get_state_dict(model, _original(optimizer))
    loaded = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(loaded, checkpoint_id=str(folder))
    set_state_dict(model, _original(optimizer), model_state_dict=loaded["model"], optim_state_dict=loaded["optimizer"])
    ledger_state = run.pop("ledger")
    if ledger_state is not None and hasattr(optimizer, "ledger"):
        optimizer.ledger.load_state_dict(ledger_state)
    restore_rng_states(run.pop("rng"))
    return run
