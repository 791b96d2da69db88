"""Samples from a (fine-tuned) causal LM: a look at what it learned.

Sampling is post-processing of the trained model, so it costs no privacy; the samples show what
the model learned, and for a non-private model they may show its training text.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from lmodp._validation import require_count, require_positive
from lmodp.train.text_data import pad_token_id, prompt_ids


def generate_samples(
    model: Any,
    tokenizer: Any,
    *,
    num_samples: int,
    prompts: Sequence[str] | None = None,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    top_p: float = 0.95,
    generation_seed: int = 0,
) -> list[str]:
    """``num_samples`` continuations (decoded, special tokens dropped) sampled with ``temperature``
    and nucleus ``top_p``, from the start token (no ``prompts``) or from each prompt in turn
    (``prompts[i % len(prompts)]``), encoded as in training (:func:`~lmodp.train.text_data.prompt_ids`).
    ``generation_seed`` fixes the draws of the text sampling (a local generator state; the global one
    is restored)."""
    require_count("num_samples", num_samples, 1)
    require_count("max_new_tokens", max_new_tokens, 1)
    require_positive("temperature", temperature)
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if prompts is not None and len(prompts) == 0:
        raise ValueError("prompts is empty: give at least one prompt, or None to sample from the start token")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    samples = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(generation_seed)
        for i in range(num_samples):
            ids = torch.tensor([prompt_ids(tokenizer, "" if prompts is None else prompts[i % len(prompts)])], device=device)
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=float(temperature),
                    top_p=float(top_p), top_k=0, max_new_tokens=max_new_tokens, pad_token_id=pad_token_id(tokenizer),
                    eos_token_id=tokenizer.eos_token_id,
                )
            samples.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    model.train(was_training)
    return samples
