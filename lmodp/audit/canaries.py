r"""The model and the canaries of the one-run training audit, with the score of each threat model.

The audited run trains a bag-of-embeddings classifier (logits = W·mean_t E[x_t] + b) with lmodp's
DP-SGD on a learnable synthetic task over the first :data:`TASK_VOCAB` tokens, plus the included
canaries. Canary i owns the embedding row of token ``TASK_VOCAB + i``, which no task example uses.

Threat models (what the auditor controls and sees):

* ``"white-box"`` — **gradient canaries**. The auditor chooses each canary's gradient outright:
  canary i's per-example loss is −C·E[TASK_VOCAB + i, 0], whose gradient is the Dirac vector
  −C·e_j (norm exactly C, so clipping leaves it whole) on a coordinate j no other example's
  gradient touches. The auditor sees the parameters after every step, hence each step's released
  coordinate z_t = (θ_t − θ_{t−1})_j·qN/(ηC) = 1[canary i in batch t] + noise (η the SGD
  learning rate, qN the expected batch size for N = task examples + m/2, a constant that does not
  depend on which canaries were included). Its score is the log-likelihood ratio of "in" against
  "out" under the *accounted* noise law f, step by step:
  Σ_t log(1 − q + q·f(z_t − 1)/f(z_t)) (with Poisson rate q). This is the strongest adversary the
  DP-SGD analysis covers (Steinke, Nasr and Jagielski 2023, Sec. 6 use Dirac gradient canaries).
* ``"black-box"`` — **input canaries**. The auditor only adds ordinary examples (canary i is the
  sequence of its own rare token with a random label) and only queries the final model: the score
  is the logit margin of the canary's label. The canary's gradient is whatever the model makes of
  it (clipped to C, spread over the embedding row and the shared head), and the final model shows
  only the sum of the updates, so this adversary is weaker by construction.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmodp.mechanisms import Mechanism

THREATS = ("white-box", "black-box")
#: Tokens of the synthetic task; canary i owns token TASK_VOCAB + i.
TASK_VOCAB = 32
SEQUENCE_LENGTH = 8
EMBEDDING_DIM = 4
_INIT_STD = 1e-3


class ProbedBagOfEmbeddings(nn.Module):
    """Two-class bag-of-embeddings classifier that also returns one embedding coordinate per example.

    ``forward(input_ids, canary_coordinate)`` returns ``(logits, probe)`` where ``probe[b]`` is the
    flattened embedding matrix at ``canary_coordinate[b]`` (at 0 where it is negative: no probe).
    """

    def __init__(self, vocab_size: int, *, generator: torch.Generator) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, EMBEDDING_DIM)
        self.head = nn.Linear(EMBEDDING_DIM, 2)
        bound = 1.0 / math.sqrt(EMBEDDING_DIM)
        with torch.no_grad():
            self.embedding.weight.normal_(0.0, _INIT_STD, generator=generator)
            self.head.weight.uniform_(-bound, bound, generator=generator)
            self.head.bias.zero_()

    def forward(self, input_ids: torch.Tensor, canary_coordinate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.embedding(input_ids).mean(dim=1))
        coordinate = canary_coordinate.clamp(min=0)
        row, column = coordinate // EMBEDDING_DIM, coordinate % EMBEDDING_DIM
        probe = self.embedding(row).gather(1, column.unsqueeze(1)).squeeze(1)  # through the layer's forward
        return logits, probe


class CanaryLoss:
    """Per-example loss: cross-entropy, except −C·probe for gradient canaries (coordinate >= 0)."""

    def __init__(self, max_grad_norm: float) -> None:
        self.max_grad_norm = max_grad_norm

    def __call__(self, outputs: tuple[torch.Tensor, torch.Tensor], batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits, probe = outputs
        cross_entropy = F.cross_entropy(logits, batch["labels"], reduction="none")
        return torch.where(batch["canary_coordinate"] >= 0, -self.max_grad_norm * probe, cross_entropy)


def task_examples(n: int, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """n examples of the synthetic task: the label says whether the first token is in the upper half."""
    ids = torch.randint(0, TASK_VOCAB, (n, SEQUENCE_LENGTH), generator=generator)
    labels = (ids[:, 0] >= TASK_VOCAB // 2).long()
    return {"input_ids": ids, "canary_coordinate": torch.full((n,), -1), "labels": labels}


def canary_coordinates(canaries: int) -> torch.Tensor:
    """Flat index of E[TASK_VOCAB + i, 0] for each canary i."""
    return (TASK_VOCAB + torch.arange(canaries)) * EMBEDDING_DIM


def canary_examples(threat: str, canaries: int, *, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The m canaries of ``threat`` as dataset rows (see the module docstring)."""
    if threat == "white-box":
        return {
            "input_ids": torch.zeros((canaries, SEQUENCE_LENGTH), dtype=torch.long),
            "canary_coordinate": canary_coordinates(canaries),
            "labels": torch.zeros(canaries, dtype=torch.long),
        }
    tokens = TASK_VOCAB + torch.arange(canaries)
    return {
        "input_ids": tokens[:, None].expand(canaries, SEQUENCE_LENGTH).clone(),
        "canary_coordinate": torch.full((canaries,), -1),
        "labels": torch.randint(0, 2, (canaries,), generator=generator),
    }


def white_box_scores(released: np.ndarray, mechanism: Mechanism, *, sample_rate: float) -> np.ndarray:
    """Σ_t log(1 − q + q·f(z_t − 1)/f(z_t)) per canary, for ``released`` z of shape (steps, m)."""
    loss = mechanism.logpdf(released - 1.0) - mechanism.logpdf(released)
    if sample_rate == 1.0:
        return loss.sum(axis=0)
    return np.logaddexp(math.log1p(-sample_rate), math.log(sample_rate) + loss).sum(axis=0)


def black_box_scores(model: ProbedBagOfEmbeddings, canaries: Mapping[str, torch.Tensor]) -> np.ndarray:
    """Logit margin of each canary's label under the final model, minus the median margin of the
    canaries with the same label (which removes the head's preference for one class)."""
    with torch.no_grad():
        logits, _ = model(canaries["input_ids"], canaries["canary_coordinate"])
    labels = canaries["labels"]
    margin = (logits.gather(1, labels[:, None]) - logits.gather(1, (1 - labels)[:, None])).squeeze(1).double().numpy()
    label = labels.numpy()
    for value in np.unique(label):
        margin[label == value] -= np.median(margin[label == value])
    return margin


def include(task: Mapping[str, torch.Tensor], canaries: Mapping[str, torch.Tensor], included: np.ndarray) -> dict[str, Any]:
    """The training set: every task example and the included canaries."""
    keep = torch.from_numpy(np.flatnonzero(included))
    return {key: torch.cat([task[key], canaries[key][keep]]) for key in task}
