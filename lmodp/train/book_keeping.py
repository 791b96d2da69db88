r"""Book-keeping (BK) clipping: per-example clipping at the cost of one ordinary backward pass.

Bu, Wang, Zha, Karypis, "Differentially Private Optimization on Large Model at Small Cost"
(ICML 2023). For every layer that owns trainable parameters, the forward pass keeps the layer's
input, and the backward pass of the summed per-example losses keeps the gradient G of the
layer's output; autograd is *not* asked for the parameters' gradients (inside the layer the
parameters are swapped for detached views, so the backward pass computes activation gradients
only). When the backward pass ends:

1. each example's squared gradient norm is summed over parameters from the kept (input, G)
   pairs, by the ghost-norm identity or by materialisation, whichever is cheaper, per layer
   (:mod:`lmodp.train.bk_gradients`, :mod:`lmodp.train.bk_layers`);
2. the clip factors κ_b = min(1, C/‖g_b‖) follow;
3. each parameter's clipped sum Σ_b κ_b g_b is formed from the same pairs in one matrix product,
   with no second backward pass, and added to the logical batch's running sum
   (:class:`~lmodp.train.clipping.ClippedGradientSum`); the pairs are freed.

A forward pass of the model is one micro-batch: examples are the first dimension of every layer's
input and output (batch first), and each example passes through the model once per micro-batch.
Tied weights (one parameter used by several layers, e.g. GPT-2's embedding and LM head) sum their
uses per example before the norm, through the cross terms of the ghost identity.

Nothing that would give a silently wrong gradient goes through: a trainable parameter that
receives an ordinary autograd gradient (used outside the layers that own it), a kept input
modified in place, a layer whose first dimension is not the batch, or a layer without a
closed-form rule that mixes examples or draws random numbers raise ``ValueError``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from lmodp.train.bk_gradients import Factor, GramCache, accumulation_dtype, clipped_sum, squared_norms
from lmodp.train.bk_layers import Rule, recomputed_gradients, rule_for
from lmodp.train.clipping import ClippedGradientSum, clip_factors
from lmodp.train.losses import PerExampleLoss
from lmodp.train.batches import batch_size_of, model_inputs

logger = logging.getLogger(__name__)

LOSS_REDUCTIONS = ("sum", "mean")

_ENGINES: weakref.WeakKeyDictionary[nn.Module, "BookKeepingClipping"] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class _Layer:
    """A module that owns trainable parameters: its name, (attribute, parameter name) pairs, rule."""

    name: str
    params: tuple[tuple[str, str], ...]
    rule: Rule | None


@dataclass(eq=False)
class _LayerCall:
    """One call of a layer in a forward pass: what book-keeping keeps of it."""

    layer: _Layer
    module: nn.Module
    args: tuple
    kwargs: dict
    originals: dict[str, nn.Parameter]
    watched: list[tuple[torch.Tensor, int]]
    output: torch.Tensor | None = None
    factors: dict[str, Factor] | None = None
    received: bool = False


@dataclass(eq=False)
class _ForwardPass:
    """One forward pass of the model (a micro-batch) and the layer calls it made."""

    batch_size: int
    scale: float | None
    grad_tokens: dict[str, tuple[int, int] | None]
    filler: bool = False
    calls: list[_LayerCall] = field(default_factory=list)
    done: bool = False


def _grad_token(p: torch.Tensor) -> tuple[int, int] | None:
    return None if p.grad is None else (id(p.grad), p.grad._version)


def _batch_rows(args: tuple, kwargs: Mapping[str, Any]) -> int | None:
    """The batch size of a forward call: the first dimension of its first tensor argument whose
    first dimension is not 1 (inputs shared by the batch, such as position ids, have 1), else 1."""
    rows = [int(leaf.shape[0]) for leaf in tree_flatten((args, dict(kwargs)))[0] if isinstance(leaf, torch.Tensor) and leaf.dim() > 0]
    if not rows:
        return None
    return next((r for r in rows if r != 1), 1)


class BookKeepingClipping:
    """The book-keeping clipping engine of a model (see the module docstring).

    ``accumulate(batch)`` runs the forward and backward passes itself, micro-batch by micro-batch
    (``micro_batch_size`` examples, all at once when None), with the per-example ``loss_fn``. A
    user's own loop works too: forward passes of the model followed by ``loss.backward()`` are
    clipped and summed as they happen; ``loss_reduction`` says whether that loss is the sum or
    the mean of per-example losses over the micro-batch ("mean" multiplies G by the micro-batch
    size, so the per-example gradients are the same either way). ``clipped_sums()`` is the
    logical batch's clipped sum, ``reset()`` starts the next one, ``remove()`` takes the hooks off.

    Each layer call's per-example gradient factors are formed as soon as its output gradient
    arrives, while the layer's parameters are still gathered (a ``fully_shard``ed layer holds
    its whole parameters only around its own forward and backward); the clip factors and sums
    follow when the backward pass ends. ``gradient_sums`` builds the running sum
    (:class:`~lmodp.train.clipping.ClippedGradientSum`, or a sharded one that reduce-scatters
    each pass, :mod:`lmodp.train.fsdp`): every forward pass adds to every trainable parameter, in
    the order of ``model.named_parameters()``, so that collective sums see the same calls on
    every rank.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: PerExampleLoss,
        *,
        max_grad_norm: float,
        micro_batch_size: int | None = None,
        autocast_dtype: torch.dtype | None = None,
        loss_reduction: str | None = None,
        gradient_sums: Callable[..., ClippedGradientSum] = ClippedGradientSum,
    ) -> None:
        if micro_batch_size is not None and (isinstance(micro_batch_size, bool) or not isinstance(micro_batch_size, int) or micro_batch_size < 1):
            raise ValueError(f"micro_batch_size must be an integer >= 1 or None, got {micro_batch_size!r}")
        if loss_reduction is not None and loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"loss_reduction must be one of {LOSS_REDUCTIONS} or None, got {loss_reduction!r}")
        checkpointing = getattr(model, "is_activation_checkpointing", None)
        if checkpointing is None:
            checkpointing = getattr(model, "is_gradient_checkpointing", False)
        if checkpointing:
            raise ValueError(
                "clipping='bk' cannot be used with gradient checkpointing (it reruns layers during the backward "
                "pass): disable it (model.gradient_checkpointing_disable()) or use clipping='vmap'"
            )
        self.model = model
        self.loss_fn = loss_fn
        self.micro_batch_size = micro_batch_size
        self.autocast_dtype = autocast_dtype
        self.loss_reduction = loss_reduction
        trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
        if not trainable:
            raise ValueError("the model has no trainable parameters (every parameter has requires_grad=False)")
        self.sums = gradient_sums(trainable, max_grad_norm=max_grad_norm)
        names_by_id = {id(p): name for name, p in trainable.items()}
        self._layers: dict[nn.Module, _Layer] = {}
        for layer_name, module in model.named_modules():
            own = tuple((attr, names_by_id[id(p)]) for attr, p in module.named_parameters(recurse=False) if p.requires_grad)
            if own:
                self._layers[module] = _Layer(layer_name or type(module).__name__, own, rule_for(module, layer_name))
        self._pending: list[_ForwardPass] = []
        self._current: _ForwardPass | None = None
        self._open: dict[nn.Module, list[_LayerCall]] = {}
        self._internal_scale: float | None = None
        self._filling = False
        self._recomputing = False
        self._finish_queued = False
        self._handles = [model.register_forward_pre_hook(self._open_pass, with_kwargs=True, prepend=True)]
        for module in self._layers:
            self._handles.append(module.register_forward_pre_hook(self._before_layer, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._after_layer, with_kwargs=True, always_call=True))
        self._handles.append(model.register_forward_hook(self._close_pass, with_kwargs=True, always_call=True))
        previous = _ENGINES.get(model)
        if previous is not None:
            logger.info("the model was made private again: the previous book-keeping engine is detached")
            previous.remove()
        _ENGINES[model] = self

    # --- the engine interface ---------------------------------------------------------------
    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """Name → parameter for the parameters that receive (private) gradients."""
        return self.sums.parameters

    def passes(self, examples: int) -> int:
        """The number of forward passes :meth:`accumulate` makes for ``examples`` examples."""
        return math.ceil(examples / self.micro_batch_size) if self.micro_batch_size else min(examples, 1)

    def accumulate(
        self, batch: Mapping[str, torch.Tensor], *, passes: int | None = None, filler: Mapping[str, torch.Tensor] | None = None
    ) -> None:
        """Forward and backward passes over ``batch`` (micro-batch by micro-batch), clipped and summed.

        With ``passes`` (at least :meth:`passes` of the batch size), the passes that ``batch`` does
        not fill run ``filler`` (one or more examples) with loss weight 0: exact zeros in every
        gradient, left out of the statistics. Sharded models need them, since every rank must run
        as many forward and backward passes (their collectives) as the others."""
        if not self._handles:
            raise RuntimeError(
                "this book-keeping engine was detached from its model (the model was made private again, or "
                "remove() was called): use the optimizer of the latest make_private"
            )
        n = batch_size_of(batch)
        device = next(iter(self.sums.parameters.values())).device
        step = self.micro_batch_size or max(n, 1)
        chunks = [{k: v[start : start + step] for k, v in batch.items()} for start in range(0, n, step)]
        if passes is not None and passes > len(chunks):
            if filler is None:
                raise ValueError("accumulate(passes=...) beyond the batch's own passes needs a filler example")
            chunks += [None] * (passes - len(chunks))
        for chunk in chunks:
            self._forward_backward(filler if chunk is None else chunk, device, filling=chunk is None)
        self._finish_backward()

    def _forward_backward(self, chunk: Mapping[str, torch.Tensor], device: torch.device, *, filling: bool) -> None:
        chunk = {k: v.to(device) for k, v in chunk.items()}
        with self._summed_losses(filling=filling), self._autocast(device):
            losses = self.loss_fn(self.model(**model_inputs(chunk)), chunk)
        if filling:
            losses = losses * 0.0
        else:
            self.sums.record_losses(losses)
        losses.sum().backward()

    def clipped_sums(self) -> dict[str, torch.Tensor]:
        """Σ_i clip_C(g_i) per trainable parameter over the logical batch so far."""
        self._finish_backward()
        return self.sums.totals()

    def reset(self) -> None:
        """Forget the logical batch: sums, statistics and forward passes never backpropagated."""
        self._pending.clear()
        self.sums.reset()

    def remove(self) -> None:
        """Take every hook off the model."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if _ENGINES.get(self.model) is self:
            del _ENGINES[self.model]

    # --- hooks --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _summed_losses(self, *, filling: bool = False) -> Iterator[None]:
        self._internal_scale = 1.0
        self._filling = filling
        try:
            yield
        finally:
            self._internal_scale = None
            self._filling = False

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def _capturing(self) -> bool:
        return torch.is_grad_enabled() and not self._recomputing

    def _open_pass(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if not self._capturing():
            return
        if self._internal_scale is None and self.loss_reduction is None:
            raise ValueError(
                "a forward pass with gradients enabled outside dp_optimizer.step(batch): to run your own "
                "loss.backward(), pass loss_reduction='sum' or 'mean' (how your loss combines the per-example "
                "losses) to make_private; evaluate under torch.no_grad()"
            )
        rows = _batch_rows(args, kwargs)
        if rows is None:
            raise ValueError("the model's forward got no tensor argument: lmodp cannot tell the batch size")
        tokens = {name: _grad_token(p) for name, p in self.sums.parameters.items()}
        self._current = _ForwardPass(batch_size=rows, scale=self._internal_scale, grad_tokens=tokens, filler=self._filling)
        self._pending.append(self._current)

    def _close_pass(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        self._current = None

    def _before_layer(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if not self._capturing():
            return None
        layer = self._layers[module]
        if self._current is None:
            raise ValueError(
                f"layer {layer.name!r} ran outside a forward pass of the model given to make_private (a submodule "
                "called directly, or gradient checkpointing): call the model itself, or use clipping='vmap'"
            )
        args = self._broadcast_input(args, self._current.batch_size)
        originals = {attr: module._parameters[attr] for attr, _ in layer.params}
        for attr, p in originals.items():
            module._parameters[attr] = p.detach()
        leaves, _ = tree_flatten((args, kwargs))
        watched = [(t, t._version) for t in leaves if isinstance(t, torch.Tensor)]
        call = _LayerCall(layer=layer, module=module, args=args, kwargs=kwargs, originals=originals, watched=watched)
        self._open.setdefault(module, []).append(call)
        return args, kwargs

    @staticmethod
    def _broadcast_input(args: tuple, batch: int) -> tuple:
        """A first input shared by the whole batch (leading dimension 1, e.g. BERT's and GPT-2's
        position ids) expanded to the batch: the outputs are the same values, broadcast downstream
        as before, but each example now has its own output gradient, hence its own parameter gradient."""
        if args and isinstance(args[0], torch.Tensor) and args[0].dim() > 0 and args[0].shape[0] == 1 and batch > 1:
            return (args[0].expand(batch, *args[0].shape[1:]), *args[1:])
        return args

    def _after_layer(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        calls = self._open.get(module)
        if not calls:
            return None
        call = calls.pop()
        module._parameters.update(call.originals)
        if output is None or self._current is None:
            return None
        if not isinstance(output, torch.Tensor):
            raise ValueError(
                f"layer {call.layer.name!r} ({type(module).__name__}) has trainable parameters and returns "
                f"{type(output).__name__}, not a tensor: freeze it or use clipping='vmap'"
            )
        replaced = not output.requires_grad
        if replaced:
            anchor = torch.zeros((), dtype=output.dtype, device=output.device, requires_grad=True)
            output = output + anchor
        if call.layer.rule is None:
            call.output = output.detach()
            call.watched.append((output, output._version))
        output.register_hook(functools.partial(self._on_grad, call, self._current))
        self._current.calls.append(call)
        return output if replaced else None

    def _on_grad(self, call: _LayerCall, forward_pass: _ForwardPass, grad: torch.Tensor) -> None:
        if forward_pass.done:
            raise RuntimeError(
                f"a second backward pass reached layer {call.layer.name!r} after its forward pass was clipped: "
                "call backward once per forward pass"
            )
        if not forward_pass.filler and forward_pass.batch_size > 0:
            call.factors = self._factors(call, self._checked_grad(call, forward_pass, grad))
        call.args, call.kwargs, call.output, call.received = (), {}, None, True
        if not self._finish_queued:
            self._finish_queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._finish_backward)

    # --- clipping -------------------------------------------------------------------------------
    def _finish_backward(self) -> None:
        """Clip and sum every forward pass that received output gradients."""
        self._finish_queued = False
        for forward_pass in [fp for fp in self._pending if any(c.received for c in fp.calls)]:
            self._pending.remove(forward_pass)
            self._clip_and_sum(forward_pass)

    def _scale(self, forward_pass: _ForwardPass) -> float:
        if forward_pass.scale is not None:
            return forward_pass.scale
        return float(forward_pass.batch_size) if self.loss_reduction == "mean" else 1.0

    def _checked_grad(self, call: _LayerCall, forward_pass: _ForwardPass, grad: torch.Tensor) -> torch.Tensor:
        """The gradient of the summed per-example losses at the layer's output, batch first, in
        the accumulation dtype."""
        batch = forward_pass.batch_size
        if grad.dim() == 0 or grad.shape[0] != batch:
            raise ValueError(
                f"layer {call.layer.name!r} produced an output whose first dimension is not the batch size "
                f"{batch}: book-keeping needs batch-first layers; use clipping='vmap'"
            )
        grad = grad.to(accumulation_dtype(grad.dtype))
        scale = self._scale(forward_pass)
        return grad * scale if scale != 1.0 else grad

    def _factors(self, call: _LayerCall, grad: torch.Tensor) -> dict[str, Factor]:
        layer = call.layer
        for t, version in call.watched:
            if t._version != version:
                raise ValueError(
                    f"a tensor kept for layer {layer.name!r} was modified in place after the layer ran; book-keeping "
                    "needs it unchanged: avoid the in-place operation or use clipping='vmap'"
                )
        attrs = [attr for attr, _ in layer.params]
        if layer.rule is None:
            self._recomputing = True
            try:
                return recomputed_gradients(call.module, call.args, call.kwargs, call.output, grad, attrs, layer=layer.name)
            finally:
                self._recomputing = False
        try:
            return layer.rule(call.module, call.args, call.kwargs, call.output, grad, attrs)
        except ValueError as err:
            raise ValueError(f"layer {layer.name!r}: {err}") from None

    def _clip_and_sum(self, forward_pass: _ForwardPass) -> None:
        forward_pass.done = True
        uses: dict[str, list[Factor]] = {}
        for call in forward_pass.calls:
            attr_to_name = dict(call.layer.params)
            for attr, factor in (call.factors or {}).items():
                uses.setdefault(attr_to_name[attr], []).append(factor)
        forward_pass.calls.clear()
        self._check_no_autograd_gradients(forward_pass)
        counted = not forward_pass.filler
        batch = forward_pass.batch_size if counted else 0
        if uses:
            cache = GramCache()
            norms = torch.stack([squared_norms(factors, cache) for factors in uses.values()]).sum(dim=0).sqrt()
            del cache
        else:
            norms = torch.zeros(batch)
        kappa = clip_factors(norms, self.sums.max_grad_norm)
        for name in self.sums.parameters:  # each parameter's kept tensors are freed once its clipped sum is formed
            factors = uses.pop(name, None)
            self.sums.add(name, None if factors is None else clipped_sum(factors, kappa))
        if counted:
            self.sums.record_norms(norms)

    def _check_no_autograd_gradients(self, forward_pass: _ForwardPass) -> None:
        for name, p in self.sums.parameters.items():
            if _grad_token(p) != forward_pass.grad_tokens[name]:
                raise ValueError(
                    f"parameter {name!r} received an ordinary gradient: it is used outside the forward of the layer "
                    "that owns it, where book-keeping cannot see it; use clipping='vmap' for this model"
                )
