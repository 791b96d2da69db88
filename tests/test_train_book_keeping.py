"""Book-keeping clipping against the vmap path and against a one-example-at-a-time autograd loop.

The references compute every example's gradient separately (torch.func on one example, or a
plain backward pass on a batch of one), clip it and sum: nothing they share with the
book-keeping engine except the model.
"""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _train_models import one_torch_thread, padded_tokens, tiny_bert, tiny_gpt2, tiny_llama, tiny_roberta  # noqa: E402, F401

from lmodp.train.book_keeping import BookKeepingClipping  # noqa: E402
from lmodp.train.clipping import clipped_sum, per_example_norms  # noqa: E402
from lmodp.train.losses import causal_lm_loss, classification_loss  # noqa: E402
from lmodp.train.batches import model_inputs  # noqa: E402
from lmodp.train.vmap_clipping import PerSampleGradients  # noqa: E402

BATCH = 6


def labelled(n: int, *, seed: int, classes: int = 2, pad_id: int = 1) -> dict[str, torch.Tensor]:
    batch = padded_tokens(n, seed=seed, pad_id=pad_id)
    batch["labels"] = torch.arange(n) % classes
    return batch


def vmap_reference(model, loss_fn, batch):
    """Unclipped per-example norms and the per-example gradients by vmap (micro-batches of 2)."""
    per_sample = PerSampleGradients(model, loss_fn, micro_batch_size=2)
    chunks = list(per_sample(batch))
    grads = {n: torch.cat([g[n] for g, _ in chunks]) for n in per_sample.trainable_names}
    return per_example_norms(grads.values()), grads


def book_keeping(model, loss_fn, batch, clip, micro_batch_size=None):
    engine = BookKeepingClipping(model, loss_fn, max_grad_norm=clip, micro_batch_size=micro_batch_size)
    engine.accumulate(batch)
    sums, norms = engine.clipped_sums(), engine.sums.norms()
    engine.remove()
    return norms, sums


def assert_matches_vmap(model, loss_fn, batch, *, dtype=torch.float64, rtol=1e-10, micro_batch_size=None):
    """Per-example norms and the clipped sum equal the vmap path's, with clipping active on some
    examples only (C = the median norm)."""
    model = model.to(dtype).eval()
    reference = copy.deepcopy(model)
    ref_norms, grads = vmap_reference(reference, loss_fn, batch)
    clip = float(ref_norms.median())
    ref_sums, _ = clipped_sum(grads, clip)
    norms, sums = book_keeping(model, loss_fn, batch, clip, micro_batch_size)
    assert 0 < int((ref_norms > clip).sum()) < ref_norms.numel()
    torch.testing.assert_close(norms.to(ref_norms.dtype), ref_norms.cpu(), rtol=rtol, atol=0.0)
    assert sums.keys() == ref_sums.keys()
    scale = torch.sqrt(sum(s.square().sum() for s in ref_sums.values()))
    for name, ref in ref_sums.items():
        assert float((sums[name] - ref).norm()) <= rtol * float(scale), name
    return sums


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["float64", "float32"])
@pytest.mark.parametrize(
    "build,loss_fn,batch",
    [
        (tiny_roberta, classification_loss, labelled(BATCH, seed=1)),
        (tiny_bert, classification_loss, labelled(BATCH, seed=6, classes=3, pad_id=0)),  # padding_idx, shared position ids
        (tiny_gpt2, causal_lm_loss, padded_tokens(BATCH, seed=2)),  # Conv1D, tied embedding and LM head
        (tiny_llama, causal_lm_loss, padded_tokens(BATCH, seed=3, left_padded_row=False)),  # RMSNorm, recomputed
    ],
    ids=["roberta", "bert", "gpt2-tied", "llama"],
)
def test_norms_and_clipped_sum_equal_vmap(build, loss_fn, batch, dtype, rtol):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        assert_matches_vmap(build(), loss_fn, batch, dtype=dtype, rtol=rtol)
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_tied_weights_sum_both_uses(float64_default):
    model = tiny_gpt2()
    assert model.lm_head.weight is model.transformer.wte.weight
    sums = assert_matches_vmap(model, causal_lm_loss, padded_tokens(BATCH, seed=4))
    assert "transformer.wte.weight" in sums and "lm_head.weight" not in sums


def test_micro_batches_give_the_same_sum(float64_default):
    assert_matches_vmap(tiny_roberta(), classification_loss, labelled(BATCH, seed=5), micro_batch_size=4)


def test_bias_only_training(float64_default):
    model = tiny_roberta()
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(".bias"))
    sums = assert_matches_vmap(model, classification_loss, labelled(BATCH, seed=7))
    assert sums and all(name.endswith(".bias") for name in sums)


def test_peft_lora_trains_only_the_adapters(float64_default):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_roberta(), peft.LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["query", "value"]))
    with torch.no_grad():  # LoRA B starts at zero: give it values so that A's gradient is not zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    sums = assert_matches_vmap(model, classification_loss, labelled(BATCH, seed=8))
    assert any("lora_A" in n for n in sums) and any("lora_B" in n for n in sums)
    assert not any("query.base_layer" in n or "embeddings" in n for n in sums)


