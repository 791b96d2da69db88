"""Data-parallel DP-SGD (lmodp.train.distributed): 2 processes (gloo, CPU) against one process.

All two-process scenarios run in one spawn of 2 processes (a module fixture, ~15 s on 2 cores);
the tests compare what each rank saw with the same functions run here, in one process.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import _distributed_runs as runs  # noqa: E402
from _distributed_runs import BATCH, CLIP, DELTA, LMO_MECHANISM, N, NOISE_SIGMA, STEPS  # noqa: E402

import lmodp  # noqa: E402
from lmodp.mechanisms import Gaussian  # noqa: E402
from lmodp.train import make_private  # noqa: E402
from lmodp.train.losses import classification_loss  # noqa: E402
from lmodp.train.batches import model_inputs  # noqa: E402

Q = BATCH / N
MECHANISMS = {"gaussian": Gaussian(1.0), "lmo": LMO_MECHANISM}


@pytest.fixture(scope="module")
def budget() -> float:
    """A max_epsilon between ε after 3 and after 4 steps: the 4th step must be refused."""
    eps = [lmodp.epsilon(Gaussian(1.0), sample_rate=Q, steps=k, delta=DELTA, geometry="l2") for k in (3, 4)]
    return (eps[0] + eps[1]) / 2


@pytest.fixture(scope="module")
def one_process_whole_run(tmp_path_factory):
    """finetune's 5 steps in one process."""
    torch.set_num_threads(1)
    history, model = runs.finetune_run(str(tmp_path_factory.mktemp("whole-run")))
    return history, model.state_dict()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, budget):
    directory = tmp_path_factory.mktemp("two-processes")
    checkpoint_dir = directory / "checkpoint"
    one_process_checkpoint_dir = directory / "one-process-checkpoint"
    torch.set_num_threads(1)
    runs.finetune_run(str(one_process_checkpoint_dir), max_steps=2)
    results = runs.spawn(
        runs.two_process_scenarios, str(checkpoint_dir), str(one_process_checkpoint_dir), budget, directory=directory
    )
    return {"ranks": results, "checkpoint_dir": checkpoint_dir}


@pytest.fixture(scope="module")
def one_process():
    torch.set_num_threads(1)
    return {name: runs.seeded_run(mechanism) for name, mechanism in MECHANISMS.items()}


def test_each_rank_samples_its_own_shard_and_the_union_is_the_one_process_poisson_sample(two_processes, one_process):
    ranks = two_processes["ranks"]
    for step, whole in enumerate(one_process["gaussian"]["indices"]):
        parts = [set(r["gaussian"]["indices"][step]) for r in ranks]
        assert not parts[0] & parts[1]
        assert parts[0] | parts[1] == set(whole)
        assert all(i % 2 == rank for rank, part in enumerate(parts) for i in part)
    sizes = [len(whole) for whole in one_process["gaussian"]["indices"]]
    assert [r["gaussian"]["batch_size"] for r in ranks] == [sizes, sizes]


