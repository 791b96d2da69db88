"""Per-example losses and metrics for the two supported tasks.

A *per-example loss* is a callable ``loss(outputs, batch) -> Tensor[B]`` where ``outputs`` is what
the model returned for ``batch`` (a Hugging Face ``ModelOutput`` with ``.logits``, a tuple whose
first item is the logits, or the logits tensor) and ``batch`` a mapping of tensors with leading
dimension B. DP-SGD needs one loss per example: the gradient of example i must depend on
example i only, so nothing here averages across the batch.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

PerExampleLoss = Callable[[Any, Mapping[str, torch.Tensor]], torch.Tensor]

TASKS = ("classification", "causal-lm")


def model_logits(outputs: Any) -> torch.Tensor:
    """The logits inside a model's outputs (``.logits``, first tuple item, or the tensor)."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if hasattr(outputs, "logits"):
        return outputs.logits
    return outputs[0]


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Upcast half precision logits; keep float64 as it is."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def classification_loss(outputs: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of each example's logits [B, K] against ``batch["labels"]`` [B]."""
    logits = _at_least_float32(model_logits(outputs))
    return F.cross_entropy(logits, batch["labels"], reduction="none")


def causal_lm_token_losses(outputs: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence: the summed next-token cross-entropy over its valid targets, and their number.

    Position t predicts token t+1. Targets are ``batch["labels"]`` when present (``-100`` = ignore,
    the transformers convention: prompt and padding tokens), else ``batch["input_ids"]``; targets
    at padded positions (``attention_mask == 0``) are ignored. Returns (sum_t m_bt·CE_bt, sum_t m_bt),
    each of shape [B].
    """
    logits = _at_least_float32(model_logits(outputs))[:, :-1]
    targets = (batch["labels"] if "labels" in batch else batch["input_ids"])[:, 1:]
    valid = targets != -100
    if "attention_mask" in batch:
        valid = valid & batch["attention_mask"][:, 1:].bool()
    safe_targets = torch.where(valid, targets, torch.zeros_like(targets))
    token_loss = F.cross_entropy(logits.transpose(1, 2), safe_targets, reduction="none")
    token_loss = torch.where(valid, token_loss, torch.zeros_like(token_loss))
    return token_loss.sum(dim=1), valid.sum(dim=1).to(token_loss.dtype)


def causal_lm_loss(outputs: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mask-aware mean next-token cross-entropy per sequence: the loss of sequence b is
    sum_t m_bt·CE_bt / max(1, sum_t m_bt) over its own valid targets
    (:func:`causal_lm_token_losses`), so a sequence with no valid target has loss 0 and no
    sequence's loss depends on another's length."""
    total, count = causal_lm_token_losses(outputs, batch)
    return total / count.clamp(min=1)


def accuracy(outputs: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """1.0 where the arg-max class equals ``batch["labels"]``, else 0.0 (per example)."""
    return (model_logits(outputs).argmax(dim=-1) == batch["labels"]).float()


def loss_for_task(task: str) -> PerExampleLoss:
    """The per-example loss of ``task`` ("classification" or "causal-lm")."""
    if task == "classification":
        return classification_loss
    if task == "causal-lm":
        return causal_lm_loss
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")
