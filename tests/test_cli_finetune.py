"""``lmodp finetune`` on tiny local models (built and saved by the test, tokenizers trained offline)."""

from __future__ import annotations

import csv
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

from _cli_runs import run  # noqa: E402
from _train_models import one_torch_thread  # noqa: E402, F401
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast  # noqa: E402

import lmodp  # noqa: E402
from lmodp.mechanisms import Gaussian, mechanism_from_dict  # noqa: E402
from lmodp.paper.params import paper_mechanism  # noqa: E402
from lmodp.search import search  # noqa: E402

WORDS = ["good", "great", "fine", "happy", "bad", "awful", "sad", "poor", "the", "movie", "was", "very", "quite"]
DELTA = 1e-5


def sentences(n: int) -> list[tuple[str, str]]:
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        pick = torch.randint(0, len(WORDS), (5,), generator=g).tolist()
        label = "pos" if i % 2 else "neg"
        mood = ["good", "great"] if label == "pos" else ["bad", "awful"]
        rows.append((" ".join(["the", "movie", "was", mood[i % 4 // 2]] + [WORDS[j] for j in pick]), label))
    return rows


def save_tokenizer(directory, texts: list[str]) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]")
    fast.save_pretrained(directory)
    return fast


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    rows = sentences(64)
    with open(root / "train.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    with open(root / "corpus.jsonl", "w") as f:
        for text, _ in rows:
            f.write(json.dumps({"text": text}) + "\n")
    vocab = len(save_tokenizer(root / "bert", [t for t, _ in rows]))
    save_tokenizer(root / "gpt2", [t for t, _ in rows])
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=32, max_position_embeddings=32, pad_token_id=0)).save_pretrained(root / "bert")
    GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=16, n_layer=1, n_head=2, n_positions=32, bos_token_id=0,
                               eos_token_id=0, pad_token_id=0)).save_pretrained(root / "gpt2")
    return root



def test_classification_with_a_target_epsilon_writes_model_history_and_curve(workspace, capsys, tmp_path):
    argv = ["finetune", "--data", str(workspace / "train.csv"), "--eval-data", str(workspace / "train.csv"), "--model",
            str(workspace / "bert"), "--out", str(tmp_path / "run"), "--target-epsilon", "4", "--delta", str(DELTA),
            "--batch-size", "8", "--epochs", "1", "--learning-rate", "1e-2", "--json", "--no-progress"]
    code, out, err = run(capsys, argv)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["task"] == "classification" and summary["steps"] == 8 and 0.0 <= summary["accuracy"] <= 1.0
    sigma = summary["mechanism"]["sigma"]
    assert summary["epsilon"] == pytest.approx(lmodp.epsilon(Gaussian(sigma), sample_rate=8 / 64, steps=8, delta=DELTA, geometry="l2"), rel=1e-12)
    assert summary["epsilon"] <= 4.0
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["epsilon"][-1] == summary["epsilon"] and len(history["loss"]) == 8
    assert (tmp_path / "run" / "training-curve.png").stat().st_size > 0
    saved = BertForSequenceClassification.from_pretrained(tmp_path / "run" / "model")
    assert saved.config.id2label == {0: "neg", 1: "pos"}


def test_causal_lm_with_the_papers_released_set_reports_its_sound_epsilon(workspace, capsys, tmp_path):
    argv = ["finetune", "--data", str(workspace / "corpus.jsonl"), "--model", str(workspace / "gpt2"), "--out", str(tmp_path / "lm"),
            "--mechanism", "paper-scale:0.3", "--delta", str(DELTA), "--batch-size", "16", "--epochs", "0.5", "--json", "--no-progress"]
    code, out, err = run(capsys, argv)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["task"] == "causal-lm" and summary["steps"] == 2
    mechanism = mechanism_from_dict(summary["mechanism"])
    assert summary["mechanism"] == paper_mechanism(0.3, "task1", exponential="scale").to_dict()
    assert summary["epsilon"] == pytest.approx(lmodp.epsilon(mechanism, sample_rate=16 / 64, steps=2, delta=DELTA, geometry="l2"), rel=1e-12)


def test_a_saved_search_result_is_checked_against_the_target_for_this_run(workspace, capsys, tmp_path):
    result = search(2.0, delta=DELTA, sample_rate=8 / 64, steps=4, geometry="l2", family="laplace")
    result.to_json(tmp_path / "search.json")
    common = ["finetune", "--data", str(workspace / "train.csv"), "--model", str(workspace / "bert"), "--out", str(tmp_path / "s"),
              "--mechanism", str(tmp_path / "search.json"), "--delta", str(DELTA), "--batch-size", "8", "--no-progress", "--json"]
    code, out, err = run(capsys, [*common, "--epochs", "0.5", "--target-epsilon", "2"])
    assert code == 0, err
    assert json.loads(out)["mechanism"] == result.mechanism.to_dict()
    code, out, err = run(capsys, [*common, "--epochs", "2", "--target-epsilon", "2", "--overwrite"])  # 16 steps: more than it was made for
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unreachable" in err


@pytest.mark.parametrize("extra, message", [
    (["--mechanism", "laplace"], "give --target-epsilon"),
    (["--mechanism", "paper:abc"], "paper:EPS"),
    (["--mechanism", "paper:0.3:sideways"], "sideways"),
    (["--mechanism", "uniform", "--target-epsilon", "1"], "--mechanism must be"),
    (["--label-column", "sentiment", "--task", "classification", "--target-epsilon", "1"], "column 'sentiment'"),
    (["--target-epsilon", "1", "--batch-size", "1000"], "batch_size"),
])
def test_bad_input_is_one_line_and_exit_code_2(workspace, capsys, tmp_path, extra, message):
    argv = ["finetune", "--data", str(workspace / "train.csv"), "--model", str(workspace / "bert"), "--out", str(tmp_path / "x"),
            "--delta", str(DELTA), "--no-progress", *extra]
    code, _, err = run(capsys, argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_missing_files_are_one_line_errors(workspace, capsys, tmp_path):
    for argv in (["--data", str(tmp_path / "none.csv"), "--model", str(workspace / "bert")],
                 ["--data", str(workspace / "train.csv"), "--model", str(tmp_path)]):
        code, _, err = run(capsys, ["finetune", *argv, "--out", str(tmp_path / "x"), "--delta", "1e-5", "--target-epsilon", "1"])
        assert code == 2 and len(err.strip().splitlines()) == 1
