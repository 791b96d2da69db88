"""``finetune``: a complete DP-SGD (or non-private) fine-tuning loop with history and checkpoints."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from lmodp._validation import require_delta, require_positive
from lmodp.mechanisms import Mechanism
from lmodp.train.budget import Accountant
from lmodp.train.calibration import resolve_mechanism
from lmodp.train.checkpoint import load_checkpoint
from lmodp.train.distributed import process_group, save_once
from lmodp.train.losses import TASKS, accuracy, loss_for_task
from lmodp.train.per_sample import model_inputs
from lmodp.train.privacy_engine import make_private, resolve_sample_rate, steps_for_epochs
from lmodp.train.sampling import Data, DPDataLoader, dataset_length, gather

logger = logging.getLogger(__name__)

LR_SCHEDULES = ("constant", "linear")


@dataclass
class TrainingHistory:
    """Per-step records of a run (``loss`` is None for an empty batch; ``epsilon`` is inf for a
    non-private run) and the evaluations (``eval_metric`` is accuracy for classification, the mean
    per-sequence loss for causal LM). ``mechanism`` is the noise's ``to_dict()`` (None if not private)."""

    task: str
    delta: float
    sample_rate: float
    total_steps: int
    mechanism: dict[str, Any] | None
    metric_name: str
    step: list[int] = field(default_factory=list)
    loss: list[float | None] = field(default_factory=list)
    epsilon: list[float] = field(default_factory=list)
    batch_size: list[int] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval_metric: list[float] = field(default_factory=list)
    stopped_by_budget: bool = False

    @property
    def final_epsilon(self) -> float:
        """ε(δ) after the last step (0 before any step)."""
        return self.epsilon[-1] if self.epsilon else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _evaluate(model: nn.Module, data: Data, *, task: str, batch_size: int, device: torch.device) -> float:
    """Mean accuracy (classification) or mean per-sequence loss (causal LM) over ``data``."""
    metric = accuracy if task == "classification" else loss_for_task(task)
    n = dataset_length(data)
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = gather(data, torch.arange(start, min(start + batch_size, n)))
            batch = {k: v.to(device) for k, v in batch.items()}
            total += float(metric(model(**model_inputs(batch)), batch).sum())
    model.train(was_training)
    return total / n


