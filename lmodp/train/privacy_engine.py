"""``make_private``: turn (model, optimizer, data) into a DP-SGD trio for any lmodp mechanism."""

from __future__ import annotations

import logging
from numbers import Integral
from typing import Callable

import torch
from torch import nn

from lmodp._validation import require_delta, require_geometry, require_positive, require_sample_rate
from lmodp.mechanisms import Mechanism
from lmodp.train.budget import Accountant, PrivacyLedger
from lmodp.train.losses import PerExampleLoss, loss_for_task
from lmodp.train.noise import torch_sampler
from lmodp.train.optimizer import DPOptimizer
from lmodp.train.per_sample import PerSampleGradients
from lmodp.train.sampling import Data, DPDataLoader, dataset_length

logger = logging.getLogger(__name__)


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


def _generator(device: torch.device, seed: int | None) -> torch.Generator:
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Data,
    *,
    mechanism: Mechanism,
    max_grad_norm: float,
    sample_rate: float | None = None,
    batch_size: int | None = None,
    delta: float,
    geometry: str = "l2",
    accountant: str | Accountant = "rdp",
    micro_batch_size: int = 16,
    loss: str | PerExampleLoss = "classification",
    epochs: float | None = None,
    steps: int | None = None,
    max_epsilon: float | None = None,
    on_exhausted: str = "raise",
    seed: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[nn.Module, DPOptimizer, DPDataLoader]:
    """Wrap a model, its optimizer and its data for DP-SGD with noise from ``mechanism``.

    Returns ``(model, dp_optimizer, loader)``. Iterate ``loader`` (Poisson-sampled logical
    batches, rate q = ``sample_rate`` or ``batch_size``/N, for ``steps`` steps or
    round(``epochs``/q), default one epoch) and call ``dp_optimizer.step(batch)`` on each: it
    computes per-example gradients of ``loss`` ("classification", "causal-lm" or a callable
    ``loss(outputs, batch) -> Tensor[B]``) in micro-batches of ``micro_batch_size``, clips them to
    ``max_grad_norm`` = C in L2, adds C·mechanism noise, divides by q·N and steps ``optimizer``.
    The accountant (``"rdp"``, ``"pld"`` or an object) is charged once per step with the true q in
    the ``geometry`` "l2"; ``max_epsilon`` makes a step that would exceed ε(δ) > max_epsilon
    raise :class:`~lmodp.train.budget.PrivacyBudgetExhausted` (``on_exhausted="raise"``) or be
    refused (``"stop"``: ``step`` returns ``None``). ``seed`` fixes the batch sampling and the noise.
    A transformers model is switched, in place, to a vmap-safe copy of its attention
    (:mod:`lmodp.train.hf_compat`).
    """
    max_grad_norm = require_clip_norm(max_grad_norm)
    delta = require_delta("delta", delta)
    geometry = _check_geometry(geometry, model)
    sampler = torch_sampler(mechanism)
    num_examples = dataset_length(data)
    q = resolve_sample_rate(num_examples, sample_rate=sample_rate, batch_size=batch_size)
    if steps is None:
        steps = steps_for_epochs(1.0 if epochs is None else epochs, q)
    elif epochs is not None:
        raise ValueError("give at most one of epochs and steps")
    loss_fn: Callable = loss_for_task(loss) if isinstance(loss, str) else loss
    device = next(model.parameters()).device
    per_sample = PerSampleGradients(model, loss_fn, micro_batch_size=micro_batch_size, autocast_dtype=autocast_dtype)
    ledger = PrivacyLedger(
        accountant,
        mechanism=mechanism,
        sample_rate=q,
        delta=delta,
        geometry=geometry,
        max_epsilon=max_epsilon,
        on_exhausted=on_exhausted,
    )
    dp_optimizer = DPOptimizer(
        optimizer,
        per_sample,
        ledger,
        sampler,
        max_grad_norm=max_grad_norm,
        expected_batch_size=q * num_examples,
        noise_generator=_generator(device, None if seed is None else seed + 1),
    )
    loader = DPDataLoader(data, sample_rate=q, steps=steps, generator=_generator(torch.device("cpu"), seed))
    logger.info(
        "DP-SGD: %s noise, C=%g, q=%.6g (expected batch %.1f of %d), %d steps, delta=%g, geometry=%s",
        type(mechanism).__name__, max_grad_norm, q, q * num_examples, num_examples, steps, delta, geometry,
    )
    return model, dp_optimizer, loader
