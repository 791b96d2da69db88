"""Make Hugging Face ``transformers`` models safe to run under ``torch.func.vmap``.

Per-sample gradients run the model once per example inside ``vmap``. Since transformers 4.53 the
attention-mask builders (``transformers.masking_utils.sdpa_mask`` / ``eager_mask``) test the
*content* of the padding mask (``padding_mask.all()``) to skip building a mask when nothing is
padded; inside ``vmap`` that is data-dependent Python control flow and raises. The skip is only an
optimisation: building the mask always gives the same attention.

transformers lets users register attention implementations and their mask builders
(``AttentionInterface.register`` / ``AttentionMaskInterface.register``, documented in
https://huggingface.co/docs/transformers/attention_interface). :func:`make_vmap_safe` registers
an implementation that computes exactly what the model's own ``eager`` attention computes (plain
matmuls and softmax, which vmap batches everywhere; ``vmap`` over the fused CPU SDPA kernel falls
back to a slow loop), or ``sdpa`` for models without an eager function, with a mask builder that
never skips, and switches the model to it. Models that are not
``transformers`` models, or that cannot switch implementation, are returned unchanged.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable

from torch import nn

logger = logging.getLogger(__name__)

_PREFIX = "lmodp_vmap_"


def _never_skip(mask_builder: Callable[..., Any]) -> Callable[..., Any]:
    """The mask builder with its content-dependent shortcuts switched off."""

    def build(*args: Any, **kwargs: Any) -> Any:
        kwargs["allow_is_causal_skip"] = False
        kwargs["allow_is_bidirectional_skip"] = False
        return mask_builder(*args, **kwargs)

    return build


def _modelling_module(model: nn.Module) -> str:
    """The module that defines the model's class (for a ``peft`` wrapper, the wrapped model's)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return type(base).__module__


def make_vmap_safe(model: nn.Module) -> nn.Module:
    """Switch a transformers model to a vmap-safe copy of its attention (same outputs).

    The base is the model's own eager attention, or SDPA where the model defines none.
    Returns the model (modified in place).
    """
    if not hasattr(model, "set_attn_implementation") or not hasattr(model, "config"):
        return model
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

    modelling = _modelling_module(model)
    eager = getattr(importlib.import_module(modelling), "eager_attention_forward", None)
    if eager is None:
        name, forward, mask = _PREFIX + "sdpa", sdpa_attention_forward, sdpa_mask
    else:
        name = _PREFIX + "eager_" + modelling.rsplit(".", 1)[-1]
        forward, mask = eager, eager_mask
    if getattr(model.config, "_attn_implementation", None) == name:
        return model
    AttentionInterface.register(name, forward)
    AttentionMaskInterface.register(name, _never_skip(mask))
    try:
        model.set_attn_implementation(name)
    except (ValueError, KeyError) as err:
        logger.warning("could not switch %s to a vmap-safe attention (%s)", type(model).__name__, err)
    return model
