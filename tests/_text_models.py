"""A word-level tokenizer (trained offline) and prompt/completion data for the causal-LM tests.

The vocabulary fits the tiny random models of ``_train_models`` (64 ids): special tokens
``[PAD] [UNK] <s> </s>`` (ids 0-3), digits and a few words. The tokenizer adds no special token
itself, so :func:`lmodp.train.text_data.causal_lm_data` prepends ``<s>``.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

WORDS = "the flight was late again my pin is code thanks great awful bag lost seat crew love hate".split()
DIGITS = [str(d) for d in range(10)]
PROMPTS = ["the flight was", "my bag", "the crew", "thanks", "my seat was late again and the flight"]
COMPLETIONS = ["late again", "lost", "was great", "crew love", "awful"]


def word_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([" ".join(WORDS + DIGITS)], trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "<s>", "</s>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="<s>", eos_token="</s>")


def sentences(n: int) -> list[str]:
    """n short texts made of the vocabulary's words (deterministic)."""
    return [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(3 + i % 4)) for i in range(n)]
