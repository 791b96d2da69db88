"""Evaluation metrics over a whole data set: accuracy, and the token-level perplexity of a causal LM.

Both run the model in eval mode without gradients, in consecutive batches of ``batch_size`` rows
(each example's output depends on its own row only, so the batching does not change the value).
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import nn

from lmodp._validation import require_count
from lmodp.train.batches import Data, dataset_length, gather, model_inputs
from lmodp.train.losses import accuracy, causal_lm_token_losses

METRIC_NAMES = {"classification": "accuracy", "causal-lm": "perplexity"}


def _outputs(model: nn.Module, data: Data, *, batch_size: int, device: torch.device | None) -> Iterator[tuple[object, dict]]:
    """(model outputs, batch) for consecutive batches of ``data``, in eval mode and without gradients."""
    require_count("batch_size", batch_size, 1)
    device = device if device is not None else next(model.parameters()).device
    n = dataset_length(data)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                batch = gather(data, torch.arange(start, min(start + batch_size, n)))
                batch = {k: v.to(device) for k, v in batch.items()}
                yield model(**model_inputs(batch)), batch
    finally:
        model.train(was_training)


def perplexity(model: nn.Module, data: Data, *, batch_size: int = 64, device: torch.device | None = None) -> float:
    """Token-level perplexity exp(Σ NLL / Σ targets) of a causal LM over ``data``.

    The sums run over every valid target token of every sequence (targets as in
    :func:`lmodp.train.losses.causal_lm_token_losses`: ``labels`` with -100 for prompt and padding
    tokens, else ``input_ids`` under the attention mask), so longer sequences weigh more, as in
    the usual definition. ValueError when ``data`` has no target token."""
    total, count = 0.0, 0.0
    for outputs, batch in _outputs(model, data, batch_size=batch_size, device=device):
        nll, tokens = causal_lm_token_losses(outputs, batch)
        total += float(nll.sum())
        count += float(tokens.sum())
    if count == 0:
        raise ValueError("the evaluation data has no target token (every label is -100 or padding)")
    return math.exp(total / count)


def mean_accuracy(model: nn.Module, data: Data, *, batch_size: int = 64, device: torch.device | None = None) -> float:
    """The fraction of examples whose arg-max class equals ``labels``."""
    correct = sum(float(accuracy(outputs, batch).sum()) for outputs, batch in _outputs(model, data, batch_size=batch_size, device=device))
    return correct / dataset_length(data)


def evaluate(model: nn.Module, data: Data, *, task: str, batch_size: int = 64, device: torch.device | None = None) -> float:
    """The evaluation metric of ``task``: accuracy (classification) or perplexity (causal LM)."""
    if task == "classification":
        return mean_accuracy(model, data, batch_size=batch_size, device=device)
    if task == "causal-lm":
        return perplexity(model, data, batch_size=batch_size, device=device)
    raise ValueError(f"task must be one of {tuple(METRIC_NAMES)}, got {task!r}")
