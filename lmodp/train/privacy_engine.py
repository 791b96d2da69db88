"""``make_private``: turn (model, optimizer, data) into a DP-SGD trio for any lmodp mechanism."""

from __future__ import annotations

import logging
import secrets
from numbers import Integral
from typing import Callable

import torch
from torch import nn

from lmodp._validation import require_geometry, require_positive, require_sample_rate
from lmodp.mechanisms import Mechanism
from lmodp.train.book_keeping import BookKeepingClipping
from lmodp.accounting.base import PrivacyAccountant
from lmodp.accounting.spec import RunSpec, run_spec
from lmodp.train.budget import PrivacyLedger
from lmodp.train.clipping import ClippingEngine
from lmodp.train.distributed import (
    CollectiveLedger,
    DistributedDPOptimizer,
    ShardedDPDataLoader,
    mechanism_fingerprint,
    prepare_replicas,
    process_group,
    shared_generator,
)
from lmodp.train.losses import PerExampleLoss, loss_for_task
from lmodp.train.noise import torch_sampler
from lmodp.train.optimizer import DPOptimizer
from lmodp.train.per_sample import VmapClipping
from lmodp.train.sampling import Data, DPDataLoader, dataset_length

logger = logging.getLogger(__name__)

VMAP_MICRO_BATCH = 16


def resolve_sample_rate(num_examples: int, *, sample_rate: float | None, batch_size: int | None) -> float:
    """q from exactly one of ``sample_rate`` or an expected ``batch_size`` (q = batch_size / N)."""
    if (sample_rate is None) == (batch_size is None):
        raise ValueError("give exactly one of sample_rate (Poisson rate q) or batch_size (expected size q·N)")
    if sample_rate is not None:
        return require_sample_rate("sample_rate", sample_rate)
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
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


def _secret_or_seeded(generator: torch.Generator, seed: int | None, *, keyword: str, consequence: str) -> torch.Generator:
    """Seed ``generator`` from the operating system's entropy (64 bits from :func:`secrets.randbits`)
    when ``seed`` is None; otherwise from ``seed``, with a warning that says what a known seed costs."""
    if seed is None:
        generator.manual_seed(secrets.randbits(64))
        return generator
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ValueError(f"{keyword} must be an integer or None, got {seed!r}")
    logger.warning(
        "%s=%d fixes %s: the reported epsilon holds only against someone who does not know the seed. Leave "
        "%s=None (secret) for a run you release", keyword, seed, consequence, keyword,
    )
    generator.manual_seed(int(seed))
    return generator


def noise_generator(device: torch.device, noise_seed: int | None) -> torch.Generator:
    """The generator of the privacy noise on ``device``: secret (OS entropy) unless ``noise_seed``
    is given, in which case a warning says the run is private only against someone who does not
    know the seed (the noise would be a known function of the data)."""
    return _secret_or_seeded(
        torch.Generator(device=device), noise_seed, keyword="noise_seed", consequence="the privacy noise"
    )


def sampling_generator(seed: int | None, *, keyword: str = "seed") -> torch.Generator:
    """The CPU generator of the Poisson batch sampling: secret (OS entropy) unless ``seed`` is given.

    Amplification by subsampling, which the accountant credits, assumes nobody knows which
    examples each batch holds: with a known seed an observer knows the steps at which any given
    example would be used, so a warning is logged."""
    return _secret_or_seeded(
        torch.Generator(), seed, keyword=keyword, consequence="the batch sampling (amplification by subsampling assumes it is secret)"
    )


