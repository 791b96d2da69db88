"""LoRA adapters (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022) via ``peft``.

Each targeted linear layer W gets W + (α/r)·B·A with A [r, in] and B [out, r] trained and W
frozen (B starts at zero, so training starts from the pretrained model). DP-SGD then clips and
noises the adapters' gradient only: r·(in + out) coordinates per layer instead of in·out.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from lmodp._validation import require_count, require_positive

PEFT_TASK_TYPES = {"causal-lm": "CAUSAL_LM", "classification": "SEQ_CLS"}


def add_lora(
    model: nn.Module,
    *,
    r: int,
    alpha: float | None = None,
    target_modules: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    dropout: float = 0.0,
    task: str = "causal-lm",
) -> Any:
    """``model`` wrapped by ``peft`` with rank-``r`` LoRA adapters (the only trainable parameters;
    for classification the new classifier is trained too, as ``peft`` does).

    ``alpha`` defaults to 2r (scaling α/r = 2); ``target_modules`` are module names (default:
    ``peft``'s choice for the architecture, e.g. ``q_proj``/``v_proj`` for Llama, ``c_attn`` for
    GPT-2); ``layers`` restricts the adapters to these decoder layers (default: all);
    ``dropout`` is LoRA's input dropout. GPT-2's ``Conv1D`` layers are handled (``fan_in_fan_out``).
    """
    import peft
    from transformers.pytorch_utils import Conv1D

    require_count("r (the LoRA rank)", r, 1)
    alpha = 2.0 * r if alpha is None else require_positive("alpha", alpha)
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if task not in PEFT_TASK_TYPES:
        raise ValueError(f"task must be one of {tuple(PEFT_TASK_TYPES)}, got {task!r}")
    config = peft.LoraConfig(
        task_type=PEFT_TASK_TYPES[task], r=r, lora_alpha=alpha, lora_dropout=float(dropout),
        target_modules=None if target_modules is None else list(target_modules),
        layers_to_transform=None if layers is None else [int(i) for i in layers],
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in model.modules()),
    )
    return peft.get_peft_model(model, config)
