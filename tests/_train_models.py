"""Tiny randomly initialised transformers models and synthetic data for the lmodp.train tests.

Nothing is downloaded: every model is built from a config with hidden sizes of 16-32.
"""

from __future__ import annotations

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
)

VOCAB = 64
SEQ_LEN = 10


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread; more threads spin badly on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_roberta(*, dropout: float = 0.0, seed: int = 0) -> RobertaForSequenceClassification:
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=SEQ_LEN + 4, num_labels=2, hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout, attn_implementation="eager",
    )
    return RobertaForSequenceClassification(config)


def tiny_bert(*, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=SEQ_LEN, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation="eager",
    )
    return BertForSequenceClassification(config)


def tiny_gpt2(*, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=2, n_positions=SEQ_LEN + 4, resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0, attn_implementation="eager",
    )
    return GPT2LMHeadModel(config)


def tiny_llama(*, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=32, max_position_embeddings=SEQ_LEN + 4, bos_token_id=0, eos_token_id=0,
        pad_token_id=1, attn_implementation="eager",
    )
    return LlamaForCausalLM(config)


def padded_tokens(n: int, *, seed: int = 0, pad_id: int = 1, left_padded_row: bool = True) -> dict[str, torch.Tensor]:
    """Random token ids (>= 3) with right padding of varied length (and one left-padded row).

    transformers' Llama turns the fully masked attention rows of left padding into NaN, so the
    Llama tests use right padding only (as causal-LM training does).
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (n, SEQ_LEN), generator=g)
    mask = torch.ones(n, SEQ_LEN, dtype=torch.long)
    for i in range(n):
        keep = SEQ_LEN - (i % 4) * 2
        mask[i, keep:] = 0
    if n > 1 and left_padded_row:
        mask[1] = 0
        mask[1, 3:] = 1
    ids[mask == 0] = pad_id
    return {"input_ids": ids, "attention_mask": mask}


def classification_task(n: int, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """A learnable task: the label says whether the second token is in the upper half of the vocabulary."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (n, 8), generator=g)
    ids[:, 0] = 0
    labels = (ids[:, 1] >= (VOCAB + 3) // 2).long()
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
