"""The shortcuts of benchmarks/generation_experiment.py, on a tiny random Llama (no package needed):
its top layers on cached lower states give the whole model's logits, and the canary tree's
scorer on cached states gives the whole model's next-token log-probabilities."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _train_models import one_torch_thread, padded_tokens, tiny_llama  # noqa: E402, F401
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from lmodp.audit.exposure import candidate_log_perplexities, model_next_token_log_probs  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "generation_experiment.py"
spec = importlib.util.spec_from_file_location("generation_experiment", SCRIPT)
experiment = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = experiment
spec.loader.exec_module(experiment)


def three_layer_llama():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=32, max_position_embeddings=16, pad_token_id=1, attn_implementation="eager",
                         tie_word_embeddings=True)
    return LlamaForCausalLM(config).double().eval()


def test_top_layers_on_cached_states_give_the_whole_models_logits():
    model = three_layer_llama()
    data = padded_tokens(5, seed=1, left_padded_row=False)
    states = experiment.lower_states(model, data["input_ids"], data["attention_mask"], 2, batch_size=2)
    top = experiment.top_layers_model(model, 2).double()
    assert len(top.model.layers) == 2
    with torch.no_grad():
        whole = model(**data).logits
        part = top(inputs_embeds=states, attention_mask=data["attention_mask"]).logits
    valid = data["attention_mask"].bool()
    torch.testing.assert_close(part[valid], whole[valid], rtol=1e-10, atol=1e-10)
    experiment.check_top_layers(model, top, data, states)


def test_the_canary_tree_scored_on_cached_states_equals_the_whole_model():
    model = three_layer_llama()
    prefix, alphabet = [4, 9, 12], [20, 21, 22, 23, 24]
    table = experiment.tree_ids(prefix, alphabet, 2)
    assert table.shape == (25, 5) and table[7].tolist() == prefix + [21, 22]
    states = experiment.lower_states(model, table, torch.ones_like(table), 1)
    scorer = experiment.tree_scorer(experiment.top_layers_model(model, 1).double(), states, prefix_length=3, alphabet=alphabet)
    tree = candidate_log_perplexities(scorer, prefix=prefix, alphabet=alphabet, length=3)
    whole = candidate_log_perplexities(model_next_token_log_probs(model), prefix=prefix, alphabet=alphabet, length=3)
    torch.testing.assert_close(tree, whole, rtol=1e-10, atol=1e-10)
