"""Runs of sharded (FSDP2) DP-SGD for tests/test_train_fsdp.py: the same functions run in one
process (a plain model) and on each rank of a 2-process gloo group (the model sharded with
``fully_shard``), spawned by :func:`_distributed_runs.spawn`.

Models are tiny random transformers (tied Llama, GPT-2, LoRA on Llama) and a 10⁶-coordinate
linear layer; nothing is downloaded.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from _distributed_runs import LMO_MECHANISM, NOISE_SIGMA, WIDE, Classifier, Wide, dataset, zero_loss
from lmodp.mechanisms import Gaussian
from lmodp.train import PrivacyBudgetExhausted, finetune, make_private
from lmodp.train.fsdp import Sharding
from lmodp.train.privacy_engine import PrivacyEngine, training_run

N = 24
BATCH = 6  # q = 0.25
SEQ = 8
VOCAB = 64
CLIP = 0.5
DELTA = 1e-5
SEED = 13
TINY_SIGMA = 1e-9  # noise C·σ/(qN) ≈ 1e-10: the step is the clipped mean


def tied_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        intermediate_size=32, max_position_embeddings=SEQ + 4, tie_word_embeddings=True, attn_implementation="eager",
    )
    return LlamaForCausalLM(config)


def gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB, n_embd=16, n_layer=2, n_head=2, n_positions=SEQ + 4, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, attn_implementation="eager",
    )
    return GPT2LMHeadModel(config)


def lora_llama(seed: int = 0) -> nn.Module:
    import peft

    model = tied_llama(seed)
    config = peft.LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(seed + 1)
    return peft.get_peft_model(model, config)


MODELS: dict[str, Callable[[int], nn.Module]] = {"llama": tied_llama, "gpt2": gpt2, "lora-llama": lora_llama}


def tokens(n: int = N, seed: int = 3) -> dict[str, torch.Tensor]:
    """Causal-LM data with right padding of varied length."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (n, SEQ), generator=g)
    mask = torch.ones(n, SEQ, dtype=torch.long)
    for i in range(n):
        mask[i, SEQ - (i % 3) :] = 0
    return {"input_ids": ids, "attention_mask": mask}


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def full_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter whole (sharded ones gathered), by name."""
    out = {}
    for name, p in model.named_parameters():
        full = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name] = full.detach().clone()
    return out


def one_step(name: str, *, shard: bool | Sharding, micro_batch_size: int | None = None, steps: int = 2) -> dict[str, Any]:
    """``steps`` steps of make_private with negligible noise (SGD, lr 1): the parameters after,
    with the logical batch sizes and the ε of each step."""
    model = MODELS[name](0)
    _, optimizer, loader = make_private(
        model, lambda params: torch.optim.SGD(params, lr=1.0), tokens(), mechanism=Gaussian(TINY_SIGMA),
        max_grad_norm=CLIP, batch_size=BATCH, steps=steps, delta=DELTA, loss="causal-lm", seed=SEED, accountant="rdp",
        micro_batch_size=micro_batch_size, shard=shard,
    )
    outputs = [optimizer.step(batch) for batch in loader]
    return {
        "params": full_parameters(model),
        "batch_size": [out.batch_size for out in outputs],
        "epsilon": [out.epsilon for out in outputs],
        "grad_dtypes": sorted({str(p.grad.dtype) for p in model.parameters() if p.grad is not None}),
    }


def zero_gradient_noise(mechanism: Any, *, noise_seed: int | None = None) -> dict[str, torch.Tensor]:
    """The released gradient (this rank's shard) of a sharded 10⁶-coordinate layer whose
    per-example gradients are 0: C·Y/(qN), two steps."""
    from torch.distributed.fsdp import fully_shard

    model = Wide()
    fully_shard(model)
    _, optimizer, loader = make_private(
        model, torch.optim.SGD(model.parameters(), lr=1.0), dataset(WIDE), mechanism=mechanism, max_grad_norm=1.0,
        batch_size=8, delta=DELTA, steps=2, loss=zero_loss, noise_seed=noise_seed,
    )
    released = []
    for batch in loader:
        optimizer.step(batch)
        released.append(model.linear.weight.grad.to_local().detach().flatten().clone())
    return {"local": torch.stack(released)}


def budget_run(max_epsilon: float) -> dict[str, Any]:
    """Steps of a sharded classifier until the budget refuses one (``on_exhausted="raise"``)."""
    from torch.distributed.fsdp import fully_shard

    model = Classifier()
    fully_shard(model)
    _, optimizer, loader = make_private(
        model, torch.optim.SGD(model.parameters(), lr=0.1), dataset(), mechanism=Gaussian(1.0), max_grad_norm=1.0,
        batch_size=8, delta=DELTA, steps=5, max_epsilon=max_epsilon, accountant="rdp",
    )
    released = []
    try:
        for batch in loader:
            released.append(optimizer.step(batch) is not None)
    except PrivacyBudgetExhausted:
        return {"released": released, "error": "PrivacyBudgetExhausted", "steps": optimizer.ledger.steps}
    return {"released": released, "error": None, "steps": optimizer.ledger.steps}


def finetune_run(checkpoint_dir: str, *, shard: bool, **kwargs: Any) -> tuple[Any, nn.Module]:
    """finetune of the tied Llama on the causal-LM data: 4 steps in all (``kwargs``: max_steps, resume)."""
    model = tied_llama(0)
    history = finetune(
        model, tokens(), mechanism=Gaussian(1.0), delta=DELTA, batch_size=BATCH, epochs=1.0, max_grad_norm=CLIP,
        learning_rate=0.01, task="causal-lm", accountant="rdp", sampling_seed=SEED, checkpoint_dir=checkpoint_dir,
        device="cpu", progress=False, shard=shard, **kwargs,
    )
    return history, model


def loaded_parameters(checkpoint_dir: str) -> dict[str, torch.Tensor]:
    """The parameters (whole) of a plain tied Llama after loading a checkpoint through the engine."""
    model = tied_llama(1)
    run = training_run(N, batch_size=BATCH, epochs=1.0, delta=DELTA)
    engine = PrivacyEngine(model, num_examples=N, mechanism=Gaussian(1.0), max_grad_norm=CLIP, run=run, accountant="rdp")
    optimizer = engine.private_optimizer(torch.optim.AdamW(model.parameters(), lr=0.01), loss="causal-lm")
    engine.load_checkpoint(checkpoint_dir, optimizer=optimizer)
    return {"params": full_parameters(model), "steps": engine.ledger.steps}


def _error(call: Callable[[], Any]) -> str | None:
    try:
        call()
    except ValueError as err:
        return str(err)
    return None


def refusals() -> dict[str, str | None]:
    """What make_private refuses for sharded models, on every rank."""
    from torch.distributed.fsdp import fully_shard

    def trio(model: nn.Module, **kwargs: Any) -> Any:
        settings = {"max_grad_norm": 1.0, "batch_size": 8, "delta": DELTA, **kwargs}
        return make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), dataset(), mechanism=Gaussian(1.0), **settings)

    leaf = Classifier()
    fully_shard(leaf.net[0])
    fully_shard(leaf)
    root = Classifier()
    fully_shard(root)
    mismatched = Classifier()
    fully_shard(mismatched)
    vmap = Classifier()
    fully_shard(vmap)
    stale = Classifier()
    return {
        "stale-optimizer": _error(lambda: make_private(
            stale, torch.optim.SGD(stale.parameters(), lr=0.1), dataset(), mechanism=Gaussian(1.0), max_grad_norm=1.0,
            batch_size=8, delta=DELTA, shard=True,
        )),
        "leaf": _error(lambda: trio(leaf)),
        "settings": _error(lambda: trio(mismatched, max_grad_norm=1.0 + rank())),
        "vmap": _error(lambda: trio(vmap, clipping="vmap")),
        "shard-twice": _error(lambda: trio(root, shard=True)),
    }


def two_process_scenarios(checkpoint_dir: str, copy_dir: str, max_epsilon: float) -> dict[str, Any]:
    """Every scenario of tests/test_train_fsdp.py on one rank of the group (one spawn for all):
    2 steps of a sharded finetune with checkpoints, a copy of the checkpoint (for a one-process
    resume in the test), and the remaining 2 steps resumed here on 2 processes."""
    import shutil

    history, model = finetune_run(checkpoint_dir, shard=True, max_steps=2)
    saved = full_parameters(model)
    if rank() == 0:
        shutil.copytree(checkpoint_dir, copy_dir)
    dist.barrier()
    resumed, resumed_model = finetune_run(checkpoint_dir, shard=True, resume=True)
    return {
        "steps": {name: one_step(name, shard=True) for name in MODELS},
        "micro-batched": one_step("llama", shard=True, micro_batch_size=1),
        "bf16": one_step("llama", shard=Sharding(param_dtype=torch.bfloat16)),
        "noise": {"gaussian": zero_gradient_noise(Gaussian(NOISE_SIGMA)), "lmo": zero_gradient_noise(LMO_MECHANISM),
                  "seeded": zero_gradient_noise(Gaussian(NOISE_SIGMA), noise_seed=5)},
        "budget": budget_run(max_epsilon),
        "refusals": refusals(),
        "finetune": {"history": history.to_dict(), "params": saved},
        "resumed": {"history": resumed.to_dict(), "params": full_parameters(resumed_model)},
    }
