"""Clipping, the law of the added noise, Poisson sampling and the privacy ledger of lmodp.train."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from _train_models import one_torch_thread  # noqa: E402, F401

import lmodp  # noqa: E402
from lmodp.mechanisms import LMO, Gaussian, Laplace, Mechanism  # noqa: E402
from lmodp.paper.params import paper_budgets, paper_mechanism  # noqa: E402
from lmodp.train import PrivacyBudgetExhausted, make_private, torch_sampler  # noqa: E402
from lmodp.train.noise import GaussianSampler, register_torch_sampler  # noqa: E402
from lmodp.train.clipping import clip_factors, clipped_sum, per_example_norms  # noqa: E402
from lmodp.train.sampling import DPDataLoader, PoissonSampler, gather  # noqa: E402

TASK1 = [paper_mechanism(e, "task1", exponential="rate") for e in paper_budgets("task1")]
EXPONENTIAL_ONLY = LMO(exponential_weight=1.0, exponential_rate=2.0)
UNIFORM_FROM_ZERO = LMO(uniform_weight=2.0, uniform_low=0.0, uniform_high=3.0)
NOISE_CASES = [
    Gaussian(0.7),
    Laplace(0.5),
    *TASK1,
    LMO(gamma_weight=1.0, gamma_shape=0.5, gamma_scale=2.0, exponential_weight=0.5, exponential_rate=1.5),
    EXPONENTIAL_ONLY,
    UNIFORM_FROM_ZERO,
]


# --- clipping ------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(
    c=st.floats(1e-3, 1e3),
    log_scales=st.lists(st.floats(-8, 8), min_size=1, max_size=12),
    seed=st.integers(0, 2**31 - 1),
)
def test_clipped_norms_are_at_most_c(c, log_scales, seed):
    g = torch.Generator().manual_seed(seed)
    m = len(log_scales)
    scales = torch.tensor([10.0**s for s in log_scales]).view(m, 1, 1)
    grads = {"w": torch.randn(m, 3, 4, generator=g) * scales, "b": torch.randn(m, 5, generator=g) * scales.view(m, 1)}
    grads["w"][0] = 0.0
    grads["b"][0] = 0.0
    norms = per_example_norms(grads.values())
    factors = clip_factors(norms, c)
    clipped = {k: v * factors.view(-1, *[1] * (v.dim() - 1)) for k, v in grads.items()}
    after = per_example_norms(clipped.values())
    assert torch.all(after <= c + 1e-6 * max(1.0, c))
    small = norms <= c
    assert torch.all(factors[small] == 1.0)  # gradients inside the ball are untouched (incl. zero)
    summed, _ = clipped_sum(grads, c)
    for k in grads:
        torch.testing.assert_close(summed[k], clipped[k].sum(dim=0), rtol=1e-5, atol=1e-6 * c)


def test_clip_norm_must_be_positive():
    with pytest.raises(ValueError, match="max_grad_norm"):
        clip_factors(torch.ones(3), 0.0)


# --- the law of the noise added in one step --------------------------------------------------
def one_step_noise(mechanism: Mechanism, clip: float, seed: int) -> np.ndarray:
    """The noise C·Y one DP-SGD step adds, read off the gradient of a step on an empty batch
    (the released gradient is then C·Y / (q·N))."""
    model = torch.nn.Linear(316, 316)  # 316·316 + 316 ≈ 1.0e5 coordinates
    data = {"x": torch.zeros(40, 316), "labels": torch.zeros(40, dtype=torch.long)}
    _, dp_optimizer, loader = make_private(
        model, torch.optim.SGD(model.parameters(), lr=1.0), data, mechanism=mechanism, max_grad_norm=clip,
        batch_size=4, delta=1e-5, steps=1, seed=seed, noise_seed=seed,
    )
    out = dp_optimizer.step(gather(data, torch.empty(0, dtype=torch.long)))
    assert out.loss is None and out.batch_size == 0
    return np.concatenate([p.grad.double().flatten().numpy() for p in model.parameters()]) * loader.expected_batch_size


@pytest.mark.parametrize("mechanism", NOISE_CASES, ids=repr)
def test_noise_has_the_mechanisms_law_scaled_by_c(mechanism):
    clip = 2.5
    noise = one_step_noise(mechanism, clip, seed=1234)
    assert noise.size > 99_000 and np.all(np.isfinite(noise))
    scaled = mechanism.scaled(clip)
    assert stats.kstest(noise, scaled.cdf).pvalue > 1e-3
    # and not the unscaled law (the paper's code forgets C; with C = 2.5 that is detectable)
    assert stats.kstest(noise, mechanism.cdf).pvalue < 1e-6


def test_noise_added_in_place_over_several_chunks():
    """add_scaled_ draws chunk by chunk: every chunk fresh, the whole of it the scaled law, added to ``out``."""
    from lmodp.train.noise import NOISE_CHUNK

    n = 2 * NOISE_CHUNK + NOISE_CHUNK // 2
    g = torch.Generator().manual_seed(5)
    out = torch_sampler(Laplace(1.0)).add_scaled_(torch.full((n,), 3.0), 2.0, generator=g).double().numpy()
    assert stats.kstest(out - 3.0, stats.laplace(scale=2.0).cdf).pvalue > 1e-3
    assert not np.array_equal(out[:1000], out[NOISE_CHUNK : NOISE_CHUNK + 1000])


def test_omega_sampler_law():
    """omega itself against the closed-form MGF: P(omega <= t) has no closed form, but
    E[e^{-s omega}] = M_omega(-s) does (the Laplace tail), at a few s."""
    mechanism = TASK1[2]
    g = torch.Generator().manual_seed(7)
    omega = torch_sampler(mechanism).sample_omega((200_000,), generator=g).double().numpy()
    for s in (0.1, 0.5, 2.0):
        estimate = np.exp(-s * omega).mean()
        se = np.exp(-s * omega).std() / math.sqrt(omega.size)
        assert abs(estimate - float(mechanism.omega_mgf(-s))) < 5 * se


@pytest.mark.parametrize("mechanism", [EXPONENTIAL_ONLY, UNIFORM_FROM_ZERO, TASK1[0]], ids=repr)
def test_omega_is_never_zero(mechanism):
    """omega has mass near 0 here; float32 uniforms hit 0 once in 2^24 draws, which must not give omega = 0."""
    g = torch.Generator().manual_seed(3)
    omega = torch_sampler(mechanism).sample_omega((4_000_000,), generator=g)
    assert bool((omega > 0).all()) and bool(torch.isfinite(omega).all())


def test_mechanism_without_torch_sampler_raises():
    class Custom(Gaussian):
        pass

    class Alien(Mechanism):
        family = "alien"
        sample = logpdf = cdf = mean_abs = variance = usefulness = fisher_information = scaled = to_dict = None

    torch_sampler(Custom(1.0))  # subclasses of supported mechanisms inherit the sampler
    with pytest.raises(ValueError, match="no torch sampler.*cannot be accounted"):
        torch_sampler(Alien())
    # a sampler alone cannot make a law trainable: no accountant would account it
    with pytest.raises(ValueError, match="not a registered family that the accountants accept"):
        register_torch_sampler(Alien, lambda m: GaussianSampler(1.0))


# --- Poisson sampling --------------------------------------------------------------------------
def test_poisson_batch_sizes_are_binomial():
    n, q, steps = 1000, 0.05, 2000
    sampler = PoissonSampler(n, sample_rate=q, steps=steps, generator=torch.Generator().manual_seed(0))
    sizes = np.array([len(idx) for idx in sampler])
    assert sizes.size == steps
    assert abs(sizes.mean() - q * n) < 5 * math.sqrt(n * q * (1 - q) / steps)
    assert abs(sizes.var() / (n * q * (1 - q)) - 1.0) < 0.15


@pytest.mark.parametrize("columnar", [True, False])
def test_empty_batches_are_yielded(columnar):
    columns = {"x": torch.arange(10.0).view(10, 1), "labels": torch.arange(10)}
    data = columns if columnar else [{"x": columns["x"][i], "labels": columns["labels"][i]} for i in range(10)]
    loader = DPDataLoader(data, sample_rate=0.05, steps=50, generator=torch.Generator().manual_seed(3))
    batches = list(loader)
    sizes = [b["labels"].shape[0] for b in batches]
    assert len(batches) == 50 and 0 in sizes and max(sizes) > 0
    for b in batches:
        assert b["x"].shape == (b["labels"].shape[0], 1)
        assert torch.equal(b["x"].view(-1).long(), b["labels"])
    assert loader.expected_batch_size == pytest.approx(0.5)


# --- the ledger ----------------------------------------------------------------------------------
def run_steps(mechanism, *, q=0.25, steps=6, **kwargs):
    model = torch.nn.Linear(3, 2)
    data = {"input": torch.randn(40, 3), "labels": torch.randint(0, 2, (40,))}
    _, dp_optimizer, loader = make_private(
        model, torch.optim.SGD(model.parameters(), lr=0.1), data, mechanism=mechanism, max_grad_norm=1.0,
        sample_rate=q, delta=1e-5, steps=steps, seed=0, **kwargs,
    )
    return dp_optimizer, [dp_optimizer.step(batch) for batch in loader]


@pytest.mark.parametrize("mechanism", [Gaussian(1.1), TASK1[2]], ids=repr)
def test_reported_epsilon_equals_lmodp_epsilon(mechanism):
    """The ledger's ε is lmodp.epsilon's by the same default ("auto") accountant. Each step reports
    the accountant's own value for LMO noise in l2 (the RDP); for the Gaussian (the PLD, which
    composes only when asked) the smaller of the RDP bound and the PLD of the whole planned run,
    and the run's own PLD value at its last step."""
    dp_optimizer, outs = run_steps(mechanism, q=0.25, steps=6)
    run = dict(sample_rate=0.25, delta=1e-5, geometry="l2")
    tight = [lmodp.epsilon(mechanism, steps=t, **run) for t in range(1, 7)]
    rdp = [lmodp.epsilon(mechanism, steps=t, accountant="rdp", **run) for t in range(1, 7)]
    assert dp_optimizer.ledger.epsilon() == pytest.approx(tight[-1], rel=1e-12)
    assert [o.epsilon for o in outs] == pytest.approx([*(min(r, tight[-1]) for r in rdp[:-1]), tight[-1]], rel=1e-12)
    assert all(o.epsilon >= t * (1 - 1e-12) for o, t in zip(outs, tight))
    assert all(a.epsilon <= b.epsilon for a, b in zip(outs, outs[1:]))
    assert dp_optimizer.ledger.accountant.name == ("pld" if isinstance(mechanism, Gaussian) else "rdp")


