"""DPOptimizer as a torch optimizer: the released gradient, both training loops, schedulers, secret noise."""

from __future__ import annotations

import copy
import logging
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _train_models import classification_task, one_torch_thread, tiny_roberta  # noqa: E402, F401

import lmodp  # noqa: E402
from lmodp.mechanisms import Gaussian, Laplace  # noqa: E402
from lmodp.paper.params import paper_mechanism  # noqa: E402
from lmodp.train import finetune, make_private, torch_sampler  # noqa: E402
from lmodp.train.losses import classification_loss  # noqa: E402
from lmodp.train.batches import model_inputs  # noqa: E402
from lmodp.train.sampling import gather  # noqa: E402

N = 60
BATCH = 10
CLIP = 3.0


def mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3))


class Classifier(torch.nn.Module):
    """``input`` → logits, so that batches are mappings as the loaders yield them."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.net = mlp(seed)

    def forward(self, input):
        return self.net(input)


def dataset(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"input": 3 * torch.randn(N, 4, generator=g), "labels": torch.randint(0, 3, (N,), generator=g)}


def private(model, *, lr=0.1, mechanism=Gaussian(1.0), **kwargs):
    kwargs.setdefault("batch_size", BATCH)
    return make_private(
        model, torch.optim.SGD(model.parameters(), lr=lr), dataset(), mechanism=mechanism, max_grad_norm=CLIP,
        delta=1e-5, steps=5, **kwargs,
    )


def reference_clipped_sum(model, batch):
    """Σ_i clip_C(g_i) by one plain backward pass per example, flattened over all parameters."""
    rows = []
    for i in range(batch["labels"].shape[0]):
        model.zero_grad(set_to_none=True)
        example = {k: v[i : i + 1] for k, v in batch.items()}
        classification_loss(model(**model_inputs(example)), example).sum().backward()
        rows.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    grads = torch.stack(rows).double()
    norms = grads.norm(dim=1)
    factors = torch.clamp(CLIP / norms, max=1.0)
    return (grads * factors[:, None]).sum(dim=0), norms


def released_gradient(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()]).double()


@pytest.mark.parametrize("mechanism", [Gaussian(0.8), paper_mechanism(2, "task1", exponential="rate")], ids=repr)
@pytest.mark.parametrize("clipping", ["bk", "vmap"])
def test_a_step_releases_the_clipped_sum_plus_scaled_noise_over_qn(mechanism, clipping):
    model = Classifier()
    reference = copy.deepcopy(model)
    _, dp_optimizer, loader = private(model, lr=0.0, mechanism=mechanism, clipping=clipping, noise_seed=17)
    batch = gather(dataset(), torch.arange(BATCH))
    out = dp_optimizer.step(batch)

    clipped, norms = reference_clipped_sum(reference, batch)
    assert 0 < int((norms > CLIP).sum()) < BATCH  # clipping active on some examples only
    g = torch.Generator().manual_seed(17)
    sampler = torch_sampler(mechanism)
    noise = torch.cat([sampler.add_scaled_(torch.zeros(p.shape), 1.0, generator=g).flatten() for p in model.parameters()])
    noise = noise.double()
    expected = (clipped + CLIP * noise) / loader.expected_batch_size
    torch.testing.assert_close(released_gradient(model), expected, rtol=1e-5, atol=1e-6)
    assert out.batch_size == BATCH and out.clipped_fraction == pytest.approx(float((norms > CLIP).double().mean()))
    assert dp_optimizer.ledger.steps == 1


def test_dp_optimizer_is_a_torch_optimizer_that_schedulers_drive():
    model = Classifier()
    _, dp_optimizer, loader = private(model)
    assert isinstance(dp_optimizer, torch.optim.Optimizer)
    assert dp_optimizer.param_groups is dp_optimizer.original_optimizer.param_groups
    scheduler = torch.optim.lr_scheduler.StepLR(dp_optimizer, step_size=1, gamma=0.5)
    calls = []
    dp_optimizer.register_step_post_hook(lambda opt, args, kwargs: calls.append(opt))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        for batch in list(loader)[:3]:
            dp_optimizer.step(batch)
            scheduler.step()
    assert dp_optimizer.original_optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)
    assert calls == [dp_optimizer] * 3


def test_state_dict_round_trip_restores_ledger_and_noise():
    model = Classifier()
    _, dp_optimizer, loader = private(model, noise_seed=3)
    batches = list(loader)
    dp_optimizer.step(batches[0])
    state = copy.deepcopy(dp_optimizer.state_dict())
    dp_optimizer.step(batches[1])
    after_two = released_gradient(model)

    model_b = Classifier()
    _, other, _ = private(model_b)  # secret noise, until the state is loaded
    other.load_state_dict(state)
    assert other.ledger.steps == 1
    model_b.load_state_dict({k: v for k, v in model.state_dict().items()})  # any parameters: compare noise only
    other.step(gather(dataset(), torch.empty(0, dtype=torch.long)))
    dp_optimizer.load_state_dict(state)
    dp_optimizer.step(gather(dataset(), torch.empty(0, dtype=torch.long)))
    torch.testing.assert_close(released_gradient(model_b), released_gradient(model))
    assert not torch.equal(after_two, released_gradient(model))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_own_backward_loop_over_micro_batches_equals_step_on_the_batch(reduction):
    batch = gather(dataset(), torch.arange(BATCH))
    model_a, model_b = Classifier(), Classifier()
    _, whole, _ = private(model_a, noise_seed=5)
    whole.step(batch)

    _, own, _ = private(model_b, noise_seed=5, loss_reduction=reduction)
    own.zero_grad()
    for part in (torch.arange(0, 4), torch.arange(4, BATCH)):  # two micro-batches of one logical batch
        micro = {k: v[part] for k, v in batch.items()}
        losses = classification_loss(model_b(**model_inputs(micro)), micro)
        (losses.sum() if reduction == "sum" else losses.mean()).backward()
    out = own.step()
    assert out.batch_size == BATCH and own.ledger.steps == 1 and out.loss is None
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_own_backward_needs_the_loss_reduction():
    model = Classifier()
    private(model)
    batch = gather(dataset(), torch.arange(4))
    with pytest.raises(ValueError, match="loss_reduction='sum' or 'mean'"):
        model(**model_inputs(batch))
    with torch.no_grad():
        model(**model_inputs(batch))  # evaluation is fine


def test_zero_grad_discards_the_accumulated_batch():
    model = Classifier()
    _, dp_optimizer, _ = private(model, loss_reduction="sum")
    batch = gather(dataset(), torch.arange(4))
    classification_loss(model(**model_inputs(batch)), batch).sum().backward()
    dp_optimizer.zero_grad()
    assert dp_optimizer.step().batch_size == 0


def test_budget_refusal_discards_the_batch_and_releases_nothing():
    budget = lmodp.epsilon(Gaussian(1.0), sample_rate=BATCH / N, steps=1, delta=1e-5, geometry="l2") * 1.0001
    model = Classifier()
    _, dp_optimizer, loader = private(model, max_epsilon=budget, on_exhausted="stop", loss_reduction="sum")
    batches = list(loader)
    assert dp_optimizer.step(batches[0]) is not None
    before = [p.detach().clone() for p in model.parameters()]
    assert dp_optimizer.step(batches[1]) is None
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert dp_optimizer.clipping.sums.examples == 0


def empty_step_noise(**kwargs) -> torch.Tensor:
    model = Classifier()
    _, dp_optimizer, _ = private(model, mechanism=Laplace(1.0), **kwargs)
    dp_optimizer.step(gather(dataset(), torch.empty(0, dtype=torch.long)))
    return released_gradient(model)


def test_batch_sampling_is_secret_unless_a_seed_is_given(caplog):
    """Amplification by subsampling assumes nobody knows the batches: by default two runs sample differently."""
    def first_batches(**kwargs):
        _, _, loader = private(Classifier(), **kwargs)
        return [b["labels"].numel() and b["input"].sum().item() for b in list(loader)[:3]]

    assert first_batches() != first_batches()
    with caplog.at_level(logging.WARNING, logger="lmodp.train.privacy_engine"):
        assert first_batches(sampling_seed=4) == first_batches(sampling_seed=4)
    assert "sampling_seed=4 fixes the batch sampling" in caplog.text


def test_finetune_samples_secret_batches_whatever_its_model_seed():
    data = classification_task(64, seed=1)
    sizes = []
    for _ in range(2):
        history = finetune(tiny_roberta(), data, mechanism=Gaussian(1.0), delta=1e-5, batch_size=16, epochs=2, model_seed=0, progress=False)
        sizes.append(history.batch_size)
    assert sizes[0] != sizes[1]  # 8 Binomial(64, 1/4) batch sizes: equal by chance with probability < 1e-4


def test_noise_is_secret_unless_a_noise_seed_is_given(caplog):
    assert not torch.equal(empty_step_noise(sampling_seed=0), empty_step_noise(sampling_seed=0))
    with caplog.at_level(logging.WARNING, logger="lmodp.train.privacy_engine"):
        assert torch.equal(empty_step_noise(sampling_seed=0, noise_seed=1), empty_step_noise(sampling_seed=1, noise_seed=1))
    assert "noise_seed=1 fixes the privacy noise: the reported epsilon holds only against someone who does not know" in caplog.text


def test_finetune_default_does_not_fix_the_noise():
    data = classification_task(64, seed=1)
    runs = []
    for _ in range(2):
        model = tiny_roberta()
        finetune(model, data, mechanism=Gaussian(1.0), delta=1e-5, batch_size=16, max_steps=1, progress=False)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.equal(runs[0], runs[1])


def test_making_a_model_private_again_detaches_the_first_engine():
    model = Classifier()
    _, first, loader = private(model)
    _, second, _ = private(model)
    batch = next(iter(loader))
    assert second.step(batch).batch_size == len(batch["labels"])
    with pytest.raises(RuntimeError, match="detached"):
        first.step(batch)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(clipping="ghost"), "clipping must be one of"),
        (dict(clipping="vmap", loss_reduction="sum"), "clipping='vmap' computes the losses itself"),
        (dict(loss_reduction="average"), "loss_reduction must be one of"),
        (dict(noise_seed=1.5), "noise_seed must be an integer"),
    ],
)
def test_bad_engine_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        private(Classifier(), **kwargs)
