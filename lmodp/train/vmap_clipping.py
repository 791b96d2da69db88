"""Per-example gradients with ``torch.func``: ``vmap(grad(loss of one example))``.

For a batch of B examples this returns g_i = ∇_θ ℓ(θ; x_i) for every i, the quantity DP-SGD
clips (Abadi et al., CCS 2016). The loss of example i is evaluated through
``torch.func.functional_call`` on a *per-example view*: inside ``vmap`` every input gets a leading
batch dimension of 1 (``x_i.unsqueeze(0)``), so the model runs exactly as on a batch of one.
This sidesteps models that build unbatched helper tensors from the input shape (GPT-2's
``position_ids = arange(L).unsqueeze(0)``, broadcast against a vmapped batch, is the classic
trap) and makes g_i equal a one-example autograd pass.

* Only parameters with ``requires_grad`` are differentiated; frozen ones are passed as constants.
* Tied weights (e.g. GPT-2's input embedding and LM head) appear once in
  ``named_parameters()`` and ``functional_call(..., tie_weights=True)`` keeps them tied, so their
  per-example gradient is the sum over both uses, as in autograd.
* Dropout draws a different mask per example (``vmap(randomness="different")``).
* The batch is processed in micro-batches of ``micro_batch_size`` so the B × |θ| per-example
  gradients never exist at once; memory is micro_batch_size × |θ|.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from lmodp.train.batches import batch_size_of, model_inputs
from lmodp.train.clipping import ClippedGradientSum, clipped_sum
from lmodp.train.vmap_attention import make_vmap_safe
from lmodp.train.losses import PerExampleLoss


class PerSampleGradients:
    """Compute per-example gradients of a per-example loss, micro-batch by micro-batch.

    ``loss_fn(outputs, batch) -> Tensor[B]`` (see :mod:`lmodp.train.losses`). Calling the object
    on a batch yields ``(grads, losses)`` per micro-batch: ``grads[name]`` has shape
    ``(m, *param.shape)`` for every trainable parameter and ``losses`` shape ``(m,)``.
    ``autocast_dtype`` (e.g. ``torch.bfloat16``) runs forward/backward under ``torch.autocast``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: PerExampleLoss,
        *,
        micro_batch_size: int,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        if isinstance(micro_batch_size, bool) or not isinstance(micro_batch_size, int) or micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be an integer >= 1, got {micro_batch_size!r}")
        self.model = make_vmap_safe(model)
        self.loss_fn = loss_fn
        self.micro_batch_size = micro_batch_size
        self.autocast_dtype = autocast_dtype
        self.trainable_names = [n for n, p in model.named_parameters() if p.requires_grad]
        if not self.trainable_names:
            raise ValueError("the model has no trainable parameters (every parameter has requires_grad=False)")
        self._per_example = vmap(
            grad(self._example_loss, has_aux=True), in_dims=(None, None, 0), randomness="different"
        )

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """Name → parameter for the parameters that receive (private) gradients."""
        params = dict(self.model.named_parameters())
        return {n: params[n] for n in self.trainable_names}

    def _example_loss(
        self, trainable: dict[str, torch.Tensor], constants: dict[str, torch.Tensor], example: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = {k: v.unsqueeze(0) for k, v in example.items()}
        outputs = functional_call(self.model, (trainable, constants), args=(), kwargs=model_inputs(batch))
        loss = self.loss_fn(outputs, batch).sum()
        return loss, loss.detach()

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def __call__(self, batch: Mapping[str, torch.Tensor]) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        n = batch_size_of(batch)
        trainable = {name: p.detach() for name, p in self.trainable_parameters().items()}
        constants = {name: p.detach() for name, p in self.model.named_parameters() if name not in trainable}
        constants.update(dict(self.model.named_buffers()))
        device = next(iter(trainable.values())).device
        for start in range(0, n, self.micro_batch_size):
            chunk = {k: v[start : start + self.micro_batch_size].to(device) for k, v in batch.items()}
            with self._autocast(device):
                grads, losses = self._per_example(trainable, constants, chunk)
            yield grads, losses


class VmapClipping:
    """The ``clipping="vmap"`` engine: per-example gradients materialised by :class:`PerSampleGradients`,
    clipped (:func:`~lmodp.train.clipping.clipped_sum`) and summed micro-batch by micro-batch.

    Works for any model ``torch.func`` can run, at the cost of ``micro_batch_size × |θ|`` memory and
    a vmapped backward pass; only :meth:`accumulate` feeds it (it cannot see a user's own backward).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: PerExampleLoss,
        *,
        max_grad_norm: float,
        micro_batch_size: int,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        self.per_sample = PerSampleGradients(model, loss_fn, micro_batch_size=micro_batch_size, autocast_dtype=autocast_dtype)
        self.sums = ClippedGradientSum(self.per_sample.trainable_parameters(), max_grad_norm=max_grad_norm)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return self.sums.parameters

    def accumulate(self, batch: Mapping[str, torch.Tensor]) -> None:
        """Add the clipped per-example gradients of ``batch`` to the logical batch's sum."""
        for grads, losses in self.per_sample(batch):
            summed, norms = clipped_sum(grads, self.sums.max_grad_norm)
            for name, s in summed.items():
                self.sums.add(name, s)
            self.sums.record_norms(norms)
            self.sums.record_losses(losses)

    def clipped_sums(self) -> dict[str, torch.Tensor]:
        return self.sums.totals()

    def reset(self) -> None:
        self.sums.reset()
