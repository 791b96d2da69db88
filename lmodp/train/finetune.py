"""``finetune``: a complete DP-SGD (or non-private) fine-tuning loop with history and checkpoints."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from lmodp._progress import progress_bar
from lmodp.mechanisms import Mechanism
from lmodp.accounting.spec import RunSpec
from lmodp.train.calibration import resolve_mechanism
from lmodp.train.distributed import process_group
from lmodp.train.layout import SingleProcess
from lmodp.train.evaluation import METRIC_NAMES, evaluate as evaluate_metric
from lmodp.train.losses import loss_for_task
from lmodp.train.options import FinetuneOptions
from lmodp.train.batches import model_inputs
from lmodp.train.privacy_engine import PrivacyEngine, training_run
from lmodp.train.batches import Data, dataset_length
from lmodp.train.sampling import DPDataLoader

logger = logging.getLogger(__name__)

@dataclass
class TrainingHistory:
    """Per-step records of a run (``loss`` is None for an empty batch) and the evaluations
    (``eval_metric`` is accuracy for classification, the token-level perplexity for causal LM, named by ``metric_name``).
    ``mechanism`` is the noise's ``to_dict()`` (None if not private). ``final_epsilon`` is ε(δ) of
    the steps taken, by the ledger's ``accountant`` (:meth:`~lmodp.train.ledger.PrivacyLedger.epsilon`;
    inf and None for a non-private run, 0 before any step). ``epsilon`` after each step is the sound
    upper bound the ledger reports at no extra cost (:meth:`~lmodp.train.ledger.PrivacyLedger.charge_step`):
    the accountant's own value for the RDP; for the PLD the smaller of the RDP bound of the same
    steps and the PLD of the whole planned run (or of the budget's last step), so the last value
    of a run that ends as planned, or at its budget, is ``final_epsilon``."""

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
    accountant: str | None = None
    final_epsilon: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _optimizer_and_schedule(
    model: nn.Module, o: FinetuneOptions, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW(``learning_rate``, ``weight_decay``) on the trainable parameters (the shards of a
    sharded model) and its schedule: constant, or linear decay to 0 over ``total_steps``."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=o.learning_rate, weight_decay=o.weight_decay)
    schedule = (lambda s: 1.0) if o.lr_schedule == "constant" else (lambda s: max(0.0, 1.0 - s / total_steps))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


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
    run: RunSpec | None = None,
    delta: float | None = None,
    batch_size: int | None = None,
    epochs: float | None = None,
    geometry: str | None = None,
    options: FinetuneOptions | None = None,
    **settings: Any,
) -> TrainingHistory:
    """Fine-tune ``model`` on ``train_dataset`` with DP-SGD and return the :class:`TrainingHistory`.

    Noise: ``mechanism``, or with ``target_epsilon`` a Gaussian calibrated to it (or the mechanism
    of ``search_result``, checked against the target) — see :mod:`lmodp.train.calibration`.
    ``private=False`` trains without clipping or noise on the same Poisson batches (a baseline;
    ε is reported as inf). The run: batches are Poisson samples with rate q = ``batch_size``/N and
    the run has T = round(``epochs``/q) logical steps (``epochs`` default 1), accounted at
    ``delta`` in ``geometry`` (default "l2"); or ``run``, a
    :class:`~lmodp.accounting.spec.RunSpec` giving q, T, δ and the geometry (its sensitivity
    must be 1: the clip norm is ``max_grad_norm``; ``delta`` and ``geometry`` given with it
    replace its own).

    Everything else is in ``options`` (:class:`~lmodp.train.options.FinetuneOptions`) or given
    as keywords (a keyword replaces that setting of ``options``). ``max_steps`` stops earlier,
    e.g. to be resumed. The optimizer is AdamW(``learning_rate``, ``weight_decay``), constant
    or linearly decayed to 0 over T (``lr_schedule``). ε(``delta``) is recorded after every
    step; a step that would exceed ``max_epsilon`` (default: ``target_epsilon``) is not
    released: the run ends there (``on_exhausted="stop"``, ``history.stopped_by_budget``) or
    raises :class:`~lmodp.train.ledger.PrivacyBudgetExhausted` (``"raise"``). The eval metric
    (accuracy, or the token-level perplexity for ``task="causal-lm"``) is recorded every
    ``eval_every`` steps (default: every epoch) and at the end. With ``checkpoint_dir`` the state
    is saved every ``checkpoint_every`` steps (default: every epoch) and at the end;
    ``resume=True`` continues from the saved state (or starts afresh when there is none).

    ``seed`` fixes the model's random draws (dropout), never the batch sampling nor the privacy
    noise: both are seeded from the operating system's entropy unless ``sampling_seed`` or
    ``noise_seed`` is given (for tests and reproductions only; a warning is logged, since
    amplification by subsampling assumes secret batches and the guarantee secret noise). ``clipping`` ("bk" or "vmap") and
    ``micro_batch_size`` choose the clipping engine (see :func:`~lmodp.train.make_private`).

    Inside a ``torch.distributed`` process group of world size > 1 (``distributed``: see
    :func:`~lmodp.train.make_private`) every rank calls ``finetune`` with the same arguments and
    the whole data set; each logical batch is spread over the ranks, the history is the whole
    run's on every rank, and rank 0 shows the progress bar. The model is replicated on every rank
    (rank 0 writes the checkpoints), or sharded with FSDP2: already ``fully_shard``-ed, or by
    ``shard=True`` (each block and the root of a Hugging Face model; ``shard=Sharding(...)`` to
    choose the gathered parameters' dtype), every rank then writing its shards
    (``torch.distributed.checkpoint``). Any world size resumes a checkpoint with the same ε. The
    non-private baseline runs in one process only.
    """
    o = FinetuneOptions.merged(options, **settings)
    if not private and (mechanism is not None or target_epsilon is not None or search_result is not None):
        raise ValueError("private=False trains without noise: drop mechanism, target_epsilon and search_result")
    device = _pick_device(o.device)
    ranks = process_group(o.distributed, device)
    if ranks is not None and not private:
        raise ValueError(
            f"private=False inside a process group of {ranks.world_size} processes: lmodp spreads DP-SGD runs only; "
            "run the non-private baseline in one process (or pass distributed=False to run it on each rank alone)"
        )
    spec = training_run(dataset_length(train_dataset), run, delta=delta, geometry=geometry, batch_size=batch_size, epochs=epochs)
    q, total_steps, delta, geometry = spec.sample_rate, spec.steps, spec.delta, spec.geometry
    steps_per_epoch = max(1, round(1.0 / q))
    eval_every = o.eval_every or steps_per_epoch
    checkpoint_every = o.checkpoint_every or steps_per_epoch
    task, checkpoint_dir = o.task, o.checkpoint_dir

    torch.manual_seed(o.model_seed)
    model.to(device).train()
    if private:
        chosen = resolve_mechanism(
            mechanism=mechanism, target_epsilon=target_epsilon, search_result=search_result, run=spec, accountant=o.accountant
        )
        engine = PrivacyEngine(
            model, num_examples=dataset_length(train_dataset), mechanism=chosen, max_grad_norm=o.max_grad_norm, run=spec,
            accountant=o.accountant, max_epsilon=o.max_epsilon if o.max_epsilon is not None else target_epsilon,
            on_exhausted=o.on_exhausted, sampling_seed=o.sampling_seed, noise_seed=o.noise_seed,
            distributed=o.distributed, shard=o.shard,
        )
        optimizer, scheduler = _optimizer_and_schedule(model, o, total_steps)
        stepper = engine.private_optimizer(
            optimizer, loss=task, clipping=o.clipping, micro_batch_size=o.micro_batch_size, autocast_dtype=o.autocast_dtype,
        )
        loader = engine.data_loader(train_dataset)
        main = engine.layout.is_main
        save_state, load_state = engine.save_checkpoint, engine.load_checkpoint
    else:
        if o.shard:
            raise ValueError("private=False trains in one process: drop shard")
        chosen = None
        optimizer, scheduler = _optimizer_and_schedule(model, o, total_steps)
        stepper = optimizer
        baseline_seed = o.model_seed if o.sampling_seed is None else o.sampling_seed  # no privacy to protect: reproducible by default
        loader = DPDataLoader(train_dataset, sample_rate=q, steps=total_steps, generator=torch.Generator().manual_seed(baseline_seed))
        main = True
        layout = SingleProcess()

        def save_state(directory: Any, *, optimizer: Any, state: dict[str, Any]) -> None:
            layout.save_checkpoint(
                directory, model=model, optimizer=optimizer, state={**state, "sampler_generator": loader.sampler.generator.get_state()}
            )

        def load_state(directory: Any, *, optimizer: Any) -> dict[str, Any] | None:
            state = layout.load_checkpoint(directory, model=model, optimizer=optimizer)
            if state is not None:
                loader.sampler.generator.set_state(state.pop("sampler_generator"))
            return state

    history = TrainingHistory(
        task=task, delta=delta, sample_rate=q, total_steps=total_steps,
        mechanism=None if chosen is None else chosen.to_dict(),
        metric_name=METRIC_NAMES[task],
        accountant=stepper.ledger.accountant.name if private else None,
    )

    done = 0
    if o.resume:
        state = load_state(checkpoint_dir, optimizer=stepper)
        if state is not None:
            if state["history"]["mechanism"] != history.mechanism or state["history"]["total_steps"] != total_steps:
                raise ValueError(f"the checkpoint in {checkpoint_dir} belongs to a run with other settings")
            scheduler.load_state_dict(state["scheduler"])
            history = TrainingHistory(**state["history"])
            done = len(history.step)
            logger.info("resumed from %s at step %d", checkpoint_dir, done)
    last_step = total_steps if o.max_steps is None else min(total_steps, done + o.max_steps)

    def checkpoint() -> None:
        if checkpoint_dir is not None:
            save_state(checkpoint_dir, optimizer=stepper, state={"scheduler": scheduler.state_dict(), "history": history.to_dict()})

    def evaluate(step: int) -> None:
        if eval_dataset is not None:
            history.eval_step.append(step)
            history.eval_metric.append(evaluate_metric(model, eval_dataset, task=task, batch_size=o.eval_batch_size, device=device))
            logger.info("step %d: eval %s = %.4f", step, history.metric_name, history.eval_metric[-1])

    loader = loader.with_steps(last_step - done)
    bar = progress_bar(total=total_steps, initial=done, enabled=o.progress and main, desc="DP fine-tuning" if private else "fine-tuning")
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
    history.final_epsilon = stepper.ledger.epsilon() if private else (math.inf if history.step else 0.0)
    if step > done or not history.eval_step:
        evaluate(step)
    checkpoint()
    return history
