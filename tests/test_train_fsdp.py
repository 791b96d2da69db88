"""Sharded DP-SGD (FSDP2, lmodp.train.fsdp): 2 processes (gloo, CPU) against one process.

All two-process scenarios run in one spawn of 2 processes (a module fixture); the tests compare
what each rank saw with the same functions run here, in one process, on the plain model.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

import _distributed_runs as distributed_runs  # noqa: E402
import _fsdp_runs as runs  # noqa: E402
from _fsdp_runs import BATCH, DELTA, MODELS, N, TINY_SIGMA  # noqa: E402

import lmodp  # noqa: E402
from lmodp.mechanisms import Gaussian  # noqa: E402

Q = BATCH / N
BUDGET_Q = 8 / distributed_runs.N


@pytest.fixture(scope="module")
def budget() -> float:
    """A max_epsilon between ε after 2 and after 3 steps: the 3rd step must be refused."""
    eps = [lmodp.epsilon(Gaussian(1.0), sample_rate=BUDGET_Q, steps=k, delta=DELTA, accountant="rdp") for k in (2, 3)]
    return (eps[0] + eps[1]) / 2


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, budget):
    directory = tmp_path_factory.mktemp("fsdp")
    torch.set_num_threads(1)
    results = distributed_runs.spawn(
        runs.two_process_scenarios, str(directory / "checkpoint"), str(directory / "copy"), budget, directory=directory
    )
    return {"ranks": results, "copy_dir": directory / "copy"}


@pytest.fixture(scope="module")
def one_process():
    torch.set_num_threads(1)
    steps = {name: runs.one_step(name, shard=False) for name in MODELS}
    return {**steps, "micro-batched": runs.one_step("llama", shard=False, micro_batch_size=1)}


def _both_ranks(two_processes, *keys):
    out = []
    for rank in two_processes["ranks"]:
        value = rank
        for key in keys:
            value = value[key]
        out.append(value)
    return out


@pytest.mark.parametrize("name", [*MODELS, "micro-batched"])
def test_a_sharded_step_equals_the_one_process_step(two_processes, one_process, name):
    """Tied Llama, GPT-2 and LoRA on Llama, sharded per block and root, two steps with negligible
    noise (σ = 1e-9): the gathered parameters are the one-process parameters (float32), the
    logical batches have the one-process sizes, and ε is the one-process ε. Micro-batched: every
    example alone, the rank with fewer examples running zero-weight filler passes."""
    keys = ("steps", name) if name in MODELS else (name,)
    reference = one_process[name]
    for result in _both_ranks(two_processes, *keys):
        assert result["batch_size"] == reference["batch_size"]
        assert result["epsilon"] == pytest.approx(reference["epsilon"], rel=1e-12)
        assert result["params"].keys() == reference["params"].keys()
        moved = 0
        for param, expected in reference["params"].items():
            torch.testing.assert_close(result["params"][param], expected, rtol=0, atol=1e-6)
            moved += int(not torch.equal(expected, runs_initial(name)[param]))
        assert moved > 0


def runs_initial(name: str) -> dict[str, torch.Tensor]:
    """The parameters before training (to check that the steps moved some)."""
    model_name = name if name in MODELS else "llama"
    return runs.full_parameters(MODELS[model_name](0))


def test_lora_trains_only_the_adapters(two_processes, one_process):
    initial = runs_initial("lora-llama")
    for result in _both_ranks(two_processes, "steps", "lora-llama"):
        for param, value in result["params"].items():
            assert torch.equal(value, initial[param]) != ("lora_" in param)


def test_epsilon_of_the_sharded_run_is_lmodp_epsilon(two_processes):
    expected = [lmodp.epsilon(Gaussian(TINY_SIGMA), sample_rate=Q, steps=k, delta=DELTA, accountant="rdp") for k in (1, 2)]
    for result in _both_ranks(two_processes, "steps", "llama"):
        assert result["epsilon"] == pytest.approx(expected, rel=1e-12)


def test_bf16_gathered_parameters_keep_float32_gradients_and_noise(two_processes, one_process):
    """MixedPrecisionPolicy(param_dtype=bf16): forward and backward in bf16, the clipped sums, their
    reduce-scatter, the noise and the sharded gradient in float32; the step is the float32 one up
    to bf16 rounding."""
    reference = one_process["llama"]["params"]
    for result in _both_ranks(two_processes, "bf16"):
        assert result["grad_dtypes"] == ["torch.float32"]
        for param, expected in reference.items():
            assert result["params"][param].dtype == torch.float32
            torch.testing.assert_close(result["params"][param], expected, rtol=0, atol=3e-2)


def test_each_coordinate_gets_the_noise_once_from_its_own_rank(two_processes):
    """All per-example gradients are 0: each rank's shard of the released gradient is C·Y/(qN).
    The two shards together (the whole 10⁶ coordinates, 2 steps) have the mechanism's variance
    (noise drawn once per coordinate: neither summed over ranks nor split), and the shards of the
    two ranks are uncorrelated (their own generators; also with a noise_seed)."""
    scale = 8 / 1.0
    for name, check in (("gaussian", lambda z: distributed_runs.assert_gaussian_noise(z, distributed_runs.NOISE_SIGMA)),
                        ("lmo", lambda z: distributed_runs.assert_lmo_noise(z, distributed_runs.LMO_MECHANISM))):
        shards = [r["local"].double() * scale for r in _both_ranks(two_processes, "noise", name)]
        assert sum(s.shape[1] for s in shards) == distributed_runs.WIDE**2
        check(torch.cat(shards, dim=1).flatten())
    for name in ("gaussian", "seeded"):
        first, second = (r["local"].double() for r in _both_ranks(two_processes, "noise", name))
        n = first.numel()
        correlation = float(torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1])
        assert abs(correlation) < 6 / n**0.5


def test_the_budget_stop_is_collective(two_processes):
    for result in _both_ranks(two_processes, "budget"):
        assert result == {"released": [True, True], "error": "PrivacyBudgetExhausted", "steps": 2}


def test_wrong_use_is_refused_on_every_rank(two_processes):
    for refused in _both_ranks(two_processes, "refusals"):
        assert "fully_shard was applied directly to layers with trainable parameters (net.0)" in refused["leaf"]
        assert "max_grad_norm" in refused["settings"]
        assert "clipping='vmap'" in refused["vmap"] and "clipping='bk'" in refused["vmap"]
        assert "already sharded" in refused["shard-twice"]
        assert "pass a function params -> optimizer" in refused["stale-optimizer"]


@pytest.fixture(scope="module")
def whole_one_process_run(tmp_path_factory):
    torch.set_num_threads(1)
    history, _ = runs.finetune_run(str(tmp_path_factory.mktemp("whole")), shard=False)
    return history


def _assert_continues(history: dict, whole, saved: dict) -> None:
    """4 steps in all, the first 2 those of the saved run, the batches and ε those of the whole run."""
    assert history["step"] == [1, 2, 3, 4]
    assert history["batch_size"] == whole.batch_size
    assert history["epsilon"][:2] == saved["epsilon"]
    expected = [lmodp.epsilon(Gaussian(1.0), sample_rate=Q, steps=k, delta=DELTA, accountant="rdp") for k in (1, 2, 3, 4)]
    assert history["epsilon"] == pytest.approx(expected, rel=1e-12)


def test_a_sharded_checkpoint_resumes_on_two_processes(two_processes, whole_one_process_run):
    for rank in two_processes["ranks"]:
        _assert_continues(rank["resumed"]["history"], whole_one_process_run, rank["finetune"]["history"])


def test_a_sharded_checkpoint_resumes_in_one_process(two_processes, whole_one_process_run):
    """The checkpoint of 2 sharded steps, loaded into a plain model in one process: the gathered
    parameters and the ledger of the 2-process run; then finetune continues it to the end."""
    saved = two_processes["ranks"][0]["finetune"]
    torch.set_num_threads(1)
    loaded = runs.loaded_parameters(str(two_processes["copy_dir"]))
    assert loaded["steps"] == 2
    for param, value in saved["params"].items():
        assert torch.equal(loaded["params"][param], value)
    resumed, _ = runs.finetune_run(str(two_processes["copy_dir"]), shard=False, resume=True)
    _assert_continues(resumed.to_dict(), whole_one_process_run, saved["history"])
