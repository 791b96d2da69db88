"""How :func:`lmodp.train.finetune` trains: one frozen :class:`FinetuneOptions` value.

The noise (mechanism or target ε) and the run (batch size and epochs, or a
:class:`~lmodp.accounting.spec.RunSpec`) are passed apart from these settings; every setting
here can also be passed to ``finetune`` as a keyword.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from lmodp._options import Settings
from lmodp._validation import require_positive
from lmodp.accounting.base import PrivacyAccountant
from lmodp.train.fsdp import Sharding
from lmodp.train.losses import TASKS

LR_SCHEDULES = ("constant", "linear")


@dataclass(frozen=True)
class FinetuneOptions(Settings):
    """The settings of a fine-tuning run (see :func:`lmodp.train.finetune`), each checked here or
    where it is used (``ValueError`` naming the bad one).

    * optimisation: ``learning_rate``, ``weight_decay`` (AdamW), ``lr_schedule`` ("constant" or
      "linear" decay to 0), ``task`` ("classification" or "causal-lm");
    * privacy: ``max_grad_norm`` (the clip norm C), ``accountant``, ``max_epsilon`` (budget;
      default: the target ε), ``on_exhausted``, ``sampling_seed`` and ``noise_seed`` (None:
      secret batch sampling and noise);
    * clipping: ``clipping`` ("bk" or "vmap"), ``micro_batch_size``;
    * evaluation and checkpoints: ``eval_every``, ``eval_batch_size``, ``checkpoint_dir``,
      ``checkpoint_every``, ``resume``, ``max_steps``;
    * the machine: ``seed`` (dropout; never the batch sampling nor the noise), ``device``,
      ``autocast_dtype``, ``progress``, ``distributed``, ``shard`` (True or a
      :class:`~lmodp.train.fsdp.Sharding`: shard the model with FSDP2 across the process group).
    """

    max_grad_norm: float = 1.0
    learning_rate: float = 5e-4
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    task: str = "classification"
    accountant: str | PrivacyAccountant = "auto"
    max_epsilon: float | None = None
    on_exhausted: str = "stop"
    clipping: str = "bk"
    micro_batch_size: int | None = None
    eval_every: int | None = None
    eval_batch_size: int = 64
    seed: int = 0
    sampling_seed: int | None = None
    noise_seed: int | None = None
    checkpoint_dir: str | os.PathLike[str] | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    max_steps: int | None = None
    device: str | torch.device | None = "auto"
    autocast_dtype: torch.dtype | None = None
    progress: bool = True
    distributed: bool | None = None
    shard: bool | Sharding = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        require_positive("learning_rate", self.learning_rate)
        if not isinstance(self.shard, (bool, Sharding)):
            raise ValueError(f"shard must be True, False or a Sharding, got {self.shard!r}")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")
