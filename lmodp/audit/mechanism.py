r"""Audit a noise sampler against the law its mechanism is accounted with (one release).

Neighbouring inputs are x = 0 and x' = v with ‖v‖ = Δ (the sensitivity): in the ``"scalar"``
geometry v = Δ; in ``"l2"`` the shift is spread evenly over k coordinates, v = (Δ/√k, …, Δ/√k),
and the k noise coordinates are i.i.d. (coordinates without shift carry no information and are
left out). The test is the most powerful one for the *accounted* law (Neyman–Pearson): with f the
mechanism's density (``mechanism.logpdf``), the privacy loss of an output z is

.. math:: L(z) = \sum_{j=1}^{k} \big[\log f(z_j - v_j) - \log f(z_j)\big],

and the test guesses x' when L(z) ≥ t. The outputs are drawn from the sampler under audit
(by default the torch sampler lmodp's training uses): z = Y under x and z = v + Y under x'.

1. Selection split: for every candidate k (``dimensions``; k = 1 in ``"scalar"``) draw
   ``samples // 4`` outputs under each input, and pick the (k, t) whose Clopper–Pearson ε lower
   bound is largest (thresholds at log-spaced ranks of both samples, so the tails are covered).
2. Evaluation split: draw ``samples`` fresh outputs under each input with the chosen k and
   count the false positives (L ≥ t under x) and false negatives (L < t under x').
   :func:`lmodp.audit.hypothesis_test.epsilon_lower_bound` turns the counts into an ε lower
   bound that holds with probability ≥ ``confidence`` (the test was fixed before these outputs
   were drawn, so no correction for the choice of k and t is needed).

The bound is beside the accounted single-release ε (one step, sample rate 1, same geometry and
sensitivity). A sampler with the accounted law gives ``epsilon_lower`` ≤ accounted ε except with
probability ≤ 1 − ``confidence``; a lower bound above the accounted ε shows that the noise drawn
is not the noise accounted (or that the accountant is wrong). The test only uses the density, so
it does not probe floating-point artefacts of the samples (Mironov, CCS 2012).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Integral
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
import torch

from lmodp._progress import ProgressBar, progress_bar
from lmodp._renamed import renamed_keyword
from lmodp._validation import require_count, require_delta, require_geometry, require_positive
from lmodp.accounting.api import epsilon as accounted_epsilon
from lmodp.accounting.registry import AUTO, resolve_accountant
from lmodp.audit.hypothesis_test import epsilon_lower_bound
from lmodp.mechanisms import Mechanism

#: Candidate numbers of shifted coordinates in the ``"l2"`` geometry.
DEFAULT_DIMENSIONS = (1, 2, 4, 8, 16)
#: Outputs drawn per chunk (bounds memory at about 100 bytes per output coordinate).
_CHUNK = 2**18
#: Threshold candidates per tail on the selection split.
_RANKS_PER_TAIL = 200


class NoiseSampler(Protocol):
    """Anything with the torch samplers' interface (see :mod:`lmodp.train.noise`)."""

    def sample(self, shape: Sequence[int], *, generator: torch.Generator) -> torch.Tensor: ...


@dataclass(frozen=True)
class MechanismAudit:
    """The outcome of :func:`audit_mechanism`.

    ``epsilon_lower`` holds with probability ≥ ``confidence`` for the sampler's true ε at ``delta``;
    ``epsilon_accounted`` is the accountant's single-release bound for the mechanism. The chosen
    test is L ≥ ``threshold`` with the shift on ``coordinates`` coordinates; the observed rates and
    their Clopper–Pearson upper bounds come from ``samples`` evaluation outputs per input.
    """

    epsilon_lower: float
    epsilon_accounted: float
    delta: float
    confidence: float
    geometry: str
    sensitivity: float
    coordinates: int
    threshold: float
    samples: int
    false_positive_rate: float
    false_negative_rate: float
    false_positive_upper: float
    false_negative_upper: float
    accountant: str
    mechanism: dict[str, Any]

    @property
    def exceeds_accounted(self) -> bool:
        """True when the lower bound contradicts the accounted ε: the sampler is not what was accounted."""
        return self.epsilon_lower > self.epsilon_accounted

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with ``exceeds_accounted``."""
        return {**asdict(self), "exceeds_accounted": self.exceeds_accounted}


def _shift(sensitivity: float, coordinates: int) -> float:
    return sensitivity / math.sqrt(coordinates)


def _privacy_losses(mechanism: Mechanism, outputs: torch.Tensor, shift: float) -> np.ndarray:
    """L(z) = Σ_j log f(z_j − shift) − log f(z_j) for each row z of ``outputs`` (float64)."""
    z = outputs.double().numpy()
    losses = (mechanism.logpdf(z - shift) - mechanism.logpdf(z)).sum(axis=1)
    if np.isnan(losses).any():
        raise ValueError("the sampler produced outputs whose accounted privacy loss is NaN (non-finite noise?)")
    return losses


def _loss_chunks(
    mechanism: Mechanism, sampler: NoiseSampler, n: int, coordinates: int, shift: float, generator: torch.Generator, bar: ProgressBar
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Privacy losses of n outputs under x = 0 and of n fresh outputs under x' = v, chunk by chunk."""
    for start in range(0, n, _CHUNK):
        size = min(_CHUNK, n - start)
        under_x = _privacy_losses(mechanism, sampler.sample((size, coordinates), generator=generator), shift)
        shifted = sampler.sample((size, coordinates), generator=generator).double() + shift
        yield under_x, _privacy_losses(mechanism, shifted, shift)
        bar.update(2 * size * coordinates)


