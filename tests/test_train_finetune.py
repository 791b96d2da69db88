"""End-to-end fine-tuning of tiny transformers models: learning, privacy, checkpoints, bad input."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _train_models import one_torch_thread, classification_task, padded_tokens, tiny_gpt2, tiny_roberta  # noqa: E402, F401

import lmodp  # noqa: E402
from lmodp.mechanisms import Gaussian, Mechanism  # noqa: E402
from lmodp.train import finetune  # noqa: E402

TRAIN = classification_task(256, seed=1)
EVAL = classification_task(128, seed=2)
COMMON = dict(delta=1e-5, batch_size=32, learning_rate=3e-3, progress=False)


def test_non_private_finetune_learns():
    history = finetune(tiny_roberta(), TRAIN, EVAL, private=False, epochs=5, **{**COMMON, "learning_rate": 1e-2})
    assert history.total_steps == 40 and history.step == list(range(1, 41))
    losses = [v for v in history.loss if v is not None]
    assert sum(losses[-8:]) / 8 < sum(losses[:8]) / 8
    assert history.eval_metric[-1] > 0.75  # chance is about 0.5
    assert all(math.isinf(e) for e in history.epsilon)


def test_private_finetune_with_target_epsilon_calibrates_a_gaussian():
    history = finetune(tiny_roberta(), TRAIN, EVAL, target_epsilon=4.0, epochs=1, **COMMON)
    assert all(math.isfinite(v) for v in history.loss if v is not None)
    sigma = history.mechanism["sigma"]
    expected = lmodp.epsilon(Gaussian(sigma), sample_rate=32 / 256, steps=8, delta=1e-5, geometry="l2")
    assert history.final_epsilon == pytest.approx(expected, rel=1e-12)
    assert history.final_epsilon <= 4.0 and not history.stopped_by_budget
    assert history.epsilon[-1] == history.final_epsilon  # the per-step report ends on the run's own ε
    assert 0.0 <= history.eval_metric[-1] <= 1.0


def test_reported_epsilon_is_bracketed_by_dp_accounting():
    """An independent reference for the training ledger: dp-accounting's PLD (tight; lmodp's PLD at the
    same discretisation agrees with it to 1e-6) and RDP (integer orders) of the sampled Gaussian bracket
    the ε that finetune records after a step (a sound bound) and at the end (the PLD itself)."""
    dp_accounting = pytest.importorskip("dp_accounting")
    import numpy as np

    from lmodp.accounting.orders import DEFAULT_ORDERS

    history = finetune(tiny_roberta(), TRAIN, mechanism=Gaussian(0.9), epochs=1, **COMMON)
    integer_orders = [float(a) for a in DEFAULT_ORDERS if float(a).is_integer()]
    for step in (1, history.step[-1]):
        event = dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(32 / 256, dp_accounting.GaussianDpEvent(0.9)), step
        )
        rdp = dp_accounting.rdp.RdpAccountant(orders=integer_orders)
        pld = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
        rdp.compose(event)
        pld.compose(event)
        ours = history.epsilon[step - 1]
        assert np.isfinite(ours) and pld.get_epsilon(1e-5) * (1 - 1e-6) <= ours <= rdp.get_epsilon(1e-5) * (1 + 1e-9), step
    assert history.accountant == "pld" and history.final_epsilon == pytest.approx(pld.get_epsilon(1e-5), rel=1e-6)


def test_private_finetune_with_lmo_noise():
    from lmodp.paper.params import paper_mechanism

    mechanism = paper_mechanism(2, "task1", exponential="rate")
    history = finetune(tiny_roberta(), TRAIN, EVAL, mechanism=mechanism, epochs=1, **COMMON)
    assert all(math.isfinite(v) for v in history.loss if v is not None)
    expected = lmodp.epsilon(mechanism, sample_rate=32 / 256, steps=8, delta=1e-5, geometry="l2")
    assert history.final_epsilon == pytest.approx(expected, rel=1e-12)
    assert history.mechanism == mechanism.to_dict()


def test_private_causal_lm_finetune_with_a_search_result_json(tmp_path):
    from lmodp.search import SearchResult

    data = padded_tokens(64, seed=3, left_padded_row=False)
    path = tmp_path / "search.json"
    SearchResult(
        mechanism=Gaussian(1.5), epsilon=1.0, objective="mean_abs", sense="min", objective_value=1.0,
        baseline=Gaussian(1.5), baseline_epsilon=1.0, baseline_objective_value=1.0, noise_ratio=1.0,
        evaluations=0, wall_time_s=0.0,
    ).to_json(path)
    history = finetune(
        tiny_gpt2(), data, data, target_epsilon=50.0, search_result=path, task="causal-lm",
        micro_batch_size=8, delta=1e-5, batch_size=16, epochs=1, progress=False,
    )
    assert history.mechanism == Gaussian(1.5).to_dict() and history.metric_name == "perplexity"
    expected = lmodp.epsilon(Gaussian(1.5), sample_rate=0.25, steps=4, delta=1e-5, geometry="l2")
    assert history.final_epsilon == pytest.approx(expected, rel=1e-12)
    assert all(math.isfinite(v) for v in history.loss if v is not None) and math.isfinite(history.eval_metric[-1])


def test_finetune_stops_before_the_budget_is_exceeded():
    budget = lmodp.epsilon(Gaussian(0.8), sample_rate=32 / 256, steps=5, delta=1e-5, geometry="l2") * 1.0001
    history = finetune(tiny_roberta(), TRAIN, mechanism=Gaussian(0.8), max_epsilon=budget, epochs=1, **COMMON)
    assert history.stopped_by_budget and history.step == [1, 2, 3, 4, 5]
    assert history.final_epsilon <= budget and history.epsilon[-1] == history.final_epsilon


def test_checkpoint_and_resume_reproduce_the_uninterrupted_run(tmp_path):
    kwargs = dict(mechanism=Gaussian(0.8), epochs=1, model_seed=5, sampling_seed=7, noise_seed=6, **COMMON)
    whole_model = tiny_roberta(dropout=0.1)
    whole = finetune(whole_model, TRAIN, EVAL, checkpoint_dir=tmp_path / "whole", **kwargs)

    parts_model = tiny_roberta(dropout=0.1)
    first = finetune(parts_model, TRAIN, EVAL, checkpoint_dir=tmp_path / "parts", max_steps=3, **kwargs)
    assert len(first.step) == 3
    resumed_model = tiny_roberta(dropout=0.1, seed=99)  # a fresh process: other weights, other RNG state
    torch.manual_seed(1234)
    resumed = finetune(resumed_model, TRAIN, EVAL, checkpoint_dir=tmp_path / "parts", resume=True, **kwargs)

    assert resumed.step == whole.step
    assert resumed.loss == whole.loss and resumed.epsilon == whole.epsilon and resumed.batch_size == whole.batch_size
    assert resumed.eval_metric[-1] == whole.eval_metric[-1]
    for (name, a), b in zip(whole_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_continues_the_saved_secret_noise(tmp_path):
    """Without noise_seed the noise is secret, and a resumed run continues the saved generator:
    two resumptions of one checkpoint end identical."""
    import shutil

    kwargs = dict(mechanism=Gaussian(0.8), epochs=1, model_seed=5, **COMMON)
    finetune(tiny_roberta(), TRAIN, checkpoint_dir=tmp_path / "a", max_steps=3, **kwargs)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    finals = []
    for directory in ("a", "b"):
        model = tiny_roberta(seed=7)
        finetune(model, TRAIN, checkpoint_dir=tmp_path / directory, resume=True, **kwargs)
        finals.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(finals[0], finals[1])


class _NoSampler(Mechanism):
    family = "custom"
    sample = logpdf = cdf = mean_abs = variance = usefulness = fisher_information = scaled = None

    def to_dict(self):
        return {"family": self.family}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(mechanism=Gaussian(1.0), max_grad_norm=0.0), "max_grad_norm"),
        (dict(mechanism=Gaussian(1.0), max_grad_norm=-1.0), "max_grad_norm"),
        (dict(mechanism=Gaussian(1.0), batch_size=1000), "batch_size=1000 exceeds the dataset size 256"),
        (dict(mechanism=_NoSampler()), "no torch sampler"),
        (dict(target_epsilon=0.5, search_result=SimpleNamespace(mechanism=Gaussian(0.2))), "unreachable"),
        (dict(target_epsilon=-1.0), "target_epsilon"),
        (dict(), "mechanism=... or target_epsilon"),
        (dict(mechanism=Gaussian(1.0), target_epsilon=1.0), "either mechanism"),
        (dict(mechanism=Gaussian(1.0), task="regression"), "task"),
        (dict(mechanism=Gaussian(1.0), delta=1.5), "delta"),
        (dict(mechanism=Gaussian(1.0), resume=True), "checkpoint_dir"),
        (dict(mechanism=Gaussian(1.0), private=False), "private=False"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    args = {**COMMON, **kwargs}
    with pytest.raises(ValueError, match=match):
        finetune(tiny_roberta(), TRAIN, **args)


def test_finetune_with_bf16_autocast_on_cpu():
    history = finetune(
        tiny_roberta(), TRAIN, EVAL, mechanism=Gaussian(0.8), epochs=1, device="cpu",
        autocast_dtype=torch.bfloat16, **COMMON,
    )
    assert all(math.isfinite(v) for v in history.loss if v is not None) and len(history.step) == 8


@pytest.mark.cuda
def test_finetune_on_cuda_with_bf16_autocast():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    history = finetune(
        tiny_roberta(), TRAIN, EVAL, mechanism=Gaussian(0.8), epochs=1, device="cuda",
        autocast_dtype=torch.bfloat16, **COMMON,
    )
    assert all(math.isfinite(v) for v in history.loss if v is not None)
    expected = lmodp.epsilon(Gaussian(0.8), sample_rate=32 / 256, steps=8, delta=1e-5, geometry="l2")
    assert history.final_epsilon == pytest.approx(expected, rel=1e-12)


def test_a_run_spec_and_an_options_object_give_the_keyword_run():
    from lmodp.train import FinetuneOptions

    common = dict(mechanism=Gaussian(0.9), sampling_seed=5, noise_seed=7, max_steps=3, progress=False, learning_rate=3e-3)
    by_keywords = finetune(tiny_roberta(), TRAIN, delta=1e-5, batch_size=32, epochs=1, **common)
    run = lmodp.RunSpec(sample_rate=32 / 256, steps=8, delta=1e-5)
    options = FinetuneOptions(sampling_seed=5, noise_seed=7, max_steps=3, progress=False, learning_rate=3e-3)
    by_run = finetune(tiny_roberta(), TRAIN, mechanism=Gaussian(0.9), run=run, options=options)
    assert by_run.to_dict() == by_keywords.to_dict()
    for bad, match in [(dict(run=run, batch_size=32), "not both"), (dict(run=run.replace(sensitivity=2.0)), "sensitivity"),
                       (dict(delta=1e-5, batch_size=32, max_step=3), "unknown FinetuneOptions setting")]:
        with pytest.raises(ValueError, match=match):
            finetune(tiny_roberta(), TRAIN, mechanism=Gaussian(0.9), **bad)
