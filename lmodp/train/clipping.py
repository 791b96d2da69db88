"""Flat L2 clipping of per-example gradients (Abadi et al., CCS 2016, Algorithm 1).

Example i's gradient, all trainable tensors flattened into one vector g_i, is rescaled to
g_i · min(1, C / ‖g_i‖₂). Every clipped vector then has ‖·‖₂ ≤ C, so adding or removing one
example moves the *sum* of clipped gradients by at most C in L2: the ``"l2"`` sensitivity the
accountant is told about. All arithmetic here is float32 (or float64 when the gradients are),
whatever precision the forward/backward pass used.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch

from lmodp._validation import require_positive


def _float(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


def per_example_norms(grads: Iterable[torch.Tensor]) -> torch.Tensor:
    """‖g_i‖₂ over all tensors (each of shape (m, ...)), in float32 or wider; shape (m,)."""
    squares = [_float(g).flatten(start_dim=1).square().sum(dim=1) for g in grads]
    return torch.stack(squares).sum(dim=0).sqrt()


def clip_factors(norms: torch.Tensor, max_grad_norm: float) -> torch.Tensor:
    """min(1, C/‖g_i‖): exactly 1 inside the ball (zero gradients included, no NaN), C/‖g_i‖ outside."""
    c = require_positive("max_grad_norm", max_grad_norm)
    return torch.where(norms > c, c / norms, torch.ones_like(norms))


def clipped_sum(grads: Mapping[str, torch.Tensor], max_grad_norm: float) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Σ_i g_i·min(1, C/‖g_i‖) per tensor (float32 or wider), and the unclipped norms ‖g_i‖."""
    norms = per_example_norms(grads.values())
    factors = clip_factors(norms, max_grad_norm)
    summed = {name: torch.tensordot(factors, _float(g), dims=1) for name, g in grads.items()}
    return summed, norms
