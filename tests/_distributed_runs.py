"""Runs of lmodp.train for the distributed tests: the same functions run in one process (no
process group) and on every rank of a 2-process gloo group spawned by :func:`spawn`.

Models are tiny MLPs built from a seed (nothing downloaded); rank 1 builds its model from another
seed, so that equal results also show that rank 0's parameters were broadcast.
"""

from __future__ import annotations

import copy
import math
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from scipy import integrate, special
from torch import nn

import lmodp.train.layout as lmodp_layout
from lmodp.mechanisms import Gaussian
from lmodp.paper.params import paper_mechanism
from lmodp.train import PrivacyBudgetExhausted, PrivacyLedger, finetune, make_private
from lmodp.train.losses import classification_loss
from lmodp.train.batches import model_inputs

N = 40
BATCH = 8  # q = 0.2, q·N = 8
STEPS = 4
CLIP = 1.0
DELTA = 1e-5
SEED = 11
NOISE_SEED = 22
WIDE = 1000  # the zero-gradient model has WIDE² = 10⁶ coordinates
NOISE_SIGMA = 1.3
LMO_MECHANISM = paper_mechanism(2, "task1", exponential="rate")


class Classifier(nn.Module):
    """``input`` [B, 4] → logits [B, 3]."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.LayerNorm(8), nn.Linear(8, 3))

    def forward(self, input):
        return self.net(input)


class Wide(nn.Module):
    """One WIDE×WIDE linear layer: 10⁶ coordinates of noise per step."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(WIDE, WIDE, bias=False)

    def forward(self, input):
        return self.linear(input)


def inverse_omega_moment(mechanism, m: int) -> float:
    """E[ω^{-m}] = (1/Γ(m)) ∫_0^∞ t^{m-1} E[e^{-tω}] dt, with the Laplace transform of
    ω = a1·Gamma(k, θ) + a3·Exponential(rate λ) + a4·U[lo, hi] written from its definition."""
    p = mechanism

    def laplace_transform(t: float) -> float:
        gamma = (1.0 + p.gamma_weight * p.gamma_scale * t) ** -p.gamma_shape
        exponential = p.exponential_rate / (p.exponential_rate + p.exponential_weight * t)
        width = p.uniform_weight * (p.uniform_high - p.uniform_low)
        uniform = math.exp(-p.uniform_weight * p.uniform_low * t) * -math.expm1(-width * t) / (width * t)
        return gamma * exponential * uniform

    value, error = integrate.quad(lambda t: t ** (m - 1) * laplace_transform(t), 0.0, math.inf, epsabs=0, epsrel=1e-10)
    assert error < 1e-8 * value
    return value / special.gamma(m)

def assert_gaussian_noise(z: torch.Tensor, sigma: float) -> None:
    """z (float64, n coordinates) is i.i.d. N(0, σ²): Σ z²/σ² ~ χ²_n exactly; two-sided test at
    false-alarm probability 10⁻⁶."""
    from scipy import stats

    n = z.numel()
    statistic = float((z / sigma).square().sum())
    alpha = 1e-6
    assert stats.chi2.ppf(alpha / 2, n) < statistic < stats.chi2.isf(alpha / 2, n)


def assert_lmo_noise(z: torch.Tensor, mechanism: Any) -> None:
    """z (float64, n coordinates) has the LMO law's variance: Var(Y) = 2·E[ω⁻²], E[Y⁴] = 24·E[ω⁻⁴]
    (Y = Laplace(1)/ω). For V = mean(z²), Var(V) = (E[Y⁴] − Var(Y)²)/n, and Chebyshev's inequality
    gives P(|V/Var(Y) − 1| ≥ t) ≤ (κ − 1)/(n t²) =: α with κ = E[Y⁴]/Var(Y)²; t is chosen for
    α = 10⁻⁴ and must be below 1/2 (so that both a doubled and a halved variance fail)."""
    n = z.numel()
    variance = 2.0 * inverse_omega_moment(mechanism, 2)
    kurtosis = 24.0 * inverse_omega_moment(mechanism, 4) / variance**2
    alpha = 1e-4
    t = math.sqrt((kurtosis - 1.0) / (n * alpha))
    assert t < 0.5
    assert abs(float(z.square().mean()) / variance - 1.0) < t


