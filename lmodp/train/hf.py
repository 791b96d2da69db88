r"""``PrivateTrainer``: a Hugging Face ``transformers.Trainer`` that trains with DP-SGD.

Swap ``Trainer`` for ``PrivateTrainer`` and add the privacy arguments; everything else of a
Trainer script (``TrainingArguments``, datasets, collators, callbacks, evaluation, checkpoints,
``peft`` models) stays. What changes, and why:

* **Poisson sampling.** The training data loader yields, at each optimizer step, a Poisson
  sample of the training set (each example independently with probability q) split into
  ``gradient_accumulation_steps`` micro-batches. The expected logical batch is the Trainer's
  total train batch size B = per-device batch × accumulation steps, so q = B/N, and an epoch is
  round(N/B) steps. Sizes vary (Binomial(N, q)); an empty micro-batch is skipped, an empty
  logical batch still gets noise and is still accounted (skipping it would change the analysis).
* **Per-example clipping and noise** (:class:`~lmodp.train.optimizer.DPOptimizer` around the
  optimizer the Trainer builds, book-keeping clipping): each micro-batch's forward and backward
  pass is clipped per example as it runs; at the optimizer step the clipped sum gets C·noise
  *once* and the ledger is charged *once*, whatever the number of micro-batches.
* **Per-example losses.** ``compute_loss`` returns the mean over the micro-batch of one loss per
  example (:mod:`lmodp.train.losses`, or ``loss=`` a callable ``loss(outputs, batch) ->
  Tensor[B]``), never the model's own ``outputs.loss``, which for causal LM averages over the
  tokens of the whole batch and so couples the examples.
* **Accounting.** ε(δ) after each step (sound upper bound, ``accountant`` "auto" by default:
  the PLD for Gaussian noise, the RDP otherwise; l2 geometry) is added to every Trainer log record under the key ``epsilon``; with a budget
  (``target_epsilon``, or ``max_epsilon``) training stops (``should_training_stop``) after the
  last step that fits, before any step that would exceed it is computed.
* **Checkpoints** hold the privacy state: the ledger and the noise generator (in the optimizer's
  state, ``optimizer.pt``) and the batch sampler's generator and the run's privacy settings
  (``lmodp_privacy.pt``). Resuming restores them; a checkpoint without them, or from a run with
  other privacy settings, is refused rather than restarted with a fresh ledger.

Refused with ``ValueError`` (they would break the guarantee or be silently ignored):
a ``train_sampling_strategy`` other than "random" (the sampler is replaced), ``dataloader_drop_last``,
``auto_find_batch_size`` (q would change mid-run), more than one process or GPU, DeepSpeed,
FSDP (accelerate's, FSDP1 or FSDP2: use :func:`lmodp.train.finetune` with ``shard=True`` under
torchrun instead, see docs/distributed.md), ``fp16`` (the loss scaler scales the per-example gradients that are clipped; ``bf16`` is
fine), activation checkpointing, ``torch_compile``, ``use_liger_kernel``, ``label_smoothing_factor``, ``compute_loss_func`` (a batch
loss), an iterable training set (N unknown). The Trainer's own ``max_grad_norm`` (global
clipping of the summed gradient, default 1.0) is switched off, with a log line: it would clip
the released gradient and log the norm of the raw, non-private batch gradient.

The noise is secret (seeded from the operating system's entropy) unless ``noise_seed`` is given;
so is the batch sampling unless ``sampling_seed`` is given: amplification by subsampling assumes
the sample is not known, and the Trainer's ``args.seed`` is usually public.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from typing import Any, Callable, Mapping

import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

from lmodp._validation import require_delta
from lmodp.mechanisms import Mechanism
from lmodp.accounting.base import PrivacyAccountant
from lmodp.accounting.spec import RunSpec
from lmodp.train.calibration import resolve_mechanism
from lmodp.train.losses import PerExampleLoss, causal_lm_loss, causal_lm_token_losses, loss_for_task
from lmodp.train.optimizer import DPOptimizer
from lmodp.train.batches import model_inputs
from lmodp.train.privacy_engine import PrivacyEngine, _check_geometry, require_clip_norm, resolve_sample_rate, steps_for_epochs

logger = logging.getLogger(__name__)

PRIVACY_STATE_NAME = "lmodp_privacy.pt"


def _rows(batch: Mapping[str, Any]) -> int:
    """The number of examples in a collated batch (rows of its first tensor)."""
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    raise ValueError(f"the collated batch has no tensor with a batch dimension (keys {sorted(batch)})")


class _EmptySafeCollator:
    """The Trainer's collator, and for an empty index list the collation of one example cut to
    zero rows (same keys, dtypes and trailing shapes), which the Trainer's book-keeping accepts."""

    def __init__(self, collator: Callable[[list], Any], dataset: Any) -> None:
        self.collator = collator
        self.dataset = dataset

    def __call__(self, features: list) -> Any:
        if features:
            return self.collator(features)
        one = self.collator([self.dataset[0]])
        return {k: v[:0] if isinstance(v, torch.Tensor) else v for k, v in one.items()}


