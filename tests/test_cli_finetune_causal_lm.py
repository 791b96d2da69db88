"""``lmodp finetune --task causal-lm`` on small JSONL files, with and without LoRA, with samples."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("matplotlib")

from _text_models import COMPLETIONS, PROMPTS, sentences, word_tokenizer  # noqa: E402
from _cli_runs import run  # noqa: E402
from _train_models import one_torch_thread, tiny_llama  # noqa: E402, F401

import lmodp  # noqa: E402
from lmodp.mechanisms import mechanism_from_dict  # noqa: E402
from lmodp.train import causal_lm_data, perplexity  # noqa: E402

DELTA = 1e-5


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("causal")
    tokenizer = word_tokenizer()
    tokenizer.save_pretrained(root / "llama")
    tiny_llama().save_pretrained(root / "llama")
    with open(root / "pairs.jsonl", "w") as f:
        for prompt, completion in zip(PROMPTS * 6, COMPLETIONS * 6):
            f.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")
    with open(root / "held-out.jsonl", "w") as f:
        for prompt, completion in zip(PROMPTS, COMPLETIONS):
            f.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")
    with open(root / "texts.jsonl", "w") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in sentences(30))
    return root



def test_prompt_completion_jsonl_with_lora_reports_perplexity_epsilon_and_samples(workspace, capsys, tmp_path):
    argv = ["finetune", "--data", str(workspace / "pairs.jsonl"), "--eval-data", str(workspace / "held-out.jsonl"),
            "--model", str(workspace / "llama"), "--task", "causal-lm", "--out", str(tmp_path / "run"), "--target-epsilon", "8",
            "--delta", str(DELTA), "--batch-size", "6", "--epochs", "1", "--lora-r", "2", "--lora-target-modules", "q_proj,v_proj",
            "--accountant", "auto", "--sample", "2", "--sample-max-tokens", "3", "--json", "--no-progress"]
    code, out, err = run(capsys, argv)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["task"] == "causal-lm" and summary["steps"] == 5 and summary["trainable_parameters"] == 112
    mechanism = mechanism_from_dict(summary["mechanism"])
    assert summary["epsilon"] == pytest.approx(lmodp.epsilon(mechanism, sample_rate=6 / 30, steps=5, delta=DELTA, geometry="l2",
                                                             accountant="auto"), rel=1e-9) and summary["epsilon"] <= 8
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [s["prompt"] for s in samples] == PROMPTS[:2] and summary["samples"] == [s["sample"] for s in samples]
    assert (tmp_path / "run" / "model" / "adapter_config.json").is_file()
    from peft import AutoPeftModelForCausalLM

    trained = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    held_out = causal_lm_data(word_tokenizer(), prompts=PROMPTS, completions=COMPLETIONS, max_length=128)
    assert summary["perplexity"] == pytest.approx(perplexity(trained, held_out), rel=1e-5)


def test_text_jsonl_without_lora_trains_every_weight_and_samples_from_the_start_token(workspace, capsys, tmp_path):
    argv = ["finetune", "--data", str(workspace / "texts.jsonl"), "--model", str(workspace / "llama"), "--out", str(tmp_path / "t"),
            "--target-epsilon", "8", "--delta", str(DELTA), "--batch-size", "10", "--epochs", "0.4", "--sample", "1",
            "--no-progress"]
    code, out, err = run(capsys, argv)
    assert code == 0, err
    assert "sample: " in out and (tmp_path / "t" / "samples.jsonl").is_file()
    assert json.loads((tmp_path / "t" / "samples.jsonl").read_text())["prompt"] is None


@pytest.mark.parametrize("extra, message", [
    (["--sample", "-1"], "--sample must be >= 0"),
    (["--lora-alpha", "4"], "--lora-alpha needs --lora-r"),
    (["--lora-r", "0"], "--lora-\\*: r \\(the LoRA rank\\)"),
])
def test_bad_language_model_arguments_are_one_line_errors(workspace, capsys, tmp_path, extra, message):
    argv = ["finetune", "--data", str(workspace / "texts.jsonl"), "--model", str(workspace / "llama"), "--out", str(tmp_path / "e"),
            "--target-epsilon", "8", "--delta", str(DELTA), "--batch-size", "10", "--epochs", "0.4", "--no-progress", *extra]
    code, _, err = run(capsys, argv)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert pytest.importorskip("re").search(message, err), err


def test_a_model_path_that_is_neither_a_directory_nor_a_gguf_file_is_refused(workspace, capsys, tmp_path):
    argv = ["finetune", "--data", str(workspace / "texts.jsonl"), "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "x"),
            "--target-epsilon", "8", "--delta", str(DELTA)]
    code, _, err = run(capsys, argv)
    assert code == 2 and "--model" in err and "neither" in err