def test_peft_lora_on_gpt2_conv1d(float64_default):
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=["c_attn"], fan_in_fan_out=True)
    model = peft.get_peft_model(tiny_gpt2(), config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    assert_matches_vmap(model, causal_lm_loss, padded_tokens(BATCH, seed=9, left_padded_row=False))


class ScaledMLP(torch.nn.Module):
    """A user module with a parameter of its own (no closed-form rule: recomputed per example)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.linspace(0.5, 1.5, 5))
        self.inner = torch.nn.Linear(5, 5)

    def forward(self, x):
        return torch.tanh(self.inner(x) * self.scale)


class SmallClassifier(torch.nn.Module):
    def __init__(self, middle: torch.nn.Module):
        super().__init__()
        self.embed = torch.nn.Linear(4, 5)
        self.middle = middle
        self.head = torch.nn.Linear(5, 3)

    def forward(self, x):
        return self.head(self.middle(self.embed(x)))


def small_batch(n=BATCH, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(n, 4, generator=g) * 3, "labels": torch.arange(n) % 3}


def test_user_module_with_its_own_parameter_is_recomputed(float64_default):
    torch.manual_seed(0)
    assert_matches_vmap(SmallClassifier(ScaledMLP()), classification_loss, small_batch())


def test_layer_norm_over_several_dimensions(float64_default):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.LayerNorm((3, 4))
            self.head = torch.nn.Linear(12, 3)

        def forward(self, x):
            return self.head(self.norm(x.view(-1, 3, 4)).flatten(1) * 2.0)

    torch.manual_seed(1)
    model = Net()
    with torch.no_grad():
        model.norm.weight.normal_()
    g = torch.Generator().manual_seed(2)
    assert_matches_vmap(model, classification_loss, {"x": torch.randn(BATCH, 12, generator=g), "labels": torch.arange(BATCH) % 3})


# --- nothing silently wrong -------------------------------------------------------------------
def run_bk(model, batch):
    engine = BookKeepingClipping(model, classification_loss, max_grad_norm=1.0)
    engine.accumulate(batch)
    return engine.clipped_sums()


def test_parameter_used_outside_its_layer_raises():
    class TiedAutoencoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Linear(4, 3, bias=False)
            self.head = torch.nn.Linear(4, 3)

        def forward(self, x):
            h = torch.tanh(self.encoder(x))
            return self.head(h @ self.encoder.weight)  # the encoder's weight, used outside the encoder

    with pytest.raises(ValueError, match="'encoder.weight' received an ordinary gradient"):
        run_bk(TiedAutoencoder(), small_batch())


def test_batch_norm_in_training_raises():
    model = SmallClassifier(torch.nn.BatchNorm1d(5)).train()
    with pytest.raises(ValueError, match="layer 'middle' \\(BatchNorm1d\\)"):
        run_bk(model, small_batch())


def test_dropout_inside_a_recomputed_layer_raises():
    class Noisy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(5))
            self.drop = torch.nn.Dropout(0.5)

        def forward(self, x):
            return self.drop(x * self.scale)

    with pytest.raises(ValueError, match="layer 'middle' .*cannot be recomputed"):
        run_bk(SmallClassifier(Noisy()).train(), small_batch())
    run_bk(SmallClassifier(Noisy()).eval(), small_batch())  # without dropout it is fine


def test_embedding_with_max_norm_raises():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4, max_norm=1.0)
            self.head = torch.nn.Linear(4, 2)

        def forward(self, ids):
            return self.head(self.embed(ids).mean(1))

    with pytest.raises(ValueError, match="max_norm"):
        BookKeepingClipping(Net(), classification_loss, max_grad_norm=1.0)


def test_kept_input_modified_in_place_raises():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 4)
            self.b = torch.nn.Linear(4, 3)

        def forward(self, x):
            h = self.a(x) + 1.0
            out = self.b(h)
            h.mul_(2.0)  # changes the input the layer b was computed from (autograd itself does not need it)
            return out + h[:, :3]

    with pytest.raises(ValueError, match="modified in place"):
        run_bk(Net(), small_batch())


def test_batch_second_layer_raises():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.a(x.view(-1, 2, 4).transpose(0, 1)).mean(0)  # the layer sees (2, B, 4)

    with pytest.raises(ValueError, match="first dimension is not the batch"):
        run_bk(Net(), {"x": torch.randn(BATCH, 8), "labels": torch.arange(BATCH) % 3})


def test_gradient_checkpointing_is_refused():
    model = tiny_gpt2()
    getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    with pytest.raises(ValueError, match="gradient checkpointing"):
        BookKeepingClipping(model, causal_lm_loss, max_grad_norm=1.0)


def test_hooks_leave_the_model_as_it_was():
    model = tiny_roberta().eval()
    batch = labelled(BATCH, seed=3)
    before = model(**model_inputs(batch)).logits
    engine = BookKeepingClipping(model, classification_loss, max_grad_norm=1.0)
    engine.accumulate(batch)
    with torch.no_grad():
        during = model(**model_inputs(batch)).logits
    engine.remove()
    assert all(isinstance(p, torch.nn.Parameter) for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(during, before.detach(), rtol=0, atol=0)


@pytest.mark.cuda
def test_book_keeping_on_cuda_float32():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for build, loss_fn, batch in (
        (tiny_gpt2, causal_lm_loss, padded_tokens(BATCH, seed=5, left_padded_row=False)),
        (tiny_llama, causal_lm_loss, padded_tokens(BATCH, seed=6, left_padded_row=False)),
        (tiny_roberta, classification_loss, labelled(BATCH, seed=7)),
    ):
        batch = {k: v.cuda() for k, v in batch.items()}
        assert_matches_vmap(build().cuda(), loss_fn, batch, dtype=torch.float32, rtol=1e-4)
