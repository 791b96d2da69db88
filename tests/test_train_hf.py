"""PrivateTrainer: the transformers Trainer with DP-SGD, on tiny random models.

ε logged = lmodp.epsilon for the run's q and step count (and, for the Gaussian, between
dp-accounting's PLD and RDP values); gradient accumulation = one logical batch; the budget stops
training before an over-budget step; checkpoints resume with the same ledger; peft LoRA; refusals.
"""

from __future__ import annotations

import math
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _train_models import classification_task, one_torch_thread, padded_tokens, tiny_gpt2, tiny_roberta  # noqa: E402, F401
from transformers import TrainingArguments  # noqa: E402

import lmodp  # noqa: E402
from lmodp.mechanisms import Gaussian  # noqa: E402
from lmodp.search import calibrate_gaussian  # noqa: E402
from lmodp.train.hf import PrivateTrainer  # noqa: E402
from lmodp.train.sampling import PoissonSampler  # noqa: E402
from lmodp.train.losses import causal_lm_loss  # noqa: E402

N = 64
DELTA = 1e-5


class Rows(torch.utils.data.Dataset):
    """A map-style dataset of per-example dicts, as a Trainer script has."""

    def __init__(self, columns: dict[str, torch.Tensor]) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.columns.items()}


TRAIN = Rows(classification_task(N, seed=1))


def arguments(tmp_path, **changes) -> TrainingArguments:
    settings = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=8, num_train_epochs=1, learning_rate=1e-2,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
    )
    return TrainingArguments(**{**settings, **changes})


def trainer(tmp_path, model=None, *, args=None, **privacy) -> PrivateTrainer:
    privacy = {"mechanism": Gaussian(1.0), "max_grad_norm": 1.0, "delta": DELTA, "noise_seed": 0, "sampling_seed": 0, **privacy}
    if "target_epsilon" in privacy:
        privacy.pop("mechanism")
    return PrivateTrainer(model=model or tiny_roberta(), args=args or arguments(tmp_path), train_dataset=TRAIN, **privacy)


def logged_epsilons(t: PrivateTrainer) -> dict[int, float]:
    return {r["step"]: r["epsilon"] for r in t.state.log_history if "loss" in r}


def test_epsilon_logged_after_each_step_equals_lmodp_epsilon_and_dp_accounting_brackets_it(tmp_path):
    dp_accounting = pytest.importorskip("dp_accounting")
    from dp_accounting.pld import pld_privacy_accountant
    from dp_accounting.rdp import rdp_privacy_accountant

    t = trainer(tmp_path)
    t.train()
    q = 8 / N
    logged = logged_epsilons(t)
    assert sorted(logged) == list(range(1, 9)) and t.ledger.steps == 8 and t.state.global_step == 8
    for step, eps in logged.items():
        assert eps == pytest.approx(lmodp.epsilon(Gaussian(1.0), sample_rate=q, steps=step, delta=DELTA, geometry="l2"), rel=1e-12)
    assert "grad_norm" not in str(t.state.log_history)  # the raw batch gradient's norm is never logged
    event = dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(1.0)), 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pld = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-4).compose(event).get_epsilon(DELTA)
        rdp = rdp_privacy_accountant.RdpAccountant().compose(event).get_epsilon(DELTA)
    assert pld * (1 - 1e-6) <= logged[8] <= rdp * (1 + 1e-9)  # the ledger's PLD agrees with dp-accounting's to 1e-6


def test_target_epsilon_calibrates_a_gaussian_for_the_runs_q_and_steps(tmp_path):
    t = trainer(tmp_path, args=arguments(tmp_path, num_train_epochs=2), target_epsilon=3.0)
    assert t.sample_rate == 8 / N and t.planned_steps == 16
    expected = calibrate_gaussian(3.0, delta=DELTA, sample_rate=8 / N, steps=16, geometry="l2")  # the ledger's: "auto", the PLD
    assert t.mechanism.sigma == pytest.approx(expected, rel=1e-12)
    t.train()
    assert t.ledger.steps == 16 and t.epsilon() <= 3.0 and not t.stopped_by_budget


def test_training_stops_before_a_step_over_the_budget(tmp_path):
    q = 8 / N
    after = [lmodp.epsilon(Gaussian(1.0), sample_rate=q, steps=s, delta=DELTA, geometry="l2") for s in (3, 4)]
    budget = (after[0] + after[1]) / 2  # three steps fit, a fourth would not
    t = trainer(tmp_path, max_epsilon=budget)
    t.train()
    assert t.stopped_by_budget and t.ledger.steps == 3 and t.state.global_step == 3
    assert not t.ledger.exhausted  # stopped before the refused step was even computed
    assert max(logged_epsilons(t).values()) <= budget


def test_gradient_accumulation_gives_the_same_update_as_one_logical_batch(tmp_path):
    """B = 4 × 2 micro-batches and B = 8 in one: same q, same Poisson batches and noise (seeded),
    hence the same clipped sum, one noise draw and one charge per step: the same model."""
    models = []
    for per_device, accumulation in ((8, 1), (4, 2)):
        args = arguments(tmp_path / f"{per_device}", per_device_train_batch_size=per_device, gradient_accumulation_steps=accumulation)
        t = trainer(tmp_path, args=args)
        t.train()
        assert t.ledger.steps == 8 and t.state.global_step == 8
        models.append(t.model)
    for p, r in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(p, r, rtol=1e-5, atol=1e-6)


