"""``lmodp finetune`` refuses, before training, what would train on nothing useful (issue 22, items
4-11): each case one line on stderr, exit code 2, and nothing written."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

from _train_models import one_torch_thread  # noqa: E402, F401
from test_cli_finetune import DELTA, run, save_tokenizer, sentences, workspace  # noqa: E402, F401

import lmodp  # noqa: E402
from lmodp.cli.finetune_checks import require_known_tokens  # noqa: E402
from lmodp.paper.params import paper_mechanism  # noqa: E402


def _argv(workspace, out, *extra, data="train.csv", model="bert"):
    return ["finetune", "--data", str(workspace / data), "--model", str(workspace / model), "--out", str(out),
            "--delta", str(DELTA), "--no-progress", *extra]


def _refused(capsys, argv, message: str, out) -> None:
    code, _, err = run(capsys, argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()  # validated before anything is created


def _write_csv(path, header, rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def test_a_model_folder_without_tokenizer_files_is_refused(workspace, capsys, tmp_path):
    bare = tmp_path / "bare-model"
    bare.mkdir()
    shutil.copy(workspace / "bert" / "config.json", bare)
    shutil.copy(workspace / "bert" / "model.safetensors", bare)
    _refused(capsys, _argv(workspace, tmp_path / "o", "--target-epsilon", "4", model=str(bare)), "has no tokenizer", tmp_path / "o")


def test_a_tokenizer_that_knows_no_word_of_the_data_is_refused(workspace, tmp_path):
    tokenizer = save_tokenizer(tmp_path / "other", ["lorem ipsum dolor sit amet"] * 4)
    with pytest.raises(ValueError, match="maps 100% of the tokens"):
        require_known_tokens(tokenizer, [t for t, _ in sentences(8)], tmp_path / "other")
    require_known_tokens(tokenizer, ["lorem ipsum dolor"], tmp_path / "other")  # its own words pass


def test_auto_task_says_what_it_chose_and_refuses_a_classifier_trained_as_a_language_model(workspace, capsys, tmp_path):
    _write_csv(tmp_path / "misnamed.csv", ["text", "sentiment"], sentences(64))
    argv = _argv(workspace, tmp_path / "o", "--target-epsilon", "4", data=str(tmp_path / "misnamed.csv"))
    code, _, err = run(capsys, argv)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--task auto chose causal-lm" in err and "no 'label' column" in err and "BertForSequenceClassification" in err
    assert not (tmp_path / "o").exists()
    # where auto is right, it says so (a NOTE on stderr; "task_chosen" in the JSON)
    code, out, err = run(capsys, _argv(workspace, tmp_path / "ok", "--target-epsilon", "4", "--json", "--epochs", "0.25"))
    assert code == 0, err
    assert "NOTE: --task auto chose classification: the file has a 'label' column" in err
    assert json.loads(out)["task_chosen"].startswith("--task auto chose classification")


def test_the_search_offered_to_a_trainer_is_never_noisier_than_the_gaussian(workspace, capsys, tmp_path, monkeypatch):
    import functools

    import lmodp.search.least_noise as least

    # the default search settings, reduced (a test budget): every family is still searched
    monkeypatch.setattr(least, "least_noise", functools.partial(least.least_noise, maxiter=1, popsize=1, polish_evaluations=2))
    code, out, err = run(capsys, _argv(workspace, tmp_path / "s", "--target-epsilon", "4", "--mechanism", "search",
                                       "--batch-size", "16", "--epochs", "0.25", "--json"))
    assert code == 0, err
    summary = json.loads(out)
    search = json.loads((tmp_path / "s" / "search.json").read_text())
    candidates = search["settings"]["candidates"]
    assert set(candidates) == {"gaussian", "laplace", "lmo", "generalized_gaussian"}
    assert search["objective_value"] == min(c["objective_value"] for c in candidates.values())
    assert search["objective_value"] <= search["baseline_objective_value"]  # never more E|Y| than the Gaussian
    noise = summary["noise"]
    assert noise["family"] == summary["mechanism"]["family"] and noise["mean_abs"] == pytest.approx(search["objective_value"])
    assert set(noise["candidates"]) == set(candidates)


def test_the_summary_names_the_noise(workspace, capsys, tmp_path):
    code, out, err = run(capsys, _argv(workspace, tmp_path / "g", "--target-epsilon", "4", "--epochs", "0.25"))
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("noise: "))
    assert "Gaussian σ=" in line and "E|Y| = " in line and "std = " in line


def test_a_budget_that_cannot_pay_for_one_step_is_refused_with_the_numbers(workspace, capsys, tmp_path):
    first = lmodp.epsilon(paper_mechanism(2.0, exponential="rate"), sample_rate=32 / 64, steps=1, delta=DELTA, geometry="l2", accountant="rdp")
    assert first > 3.0
    argv = _argv(workspace, tmp_path / "o", "--mechanism", "paper:2", "--target-epsilon", "3")
    _refused(capsys, argv, "cannot pay for one step", tmp_path / "o")
    _, _, err = run(capsys, argv)
    assert f"{first:.4g}" in err and "--target-epsilon 3" in err


@pytest.mark.parametrize("device, message", [("tpu", "--device must be"), ("cuda", "no CUDA GPU"), ("cuda:x", "--device must be")])
def test_a_device_that_does_not_exist_is_refused(workspace, capsys, tmp_path, device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    _refused(capsys, _argv(workspace, tmp_path / "o", "--target-epsilon", "4", "--device", device), message, tmp_path / "o")


def test_more_labels_than_the_classification_head_has_is_refused(workspace, capsys, tmp_path):
    rows = [(text, ("pos", "neg", "mixed")[i % 3]) for i, (text, _) in enumerate(sentences(48))]
    _write_csv(tmp_path / "three.csv", ["text", "label"], rows)
    model = tmp_path / "two-labels"
    shutil.copytree(workspace / "bert", model)
    config = json.loads((model / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]  # and 2 labels, the default
    _refused(capsys, _argv(workspace, tmp_path / "o", "--target-epsilon", "4", data=str(tmp_path / "three.csv"), model=str(model)),
             "classification head for 2 labels but the data have 3", tmp_path / "o")


def test_a_history_given_as_a_list_of_numbers_is_one_line(capsys, tmp_path):
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    code, _, err = run(capsys, ["plot", "training", str(tmp_path / "list.json"), "-o", str(tmp_path / "t.png")])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "one record" in err


def test_a_delta_of_at_least_one_over_n_is_warned_about(workspace, capsys, tmp_path):
    argv = ["finetune", "--data", str(workspace / "train.csv"), "--model", str(workspace / "bert"), "--out", str(tmp_path / "d"),
            "--delta", "0.05", "--target-epsilon", "4", "--epochs", "0.25", "--no-progress"]
    code, _, err = run(capsys, argv)
    assert code == 0, err
    assert "warning: --delta 0.05 is not below 1/N = 1/64" in err


def test_output_folder_is_checked_first_and_not_overwritten_unless_asked(workspace, capsys, tmp_path):
    # an early failure leaves no folder behind
    _refused(capsys, _argv(workspace, tmp_path / "early", "--mechanism", "laplace"), "give --target-epsilon", tmp_path / "early")
    # under a missing parent: refused, nothing created
    _refused(capsys, _argv(workspace, tmp_path / "no" / "such" / "run", "--target-epsilon", "4"), "does not exist", tmp_path / "no")
    out = tmp_path / "run"
    out.mkdir()
    (out / "search.json").write_text("{}")  # a stale result of an earlier run
    code, _, err = run(capsys, _argv(workspace, out, "--target-epsilon", "4", "--epochs", "0.25"))
    assert code == 2 and "is not empty" in err and "--overwrite" in err
    code, _, err = run(capsys, _argv(workspace, out, "--target-epsilon", "4", "--epochs", "0.25", "--overwrite"))
    assert code == 0, err
    assert not (out / "search.json").exists() and (out / "history.json").is_file()


@pytest.mark.parametrize(
    "header, body, message",
    [
        (["sentence", "label"], "the movie,pos\nbad movie,neg\n", "has no column 'text' (its columns: sentence, label)"),
        (["text", "label"], '"good movie,pos\nbad,neg\n', "line 3: not valid CSV"),
    ],
    ids=["missing-text-column", "unterminated-quote"],
)
def test_csv_problems_are_named(workspace, capsys, tmp_path, header, body, message):
    data = tmp_path / "data.csv"
    data.write_text(",".join(header) + "\n" + body)
    _refused(capsys, _argv(workspace, tmp_path / "o", "--target-epsilon", "4", "--batch-size", "64", data=str(data)), message, tmp_path / "o")


def test_bad_jsonl_names_the_file_and_the_line(workspace, capsys, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text('{"text": "good movie"}\n\n{"text": "bad movie"\n')
    _refused(capsys, _argv(workspace, tmp_path / "o", "--target-epsilon", "4", data=str(data)), "data.jsonl', line 3: not valid JSON", tmp_path / "o")
    data.write_text('{"text": "good movie"}\n["a list"]\n')
    _refused(capsys, _argv(workspace, tmp_path / "o", "--target-epsilon", "4", data=str(data)), "line 2: each line must hold a JSON object", tmp_path / "o")
