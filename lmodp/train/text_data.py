"""Causal-LM training data: token ids, attention mask and labels that mask prompt and padding.

A causal LM learns the *completion* of each example: its plain text, or the completion that
follows a prompt. :func:`causal_lm_data` tokenizes either kind into three padded columns,

* ``input_ids`` — [start] + prompt + completion (+ EOS), right-padded to the longest example;
* ``attention_mask`` — 1 on the tokens, 0 on the padding;
* ``labels`` — the completion's ids (and the EOS), -100 on the start token, the prompt and the
  padding (the transformers convention for "not a target"),

so that :func:`lmodp.train.losses.causal_lm_loss` gives each example the mean cross-entropy over
its *own* completion tokens, and nothing else. The start token is the tokenizer's BOS token (its
EOS token when it has none: GPT-2's ``<|endoftext|>``), prepended unless the tokenizer adds a
special token itself, so that the model also learns each text's first token and unconditional
samples can start from it (:func:`prompt_ids` encodes a prompt the same way).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from lmodp._validation import require_count

IGNORE_INDEX = -100


def start_token_id(tokenizer: Any) -> int | None:
    """The token every example starts with: BOS, else EOS, else None."""
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    return None


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The token ids of ``prompt`` as :func:`causal_lm_data` lays them out: the tokenizer's own
    special tokens, or the start token (:func:`start_token_id`) when it adds none at the front."""
    ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    start = start_token_id(tokenizer)
    if start is not None and (not ids or ids[0] not in tokenizer.all_special_ids):
        ids.insert(0, start)
    return ids


def pad_token_id(tokenizer: Any) -> int:
    """The id padding is filled with: the tokenizer's pad token, else its EOS token (masked out)."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    raise ValueError("the tokenizer has neither a pad nor an EOS token: set tokenizer.pad_token first")


def causal_lm_data(
    tokenizer: Any,
    *,
    texts: Sequence[str] | None = None,
    prompts: Sequence[str] | None = None,
    completions: Sequence[str] | None = None,
    max_length: int,
    add_eos: bool = True,
) -> dict[str, torch.Tensor]:
    """``{"input_ids", "attention_mask", "labels"}`` ([N, L] each, L the longest example) for
    ``texts`` (every token a target) or for ``prompts`` with their ``completions`` (only the
    completion's tokens are targets). ``add_eos`` appends the EOS token to every completion (so
    the model learns where a text ends). Each example is cut to ``max_length`` tokens from the
    right; ValueError when an example keeps no target token (e.g. its prompt fills ``max_length``).
    """
    require_count("max_length", max_length, 2)
    if (texts is None) == (completions is None):
        raise ValueError("give either texts, or prompts with completions")
    if texts is not None:
        if prompts is not None:
            raise ValueError("prompts go with completions, not with texts")
        prompts, completions = [""] * len(texts), list(texts)
    elif prompts is None or len(prompts) != len(completions):
        raise ValueError(f"prompts and completions must have the same length, got {None if prompts is None else len(prompts)} and {len(completions)}")
    if len(completions) == 0:
        raise ValueError("no examples to encode")
    eos = tokenizer.eos_token_id if add_eos else None
    if add_eos and eos is None:
        raise ValueError("add_eos=True but the tokenizer has no EOS token")
    rows: list[tuple[list[int], list[int]]] = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions)):
        head = prompt_ids(tokenizer, prompt)
        tail = list(tokenizer(completion, add_special_tokens=False)["input_ids"]) + ([eos] if eos is not None else [])
        ids = (head + tail)[:max_length]
        labels = ([IGNORE_INDEX] * len(head) + tail)[:max_length]
        if all(label == IGNORE_INDEX for label in labels[1:]):
            raise ValueError(f"example {i} keeps no token to learn within max_length={max_length} "
                             f"(prompt of {len(head)} tokens, completion of {len(tail)}): raise max_length or shorten it")
        rows.append((ids, labels))
    width = max(len(ids) for ids, _ in rows)
    pad = pad_token_id(tokenizer)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, target) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(target)] = torch.tensor(target)
        mask[i, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


class ExampleRows(torch.utils.data.Dataset):
    """Column tensors (e.g. from :func:`causal_lm_data`) as a map-style dataset of per-example
    dicts, as ``transformers.Trainer`` (and :class:`~lmodp.train.hf.PrivateTrainer`) expects."""

    def __init__(self, columns: dict[str, torch.Tensor]) -> None:
        sizes = {int(v.shape[0]) for v in columns.values()}
        if len(sizes) != 1:
            raise ValueError(f"columns must share their first dimension, got sizes {sorted(sizes)}")
        self.columns = columns
        self.size = sizes.pop()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.columns.items()}
