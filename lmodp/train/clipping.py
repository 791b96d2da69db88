"""Flat L2 clipping of per-example gradients (Abadi et al., CCS 2016, Algorithm 1).

Example i's gradient, all trainable tensors flattened into one vector g_i, is rescaled to
g_i · min(1, C / ‖g_i‖₂). Every clipped vector then has ‖·‖₂ ≤ C, so adding or removing one
example moves the *sum* of clipped gradients by at most C in L2: the ``"l2"`` sensitivity the
accountant is told about. All arithmetic here is float32 (or float64 when the gradients are),
whatever precision the forward/backward pass used.

:class:`ClippedGradientSum` is what every clipping engine fills: the running clipped sum of one
logical batch, micro-batch after micro-batch, with the batch's statistics.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Protocol

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


class ClippedGradientSum:
    """Σ_i clip_C(g_i) per trainable parameter over one logical batch, and its statistics.

    ``add`` takes the clipped sum of one micro-batch for one parameter; ``record_norms`` and
    ``record_losses`` the micro-batch's unclipped per-example norms and per-example losses. ``totals``
    gives every parameter's sum (zeros for a parameter no example reached), in float32 or wider.
    """

    def __init__(self, parameters: Mapping[str, torch.nn.Parameter], *, max_grad_norm: float) -> None:
        self.parameters = dict(parameters)
        self.max_grad_norm = require_positive("max_grad_norm", max_grad_norm)
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}
        self._norms: list[torch.Tensor] = []
        self._loss_total = 0.0
        self._loss_examples = 0

    def add(self, name: str, summed: torch.Tensor | None) -> None:
        """Add one micro-batch's clipped sum for parameter ``name`` (``None``: no example reached it)."""
        if summed is None:
            return
        shape = self.parameters[name].shape
        summed = summed.reshape(shape).contiguous()
        if name in self._sums:
            self._sums[name] += summed
        else:
            self._sums[name] = _float(summed)

    def record_norms(self, norms: torch.Tensor) -> None:
        """The unclipped per-example norms of one micro-batch (one entry per example)."""
        self._norms.append(norms.detach())

    def record_losses(self, losses: torch.Tensor) -> None:
        """The per-example losses of one micro-batch."""
        self._loss_total += float(losses.detach().double().sum())
        self._loss_examples += int(losses.shape[0])

    def totals(self) -> dict[str, torch.Tensor]:
        """The running sums themselves (contiguous, not copies: the caller may finish them in place)."""
        for name, p in self.parameters.items():
            if name not in self._sums:
                self._sums[name] = torch.zeros(p.shape, dtype=_float(p).dtype, device=p.device)
        return {name: self._sums[name] for name in self.parameters}

    def norms(self) -> torch.Tensor:
        """The unclipped per-example gradient norms recorded so far, in order."""
        if not self._norms:
            return torch.zeros(0)
        return torch.cat([n.reshape(-1).cpu() for n in self._norms])

    @property
    def examples(self) -> int:
        return sum(int(n.numel()) for n in self._norms)

    @property
    def loss_total(self) -> float:
        """Sum of the per-example losses recorded so far."""
        return self._loss_total

    @property
    def loss_examples(self) -> int:
        """Number of per-example losses recorded so far."""
        return self._loss_examples

    def mean_loss(self) -> float | None:
        """Mean per-example loss of the batch (None when no loss was recorded)."""
        return self._loss_total / self._loss_examples if self._loss_examples else None

    def clipped_count(self) -> int:
        """Number of examples whose gradient norm exceeded C."""
        return int((self.norms() > self.max_grad_norm).sum())

    def clipped_fraction(self) -> float | None:
        """Share of examples whose gradient norm exceeded C (None for an empty batch)."""
        if not self.examples:
            return None
        return self.clipped_count() / self.examples


class ClippingEngine(Protocol):
    """What :class:`~lmodp.train.optimizer.DPOptimizer` needs from a clipping engine
    (:class:`~lmodp.train.book_keeping.BookKeepingClipping`, :class:`~lmodp.train.vmap_clipping.VmapClipping`)."""

    sums: ClippedGradientSum

    def trainable_parameters(self) -> dict[str, torch.nn.Parameter]: ...

    def accumulate(self, batch: Mapping[str, torch.Tensor]) -> None: ...

    def clipped_sums(self) -> dict[str, torch.Tensor]: ...

    def reset(self) -> None: ...
