"""Batches of examples as lmodp's training code passes them around.

A data set is either a mapping of column tensors with a common first dimension (``{"input_ids":
[N, L], "labels": [N]}``) or a sequence (e.g. a ``torch.utils.data.Dataset``) of per-example
mappings, which are stacked column by column; a batch is a mapping of column tensors whose first
dimension is the example. The model's forward pass gets every column but ``labels``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

Data = Mapping[str, torch.Tensor] | Sequence[Mapping[str, Any]]


def dataset_length(data: Data) -> int:
    """Number of examples N."""
    if isinstance(data, Mapping):
        sizes = {int(v.shape[0]) for v in data.values()}
        if len(sizes) != 1:
            raise ValueError(f"dataset columns must share their first dimension, got sizes {sorted(sizes)}")
        return sizes.pop()
    return len(data)


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack a non-empty list of per-example mappings into column tensors."""
    return {key: torch.stack([torch.as_tensor(item[key]) for item in items]) for key in items[0]}


def gather(data: Data, indices: torch.Tensor) -> dict[str, torch.Tensor]:
    """The examples at ``indices`` as a batch of column tensors (0 rows when ``indices`` is empty)."""
    if isinstance(data, Mapping):
        return {key: column[indices] for key, column in data.items()}
    if indices.numel() == 0:
        return {key: column[:0] for key, column in collate([data[0]]).items()}
    return collate([data[i] for i in indices.tolist()])


def model_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The keyword arguments of the forward pass: every column except ``labels``."""
    return {k: v for k, v in batch.items() if k != "labels"}


def batch_size_of(batch: Mapping[str, torch.Tensor]) -> int:
    """The common leading dimension of the batch's tensors."""
    sizes = {int(v.shape[0]) for v in batch.values()}
    if len(sizes) != 1:
        raise ValueError(f"batch tensors must share their leading (example) dimension, got sizes {sorted(sizes)}")
    return sizes.pop()
