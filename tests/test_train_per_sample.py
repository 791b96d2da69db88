"""Per-example gradients (vmap + grad, micro-batched) against a one-example-at-a-time autograd loop."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _train_models import one_torch_thread, padded_tokens, tiny_bert, tiny_gpt2, tiny_llama, tiny_roberta  # noqa: E402, F401

from lmodp.train.losses import causal_lm_loss, classification_loss  # noqa: E402
from lmodp.train.batches import model_inputs  # noqa: E402
from lmodp.train.vmap_clipping import PerSampleGradients  # noqa: E402

BATCH = 5
MICRO = 2  # 5 examples in micro-batches of 2, 2, 1


def loop_gradients(model, loss_fn, batch, names):
    """Reference: autograd on each example alone (batch of one), in the model's ORIGINAL attention."""
    out = []
    for i in range(batch_size(batch)):
        example = {k: v[i : i + 1] for k, v in batch.items()}
        model.zero_grad(set_to_none=True)
        loss_fn(model(**model_inputs(example)), example).sum().backward()
        params = dict(model.named_parameters())
        out.append(torch.cat([params[n].grad.flatten() for n in names]))
    return torch.stack(out)


def batch_size(batch):
    return next(iter(batch.values())).shape[0]


def vmap_gradients(per_sample, batch):
    rows = []
    for grads, losses in per_sample(batch):
        assert losses.shape == (grads[per_sample.trainable_names[0]].shape[0],)
        rows.append(torch.cat([grads[n].flatten(start_dim=1) for n in per_sample.trainable_names], dim=1))
    return torch.cat(rows)


def assert_same_per_example(model, loss_fn, batch, rtol=1e-8):
    model = model.double().eval()
    reference_model = copy.deepcopy(model)
    per_sample = PerSampleGradients(model, loss_fn, micro_batch_size=MICRO)
    ps = vmap_gradients(per_sample, batch)
    ref = loop_gradients(reference_model, loss_fn, batch, per_sample.trainable_names)
    assert ps.shape == ref.shape == (batch_size(batch), sum(p.numel() for p in model.parameters() if p.requires_grad))
    for i in range(ps.shape[0]):
        assert torch.linalg.norm(ps[i] - ref[i]) <= rtol * torch.linalg.norm(ref[i]), i
    return per_sample


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_roberta_classification_with_padding():
    batch = padded_tokens(BATCH, seed=1)
    batch["labels"] = torch.tensor([0, 1, 1, 0, 1])
    assert_same_per_example(tiny_roberta(), classification_loss, batch)


def test_bert_classification_with_padding_and_pooler():
    batch = padded_tokens(BATCH, seed=6, pad_id=0)
    batch["labels"] = torch.tensor([0, 2, 1, 0, 2])
    assert_same_per_example(tiny_bert(), classification_loss, batch)


def test_gpt2_causal_lm_with_padding_and_tied_weights():
    model = tiny_gpt2()
    assert model.lm_head.weight is model.transformer.wte.weight
    per_sample = assert_same_per_example(model, causal_lm_loss, padded_tokens(BATCH, seed=2))
    # the tied matrix is one parameter whose gradient sums both uses
    assert "lm_head.weight" not in per_sample.trainable_names
    assert "transformer.wte.weight" in per_sample.trainable_names


def test_llama_causal_lm_with_padding():
    assert_same_per_example(tiny_llama(), causal_lm_loss, padded_tokens(BATCH, seed=3, left_padded_row=False))


def test_frozen_parameters_are_skipped():
    model = tiny_roberta()
    for p in model.roberta.embeddings.parameters():
        p.requires_grad_(False)
    batch = padded_tokens(BATCH, seed=4)
    batch["labels"] = torch.tensor([1, 1, 0, 0, 1])
    per_sample = assert_same_per_example(model, classification_loss, batch)
    assert not any(n.startswith("roberta.embeddings") for n in per_sample.trainable_names)
    assert len(per_sample.trainable_names) == sum(1 for p in model.parameters() if p.requires_grad)


def test_custom_module_with_tied_weights():
    class TiedAutoencoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Linear(6, 3, bias=False)
            self.decoder = torch.nn.Linear(3, 6, bias=False)
            self.decoder.weight = self.encoder.weight  # tied: the decoder uses W (3x6) transposed
            self.head = torch.nn.Linear(6, 2)

        def forward(self, x):
            h = torch.tanh(x @ self.encoder.weight.T)
            return self.head(h @ self.decoder.weight)  # = h @ W, the transpose of the encoder's use

    torch.manual_seed(0)
    model = TiedAutoencoder()
    batch = {"x": torch.randn(BATCH, 6), "labels": torch.tensor([0, 1, 0, 1, 1])}
    per_sample = assert_same_per_example(model, classification_loss, batch)
    assert len(per_sample.trainable_names) == 3


def test_no_trainable_parameters_raises():
    model = tiny_roberta()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="trainable"):
        PerSampleGradients(model, classification_loss, micro_batch_size=2)
    with pytest.raises(ValueError, match="micro_batch_size"):
        PerSampleGradients(tiny_roberta(), classification_loss, micro_batch_size=0)


@pytest.mark.cuda
def test_per_sample_gradients_on_cuda_float32():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.set_default_dtype(torch.float32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for build, loss_fn in ((tiny_gpt2, causal_lm_loss), (tiny_llama, causal_lm_loss)):
        model = build().cuda().eval()
        reference_model = copy.deepcopy(model)
        batch = {k: v.cuda() for k, v in padded_tokens(BATCH, seed=5, left_padded_row=False).items()}
        per_sample = PerSampleGradients(model, loss_fn, micro_batch_size=MICRO)
        ps = vmap_gradients(per_sample, batch)
        ref = loop_gradients(reference_model, loss_fn, batch, per_sample.trainable_names)
        for i in range(BATCH):
            assert torch.linalg.norm(ps[i] - ref[i]) <= 1e-4 * torch.linalg.norm(ref[i])