def _base_model_name(model: torch.nn.Module) -> str:
    """The class name of the model (of the wrapped model for a ``peft`` model)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__name__


def default_loss(model: torch.nn.Module) -> str:
    """The per-example loss of a transformers model class: "causal-lm" for a causal LM,
    "classification" for a sequence classifier; ValueError for any other model."""
    name = _base_model_name(model)
    if name in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        return "causal-lm"
    if name in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values():
        return "classification"
    raise ValueError(
        f"PrivateTrainer cannot tell the per-example loss of {name}: pass loss='classification', 'causal-lm' or a "
        "callable loss(outputs, batch) -> Tensor[batch] with one loss per example"
    )


def _refuse_unsound_arguments(args: TrainingArguments, kwargs: Mapping[str, Any]) -> None:
    """ValueError for each Trainer setting that would break the guarantee or be silently ignored."""
    checks = [
        (args.train_sampling_strategy != "random", f"train_sampling_strategy={args.train_sampling_strategy!r}: "
         "PrivateTrainer samples each logical batch by Poisson sampling (what the accountant assumes); leave it 'random'"),
        (args.dataloader_drop_last, "dataloader_drop_last=True has no meaning under Poisson sampling; leave it False"),
        (args.auto_find_batch_size, "auto_find_batch_size=True would change the sampling rate q mid-run"),
        (bool(args.fsdp), "FSDP in TrainingArguments (accelerate's FSDP2) is not supported by PrivateTrainer: accelerate "
         "shards the model after the privacy engine was built and skips no micro-batch collectively. Train sharded with "
         "lmodp instead: launch with torchrun and call lmodp.train.finetune(..., shard=True), or make_private on a "
         "fully_shard-ed model (docs/distributed.md)"),
        (bool(args.deepspeed), "DeepSpeed is not supported by PrivateTrainer: for sharded training launch with torchrun "
         "and use lmodp.train.finetune(..., shard=True) (FSDP2, docs/distributed.md)"),
        (args.world_size > 1 or args.n_gpu > 1, f"PrivateTrainer runs on one process and one device (world_size="
         f"{args.world_size}, n_gpu={args.n_gpu}): each process would draw and clip its own batch. For data-parallel "
         "or sharded private training launch with torchrun and use lmodp.train.finetune (shard=True for FSDP2)"),
        (args.fp16, "fp16=True scales the loss, hence the per-example gradients that are clipped: use bf16=True or fp32"),
        (args.activation_checkpointing or args.gradient_checkpointing,
         "activation checkpointing reruns layers in the backward pass, which book-keeping clipping cannot follow"),
        (args.torch_compile or args.use_liger_kernel,
         "torch_compile and use_liger_kernel change how layers run, which book-keeping clipping must see; switch them off"),
        (args.label_smoothing_factor != 0, "label_smoothing_factor: pass a per-example loss=callable that smooths instead"),
        (kwargs.get("compute_loss_func") is not None,
         "compute_loss_func returns a batch loss; pass loss= a callable returning one loss per example instead"),
    ]
    for failed, message in checks:
        if failed:
            raise ValueError(message)


class _PrivacyCallback(TrainerCallback):
    """Stops training after the last step the budget allows, and checks the planned number of steps."""

    def __init__(self, trainer: "PrivateTrainer") -> None:
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        if state.max_steps != self.trainer.planned_steps:
            raise ValueError(
                f"the Trainer plans {state.max_steps} steps but the privacy settings were made for "
                f"{self.trainer.planned_steps}: do not change the TrainingArguments after creating PrivateTrainer"
            )
        self._stop_if_spent(state, control)

    def on_step_end(self, args, state, control, **kwargs):
        self._stop_if_spent(state, control)

    def _stop_if_spent(self, state, control):
        if state.global_step < state.max_steps and not self.trainer.ledger.next_step_fits():
            self.trainer.stopped_by_budget = True
            control.should_training_stop = True
            logger.info("privacy budget reached after %d steps (epsilon=%.6g): stopping",
                        self.trainer.ledger.steps, self.trainer.ledger.epsilon())


class PrivateTrainer(Trainer):
    """A ``transformers.Trainer`` that trains with DP-SGD (see the module docstring).

    Takes the Trainer's arguments unchanged, plus (keyword-only): ``mechanism`` (any lmodp
    mechanism) **or** ``target_epsilon`` (a Gaussian calibrated by
    :func:`lmodp.search.calibrate_gaussian` to this run's q, T, δ; with ``search_result`` the
    mechanism of a :class:`lmodp.search.SearchResult` or its JSON, checked against the target for
    this run), ``max_grad_norm`` (the per-example L2 clip norm C), ``delta``, ``geometry``
    ("l2"), ``accountant`` ("auto", the default, "rdp", "pld" or a ``PrivacyAccountant``), ``max_epsilon`` (budget;
    defaults to ``target_epsilon``), ``loss`` ("classification", "causal-lm" or a per-example
    callable; default from the model class), ``noise_seed`` and ``sampling_seed`` (None:
    secret). T is ``args.max_steps`` or ceil(``num_train_epochs`` × round(N/B)).

    After training, ``trainer.ledger`` holds the accountant (``trainer.epsilon()`` is ε(δ) spent),
    ``trainer.mechanism`` the noise, ``trainer.stopped_by_budget`` whether the budget ended the run.
    """

    def __init__(
        self,
        *args: Any,
        mechanism: Mechanism | None = None,
        target_epsilon: float | None = None,
        search_result: Any = None,
        max_grad_norm: float,
        delta: float,
        geometry: str = "l2",
        accountant: str | PrivacyAccountant = "auto",
        max_epsilon: float | None = None,
        loss: str | PerExampleLoss | None = None,
        noise_seed: int | None = None,
        sampling_seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        if not isinstance(training_args, TrainingArguments):
            raise ValueError("PrivateTrainer needs args=TrainingArguments(...) (its batch size fixes the sampling rate)")
        _refuse_unsound_arguments(training_args, kwargs)
        if kwargs.get("model_init") is not None:
            raise ValueError("model_init is not supported: pass the model (the clipping hooks are set on it)")
        training_args = self._private_arguments(training_args)
        if "args" in kwargs:
            kwargs["args"] = training_args
        else:
            args = (args[0], training_args, *args[2:])
        super().__init__(*args, **kwargs)
        if self.train_dataset is None or not hasattr(self.train_dataset, "__len__"):
            raise ValueError("PrivateTrainer needs a train_dataset with a length N (the sampling rate is B/N)")
        self.max_grad_norm = require_clip_norm(max_grad_norm)
        self.delta = require_delta("delta", delta)
        self.geometry = _check_geometry(geometry, self.model)
        self.dataset_size = len(self.train_dataset)
        self.sample_rate = resolve_sample_rate(
            self.dataset_size, sample_rate=None, batch_size=self.get_total_train_batch_size(self.args)
        )
        self.steps_per_epoch = steps_for_epochs(1.0, self.sample_rate)
        self.planned_steps = (
            self.args.max_steps if self.args.max_steps > 0 else math.ceil(self.args.num_train_epochs * self.steps_per_epoch)
        )
        self.mechanism = resolve_mechanism(
            mechanism=mechanism, target_epsilon=target_epsilon, search_result=search_result, accountant=accountant,
            run=RunSpec(sample_rate=self.sample_rate, steps=self.planned_steps, delta=self.delta, geometry=self.geometry),
        )
        self.engine = PrivacyEngine(
            self.model, num_examples=self.dataset_size, mechanism=self.mechanism, max_grad_norm=self.max_grad_norm,
            run=RunSpec(sample_rate=self.sample_rate, steps=self.planned_steps, delta=self.delta, geometry=self.geometry),
            accountant=accountant, max_epsilon=max_epsilon if max_epsilon is not None else target_epsilon,
            on_exhausted="stop", sampling_seed=sampling_seed, noise_seed=noise_seed, distributed=False,
        )
        self.ledger = self.engine.ledger
        self.per_example_loss = loss_for_task(loss or default_loss(self.model)) if not callable(loss) else loss
        self.sampling_generator = self.engine.sampling_generator
        self.stopped_by_budget = False
        self.add_callback(_PrivacyCallback(self))
        logger.info(
            "PrivateTrainer: %s, C=%g, q=%.6g (expected batch %d of %d), T=%d, delta=%g, geometry=%s",
            type(self.mechanism).__name__, self.max_grad_norm, self.sample_rate,
            self.get_total_train_batch_size(self.args), self.dataset_size, self.planned_steps, self.delta, self.geometry,
        )

    @staticmethod
    def _private_arguments(args: TrainingArguments) -> TrainingArguments:
        """A copy of ``args`` with the Trainer's global clipping off and data skipping off (a resumed
        run draws fresh Poisson batches from the restored sampler instead of replaying the epoch)."""
        if args.max_grad_norm:
            logger.info(
                "TrainingArguments.max_grad_norm=%g (clipping of the summed gradient) is switched off: PrivateTrainer "
                "clips each example to its own max_grad_norm, and the summed gradient's norm is not private", args.max_grad_norm,
            )
        private = copy.copy(args)
        private.max_grad_norm = 0.0
        private.ignore_data_skip = True
        return private

    # --- privacy state ---------------------------------------------------------------------
    def epsilon(self) -> float:
        """ε(δ) spent so far (sound upper bound; 0 before the first step)."""
        return self.ledger.epsilon()

    def _privacy_settings(self) -> dict[str, Any]:
        return {
            "mechanism": self.mechanism.to_dict(), "sample_rate": self.sample_rate, "delta": self.delta,
            "geometry": self.geometry, "max_grad_norm": self.max_grad_norm, "dataset_size": self.dataset_size,
        }

    # --- data ------------------------------------------------------------------------------
    def get_train_dataloader(self) -> DataLoader:
        """Poisson-sampled logical batches, each split into ``gradient_accumulation_steps`` micro-batches."""
        dataset = self.train_dataset
        collator = self._get_collator_with_removed_columns(self.data_collator, description="training")
        sampler = self.engine.poisson_sampler(steps=self.steps_per_epoch).micro_batch_lists(
            self.args.gradient_accumulation_steps
        )
        return DataLoader(
            dataset, batch_sampler=sampler, collate_fn=_EmptySafeCollator(collator, dataset),
            num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory,
        )

    # --- optimizer -------------------------------------------------------------------------
    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer (or the one passed in ``optimizers``) wrapped in a DPOptimizer."""
        optimizer = super().create_optimizer(model)
        if isinstance(optimizer, DPOptimizer):
            return optimizer
        self.optimizer = self.engine.private_optimizer(optimizer, loss=self.per_example_loss, loss_reduction="mean")
        return self.optimizer

    def _get_grad_norm(self, model: torch.nn.Module, grad_norm: Any = None) -> None:
        """No gradient norm is logged: before the step there is no parameter gradient (book-keeping
        keeps the clipped sums aside), and the raw batch gradient's norm would not be private."""
        return None

    # --- loss and step -----------------------------------------------------------------------
    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
        """The mean over the micro-batch of the per-example losses (``loss_reduction="mean"``);
        during a causal-LM evaluation, the token sums of the perplexity are added up too."""
        outputs = model(**model_inputs(inputs))
        loss = self.per_example_loss(outputs, inputs).mean()
        if getattr(self, "_perplexity_sums", None) is not None:
            nll, tokens = causal_lm_token_losses(outputs, inputs)
            self._perplexity_sums += torch.stack([nll.sum(), tokens.sum()]).detach().to("cpu", torch.float64)
        return (loss, outputs) if return_outputs else loss

    def evaluation_loop(self, dataloader: DataLoader, description: str, prediction_loss_only: bool | None = None,
                        ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval") -> Any:
        """The Trainer's evaluation; with the causal-LM loss its metrics also hold
        ``{metric_key_prefix}_perplexity``: exp(Σ NLL / Σ target tokens) over the evaluation set
        (as :func:`lmodp.train.evaluation.perplexity`; ``eval_loss`` is the mean per-example loss)."""
        if self.per_example_loss is not causal_lm_loss:
            return super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        self._perplexity_sums = torch.zeros(2, dtype=torch.float64)
        try:
            output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
            total, count = self._perplexity_sums.tolist()
        finally:
            self._perplexity_sums = None
        if count > 0:
            output.metrics[f"{metric_key_prefix}_perplexity"] = math.exp(total / count)
        return output

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        """Forward and backward of one micro-batch; clipped and summed by book-keeping as it runs.

        The loss is not divided by the accumulation steps (the clipping needs each example's own
        gradient); the returned value is, so that the Trainer logs a per-example mean. An empty
        micro-batch, or one after the budget was spent, runs nothing."""
        if _rows(inputs) == 0 or self.control.should_training_stop:
            return torch.zeros((), device=self.args.device)
        model.train()
        inputs = self._prepare_inputs(inputs)
        with self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        self.accelerator.backward(loss)
        return loss.detach() / self.current_gradient_accumulation_steps

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Every log record carries ``epsilon``: ε(δ) spent so far."""
        super().log({**logs, "epsilon": self.epsilon()}, start_time)

    # --- checkpoints -----------------------------------------------------------------------
    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        torch.save(
            {"settings": self._privacy_settings(), "sampling_generator": self.sampling_generator.get_state()},
            os.path.join(output_dir, PRIVACY_STATE_NAME),
        )

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        path = os.path.join(checkpoint, PRIVACY_STATE_NAME)
        if not os.path.isfile(path) or not os.path.isfile(os.path.join(checkpoint, "optimizer.pt")):
            raise ValueError(
                f"{checkpoint} holds no lmodp privacy state ({PRIVACY_STATE_NAME} and optimizer.pt): resuming from it "
                "would restart the privacy ledger at 0 (was it saved with save_only_model=True?)"
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["settings"] != self._privacy_settings():
            raise ValueError(f"the checkpoint {checkpoint} belongs to a run with other privacy settings: {state['settings']}")
        super()._load_optimizer_and_scheduler(checkpoint)
        self.sampling_generator.set_state(state["sampling_generator"])
        logger.info("resumed the privacy state from %s: %d steps, epsilon=%.6g", checkpoint, self.ledger.steps, self.epsilon())
