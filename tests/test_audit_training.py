"""``audit_training``: the one-run audit of lmodp's DP-SGD on the tiny canary model (about a tenth
of a second per run with 500 canaries and 5 steps).

Statistical tests are seeded; the failure probability stated is the chance that an unlucky seed
would fail the test (the bound holds with probability >= confidence = 0.999 per run).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _train_models import one_torch_thread  # noqa: E402, F401

from lmodp import Gaussian, Laplace
from lmodp.audit import audit_training
from lmodp.audit import canaries as C
from lmodp.search import calibrate_gaussian

CONFIDENCE = 0.999


@pytest.mark.parametrize("threat", C.THREATS)
def test_huge_noise_gives_no_bound(threat):
    """σ = 1000: the run is 0.006-DP; the bound is 0 unless a 1e-3 event happens."""
    result = audit_training(Gaussian(1000.0), threat=threat, canaries=500, steps=5, confidence=CONFIDENCE, seed=0)
    assert result.epsilon_accounted < 0.01
    assert result.epsilon_lower == 0.0


def test_no_noise_gives_a_large_bound():
    """σ = 0.01 is no privacy at all (accounted ε ≈ 3e4): the white-box bound is close to the most
    500 canaries can show at this confidence (about 2.1), and the black-box one is well above 0."""
    # the RDP: the default PLD builds a 10^7-point loss grid for σ = 0.01 (all of it beyond the grid), slowly
    white = audit_training(Gaussian(0.01), threat="white-box", canaries=500, steps=5, confidence=CONFIDENCE, seed=1, accountant="rdp")
    black = audit_training(Gaussian(0.01), threat="black-box", canaries=500, steps=10, confidence=CONFIDENCE, seed=1, accountant="rdp")
    assert white.epsilon_lower > 2.0 and white.exceeds_accounted is False
    assert black.epsilon_lower > 1.0


@pytest.mark.parametrize("mechanism", [Gaussian(calibrate_gaussian(2.0, delta=1e-5, sample_rate=1.0, steps=5, geometry="l2")), Laplace(2.0)], ids=["gaussian-eps2", "laplace"])
@pytest.mark.parametrize("threat", C.THREATS)
def test_private_runs_stay_below_the_accounted_epsilon(mechanism, threat):
    """A DP run's lower bound never exceeds its accounted ε (failure probability <= 1e-3 per case)."""
    result = audit_training(mechanism, threat=threat, canaries=500, steps=5, confidence=CONFIDENCE, seed=2)
    assert 0.0 <= result.epsilon_lower <= result.epsilon_accounted
    assert result.to_dict()["one_run"]["canaries"] == 500


def test_poisson_sampled_run_and_reproducibility():
    first = audit_training(Gaussian(1.0), canaries=200, sample_rate=0.5, steps=4, seed=7)
    again = audit_training(Gaussian(1.0), canaries=200, sample_rate=0.5, steps=4, seed=7)
    assert first == again
    assert first.sample_rate == 0.5 and first.epsilon_lower <= first.epsilon_accounted


def test_gradient_canary_moves_only_its_coordinate_by_the_clip_norm():
    """A gradient canary's per-example gradient is −C·e_j: norm C, on its own coordinate."""
    generator = torch.Generator().manual_seed(0)
    model = C.ProbedBagOfEmbeddings(C.TASK_VOCAB + 3, generator=generator)
    rows = C.canary_examples("white-box", 3, generator=generator)
    loss = C.CanaryLoss(0.7)(model(rows["input_ids"][1:2], rows["canary_coordinate"][1:2]), {k: v[1:2] for k, v in rows.items()})
    loss.sum().backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    j = int(C.canary_coordinates(3)[1])
    assert grad[j] == pytest.approx(-0.7) and torch.count_nonzero(grad) == 1


def test_white_box_score_is_the_log_likelihood_ratio():
    released = np.array([[1.0, 0.0], [1.0, 0.0]])
    scores = C.white_box_scores(released, Gaussian(1.0), sample_rate=1.0)
    np.testing.assert_allclose(scores, [1.0, -1.0])  # Σ_t (z_t − 1/2)/σ²
    mixed = C.white_box_scores(released, Gaussian(1.0), sample_rate=0.5)
    np.testing.assert_allclose(mixed, 2 * np.log(0.5 + 0.5 * np.exp([0.5, -0.5])))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(threat="grey-box"), "threat"),
        (dict(canaries=1), "canaries"),
        (dict(sample_rate=0.0), "sample_rate"),
        (dict(steps=0), "steps"),
        (dict(delta=1.0), "delta"),
        (dict(max_grad_norm=-1.0), "max_grad_norm"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(confidence=0.0), "confidence"),
        (dict(examples=0), "examples"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        audit_training(Gaussian(1.0), **kwargs)
