r"""Exposure of secret canaries: "The Secret Sharer" (Carlini, Liu, Erlingsson, Kos and Song, USENIX Security 2019).

A canary is a fixed prefix (the template) followed by a secret drawn uniformly from a randomness
space R: every sequence of ``length`` tokens from ``alphabet`` (|R| = |alphabet|^length, e.g. the
4-digit strings). The model's log-perplexity of a candidate r ∈ R (Sec. 3 of the paper) is

    Px(r) = −Σ_j log p(r_j | prefix, r_1 … r_{j−1})            (nats),

the prefix's own log-perplexity being common to all candidates (it changes no rank). The rank of
the inserted secret s is |{r ∈ R : Px(r) ≤ Px(s)}| (1 when s is the most likely candidate) and its
exposure (Definition 4) is

    exposure(s) = log₂|R| − log₂ rank(s)                        (bits, between 0 and log₂|R|).

A model that never saw s has an expected exposure of about 1 bit (the rank of a uniformly random
candidate); one that memorised s reaches log₂|R|. Here the rank is computed **exactly** over all
of R (the paper estimates it by sampling or extrapolation for spaces too large to enumerate) by
walking the tree of candidate prefixes: level j evaluates the next-token distribution of all
|alphabet|^(j−1) prefixes of length j−1 at once, so the model reads about
|alphabet|^(length−1) sequences instead of |R|, and every candidate's Px is the sum along its path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from lmodp._validation import require_count

#: next_token_log_probs(ids [B, T]) -> log-probabilities [B, V] of the token that follows each row.
NextTokenLogProbs = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Exposure:
    """The exposure (bits) of one secret, its rank among the ``candidates`` = |R| secrets, and its
    log-perplexity Px (nats, over the secret's tokens)."""

    exposure: float
    rank: int
    candidates: int
    log_perplexity: float


def model_next_token_log_probs(model: torch.nn.Module) -> NextTokenLogProbs:
    """The next-token log-probabilities of a causal LM (logits of the last position, float64
    log-softmax), without gradients, on the model's device."""
    from lmodp.train.losses import model_logits

    device = next(model.parameters()).device

    def next_token_log_probs(ids: torch.Tensor) -> torch.Tensor:
        ids = ids.to(device)
        with torch.no_grad():
            logits = model_logits(model(input_ids=ids, attention_mask=torch.ones_like(ids)))[:, -1]
        return torch.log_softmax(logits.double(), dim=-1)

    return next_token_log_probs


def _check_tokens(name: str, tokens: Sequence[int]) -> list[int]:
    tokens = [int(t) for t in tokens]
    if any(t < 0 for t in tokens):
        raise ValueError(f"{name} must hold token ids >= 0, got {tokens}")
    return tokens


def candidate_log_perplexities(
    next_token_log_probs: NextTokenLogProbs,
    *,
    prefix: Sequence[int],
    alphabet: Sequence[int],
    length: int,
    batch_size: int = 512,
) -> torch.Tensor:
    """Px(r) (float64, nats) of every candidate r ∈ alphabet^length after ``prefix``, indexed by
    :func:`secret_index` (the first secret token is the most significant digit)."""
    prefix, alphabet = _check_tokens("prefix", prefix), _check_tokens("alphabet", alphabet)
    if not prefix:
        raise ValueError("prefix must hold at least one token (the model predicts the first secret token from it)")
    if len(set(alphabet)) != len(alphabet) or len(alphabet) < 2:
        raise ValueError(f"alphabet must hold at least 2 distinct token ids, got {alphabet}")
    require_count("length", length, 1)
    require_count("batch_size", batch_size, 1)
    k = len(alphabet)
    symbols = torch.tensor(alphabet, dtype=torch.long)
    head = torch.tensor(prefix, dtype=torch.long)
    scores = torch.zeros(1, dtype=torch.float64)
    for level in range(length):
        nodes = k ** level
        steps = []
        for start in range(0, nodes, batch_size):
            index = torch.arange(start, min(start + batch_size, nodes))
            places = k ** torch.arange(level - 1, -1, -1)
            paths = symbols[(index[:, None] // places) % k] if level else torch.empty(len(index), 0, dtype=torch.long)
            ids = torch.cat([head.expand(len(index), -1), paths], dim=1)
            steps.append(-next_token_log_probs(ids)[:, symbols].to(torch.float64).cpu())
        scores = (scores[:, None] + torch.cat(steps)).reshape(-1)
    return scores


def secret_index(secret: Sequence[int], alphabet: Sequence[int]) -> int:
    """The position of ``secret`` in :func:`candidate_log_perplexities`' order."""
    alphabet = _check_tokens("alphabet", alphabet)
    index = 0
    for token in _check_tokens("secret", secret):
        if token not in alphabet:
            raise ValueError(f"secret token {token} is not in the alphabet {alphabet}")
        index = index * len(alphabet) + alphabet.index(token)
    return index


def exposure_of(log_perplexities: torch.Tensor, index: int) -> Exposure:
    """The :class:`Exposure` of the candidate at ``index`` among ``log_perplexities`` (all of R)."""
    scores = torch.as_tensor(log_perplexities, dtype=torch.float64).reshape(-1)
    if not 0 <= index < len(scores):
        raise ValueError(f"index must be in [0, {len(scores)}), got {index}")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("log-perplexities must be finite")
    own = scores[index]
    rank = int((scores <= own).sum())
    return Exposure(exposure=math.log2(len(scores)) - math.log2(rank), rank=rank, candidates=len(scores), log_perplexity=float(own))


def canary_exposure(
    model: Any,
    *,
    prefix: Sequence[int],
    secret: Sequence[int],
    alphabet: Sequence[int],
    batch_size: int = 512,
) -> Exposure:
    """The exposure of ``secret`` after ``prefix`` for ``model``: a causal LM (run in eval mode)
    or a :data:`NextTokenLogProbs` callable; the randomness space is alphabet^len(secret)."""
    score = model
    if isinstance(model, torch.nn.Module):
        was_training = model.training
        model.eval()
        score = model_next_token_log_probs(model)
    try:
        scores = candidate_log_perplexities(score, prefix=prefix, alphabet=alphabet, length=len(secret), batch_size=batch_size)
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    return exposure_of(scores, secret_index(secret, alphabet))