@pytest.mark.parametrize("run", [*MECHANISMS, "gaussian-vmap", "gaussian-own-loop"])
def test_two_processes_end_with_the_parameters_of_one_process(two_processes, one_process, run):
    """Same sampling seed and noise seed: the same logical batches and the same noise draws, so
    the same parameters up to float32 rounding of the summation order (rank 1 even started from
    other parameters: rank 0's were broadcast). Also with the vmap engine, and with the user's
    own forward and backward on each rank's part (against the one-process book-keeping run)."""
    reference = one_process[run.split("-")[0]]["params"]
    rank0, rank1 = (r[run]["params"] for r in two_processes["ranks"])
    for name, expected in reference.items():
        assert torch.equal(rank0[name], rank1[name])
        torch.testing.assert_close(rank0[name], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mechanism", list(MECHANISMS))
def test_the_reported_epsilon_is_the_one_process_epsilon_and_lmodp_epsilon(two_processes, one_process, mechanism):
    expected = lmodp.epsilon(MECHANISMS[mechanism], sample_rate=Q, steps=STEPS, delta=DELTA, geometry="l2")
    assert one_process[mechanism]["ledger_epsilon"] == pytest.approx(expected, rel=1e-12)
    assert one_process[mechanism]["epsilon"][-1] >= expected * (1 - 1e-12)  # each step reports a sound bound
    for rank in two_processes["ranks"]:
        assert rank[mechanism]["epsilon"] == pytest.approx(one_process[mechanism]["epsilon"], rel=1e-12)
        assert rank[mechanism]["ledger_epsilon"] == pytest.approx(expected, rel=1e-12)


def test_the_noise_is_drawn_once_for_the_whole_gradient(two_processes):
    """All per-example gradients are 0, so the released gradient is C·Y/(qN) with Y the noise:
    Z = g·qN/C must have the mechanism's variance, not W times it (noise added on every rank) nor
    a fraction of it (noise split across ranks). n = 2·10⁶ coordinates (2 steps of 10⁶), E[Z] = 0.

    * Gaussian σ: Σ Z²/σ² ~ χ²_n exactly; two-sided test at false-alarm probability 10⁻⁶.
    * LMO: Var(Y) = 2·E[ω⁻²], E[Y⁴] = 24·E[ω⁻⁴] (Y = Laplace(1)/ω), by quadrature of ω's Laplace
      transform. For V = mean(Z²), Var(V) = (E[Y⁴] − Var(Y)²)/n, and Chebyshev's inequality gives
      P(|V/Var(Y) − 1| ≥ t) ≤ (κ − 1)/(n t²) =: α with κ = E[Y⁴]/Var(Y)²; t is chosen for α = 10⁻⁴
      and must be below 1/2 (so that both a doubled and a halved variance fail the test).
    Both ranks must have received the very same released gradient."""
    rank0, rank1 = (r["noise"] for r in two_processes["ranks"])
    scale = Q * N / CLIP
    for name in ("gaussian", "lmo"):
        assert torch.equal(rank0[name], rank1[name])
    runs.assert_gaussian_noise(rank0["gaussian"].double().flatten() * scale, NOISE_SIGMA)
    runs.assert_lmo_noise(rank0["lmo"].double().flatten() * scale, LMO_MECHANISM)


def test_the_budget_stop_is_collective(two_processes):
    """max_epsilon lies between ε(3 steps) and ε(4 steps): every rank releases 3 steps and then
    refuses ("stop") or raises ("raise") at the same step; ledger replicas out of step (rank 1 one
    step ahead) raise on every rank before the first release."""
    for rank in two_processes["ranks"]:
        assert rank["stop"] == {"released": [True, True, True, None, None], "error": None, "steps": 3}
        assert rank["raise"] == {"released": [True, True, True], "error": "PrivacyBudgetExhausted", "steps": 3}
        assert rank["diverged"]["released"] == [] and rank["diverged"]["error"] == "RuntimeError"


def test_wrapped_or_mismatched_setups_are_refused_on_every_rank(two_processes):
    for rank in two_processes["ranks"]:
        refused = rank["refusals"]
        assert "ddp_model.module" in refused["ddp"]
        assert "FSDP1" in refused["fsdp1"] and "fully_shard" in refused["fsdp1"]
        assert "max_grad_norm" in refused["settings"]
        assert "private=False" in refused["non-private"]


def _assert_same_run(history, params, whole_history, whole_params) -> None:
    assert history["batch_size"] == whole_history.batch_size and len(whole_history.step) == 5
    assert history["epsilon"] == pytest.approx(whole_history.epsilon, rel=1e-12)
    for name, expected in whole_params.items():
        torch.testing.assert_close(params[name], expected, rtol=0, atol=1e-6)


def test_a_checkpoint_written_by_rank_0_resumes_in_one_process(two_processes, one_process_whole_run):
    """2 steps of finetune on 2 processes, then the remaining 3 in one process from rank 0's
    checkpoint: the same run as 5 steps in one process (model, ε, batch sizes)."""
    ranks = two_processes["ranks"]
    assert [r["finetune"]["saves"] for r in ranks] == [1, 0]
    assert ranks[0]["finetune"]["history"] == ranks[1]["finetune"]["history"]
    torch.set_num_threads(1)
    resumed, resumed_model = runs.finetune_run(str(two_processes["checkpoint_dir"]), resume=True)
    _assert_same_run(resumed.to_dict(), resumed_model.state_dict(), *one_process_whole_run)


def test_a_one_process_checkpoint_resumes_on_two_processes(two_processes, one_process_whole_run):
    for rank in two_processes["ranks"]:
        _assert_same_run(rank["resumed"]["history"], rank["resumed"]["params"], *one_process_whole_run)


def test_distributed_true_needs_an_initialised_process_group():
    model = runs.Classifier()
    with pytest.raises(ValueError, match="init_process_group"):
        runs.private_trio(model, Gaussian(1.0), distributed=True)
    with pytest.raises(ValueError, match="distributed must be"):
        make_private(
            model, torch.optim.SGD(model.parameters(), lr=0.1), runs.dataset(), mechanism=Gaussian(1.0),
            max_grad_norm=CLIP, batch_size=BATCH, delta=DELTA, distributed="yes",
        )


def test_an_empty_part_of_a_logical_batch_in_your_own_loop_adds_nothing():
    """With W ranks a rank's part of a small logical batch is often empty: the user's forward and
    backward of 0 rows must leave the clipped sum at 0 (the step then releases the noise alone)."""
    model, dp_optimizer, _ = runs.private_trio(runs.Classifier(), Gaussian(1.0), loss_reduction="sum")
    empty = {k: v[:0] for k, v in runs.dataset().items()}
    dp_optimizer.zero_grad()
    classification_loss(model(**model_inputs(empty)), empty).sum().backward()
    assert all(float(s.abs().max()) == 0.0 for s in dp_optimizer.clipping.clipped_sums().values())
    assert dp_optimizer.step().batch_size == 0
