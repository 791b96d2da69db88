r"""Per-example gradients of one layer call from its kept input and output gradient.

Each rule maps one call of a layer (its inputs, its output, and the gradient G of the summed
per-example losses with respect to that output) to factored per-example gradients
(:mod:`lmodp.train.bk_gradients`) of the layer's own trainable parameters. With B examples, T
positions (all dimensions between the first and the last, flattened) and A the input:

* ``nn.Linear`` (y = A Wᵀ + b): W → Σ_t G[t] ⊗ A[t]; b → Σ_t G[t].
* transformers' ``Conv1D`` (GPT-2; y = A W + b, W of shape in × out): W → Σ_t A[t] ⊗ G[t]; b → Σ_t G[t].
* ``nn.Embedding`` (ids x): W → Σ_t e_{x[t]} ⊗ G[t], positions with ``padding_idx`` left out
  (torch gives that row no gradient).
* ``nn.LayerNorm``: γ → Σ_t G[t] ⊙ x̂[t] with x̂ = (A − mean)/√(var + eps) over the normalised
  dimensions (biased variance, as the layer computes it); β → Σ_t G[t].
* any other layer with trainable parameters of its own (RMSNorm variants, user modules):
  :func:`recomputed_gradients`, the layer's forward recomputed one example at a time under
  ``torch.func.vmap`` and differentiated with ``torch.func.vjp``. The recomputed outputs must
  equal the ones the batched forward produced, which checks that the layer treats examples
  independently and deterministically; otherwise ``ValueError`` names the layer.

A rule applies only when the layer's class does not override the forward of the class it was
written for; a subclass with its own forward takes the recomputed path.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vjp, vmap
from torch.utils._pytree import tree_flatten, tree_unflatten

from lmodp.train.bk_gradients import Factor, OuterProductSum, PerExampleTensor

Rule = Callable[[nn.Module, tuple, dict, torch.Tensor, torch.Tensor, list[str]], dict[str, Factor]]


def _positions(t: torch.Tensor, trailing: int = 1) -> torch.Tensor:
    """(B, ..., *last ``trailing`` dims) → (B, T, *last dims) with T the product of the middle dims."""
    return t.reshape(t.shape[0], -1, *t.shape[t.dim() - trailing :]) if trailing else t.reshape(t.shape[0], -1)


def layer_input(args: tuple, kwargs: Mapping[str, Any], keyword: str, batch: int) -> torch.Tensor:
    """The layer's first positional argument, or its keyword argument ``keyword``, checked to have
    the batch as its first dimension."""
    t = args[0] if args else kwargs[keyword]
    if t.dim() == 0 or t.shape[0] != batch:
        raise ValueError(
            f"its input has shape {tuple(t.shape)}, whose first dimension is not the batch size {batch}: "
            "book-keeping needs batch-first layers; use clipping='vmap'"
        )
    return t


def _affine_factors(
    args: tuple, kwargs: dict, grad: torch.Tensor, names: list[str], *, keyword: str, weight_is_in_by_out: bool
) -> dict[str, Factor]:
    """W·x + b layers: the weight's rows are the output gradients and its columns the inputs
    (``out × in``, nn.Linear), or the other way round (``in × out``, Conv1D); b → Σ_t G[t]."""
    a = _positions(layer_input(args, kwargs, keyword, grad.shape[0])).to(grad.dtype)
    g = _positions(grad)
    rows, cols = (a, g) if weight_is_in_by_out else (g, a)
    factors: dict[str, Factor] = {}
    if "weight" in names:
        factors["weight"] = OuterProductSum(rows=rows, cols=cols, num_rows=rows.shape[2])
    if "bias" in names:
        factors["bias"] = PerExampleTensor(g.sum(dim=1))
    return factors


def linear_factors(module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor, grad: torch.Tensor, names: list[str]) -> dict[str, Factor]:
    return _affine_factors(args, kwargs, grad, names, keyword="input", weight_is_in_by_out=False)


def conv1d_factors(module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor, grad: torch.Tensor, names: list[str]) -> dict[str, Factor]:
    return _affine_factors(args, kwargs, grad, names, keyword="x", weight_is_in_by_out=True)


def embedding_factors(module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor, grad: torch.Tensor, names: list[str]) -> dict[str, Factor]:
    ids = _positions(layer_input(args, kwargs, "input", grad.shape[0]), trailing=0)
    g = _positions(grad)
    if module.padding_idx is not None:
        g = g * (ids != module.padding_idx).unsqueeze(-1).to(g.dtype)
    return {"weight": OuterProductSum(rows=ids, cols=g, num_rows=module.num_embeddings, one_hot=True)}


def layer_norm_factors(module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor, grad: torch.Tensor, names: list[str]) -> dict[str, Factor]:
    k = len(module.normalized_shape)
    x = _positions(layer_input(args, kwargs, "input", grad.shape[0]), trailing=k).to(grad.dtype)
    g = _positions(grad, trailing=k)
    x_hat = F.layer_norm(x, module.normalized_shape, None, None, module.eps)
    factors: dict[str, Factor] = {}
    if "weight" in names:
        factors["weight"] = PerExampleTensor((g * x_hat).sum(dim=1))
    if "bias" in names:
        factors["bias"] = PerExampleTensor(g.sum(dim=1))
    return factors


def _conv1d_class() -> type | None:
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is part of the train extra
        return None
    return Conv1D


def _check_embedding(module: nn.Module, name: str) -> None:
    if module.max_norm is not None:
        raise ValueError(
            f"layer {name!r} (nn.Embedding with max_norm) renormalises its weight during the forward pass; "
            "per-example gradients are not defined for it: set max_norm=None or freeze the layer"
        )
    if module.scale_grad_by_freq:
        raise ValueError(
            f"layer {name!r} (nn.Embedding with scale_grad_by_freq) scales gradients by batch-wide token counts, "
            "which couples examples: set scale_grad_by_freq=False or freeze the layer"
        )


def rule_for(module: nn.Module, name: str) -> Rule | None:
    """The closed-form rule of ``module``, or None when it takes the recomputed path."""
    known: list[tuple[type, Rule]] = [
        (nn.Linear, linear_factors),
        (nn.Embedding, embedding_factors),
        (nn.LayerNorm, layer_norm_factors),
    ]
    conv1d = _conv1d_class()
    if conv1d is not None:
        known.append((conv1d, conv1d_factors))
    for cls, rule in known:
        if isinstance(module, cls) and type(module).forward is cls.forward:
            if cls is nn.Embedding:
                _check_embedding(module, name)
            return rule
    return None


def _close(recomputed: torch.Tensor, output: torch.Tensor) -> bool:
    """Equal up to rounding: |Δ| <= √eps·(max|output| + 1) in the wider of the two dtypes."""
    dtype = torch.promote_types(torch.promote_types(recomputed.dtype, output.dtype), torch.float32)
    a, b = recomputed.to(dtype), output.to(dtype)
    tolerance = torch.finfo(dtype).eps ** 0.5 * (float(b.abs().max()) + 1.0) if b.numel() else 0.0
    return a.shape == b.shape and bool(((a - b).abs() <= tolerance).all())


def recomputed_gradients(
    module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor, grad: torch.Tensor, names: list[str], *, layer: str
) -> dict[str, Factor]:
    """Per-example gradients of ``module``'s own parameters ``names`` by vmap(vjp(forward of one example)).

    Every tensor argument whose first dimension is the batch size B is split into examples (each
    run as a batch of one); other arguments are shared. Raises ``ValueError`` naming ``layer`` when
    the forward draws random numbers (dropout inside the layer) or when the recomputed outputs
    differ from ``output`` (a layer that mixes examples, e.g. batch normalisation in training).
    """
    batch = int(grad.shape[0])
    flat, spec = tree_flatten((args, kwargs))
    split = [isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] == batch for x in flat]
    per_example_inputs = [x for x, s in zip(flat, split) if s]
    params = {n: module._parameters[n].detach() for n in names}

    def one_example(p: dict[str, torch.Tensor], inputs: list[torch.Tensor], g: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        it = iter(inputs)
        a, kw = tree_unflatten([next(it).unsqueeze(0) if s else x for x, s in zip(flat, split)], spec)
        out, pullback = vjp(lambda q: functional_call(module, q, a, kw), p)
        (grads,) = pullback(g.unsqueeze(0).to(out.dtype))
        return out.squeeze(0), grads

    try:
        outputs, grads = vmap(one_example, in_dims=(None, 0, 0), randomness="error")(params, per_example_inputs, grad)
    except RuntimeError as err:
        raise ValueError(
            f"layer {layer!r} ({type(module).__name__}) has trainable parameters and no closed-form rule, and its "
            f"forward cannot be recomputed one example at a time ({err}); freeze it, put it in eval mode if it "
            "uses dropout, or use clipping='vmap'"
        ) from None
    if not _close(outputs, output):
        raise ValueError(
            f"layer {layer!r} ({type(module).__name__}) does not treat examples independently (its output for an "
            "example alone differs from its output in the batch, as in batch normalisation): per-example gradients "
            "are not defined for its parameters; freeze it or replace it (e.g. by LayerNorm or GroupNorm)"
        )
    return {n: PerExampleTensor(grads[n].to(grad.dtype)) for n in names}
