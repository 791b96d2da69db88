"""Checkpoints of a fine-tuning run that resume bit for bit.

A checkpoint holds the model, the optimizer (with the DP wrapper: the privacy ledger, i.e. the
accountant's state, and the noise generator), the learning-rate schedule, the history, and every
random state the run consumes: the global torch (CPU and CUDA) states (dropout), Python's and
numpy's, and the batch sampler's generator. It is written to a temporary file and renamed, so
an interrupted save never leaves a corrupt checkpoint behind.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"


def capture_rng_states() -> dict[str, Any]:
    """The global random states: torch CPU, every CUDA device, Python, numpy."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_states`."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])


def checkpoint_path(directory: str | os.PathLike[str]) -> Path:
    return Path(directory) / CHECKPOINT_NAME


def save_checkpoint(directory: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the global RNG states) atomically to ``directory/checkpoint.pt``."""
    path = checkpoint_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({**state, "rng": capture_rng_states()}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The saved state (global RNG states already restored), or ``None`` if there is none."""
    path = checkpoint_path(directory)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    restore_rng_states(state.pop("rng"))
    return state