def _candidate_thresholds(sorted_x: np.ndarray, sorted_shifted: np.ndarray) -> np.ndarray:
    """Thresholds at which the false-positive count (top of the losses under x) or the
    false-negative count (bottom of those under x') is 1, 2, 4, … : log-spaced ranks from both tails."""
    ranks = np.unique(np.geomspace(1, len(sorted_x), _RANKS_PER_TAIL).astype(np.int64)) - 1
    return np.unique(np.concatenate([sorted_x[::-1][ranks], sorted_shifted[ranks]]))


def _best_threshold(under_x: np.ndarray, under_shifted: np.ndarray, *, delta: float, confidence: float) -> tuple[float, float]:
    """(threshold, its ε lower bound on these outputs) maximising the bound."""
    sorted_x, sorted_shifted = np.sort(under_x), np.sort(under_shifted)
    thresholds = _candidate_thresholds(sorted_x, sorted_shifted)
    false_positives = len(sorted_x) - np.searchsorted(sorted_x, thresholds, side="left")
    false_negatives = np.searchsorted(sorted_shifted, thresholds, side="left")
    eps, _, _ = epsilon_lower_bound(
        false_positives, len(sorted_x), false_negatives, len(sorted_shifted), delta=delta, confidence=confidence
    )
    best = int(np.argmax(eps))
    return float(thresholds[best]), float(eps[best])


def _require_samples(samples: object) -> int:
    require_count("samples", samples, 100)
    return int(samples)


def _require_dimensions(dimensions: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(dimensions)
    if not dims or any(isinstance(k, bool) or not isinstance(k, Integral) or k < 1 for k in dims):
        raise ValueError(f"dimensions must be a non-empty sequence of integers >= 1, got {dimensions!r}")
    return tuple(int(k) for k in dims)


def _generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def audit_mechanism(
    mechanism: Mechanism,
    *,
    delta: float,
    geometry: str = "scalar",
    sensitivity: float = 1.0,
    samples: int = 10**7,
    confidence: float = 0.95,
    sampler: NoiseSampler | None = None,
    audit_seed: int | None = None,
    dimensions: Sequence[int] = DEFAULT_DIMENSIONS,
    accountant: str = AUTO,
    progress: bool = False,
    seed: int | None = None,
) -> MechanismAudit:
    """An ε lower bound, at ``confidence``, for one release of ``sampler``'s noise, beside the
    accounted ε of ``mechanism`` (see the module docstring for the test).

    ``sampler`` defaults to ``lmodp.train.noise.torch_sampler(mechanism)``, the noise training
    adds; pass another object with ``sample(shape, *, generator)`` to audit it against
    ``mechanism``'s accounted law. ``samples`` outputs per input go to the evaluation split and
    ``samples // 4`` per input and candidate k to the selection split; ``dimensions`` are the
    candidate k of the ``"l2"`` geometry. ``accountant``: ``"auto"`` (the default, the tightest
    sound one: PLD, except RDP for non-Gaussian noise in l2) or a registered name. ``audit_seed`` (deprecated name: ``seed``) fixes the torch generator of all draws.
    """
    audit_seed = renamed_keyword("audit_mechanism", old="seed", new="audit_seed", old_value=seed, new_value=audit_seed)
    delta = require_delta("delta", delta)
    confidence = require_delta("confidence", confidence)
    geometry = require_geometry(geometry)
    sensitivity = require_positive("sensitivity", sensitivity)
    samples = _require_samples(samples)
    dims = _require_dimensions(dimensions) if geometry == "l2" else (1,)
    accountant = resolve_accountant(accountant, mechanism, geometry)
    eps_accounted = accounted_epsilon(
        mechanism, sample_rate=1.0, steps=1, delta=delta, geometry=geometry, sensitivity=sensitivity, accountant=accountant
    )
    if sampler is None:
        from lmodp.train.noise import torch_sampler

        sampler = torch_sampler(mechanism)
    generator = _generator(audit_seed)
    selection = max(samples // 4, 100)
    total = 2 * (selection * sum(dims) + samples * max(dims))
    with progress_bar(total=total, desc="audit draws", unit="coord", unit_scale=True, enabled=progress) as bar:
        choices = []
        for k in dims:
            chunks = list(_loss_chunks(mechanism, sampler, selection, k, _shift(sensitivity, k), generator, bar))
            under_x, under_shifted = (np.concatenate(c) for c in zip(*chunks))
            choices.append((*_best_threshold(under_x, under_shifted, delta=delta, confidence=confidence), k))
        threshold, _, k = max(choices, key=lambda c: c[1])
        bar.total = bar.n + 2 * samples * k
        false_positives = false_negatives = 0
        for under_x, under_shifted in _loss_chunks(mechanism, sampler, samples, k, _shift(sensitivity, k), generator, bar):
            false_positives += int(np.count_nonzero(under_x >= threshold))
            false_negatives += int(np.count_nonzero(under_shifted < threshold))
    eps, alpha_u, beta_u = epsilon_lower_bound(
        false_positives, samples, false_negatives, samples, delta=delta, confidence=confidence
    )
    return MechanismAudit(
        epsilon_lower=float(eps),
        epsilon_accounted=float(eps_accounted),
        delta=delta,
        confidence=confidence,
        geometry=geometry,
        sensitivity=sensitivity,
        coordinates=k,
        threshold=threshold,
        samples=samples,
        false_positive_rate=false_positives / samples,
        false_negative_rate=false_negatives / samples,
        false_positive_upper=float(alpha_u),
        false_negative_upper=float(beta_u),
        accountant=accountant,
        mechanism=mechanism.to_dict(),
    )