def _non_private_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], task: str, device: torch.device) -> float | None:
    """Plain mini-batch SGD step on the mean loss; None (no update) for an empty batch."""
    if next(iter(batch.values())).shape[0] == 0:
        return None
    batch = {k: v.to(device) for k, v in batch.items()}
    optimizer.zero_grad(set_to_none=True)
    loss = loss_for_task(task)(model(**model_inputs(batch)), batch).mean()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _pick_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def finetune(
    model: nn.Module,
    train_dataset: Data,
    eval_dataset: Data | None = None,
    *,
    mechanism: Mechanism | None = None,
    target_epsilon: float | None = None,
    search_result: Any = None,
    private: bool = True,
    delta: float,
    batch_size: int,
    epochs: float = 1.0,
    max_grad_norm: float = 1.0,
    learning_rate: float = 5e-4,
    weight_decay: float = 0.0,
    lr_schedule: str = "constant",
    task: str = "classification",
    geometry: str = "l2",
    accountant: str | Accountant = "rdp",
    max_epsilon: float | None = None,
    on_exhausted: str = "stop",
    clipping: str = "bk",
    micro_batch_size: int | None = None,
    eval_every: int | None = None,
    eval_batch_size: int = 64,
    seed: int = 0,
    sampling_seed: int | None = None,
    noise_seed: int | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    max_steps: int | None = None,
    device: str | torch.device | None = "auto",
    autocast_dtype: torch.dtype | None = None,
    progress: bool = True,
    distributed: bool | None = None,
) -> TrainingHistory:
    """Fine-tune ``model`` on ``train_dataset`` with DP-SGD and return the :class:`TrainingHistory`.

    Noise: ``mechanism``, or with ``target_epsilon`` a Gaussian calibrated to it (or the mechanism
    of ``search_result``, checked against the target) — see :mod:`lmodp.train.calibration`.
    ``private=False`` trains without clipping or noise on the same Poisson batches (a baseline;
    ε is reported as inf). Batches are Poisson samples with rate q = ``batch_size``/N; the run
    has T = round(``epochs``/q) logical steps (``max_steps`` stops earlier, e.g. to be resumed).
    The optimizer is AdamW(``learning_rate``, ``weight_decay``), constant or linearly decayed to 0
    over T (``lr_schedule``). ε(``delta``) is recorded after every step; a step that would exceed
    ``max_epsilon`` (default: ``target_epsilon``) is not released: the run ends there
    (``on_exhausted="stop"``, ``history.stopped_by_budget``) or raises
    :class:`~lmodp.train.budget.PrivacyBudgetExhausted` (``"raise"``). The eval
    metric (accuracy or mean loss) is recorded every ``eval_every`` steps (default: every epoch)
    and at the end. With ``checkpoint_dir`` the state is saved every ``checkpoint_every`` steps
    (default: every epoch) and at the end; ``resume=True`` continues from the saved state (or
    starts afresh when there is none).

    ``seed`` fixes the model's random draws (dropout), never the batch sampling nor the privacy
    noise: both are seeded from the operating system's entropy unless ``sampling_seed`` or
    ``noise_seed`` is given (for tests and reproductions only; a warning is logged, since
    amplification by subsampling assumes secret batches and the guarantee secret noise). ``clipping`` ("bk" or "vmap") and
    ``micro_batch_size`` choose the clipping engine (see :func:`~lmodp.train.make_private`).

    Inside a ``torch.distributed`` process group of world size > 1 (``distributed``: see
    :func:`~lmodp.train.make_private`) every rank calls ``finetune`` with the same arguments and
    the whole data set; each logical batch is spread over the ranks, the history is the whole
    run's on every rank, rank 0 alone writes checkpoints (any world size can resume them) and
    shows the progress bar. The non-private baseline runs in one process only.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    delta = require_delta("delta", delta)
    learning_rate = require_positive("learning_rate", learning_rate)
    if not private and (mechanism is not None or target_epsilon is not None or search_result is not None):
        raise ValueError("private=False trains without noise: drop mechanism, target_epsilon and search_result")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    device = _pick_device(device)
    ranks = process_group(distributed, device)
    if ranks is not None and not private:
        raise ValueError(
            f"private=False inside a process group of {ranks.world_size} processes: lmodp spreads DP-SGD runs only; "
            "run the non-private baseline in one process (or pass distributed=False to run it on each rank alone)"
        )
    q = resolve_sample_rate(dataset_length(train_dataset), sample_rate=None, batch_size=batch_size)
    total_steps = steps_for_epochs(epochs, q)
    steps_per_epoch = max(1, round(1.0 / q))
    eval_every = eval_every or steps_per_epoch
    checkpoint_every = checkpoint_every or steps_per_epoch

    torch.manual_seed(seed)
    model.to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=weight_decay)
    schedule = (lambda s: 1.0) if lr_schedule == "constant" else (lambda s: max(0.0, 1.0 - s / total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    if private:
        chosen = resolve_mechanism(
            mechanism=mechanism, target_epsilon=target_epsilon, search_result=search_result, delta=delta,
            sample_rate=q, steps=total_steps, geometry=geometry, accountant=accountant,
        )
        _, stepper, loader = make_private(
            model, optimizer, train_dataset, mechanism=chosen, max_grad_norm=max_grad_norm, sample_rate=q,
            delta=delta, geometry=geometry, accountant=accountant, clipping=clipping, micro_batch_size=micro_batch_size,
            loss=task, steps=total_steps, max_epsilon=max_epsilon if max_epsilon is not None else target_epsilon,
            on_exhausted=on_exhausted, seed=sampling_seed, noise_seed=noise_seed, autocast_dtype=autocast_dtype,
            distributed=distributed,
        )
    else:
        chosen = None
        stepper = optimizer
        baseline_seed = seed if sampling_seed is None else sampling_seed  # no privacy to protect: reproducible by default
        loader = DPDataLoader(train_dataset, sample_rate=q, steps=total_steps, generator=torch.Generator().manual_seed(baseline_seed))
    sampler_generator = loader.sampler.generator
    history = TrainingHistory(
        task=task, delta=delta, sample_rate=q, total_steps=total_steps,
        mechanism=None if chosen is None else chosen.to_dict(),
        metric_name="accuracy" if task == "classification" else "loss",
    )

    done = 0
    if resume:
        state = load_checkpoint(checkpoint_dir)
        if state is not None:
            if state["history"]["mechanism"] != history.mechanism or state["history"]["total_steps"] != total_steps:
                raise ValueError(f"the checkpoint in {checkpoint_dir} belongs to a run with other settings")
            model.load_state_dict(state["model"])
            stepper.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            sampler_generator.set_state(state["sampler_generator"])
            history = TrainingHistory(**state["history"])
            done = len(history.step)
            logger.info("resumed from %s at step %d", checkpoint_dir, done)
    last_step = total_steps if max_steps is None else min(total_steps, done + max_steps)

    def checkpoint() -> None:
        if checkpoint_dir is not None:
            save_once(ranks, checkpoint_dir, {
                "model": model.state_dict(), "optimizer": stepper.state_dict(), "scheduler": scheduler.state_dict(),
                "sampler_generator": sampler_generator.get_state(), "history": history.to_dict(),
            })

    def evaluate(step: int) -> None:
        if eval_dataset is not None:
            history.eval_step.append(step)
            history.eval_metric.append(_evaluate(model, eval_dataset, task=task, batch_size=eval_batch_size, device=device))
            logger.info("step %d: eval %s = %.4f", step, history.metric_name, history.eval_metric[-1])

    loader = loader.with_steps(last_step - done)
    main = ranks is None or ranks.is_main
    bar = tqdm(total=total_steps, initial=done, disable=not (progress and main), desc="DP fine-tuning" if private else "fine-tuning")
    step = done
    for batch in loader:
        if private:
            out = stepper.step(batch)
            if out is None:
                history.stopped_by_budget = True
                logger.info("privacy budget reached after %d steps: stopping", step)
                break
            loss, eps, size = out.loss, out.epsilon, out.batch_size
        else:
            loss, eps = _non_private_step(model, optimizer, batch, task, device), math.inf
            size = int(next(iter(batch.values())).shape[0])
        scheduler.step()
        step += 1
        history.step.append(step)
        history.loss.append(loss)
        history.epsilon.append(eps)
        history.batch_size.append(size)
        bar.update(1)
        bar.set_postfix(loss="-" if loss is None else f"{loss:.4f}", eps=f"{eps:.4g}")
        if step % eval_every == 0 and step != last_step:
            evaluate(step)
        if step % checkpoint_every == 0 and step != last_step:
            checkpoint()
    bar.close()
    if step > done or not history.eval_step:
        evaluate(step)
    checkpoint()
    return history
