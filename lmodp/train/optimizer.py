r"""The DP-SGD step: clip per example, sum, add C-scaled noise, divide by the expected batch size.

For a Poisson-sampled logical batch B (rate q, dataset size N) the released gradient is

.. math:: \tilde g = \frac{1}{qN}\Big(\sum_{i\in B} g_i\,\min\big(1, C/\lVert g_i\rVert_2\big) + C\,Y\Big),
          \qquad Y_j \overset{iid}{\sim} \text{mechanism}

(Abadi et al., CCS 2016; dividing by the *expected* size qN rather than |B| keeps the
sensitivity at C and the analysis that of the Poisson-subsampled mechanism, as in opacus).
The noise is drawn in float32 on the parameter's device by the mechanism's torch sampler
(:mod:`lmodp.train.noise`); the wrapped torch optimizer then takes its step on :math:`\tilde g`.
Each call of :meth:`DPOptimizer.step` is one logical step, charged to the privacy ledger
before anything is released.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from lmodp._validation import require_positive
from lmodp.train.budget import PrivacyLedger
from lmodp.train.clipping import clipped_sum
from lmodp.train.noise import TorchNoiseSampler
from lmodp.train.per_sample import PerSampleGradients, batch_size_of


@dataclass(frozen=True)
class StepOutput:
    """What one logical step did.

    ``loss`` is the mean per-example loss of the logical batch before the update (``None`` for an
    empty batch); like every statistic of the raw batch it is *not* privatised: log it for
    debugging, do not publish it. ``clipped_fraction`` is the share of examples whose gradient
    norm exceeded C.
    """

    loss: float | None
    batch_size: int
    epsilon: float
    clipped_fraction: float | None


class DPOptimizer:
    """Wraps a torch optimizer so that ``step(batch)`` performs one private DP-SGD step."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        per_sample: PerSampleGradients,
        ledger: PrivacyLedger,
        sampler: TorchNoiseSampler,
        *,
        max_grad_norm: float,
        expected_batch_size: float,
        noise_generator: torch.Generator,
    ) -> None:
        self.optimizer = optimizer
        self.per_sample = per_sample
        self.ledger = ledger
        self.sampler = sampler
        self.max_grad_norm = require_positive("max_grad_norm", max_grad_norm)
        self.expected_batch_size = require_positive("expected_batch_size", expected_batch_size)
        self.noise_generator = noise_generator

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def exhausted(self) -> bool:
        """True once a step was refused because it would exceed the privacy budget."""
        return self.ledger.exhausted

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def _noise(self, like: torch.Tensor) -> torch.Tensor:
        noise = self.sampler.sample(like.shape, generator=self.noise_generator)
        return noise.to(device=like.device, dtype=like.dtype)

    def private_gradients(self, batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], float | None, float | None]:
        """(noisy mean gradient per trainable parameter, mean loss, clipped fraction) of one batch.

        Uncharged: call :meth:`step`, which accounts the release, unless you account it yourself.
        """
        params = self.per_sample.trainable_parameters()
        sums = {name: torch.zeros_like(p, dtype=torch.promote_types(p.dtype, torch.float32)) for name, p in params.items()}
        device = next(iter(sums.values())).device
        loss_total = torch.zeros((), dtype=torch.float64, device=device)
        clipped = torch.zeros((), dtype=torch.int64, device=device)
        n = 0
        for grads, losses in self.per_sample(batch):
            chunk_sum, norms = clipped_sum(grads, self.max_grad_norm)
            for name, s in chunk_sum.items():
                sums[name] += s
            loss_total += losses.detach().double().sum()
            clipped += (norms > self.max_grad_norm).sum()
            n += int(norms.shape[0])
        noisy = {
            name: (s + self.max_grad_norm * self._noise(s)) / self.expected_batch_size for name, s in sums.items()
        }
        if n == 0:
            return noisy, None, None
        return noisy, float(loss_total) / n, int(clipped) / n

    def step(self, batch: Mapping[str, torch.Tensor]) -> StepOutput | None:
        """One DP-SGD step on a logical batch; ``None`` when the privacy budget refused it."""
        epsilon = self.ledger.charge_step()
        if epsilon is None:
            return None
        noisy, loss, clipped_fraction = self.private_gradients(batch)
        if loss is not None and not math.isfinite(loss):
            raise FloatingPointError(f"the training loss is {loss} before step {self.ledger.steps}; lower the learning rate")
        if not bool(torch.stack([torch.isfinite(g).all() for g in noisy.values()]).all()):
            raise FloatingPointError(
                "the noisy gradient is not finite: the mechanism's noise overflowed float32 (omega drawn as 0, "
                "possible when the Gamma shape is < 1 and no Uniform component bounds omega away from 0)"
            )
        for name, p in self.per_sample.trainable_parameters().items():
            p.grad = noisy[name].to(p.dtype)
        self.optimizer.step()
        return StepOutput(loss=loss, batch_size=batch_size_of(batch), epsilon=epsilon, clipped_fraction=clipped_fraction)

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "ledger": self.ledger.state_dict(),
            "noise_generator": self.noise_generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.ledger.load_state_dict(state["ledger"])
        self.noise_generator.set_state(state["noise_generator"])