def test_pld_ledger_records_one_event_and_composes_when_asked():
    dp_optimizer, outs = run_steps(Gaussian(1.0), q=0.25, steps=4, accountant="pld")
    expected = lmodp.epsilon(Gaussian(1.0), sample_rate=0.25, steps=4, delta=1e-5, geometry="l2", accountant="pld")
    assert [e.steps for e in dp_optimizer.ledger.accountant.history] == [4]
    assert dp_optimizer.ledger.epsilon() == expected  # the same composition as one call
    assert outs[-1].epsilon >= expected


def test_budget_stops_before_it_is_exceeded():
    budget = lmodp.epsilon(Gaussian(1.0), sample_rate=0.25, steps=3, delta=1e-5, geometry="l2") * 1.0001
    dp_optimizer, outs = run_steps(Gaussian(1.0), steps=6, max_epsilon=budget, on_exhausted="stop")
    assert [o is None for o in outs] == [False] * 3 + [True] * 3
    assert dp_optimizer.exhausted and dp_optimizer.ledger.steps == 3
    assert dp_optimizer.ledger.epsilon() <= budget
    with pytest.raises(PrivacyBudgetExhausted):
        run_steps(Gaussian(1.0), steps=6, max_epsilon=budget, on_exhausted="raise")


def test_scalar_geometry_is_refused_for_vector_gradients():
    with pytest.raises(ValueError, match="geometry='l2'"):
        run_steps(Gaussian(1.0), geometry="scalar")


@pytest.mark.cuda
@pytest.mark.parametrize("mechanism", [Gaussian(0.7), TASK1[0], TASK1[3]], ids=repr)
def test_noise_law_on_cuda(mechanism):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    g = torch.Generator(device="cuda").manual_seed(11)
    noise = torch_sampler(mechanism).sample((100_000,), generator=g)
    assert noise.device.type == "cuda" and noise.dtype == torch.float32
    assert stats.kstest(noise.double().cpu().numpy(), mechanism.cdf).pvalue > 1e-3
