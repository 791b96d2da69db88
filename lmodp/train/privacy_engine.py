r"""The DP-SGD engine: :class:`PrivacyEngine` prepares a private training run for its parallel
layout, and :func:`make_private` turns (model, optimizer, data) into a DP-SGD trio with it.

Every way of training privately goes through :class:`PrivacyEngine`: :func:`make_private`,
:func:`~lmodp.train.finetune`, :class:`~lmodp.train.hf.PrivateTrainer` and ``lmodp finetune``.
It resolves the run (q, T, δ, geometry; :func:`training_run`), picks the layout
(:func:`layout_for`: one process, replicated over a process group, or sharded with FSDP2), checks
that every rank passed the same settings, and builds the pieces that depend on both: the privacy
ledger (charged before anything is released), the secret Poisson sampler (this rank's part of
each batch), the secret noise generator, and, around the user's optimizer, the
:class:`~lmodp.train.optimizer.DPOptimizer` with its clipping engine.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping

import torch
from torch import nn

from lmodp._renamed import renamed_keyword
from lmodp._validation import require_count, require_geometry, require_positive, require_sample_rate
from lmodp.mechanisms import Mechanism
from lmodp.train.book_keeping import BookKeepingClipping
from lmodp.accounting.base import PrivacyAccountant
from lmodp.accounting.spec import RunSpec, run_spec
from lmodp.train.clipping import ClippingEngine
from lmodp.train.distributed import Replicated, mechanism_fingerprint, process_group, require_no_wrapper
from lmodp.train.fsdp import Sharded, Sharding, is_fully_sharded, is_sharded_checkpoint, shard_model
from lmodp.train.layout import SingleProcess, sampling_generator
from lmodp.train.losses import PerExampleLoss, loss_for_task
from lmodp.train.noise import torch_sampler
from lmodp.train.optimizer import DPOptimizer
from lmodp.train.vmap_clipping import VmapClipping
from lmodp.train.batches import Data, dataset_length
from lmodp.train.sampling import DPDataLoader, PoissonSampler

logger = logging.getLogger(__name__)

VMAP_MICRO_BATCH = 16


def resolve_sample_rate(num_examples: int, *, sample_rate: float | None, batch_size: int | None) -> float:
    """q from exactly one of ``sample_rate`` or an expected ``batch_size`` (q = batch_size / N)."""
    if (sample_rate is None) == (batch_size is None):
        raise ValueError("give exactly one of sample_rate (Poisson rate q) or batch_size (expected size q·N)")
    if sample_rate is not None:
        return require_sample_rate("sample_rate", sample_rate)
    require_count("batch_size", batch_size, 1)
    if batch_size > num_examples:
        raise ValueError(
            f"batch_size={batch_size} exceeds the dataset size {num_examples}: choose batch_size <= {num_examples} "
            "(the Poisson rate q = batch_size / N must be <= 1)"
        )
    return batch_size / num_examples


def steps_for_epochs(epochs: float, sample_rate: float) -> int:
    """Logical steps for ``epochs`` passes at rate q: round(epochs / q), at least 1."""
    epochs = require_positive("epochs", epochs)
    return max(1, round(epochs / sample_rate))


def training_run(
    num_examples: int,
    run: RunSpec | None = None,
    *,
    sample_rate: float | None = None,
    batch_size: int | None = None,
    steps: int | None = None,
    epochs: float | None = None,
    delta: float | None = None,
    geometry: str | None = None,
) -> RunSpec:
    """The accounted run of DP-SGD on ``num_examples`` examples.

    ``run`` (its sensitivity must be 1: the clip norm C is applied separately), with
    ``sample_rate``, ``steps``, ``delta`` and ``geometry`` given here in place of its own; or q from
    exactly one of ``sample_rate`` or an expected ``batch_size``, T from ``steps`` or ``epochs``
    (default one epoch), ``delta`` and ``geometry`` (default "l2")."""
    if run is not None:
        if batch_size is not None or epochs is not None:
            raise ValueError("give either run=RunSpec(...) or batch_size/epochs, not both")
        spec = run_spec(run, sample_rate=sample_rate, steps=steps, delta=delta, geometry=geometry)
        if spec.sensitivity != 1.0:
            raise ValueError(
                f"run.sensitivity must be 1 for DP-SGD (the clip norm is max_grad_norm), got {spec.sensitivity:g}"
            )
        return spec
    q = resolve_sample_rate(num_examples, sample_rate=sample_rate, batch_size=batch_size)
    if steps is None:
        steps = steps_for_epochs(1.0 if epochs is None else epochs, q)
    elif epochs is not None:
        raise ValueError("give at most one of epochs and steps")
    if delta is None:
        raise ValueError("give delta=... (or run=RunSpec(...))")
    return RunSpec(sample_rate=q, steps=steps, delta=delta, geometry="l2" if geometry is None else geometry)


def require_clip_norm(max_grad_norm: object) -> float:
    """The clip norm C, with guidance when it is not a positive number."""
    try:
        return require_positive("max_grad_norm", max_grad_norm)
    except ValueError as err:
        raise ValueError(f"{err} (the per-example L2 clip norm C; typical values are 0.1 to 1)") from None


def _check_geometry(geometry: str, model: nn.Module) -> str:
    """Only ``"l2"`` is sound for a vector gradient; ``"scalar"`` only when it has one coordinate."""
    geometry = require_geometry(geometry)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if geometry != "l2" and trainable != 1:
        raise ValueError(
            f"geometry={geometry!r} accounts a one-dimensional query, but the gradient has {trainable} coordinates "
            "with noise on each: use geometry='l2' (the L2-clipped vector release DP-SGD makes)"
        )
    return geometry


CLIPPING_ENGINES = ("bk", "vmap")


def clipping_engine(
    model: nn.Module,
    loss_fn: PerExampleLoss,
    *,
    clipping: str,
    max_grad_norm: float,
    micro_batch_size: int | None,
    autocast_dtype: torch.dtype | None,
    loss_reduction: str | None,
    layout: SingleProcess | None = None,
) -> ClippingEngine:
    """The clipping engine named by ``clipping`` ("bk": book-keeping, the default; "vmap"), its
    running sum made by ``layout`` (sharded models need book-keeping)."""
    layout = layout or SingleProcess()
    if clipping == "bk":
        return BookKeepingClipping(
            model, loss_fn, max_grad_norm=max_grad_norm, micro_batch_size=micro_batch_size,
            autocast_dtype=autocast_dtype, loss_reduction=loss_reduction, gradient_sums=layout.gradient_sums,
        )
    if clipping == "vmap":
        if loss_reduction is not None:
            raise ValueError(
                "clipping='vmap' computes the losses itself in dp_optimizer.step(batch); it cannot clip a backward pass "
                "you run: use clipping='bk' for that loop, or drop loss_reduction"
            )
        if isinstance(layout, Sharded):
            raise ValueError(
                "clipping='vmap' needs every parameter whole on each rank; a fully_shard-ed model holds shards: "
                "use clipping='bk' (book-keeping), which clips sharded models"
            )
        return VmapClipping(
            model, loss_fn, max_grad_norm=max_grad_norm, micro_batch_size=micro_batch_size or VMAP_MICRO_BATCH,
            autocast_dtype=autocast_dtype,
        )
    raise ValueError(f"clipping must be one of {CLIPPING_ENGINES}, got {clipping!r}")


def layout_for(model: nn.Module, *, distributed: bool | None, device: torch.device) -> SingleProcess:
    """The parallel layout of a run of ``model``: :class:`~lmodp.train.fsdp.Sharded` for a
    ``fully_shard``-ed model (inside its process group, of any size),
    :class:`~lmodp.train.distributed.Replicated` inside a process group of world size > 1 (or with
    ``distributed=True``; ``False`` ignores the group: each rank trains on its own), else
    :class:`~lmodp.train.layout.SingleProcess`. DDP and FSDP1 wrappers are refused."""
    sharded = is_fully_sharded(model)
    if sharded and distributed is False:
        raise ValueError(
            "distributed=False with a fully_shard-ed model: a sharded model trains across its process group; "
            "leave distributed=None"
        )
    ranks = process_group(True if sharded else distributed, device)
    if ranks is None:
        require_no_wrapper(model)
        return SingleProcess()
    return Sharded(ranks) if sharded else Replicated(ranks)


class PrivacyEngine:
    """Prepares a DP-SGD run of ``model`` on ``num_examples`` examples (see the module docstring).

    ``run`` is the accounted run (:func:`training_run`): Poisson rate q, T steps, δ, geometry.
    The ledger (``accountant``, ``max_epsilon``, ``on_exhausted``: see
    :class:`~lmodp.train.ledger.PrivacyLedger`) and the sampling generator (secret unless
    ``sampling_seed``) are made at once; :meth:`data_loader` or :meth:`poisson_sampler` give this
    rank's Poisson batches, :meth:`private_optimizer` wraps the user's optimizer. With ``shard``
    (True or a :class:`~lmodp.train.fsdp.Sharding`) the model is first sharded with FSDP2
    (:func:`~lmodp.train.fsdp.shard_model`); a model that is already ``fully_shard``-ed is trained
    sharded as it is. ``distributed`` is as in :func:`layout_for`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        num_examples: int,
        mechanism: Mechanism,
        max_grad_norm: float,
        run: RunSpec,
        accountant: str | PrivacyAccountant = "auto",
        max_epsilon: float | None = None,
        on_exhausted: str = "raise",
        sampling_seed: int | None = None,
        noise_seed: int | None = None,
        distributed: bool | None = None,
        shard: bool | Sharding = False,
    ) -> None:
        self.max_grad_norm = require_clip_norm(max_grad_norm)
        self.num_examples = int(num_examples)
        self.run = run
        self.mechanism = mechanism
        self.noise_sampler = torch_sampler(mechanism)
        self.geometry = _check_geometry(run.geometry, model)
        device = next(model.parameters()).device
        if shard:
            shard_model(model, sharding=shard if isinstance(shard, Sharding) else None)
        self.model = model
        self.layout = layout_for(model, distributed=distributed, device=device)
        self.layout.prepare(model, {
            "data set size": self.num_examples, "sample_rate": run.sample_rate, "steps": run.steps,
            "max_grad_norm": self.max_grad_norm, "delta": run.delta, "max_epsilon": -1.0 if max_epsilon is None else max_epsilon,
            "mechanism": mechanism_fingerprint(mechanism),
        })
        self.ledger = self.layout.ledger(
            accountant, mechanism=mechanism, sample_rate=run.sample_rate, delta=run.delta, geometry=self.geometry,
            max_epsilon=max_epsilon, on_exhausted=on_exhausted, planned_steps=run.steps,
        )
        self.sampling_generator = self.layout.shared_sampling_generator(sampling_generator(sampling_seed))
        self.noise_seed = noise_seed
        self._noise_generator = self.layout.noise_generator(device, noise_seed)

    @property
    def sample_rate(self) -> float:
        return self.run.sample_rate

    @property
    def expected_batch_size(self) -> float:
        """q·N, the denominator of the released gradient."""
        return self.run.sample_rate * self.num_examples

    def data_loader(self, data: Data, *, steps: int | None = None) -> DPDataLoader:
        """This rank's part of the run's Poisson-sampled logical batches of ``data`` (T of them, or ``steps``)."""
        if dataset_length(data) != self.num_examples:
            raise ValueError(f"the data set has {dataset_length(data)} examples, the run was prepared for {self.num_examples}")
        return self.layout.data_loader(
            data, sample_rate=self.run.sample_rate, steps=self.run.steps if steps is None else steps,
            generator=self.sampling_generator,
        )

    def poisson_sampler(self, *, steps: int | None = None) -> PoissonSampler:
        """This rank's part of the run's Poisson samples of example indices (T of them, or ``steps``)."""
        return self.layout.poisson_sampler(
            self.num_examples, sample_rate=self.run.sample_rate, steps=self.run.steps if steps is None else steps,
            generator=self.sampling_generator,
        )

    def private_optimizer(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        loss: str | PerExampleLoss = "classification",
        clipping: str = "bk",
        micro_batch_size: int | None = None,
        loss_reduction: str | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> DPOptimizer:
        """``optimizer`` wrapped in a :class:`~lmodp.train.optimizer.DPOptimizer` that clips with
        ``clipping`` (see :func:`make_private`), adds the mechanism's noise and charges the ledger."""
        held = [p for group in optimizer.param_groups for p in group["params"]]
        own = {id(p) for p in self.model.parameters()}
        if any(id(p) not in own for p in held):
            raise ValueError(
                "the optimizer holds tensors that are not parameters of the model (with shard=True, the model's "
                "parameters are replaced by their shards: pass a function params -> optimizer, or build the "
                "optimizer after sharding)"
            )
        loss_fn: Callable = loss_for_task(loss) if isinstance(loss, str) else loss
        engine = clipping_engine(
            self.model, loss_fn, clipping=clipping, max_grad_norm=self.max_grad_norm, micro_batch_size=micro_batch_size,
            autocast_dtype=autocast_dtype, loss_reduction=loss_reduction, layout=self.layout,
        )
        return DPOptimizer(
            optimizer, clipping=engine, ledger=self.ledger, sampler=self.noise_sampler, max_grad_norm=self.max_grad_norm,
            expected_batch_size=self.expected_batch_size, noise_generator=self._noise_generator, layout=self.layout,
        )

    def save_checkpoint(self, directory: str | os.PathLike[str], *, optimizer: Any, state: Mapping[str, Any]) -> None:
        """Checkpoint the model, ``optimizer`` and ``state`` (the sampling generator is added) the
        layout's way (one file, or the shards of every rank)."""
        self.layout.save_checkpoint(
            directory, model=self.model, optimizer=optimizer,
            state={**state, "sampler_generator": self.sampling_generator.get_state()},
        )

    def load_checkpoint(self, directory: str | os.PathLike[str], *, optimizer: Any) -> dict[str, Any] | None:
        """Restore the model, ``optimizer`` and the sampling generator from ``directory`` (written by
        any layout and world size) and return the rest of the state; ``None`` when there is none.
        A checkpoint without this rank's noise generator state (a sharded one) restarts the noise
        from a fresh generator (:meth:`~lmodp.train.layout.SingleProcess.noise_generator`)."""
        sharded = is_sharded_checkpoint(directory)
        state = self.layout.load_checkpoint(directory, model=self.model, optimizer=optimizer)
        if state is None:
            return None
        self.sampling_generator.set_state(state.pop("sampler_generator"))
        if sharded and isinstance(optimizer, DPOptimizer):
            optimizer.noise_generator = self.layout.noise_generator(
                optimizer.noise_generator.device, self.noise_seed, steps_done=self.ledger.steps
            )
        return state


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Data,
    *,
    mechanism: Mechanism,
    max_grad_norm: float,
    run: RunSpec | None = None,
    sample_rate: float | None = None,
    batch_size: int | None = None,
    delta: float | None = None,
    geometry: str | None = None,
    accountant: str | PrivacyAccountant = "auto",
    clipping: str = "bk",
    micro_batch_size: int | None = None,
    loss: str | PerExampleLoss = "classification",
    loss_reduction: str | None = None,
    epochs: float | None = None,
    steps: int | None = None,
    max_epsilon: float | None = None,
    on_exhausted: str = "raise",
    sampling_seed: int | None = None,
    noise_seed: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    distributed: bool | None = None,
    shard: bool | Sharding = False,
    seed: int | None = None,
) -> tuple[nn.Module, DPOptimizer, DPDataLoader]:
    """Wrap a model, its optimizer and its data for DP-SGD with noise from ``mechanism``.

    Returns ``(model, dp_optimizer, loader)``. Iterate ``loader`` (Poisson-sampled logical
    batches, rate q = ``sample_rate`` or ``batch_size``/N, for ``steps`` steps or
    round(``epochs``/q), default one epoch; or q and T from ``run``, a
    :class:`~lmodp.accounting.spec.RunSpec` with δ and the geometry, see :func:`training_run`) and call ``dp_optimizer.step(batch)`` on each: it
    computes the per-example losses ``loss`` ("classification", "causal-lm" or a callable
    ``loss(outputs, batch) -> Tensor[B]``), clips each example's gradient to ``max_grad_norm`` = C
    in L2, adds C·mechanism noise, divides by q·N and steps ``optimizer``. Or run your own
    forward and ``loss.backward()`` on each micro-batch and then ``dp_optimizer.step()``, with
    ``loss_reduction`` saying whether your loss is the "sum" or the "mean" of the per-example
    losses (needs ``clipping="bk"``).

    ``clipping``: "bk" (book-keeping, :mod:`lmodp.train.book_keeping`: one ordinary backward pass,
    per-example norms by ghost norms or per layer, the default) or "vmap"
    (:mod:`lmodp.train.vmap_clipping`: materialised per-example gradients, any model torch.func can
    run). ``micro_batch_size`` splits a logical batch in ``step(batch)`` (default: whole batch for
    "bk", 16 for "vmap"). The accountant (a registered name: ``"rdp"``, ``"pld"``, ``"auto"``;
    or a :class:`~lmodp.accounting.base.PrivacyAccountant`) is charged once per step with the
    true q in the ``geometry`` (default "l2"); ``max_epsilon`` makes a step that would exceed
    ε(δ) > max_epsilon raise :class:`~lmodp.train.ledger.PrivacyBudgetExhausted`
    (``on_exhausted="raise"``) or be refused (``"stop"``: ``step`` returns ``None``).

    The batch sampling and the noise are secret: their generators are seeded from the operating
    system's entropy unless ``sampling_seed`` or ``noise_seed`` is given (``seed`` is the deprecated
    name of ``sampling_seed``), and then a warning is logged (amplification by subsampling assumes nobody knows the batches, and the noise must
    be unknown too: such a run is private only against someone who does not know the seeds).
    With ``clipping="vmap"``, a transformers model is switched, in place, to a vmap-safe copy of
    its attention (:mod:`lmodp.train.vmap_attention`).

    Inside an initialised ``torch.distributed`` process group (see :func:`layout_for` and
    ``distributed``) every rank passes the same arguments and the whole ``data``; the loader yields
    this rank's part of each logical batch, and each step releases the same noisy gradient as one
    process would, with each coordinate's noise drawn once: with a replica of the model on every
    rank (:mod:`lmodp.train.distributed`: rank 0's parameters, sampling and noise are used), or
    with a ``fully_shard``-ed model (:mod:`lmodp.train.fsdp`; ``shard=True`` shards a Hugging Face
    model's blocks and root here, after broadcasting rank 0's parameters; ``shard=Sharding(...)``
    chooses the gathered parameters' dtype), each rank adding the noise of its own shard. Under
    FSDP build ``optimizer`` after sharding (on the sharded parameters): with ``shard=True`` pass
    a function ``optimizer(params) -> Optimizer`` instead, which is called on the sharded model's
    parameters.
    """
    sampling_seed = renamed_keyword("make_private", old="seed", new="sampling_seed", old_value=seed, new_value=sampling_seed)
    spec = training_run(
        dataset_length(data), run, sample_rate=sample_rate, batch_size=batch_size, steps=steps, epochs=epochs,
        delta=delta, geometry=geometry,
    )
    engine = PrivacyEngine(
        model, num_examples=dataset_length(data), mechanism=mechanism, max_grad_norm=max_grad_norm, run=spec,
        accountant=accountant, max_epsilon=max_epsilon, on_exhausted=on_exhausted, sampling_seed=sampling_seed,
        noise_seed=noise_seed, distributed=distributed, shard=shard,
    )
    if callable(optimizer) and not isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer([p for p in model.parameters() if p.requires_grad])
    dp_optimizer = engine.private_optimizer(
        optimizer, loss=loss, clipping=clipping, micro_batch_size=micro_batch_size, loss_reduction=loss_reduction,
        autocast_dtype=autocast_dtype,
    )
    loader = engine.data_loader(data)
    logger.info(
        "DP-SGD (%s): %s noise, C=%g, q=%.6g (expected batch %.1f of %d), %d steps, delta=%g, geometry=%s, clipping=%s",
        engine.layout.name, type(mechanism).__name__, engine.max_grad_norm, spec.sample_rate, engine.expected_batch_size,
        engine.num_examples, spec.steps, spec.delta, engine.geometry, clipping,
    )
    return model, dp_optimizer, loader
