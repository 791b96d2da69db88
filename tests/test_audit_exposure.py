"""Exposure of secret canaries (The Secret Sharer) against a brute-force rank over every candidate."""

from __future__ import annotations

import itertools
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _train_models import one_torch_thread, tiny_gpt2, tiny_llama  # noqa: E402, F401

from lmodp.audit.exposure import canary_exposure, candidate_log_perplexities, exposure_of, model_next_token_log_probs, secret_index  # noqa: E402

PREFIX = [5, 9, 14]
ALPHABET = [20, 21, 22, 23, 24, 25, 26, 27, 28, 29]


def brute_force_log_perplexities(model, length):
    """Px of every candidate, each run alone as the full sequence prefix + candidate."""
    scores = {}
    for candidate in itertools.product(ALPHABET, repeat=length):
        ids = torch.tensor([PREFIX + list(candidate)])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
        scores[candidate] = -sum(float(log_probs[len(PREFIX) - 1 + j, token]) for j, token in enumerate(candidate))
    return scores


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2], ids=["llama", "gpt2"])
def test_exposure_equals_the_brute_force_rank(build):
    model = build().double().eval()
    brute = brute_force_log_perplexities(model, 3)
    tree = candidate_log_perplexities(model_next_token_log_probs(model), prefix=PREFIX, alphabet=ALPHABET, length=3, batch_size=37)
    assert tree.shape == (1000,)
    for candidate, score in brute.items():
        assert float(tree[secret_index(candidate, ALPHABET)]) == pytest.approx(score, rel=1e-10)
    ordered = sorted(brute.values())
    for secret in [(20, 21, 22), (29, 29, 29), min(brute, key=brute.get), max(brute, key=brute.get)]:
        rank = sum(v <= brute[secret] for v in ordered)
        found = canary_exposure(model, prefix=PREFIX, secret=secret, alphabet=ALPHABET)
        assert found.rank == rank and found.candidates == 1000
        assert found.exposure == pytest.approx(math.log2(1000) - math.log2(rank), abs=1e-12)
    assert canary_exposure(model, prefix=PREFIX, secret=min(brute, key=brute.get), alphabet=ALPHABET).exposure == pytest.approx(math.log2(1000))


def test_ties_count_against_the_secret_and_bad_input_is_refused():
    assert exposure_of(torch.tensor([1.0, 2.0, 2.0, 3.0]), 1).rank == 3  # rank = |{r : Px(r) <= Px(s)}|
    assert exposure_of(torch.tensor([1.0, 2.0, 2.0, 3.0]), 0).exposure == pytest.approx(2.0)
    with pytest.raises(ValueError, match="not in the alphabet"):
        secret_index([7], ALPHABET)
    with pytest.raises(ValueError, match="distinct"):
        candidate_log_perplexities(lambda ids: ids, prefix=PREFIX, alphabet=[3, 3], length=2)
    with pytest.raises(ValueError, match="finite"):
        exposure_of(torch.tensor([1.0, math.nan]), 0)