def test_empty_micro_batches_are_skipped_and_empty_steps_still_charged(tmp_path):
    args = arguments(tmp_path, per_device_train_batch_size=1, gradient_accumulation_steps=2, max_steps=12)
    t = trainer(tmp_path, args=args)
    sampler = PoissonSampler(N, sample_rate=2 / N, steps=12, generator=torch.Generator().manual_seed(0))
    sizes = [len(b) for b in sampler.micro_batch_lists(2)]
    assert 0 in sizes
    t.train()
    assert t.ledger.steps == 12
    assert t.epsilon() == pytest.approx(lmodp.epsilon(Gaussian(1.0), sample_rate=2 / N, steps=12, delta=DELTA, geometry="l2"), rel=1e-12)


def test_resume_from_a_checkpoint_restores_the_ledger_noise_and_sampler(tmp_path):
    args = arguments(tmp_path / "a", save_strategy="steps", save_steps=4)
    whole = trainer(tmp_path, args=args)
    whole.train()
    resumed = trainer(tmp_path, args=arguments(tmp_path / "b"))
    resumed.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-4"))
    assert resumed.ledger.steps == 8
    assert resumed.ledger.state_dict() == whole.ledger.state_dict()
    assert logged_epsilons(resumed)[8] == logged_epsilons(whole)[8]
    for p, r in zip(whole.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, r, rtol=0, atol=0)  # same batches, same noise: bit for bit


def test_resume_refuses_other_privacy_settings_and_checkpoints_without_privacy_state(tmp_path):
    trainer(tmp_path, args=arguments(tmp_path / "a", save_strategy="steps", save_steps=4)).train()
    with pytest.raises(ValueError, match="other privacy settings"):
        trainer(tmp_path, args=arguments(tmp_path / "b"), mechanism=Gaussian(2.0)).train(
            resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-4"))
    trainer(tmp_path, args=arguments(tmp_path / "c", save_strategy="steps", save_steps=4, save_only_model=True)).train()
    with pytest.raises(ValueError, match="no lmodp privacy state"):
        trainer(tmp_path, args=arguments(tmp_path / "d")).train(resume_from_checkpoint=str(tmp_path / "c" / "checkpoint-4"))


def test_peft_lora_causal_lm_trains_only_the_adapters_with_per_sequence_losses(tmp_path):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_gpt2(), peft.LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=["c_attn"], fan_in_fan_out=True))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    data = padded_tokens(N, seed=3, left_padded_row=False)
    t = PrivateTrainer(model=model, args=arguments(tmp_path, max_steps=3), train_dataset=Rows(data), mechanism=Gaussian(1.0),
                       max_grad_norm=1.0, delta=DELTA, noise_seed=0, sampling_seed=0)
    batch = {k: v[:4] for k, v in data.items()}
    with torch.no_grad():
        loss = t.compute_loss(model, batch)
        torch.testing.assert_close(loss, causal_lm_loss(model(**batch), batch).mean())
    t.train()
    assert t.ledger.steps == 3
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert any(not torch.equal(p, trained[n]) for n, p in model.named_parameters() if n in trained)


@pytest.mark.parametrize("changes, message", [
    (dict(train_sampling_strategy="group_by_length"), "Poisson"),
    (dict(dataloader_drop_last=True), "drop_last"),
    (dict(auto_find_batch_size=True), "sampling rate"),
    (dict(label_smoothing_factor=0.1), "label_smoothing"),
    (dict(activation_checkpointing=True), "checkpointing"),
    (dict(torch_compile=True), "torch_compile"),
    (dict(fsdp=True, fsdp_config={"fsdp_version": 2}), r"finetune\(\.\.\., shard=True\)"),
])
def test_trainer_arguments_that_break_the_guarantee_are_refused(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        trainer(tmp_path, args=arguments(tmp_path, **changes))


def test_bad_privacy_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="compute_loss_func"):
        PrivateTrainer(model=tiny_roberta(), args=arguments(tmp_path), train_dataset=TRAIN, mechanism=Gaussian(1.0),
                       max_grad_norm=1.0, delta=DELTA, compute_loss_func=lambda outputs, labels, **kw: outputs.logits.sum())
    with pytest.raises(ValueError, match="delta"):
        trainer(tmp_path, delta=1.5)
    with pytest.raises(ValueError, match="max_grad_norm"):
        trainer(tmp_path, max_grad_norm=-1.0)
    with pytest.raises(ValueError, match="geometry"):
        trainer(tmp_path, geometry="scalar")
    with pytest.raises(ValueError, match="either mechanism"):
        PrivateTrainer(model=tiny_roberta(), args=arguments(tmp_path), train_dataset=TRAIN, mechanism=Gaussian(1.0),
                       target_epsilon=1.0, max_grad_norm=1.0, delta=DELTA)
    with pytest.raises(ValueError, match="per-example loss"):
        PrivateTrainer(model=torch.nn.Linear(2, 2), args=arguments(tmp_path), train_dataset=TRAIN, mechanism=Gaussian(1.0),
                       max_grad_norm=1.0, delta=DELTA)


def test_the_trainers_global_clipping_is_switched_off_without_touching_the_callers_arguments(tmp_path):
    args = arguments(tmp_path, max_grad_norm=0.5)
    t = trainer(tmp_path, args=args)
    assert t.args.max_grad_norm == 0.0 and args.max_grad_norm == 0.5
    assert math.isfinite(t.sample_rate)