def dataset(width: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return {"input": 3 * torch.randn(N, width, generator=g), "labels": torch.randint(0, 3, (N,), generator=g)}


def zero_loss(outputs: torch.Tensor, batch: Any) -> torch.Tensor:
    """A per-example loss whose gradient is exactly 0 for every example."""
    return outputs.sum(dim=1) * 0.0


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def private_trio(model: nn.Module, mechanism: Any, *, data: dict | None = None, lr: float = 0.1, **kwargs: Any):
    settings = {"max_grad_norm": CLIP, "steps": STEPS, "sampling_seed": SEED, **kwargs}
    return make_private(
        model, torch.optim.SGD(model.parameters(), lr=lr), dataset() if data is None else data, mechanism=mechanism,
        batch_size=BATCH, delta=DELTA, **settings,
    )


def sampled_indices(loader: Any) -> list[list[int]]:
    """The indices the loader's sampler will yield (drawn from a copy of its generator)."""
    sampler = copy.copy(loader.sampler)
    sampler.generator = torch.Generator()
    sampler.generator.set_state(loader.sampler.generator.get_state())
    return [indices.tolist() for indices in sampler]


def seeded_run(mechanism: Any, *, own_loop: bool = False, **kwargs: Any) -> dict[str, Any]:
    """STEPS steps with fixed sampling and noise seeds: final parameters, ε and batch sizes.
    ``own_loop``: the user's forward and ``loss.backward()`` on each rank's part, then ``step()``."""
    if own_loop:
        kwargs["loss_reduction"] = "sum"
    model, optimizer, loader = private_trio(Classifier(seed=rank()), mechanism, noise_seed=NOISE_SEED, **kwargs)
    indices = sampled_indices(loader)
    outputs = []
    for batch in loader:
        if own_loop:
            optimizer.zero_grad()
            classification_loss(model(**model_inputs(batch)), batch).sum().backward()
            outputs.append(optimizer.step())
        else:
            outputs.append(optimizer.step(batch))
    return {
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "epsilon": [out.epsilon for out in outputs],
        "batch_size": [out.batch_size for out in outputs],
        "indices": indices,
        "ledger_epsilon": optimizer.ledger.epsilon(),
    }


def zero_gradient_noise(mechanism: Any, steps: int = 2) -> torch.Tensor:
    """The released gradients (steps × 10⁶) of a model whose per-example gradients are all 0:
    pure noise C·Y/(qN). The noise is secret (seeded from the operating system)."""
    model = Wide()
    _, optimizer, loader = make_private(
        model, torch.optim.SGD(model.parameters(), lr=1.0), dataset(WIDE), mechanism=mechanism, max_grad_norm=CLIP,
        batch_size=BATCH, delta=DELTA, steps=steps, loss=zero_loss,
    )
    released = []
    for batch in loader:
        optimizer.step(batch)
        released.append(model.linear.weight.grad.detach().flatten().clone())
    return torch.stack(released)


def budget_run(*, max_epsilon: float, on_exhausted: str, diverge: bool = False) -> dict[str, Any]:
    """Steps until the loader ends or the budget raises: per step True (released) or None."""
    _, optimizer, loader = private_trio(
        Classifier(), Gaussian(1.0), max_epsilon=max_epsilon, on_exhausted=on_exhausted, steps=STEPS + 1
    )
    if diverge and rank() == 1:  # this rank's ledger replica is one step ahead of rank 0's
        ahead = PrivacyLedger(mechanism=Gaussian(1.0), sample_rate=BATCH / N, delta=DELTA)
        ahead.charge_step()
        optimizer.ledger.load_state_dict(ahead.state_dict())
    released: list[bool | None] = []
    try:
        for batch in loader:
            released.append(None if optimizer.step(batch) is None else True)
    except (PrivacyBudgetExhausted, RuntimeError) as err:
        return {"released": released, "error": type(err).__name__, "steps": optimizer.ledger.steps}
    return {"released": released, "error": None, "steps": optimizer.ledger.steps}


def finetune_run(checkpoint_dir: str, **kwargs: Any) -> tuple[Any, nn.Module]:
    """finetune on the MLP task (5 steps in all; ``kwargs``: max_steps, resume)."""
    model = Classifier(seed=rank())
    history = finetune(
        model, dataset(), mechanism=Gaussian(1.0), delta=DELTA, batch_size=BATCH, epochs=1.0, max_grad_norm=CLIP,
        learning_rate=0.05, model_seed=SEED, sampling_seed=SEED, noise_seed=NOISE_SEED, checkpoint_dir=checkpoint_dir, device="cpu",
        progress=False, **kwargs,
    )
    return history, model


def error_of(call: Callable[[], Any]) -> str | None:
    """The message of the ValueError ``call`` raises, or None."""
    try:
        call()
    except ValueError as err:
        return str(err)
    return None


def refusals() -> dict[str, str | None]:
    """What make_private and finetune refuse inside the process group."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.nn.parallel import DistributedDataParallel

    with tempfile.TemporaryDirectory() as scratch:
        return {
            "ddp": error_of(lambda: private_trio(DistributedDataParallel(Classifier()), Gaussian(1.0))),
            "fsdp1": error_of(lambda: private_trio(FullyShardedDataParallel(Classifier(), device_id=torch.device("cpu")), Gaussian(1.0))),
            "settings": error_of(lambda: private_trio(Classifier(), Gaussian(1.0), max_grad_norm=1.0 + rank())),
            "non-private": error_of(lambda: finetune(
                Classifier(), dataset(), private=False, delta=DELTA, batch_size=BATCH, checkpoint_dir=scratch,
                device="cpu", progress=False,
            )),
        }


def two_process_scenarios(checkpoint_dir: str, one_process_checkpoint_dir: str, max_epsilon: float) -> dict[str, Any]:
    """Every scenario of the distributed tests, on one rank of the group (one spawn for all).
    ``one_process_checkpoint_dir`` holds the checkpoint of a one-process run, to be resumed here."""
    saves: list[str] = []
    save = lmodp_layout.save_checkpoint
    lmodp_layout.save_checkpoint = lambda directory, state: (saves.append(directory), save(directory, state))[1]
    try:
        history, _ = finetune_run(checkpoint_dir, max_steps=2)
    finally:
        lmodp_layout.save_checkpoint = save
    resumed_history, resumed_model = finetune_run(one_process_checkpoint_dir, resume=True)
    return {
        "resumed": {"history": resumed_history.to_dict(), "params": resumed_model.state_dict()},
        "gaussian": seeded_run(Gaussian(1.0)),
        "lmo": seeded_run(LMO_MECHANISM),
        "gaussian-vmap": seeded_run(Gaussian(1.0), clipping="vmap"),
        "gaussian-own-loop": seeded_run(Gaussian(1.0), own_loop=True),
        "noise": {"gaussian": zero_gradient_noise(Gaussian(NOISE_SIGMA)), "lmo": zero_gradient_noise(LMO_MECHANISM)},
        "stop": budget_run(max_epsilon=max_epsilon, on_exhausted="stop"),
        "raise": budget_run(max_epsilon=max_epsilon, on_exhausted="raise"),
        "diverged": budget_run(max_epsilon=max_epsilon, on_exhausted="stop", diverge=True),
        "refusals": refusals(),
        "finetune": {"history": history.to_dict(), "saves": len(saves)},
    }


def spawn(worker: Callable[..., Any], *args: Any, world_size: int = 2, directory: Path) -> list[Any]:
    """``worker(*args)`` on each rank of a ``world_size``-process gloo group; each rank's result."""
    torch.multiprocessing.spawn(
        _rank_main, args=(world_size, str(directory), worker, args), nprocs=world_size, join=True
    )
    return [torch.load(directory / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


def _rank_main(rank: int, world_size: int, directory: str, worker: Callable[..., Any], args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{directory}/rendezvous", rank=rank, world_size=world_size,
        timeout=timedelta(seconds=120),
    )
    try:
        result = worker(*args)
    finally:
        dist.destroy_process_group()
    torch.save(result, Path(directory) / f"rank{rank}.pt")