def clipping_engine(
    model: nn.Module,
    loss_fn: PerExampleLoss,
    *,
    clipping: str,
    max_grad_norm: float,
    micro_batch_size: int | None,
    autocast_dtype: torch.dtype | None,
    loss_reduction: str | None,
) -> ClippingEngine:
    """The clipping engine named by ``clipping`` ("bk": book-keeping, the default; "vmap")."""
    if clipping == "bk":
        return BookKeepingClipping(
            model, loss_fn, max_grad_norm=max_grad_norm, micro_batch_size=micro_batch_size,
            autocast_dtype=autocast_dtype, loss_reduction=loss_reduction,
        )
    if clipping == "vmap":
        if loss_reduction is not None:
            raise ValueError(
                "clipping='vmap' computes the losses itself in dp_optimizer.step(batch); it cannot clip a backward pass "
                "you run: use clipping='bk' for that loop, or drop loss_reduction"
            )
        return VmapClipping(
            model, loss_fn, max_grad_norm=max_grad_norm, micro_batch_size=micro_batch_size or VMAP_MICRO_BATCH,
            autocast_dtype=autocast_dtype,
        )
    raise ValueError(f"clipping must be one of {CLIPPING_ENGINES}, got {clipping!r}")


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
    seed: int | None = None,
    noise_seed: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    distributed: bool | None = None,
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
    (:mod:`lmodp.train.per_sample`: materialised per-example gradients, any model torch.func can
    run). ``micro_batch_size`` splits a logical batch in ``step(batch)`` (default: whole batch for
    "bk", 16 for "vmap"). The accountant (a registered name: ``"rdp"``, ``"pld"``, ``"auto"``;
    or a :class:`~lmodp.accounting.base.PrivacyAccountant`) is charged once per step with the
    true q in the ``geometry`` (default "l2"); ``max_epsilon`` makes a step that would exceed
    ε(δ) > max_epsilon raise :class:`~lmodp.train.budget.PrivacyBudgetExhausted`
    (``on_exhausted="raise"``) or be refused (``"stop"``: ``step`` returns ``None``).

    The batch sampling and the noise are secret: their generators are seeded from the operating
    system's entropy unless ``seed`` (the sampling) or ``noise_seed`` is given, and then a warning
    is logged (amplification by subsampling assumes nobody knows the batches, and the noise must
    be unknown too: such a run is private only against someone who does not know the seeds).
    With ``clipping="vmap"``, a transformers model is switched, in place, to a vmap-safe copy of
    its attention (:mod:`lmodp.train.hf_compat`).

    Inside an initialised ``torch.distributed`` process group of world size > 1 (or with
    ``distributed=True``; ``False`` ignores the group) the run is data-parallel
    (:mod:`lmodp.train.distributed`): every rank passes the same arguments and the whole ``data``;
    rank 0's parameters, sampling seed and noise generator are used; the loader yields this rank's
    part of each logical batch, and each step releases the same noisy gradient on every rank as
    one process would, with the noise drawn once, on rank 0.
    """
    max_grad_norm = require_clip_norm(max_grad_norm)
    num_examples = dataset_length(data)
    spec = training_run(
        num_examples, run, sample_rate=sample_rate, batch_size=batch_size, steps=steps, epochs=epochs, delta=delta,
        geometry=geometry,
    )
    q, steps, delta = spec.sample_rate, spec.steps, spec.delta
    geometry = _check_geometry(spec.geometry, model)
    sampler = torch_sampler(mechanism)
    loss_fn: Callable = loss_for_task(loss) if isinstance(loss, str) else loss
    device = next(model.parameters()).device
    ranks = process_group(distributed, device)
    if ranks is not None:
        prepare_replicas(model, ranks, {
            "data set size": num_examples, "sample_rate": q, "steps": steps, "max_grad_norm": max_grad_norm,
            "delta": delta, "max_epsilon": -1.0 if max_epsilon is None else max_epsilon,
            "mechanism": mechanism_fingerprint(mechanism),
        })
    parallel = {} if ranks is None else {"ranks": ranks}
    engine = clipping_engine(
        model, loss_fn, clipping=clipping, max_grad_norm=max_grad_norm, micro_batch_size=micro_batch_size,
        autocast_dtype=autocast_dtype, loss_reduction=loss_reduction,
    )
    ledger = (PrivacyLedger if ranks is None else CollectiveLedger)(
        accountant,
        mechanism=mechanism,
        sample_rate=q,
        delta=delta,
        geometry=geometry,
        max_epsilon=max_epsilon,
        on_exhausted=on_exhausted,
        **parallel,
    )
    dp_optimizer = (DPOptimizer if ranks is None else DistributedDPOptimizer)(
        optimizer,
        clipping=engine,
        ledger=ledger,
        sampler=sampler,
        max_grad_norm=max_grad_norm,
        expected_batch_size=q * num_examples,
        noise_generator=noise_generator(device, noise_seed),
        **parallel,
    )
    if ranks is None:
        loader = DPDataLoader(data, sample_rate=q, steps=steps, generator=sampling_generator(seed))
    else:
        generator = shared_generator(sampling_generator(seed), ranks)
        loader = ShardedDPDataLoader(data, sample_rate=q, steps=steps, generator=generator, ranks=ranks)
    logger.info(
        "DP-SGD: %s noise, C=%g, q=%.6g (expected batch %.1f of %d), %d steps, delta=%g, geometry=%s, clipping=%s",
        type(mechanism).__name__, max_grad_norm, q, q * num_examples, num_examples, steps, delta, geometry, clipping,
    )
    return model, dp_optimizer, loader
