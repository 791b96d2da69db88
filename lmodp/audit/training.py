"""Audit a DP-SGD training run in one run (Steinke, Nasr and Jagielski, NeurIPS 2023).

:func:`audit_training` plants m canaries, each included with probability 1/2 by a fair coin,
trains the small model of :mod:`lmodp.audit.canaries` with lmodp's DP-SGD
(:func:`lmodp.train.make_private`, plain SGD), scores every canary under the chosen threat model
and turns the scores into an ε lower bound with :func:`lmodp.audit.one_run.audit_scores`. The
accounted ε is the one the training's own privacy ledger charged (``"l2"`` geometry).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from lmodp._progress import progress_bar
from lmodp._renamed import renamed_keyword
from lmodp._validation import require_count, require_delta, require_positive
from lmodp.accounting.spec import RunSpec
from lmodp.audit import canaries as C
from lmodp.audit.one_run import OneRunAudit, audit_scores
from lmodp.mechanisms import Mechanism
from lmodp.train import make_private
from lmodp.train.layout import seed_notices


@dataclass(frozen=True)
class TrainingAudit:
    """The outcome of :func:`audit_training`: ``epsilon_lower`` (holds with probability ≥
    ``one_run.confidence``) beside ``epsilon_accounted`` (by the ledger's ``accountant``), and how
    the bound was obtained."""

    epsilon_lower: float
    epsilon_accounted: float
    threat: str
    sample_rate: float
    steps: int
    max_grad_norm: float
    mechanism: dict[str, Any]
    one_run: OneRunAudit
    accountant: str

    @property
    def exceeds_accounted(self) -> bool:
        """True when the lower bound contradicts the accounted ε of the run."""
        return self.epsilon_lower > self.epsilon_accounted

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``one_run`` as a nested mapping), with ``exceeds_accounted``."""
        return {**asdict(self), "exceeds_accounted": self.exceeds_accounted}


@contextmanager
def _audit_seeds_unannounced() -> Iterator[None]:
    """While the audited run is set up: the seeds the audit derives from its own ``audit_seed`` (for a
    reproducible audit) are not the user's, so the engine's notice about known seeds
    (:data:`lmodp.train.layout.seed_notices`), which would name values the user never passed, is not shown."""
    was = seed_notices.disabled
    seed_notices.disabled = True
    try:
        yield
    finally:
        seed_notices.disabled = was


def audit_training(
    mechanism: Mechanism,
    *,
    threat: str = "white-box",
    canaries: int = 1000,
    sample_rate: float = 1.0,
    steps: int = 10,
    delta: float = 1e-5,
    max_grad_norm: float = 1.0,
    learning_rate: float = 1.0,
    examples: int = 500,
    confidence: float = 0.95,
    guesses: Sequence[tuple[int, int]] | None = None,
    accountant: str = "auto",
    audit_seed: int | None = None,
    progress: bool = False,
    seed: int | None = None,
) -> TrainingAudit:
    """Train once with ``mechanism`` noise and m = ``canaries`` canaries; return the one-run ε
    lower bound beside the accounted ε.

    ``threat`` is ``"white-box"`` (gradient canaries, every step observed) or ``"black-box"``
    (input canaries, final model's outputs only); see :mod:`lmodp.audit.canaries`. The run has
    ``examples`` task examples, Poisson rate ``sample_rate``, ``steps`` steps, clip norm
    ``max_grad_norm`` and SGD learning rate ``learning_rate``; ``accountant`` is the ledger's
    (default ``"auto"``: the PLD for Gaussian noise, the RDP otherwise), and ``epsilon_accounted``
    its ε(δ) for the whole run.
    ``guesses`` are the (k_in, k_out) candidates of :func:`lmodp.audit.one_run.audit_scores`.
    ``audit_seed`` (deprecated name: ``seed``) fixes the coins, the data, the initial model, the
    batches and the noise: an audit is an experiment, whose draws need not be secret.
    """
    audit_seed = renamed_keyword("audit_training", old="seed", new="audit_seed", old_value=seed, new_value=audit_seed)
    if threat not in C.THREATS:
        raise ValueError(f"threat must be one of {C.THREATS}, got {threat!r}")
    m = require_count("canaries", canaries, 2)
    n_task = require_count("examples", examples, 1)
    run = RunSpec(sample_rate=sample_rate, steps=require_count("steps", steps, 1), delta=delta)
    q, steps, delta = run.sample_rate, run.steps, run.delta
    clip = require_positive("max_grad_norm", max_grad_norm)
    lr = require_positive("learning_rate", learning_rate)
    require_delta("confidence", confidence)
    rng = np.random.default_rng(audit_seed)
    included = rng.random(m) < 0.5
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    task = C.task_examples(n_task, generator=generator)
    planted = C.canary_examples(threat, m, generator=generator)
    model = C.ProbedBagOfEmbeddings(C.TASK_VOCAB + m, generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    with _audit_seeds_unannounced():
        model, dp_optimizer, loader = make_private(
            model,
            optimizer,
            C.include(task, planted, included),
            mechanism=mechanism,
            max_grad_norm=clip,
            run=run,
            loss=C.CanaryLoss(clip),
            accountant=accountant,
            micro_batch_size=256,
            sampling_seed=None if audit_seed is None else int(rng.integers(2**62)),
            noise_seed=None if audit_seed is None else int(rng.integers(2**62)),
        )
    coordinates = C.canary_coordinates(m)
    weights = model.embedding.weight
    trace = [weights.detach().reshape(-1)[coordinates].clone()]
    for batch in progress_bar(loader, desc=f"{threat} audit run", enabled=progress):
        dp_optimizer.step(batch)
        trace.append(weights.detach().reshape(-1)[coordinates].clone())
    ledger = dp_optimizer.ledger
    if threat == "white-box":
        scale = q * (n_task + m / 2) / (lr * clip)
        released = np.diff(torch.stack(trace).double().numpy(), axis=0) * scale
        scores = C.white_box_scores(released, mechanism, sample_rate=q)
    else:
        scores = C.black_box_scores(model, planted)
    result = audit_scores(scores, included, delta=delta, confidence=confidence, guesses=guesses)
    return TrainingAudit(
        epsilon_lower=result.epsilon_lower, epsilon_accounted=ledger.epsilon(), threat=threat, sample_rate=q, steps=steps,
        max_grad_norm=clip, mechanism=mechanism.to_dict(), one_run=result, accountant=ledger.accountant.name,
    )
