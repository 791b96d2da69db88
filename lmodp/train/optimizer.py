r"""The DP-SGD step: clip per example, sum, add C-scaled noise, divide by the expected batch size.

For a Poisson-sampled logical batch B (rate q, dataset size N) the released gradient is

.. math:: \tilde g = \frac{1}{qN}\Big(\sum_{i\in B} g_i\,\min\big(1, C/\lVert g_i\rVert_2\big) + C\,Y\Big),
          \qquad Y_j \overset{iid}{\sim} \text{mechanism}

(Abadi et al., CCS 2016; dividing by the *expected* size qN rather than |B| keeps the
sensitivity at C and the analysis that of the Poisson-subsampled mechanism, as in opacus).
The clipped sum comes from a clipping engine (book-keeping or vmap, :mod:`lmodp.train.clipping`),
possibly accumulated over several micro-batches; the noise is drawn once per logical step and
coordinate, in float32 on the parameter's device, by the mechanism's torch sampler
(:mod:`lmodp.train.noise`); the run's parallel layout (:mod:`lmodp.train.layout`: one process,
replicated or sharded over a process group) says where each piece is computed; the wrapped torch
optimizer then takes its step on :math:`\tilde g`. Each call of :meth:`DPOptimizer.step` is one
logical step, charged to the privacy ledger before anything is released.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from lmodp._validation import require_positive
from lmodp.train.ledger import PrivacyLedger
from lmodp.train.clipping import ClippingEngine
from lmodp.train.layout import NoisyRelease, SingleProcess
from lmodp.train.noise import TorchNoiseSampler


@dataclass(frozen=True)
class StepOutput:
    """What one logical step did.

    ``loss`` is the mean per-example loss of the logical batch before the update (``None`` for an
    empty batch, or when the losses were computed in the user's own loop); like every statistic
    of the raw batch it is *not* privatised: log it for debugging, do not publish it.
    ``batch_size`` counts the examples that went into the clipped sum; ``clipped_fraction`` is
    the share of them whose gradient norm exceeded C.
    """

    loss: float | None
    batch_size: int
    epsilon: float
    clipped_fraction: float | None


class DPOptimizer(torch.optim.Optimizer):
    """A torch optimizer that performs private DP-SGD steps around a wrapped torch optimizer.

    It *is* a ``torch.optim.Optimizer``: ``param_groups``, ``state`` and ``defaults`` are the
    wrapped optimizer's (so learning-rate schedulers act on it), ``zero_grad`` clears the
    gradients and the logical batch accumulated so far, and step hooks work. Two loops:

    * ``dp_optimizer.step(batch)``: the whole logical batch, forward and backward included
      (micro-batched by the clipping engine); the parameters' ``.grad`` is replaced;
    * ``loss.backward(); dp_optimizer.step()``: the user runs forward and backward passes (one
      or several micro-batches of the logical batch, with ``clipping="bk"``), then ``step()``
      privatises what was accumulated. Call ``zero_grad()`` before the first micro-batch of a
      logical batch, not between its micro-batches.

    Either way a step draws the noise exactly once and charges the ledger exactly once;
    ``step`` returns a :class:`StepOutput`, or ``None`` when the privacy budget refused the step
    (nothing released, the accumulated batch discarded).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        clipping: ClippingEngine,
        ledger: PrivacyLedger,
        sampler: TorchNoiseSampler,
        max_grad_norm: float,
        expected_batch_size: float,
        noise_generator: torch.Generator,
        layout: SingleProcess | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.original_optimizer = optimizer
        self.clipping = clipping
        self.ledger = ledger
        self.sampler = sampler
        self.max_grad_norm = require_positive("max_grad_norm", max_grad_norm)
        self.expected_batch_size = require_positive("expected_batch_size", expected_batch_size)
        self.noise_generator = noise_generator
        self.layout = layout or SingleProcess()
        # Optimizer.__init__ would build its own param_groups; this one shares the wrapped
        # optimizer's, so only the hook registries are set up here.
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._optimizer_state_dict_pre_hooks = OrderedDict()
        self._optimizer_state_dict_post_hooks = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        self._patch_step_function()

    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:
        return self.original_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        self.original_optimizer.param_groups = groups

    @property  # type: ignore[override]
    def state(self) -> Any:
        return self.original_optimizer.state

    @state.setter
    def state(self, state: Any) -> None:
        self.original_optimizer.state = state

    @property  # type: ignore[override]
    def defaults(self) -> dict[str, Any]:
        return self.original_optimizer.defaults

    @defaults.setter
    def defaults(self, defaults: dict[str, Any]) -> None:
        self.original_optimizer.defaults = defaults

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.original_optimizer.add_param_group(param_group)

    @property
    def exhausted(self) -> bool:
        """True once a step was refused because it would exceed the privacy budget."""
        return self.ledger.exhausted

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the parameters' gradients and the logical batch accumulated so far."""
        self.original_optimizer.zero_grad(set_to_none=set_to_none)
        self.clipping.reset()

    def _accumulate(self, batch: Mapping[str, torch.Tensor]) -> None:
        """The forward and backward passes of the logical batch (this rank's part): as many as
        the layout asks for, the extra ones on its filler example."""
        passes = getattr(self.clipping, "passes", None)
        if passes is None:
            self.clipping.accumulate(batch)
            return
        own = passes(next(iter(batch.values())).shape[0] if batch else 0)
        needed = self.layout.passes(own)
        if needed == own:
            self.clipping.accumulate(batch)
        else:
            self.clipping.accumulate(batch, passes=needed, filler=self.layout.filler())

    def step(  # type: ignore[override]
        self, batch: Mapping[str, torch.Tensor] | Callable[[], Any] | None = None, closure: Callable[[], Any] | None = None
    ) -> StepOutput | None:
        """One private step on the logical batch: ``batch`` (run here), or what the user's
        backward passes (``closure``, if given, runs them) accumulated since the last step."""
        if callable(batch) and closure is None:
            batch, closure = None, batch
        epsilon = self.ledger.charge_step()
        if epsilon is None:
            self.clipping.reset()
            return None
        if closure is not None:
            with torch.enable_grad():
                closure()
        parameters = self.clipping.trainable_parameters()
        if batch is not None:
            for p in parameters.values():
                p.grad = None  # replaced below; freed now so that the batch's sums do not sit beside it
            self._accumulate(batch)
        loss, examples, clipped_fraction = self.layout.batch_statistics(self.clipping.sums)
        if loss is not None and not math.isfinite(loss):
            raise FloatingPointError(f"the training loss is {loss} before step {self.ledger.steps}; lower the learning rate")
        release = NoisyRelease(self.sampler, self.max_grad_norm, self.noise_generator, self.expected_batch_size)
        noisy = self.layout.noisy_means(self.clipping.clipped_sums(), parameters=parameters, release=release)
        if not self.layout.all_finite(noisy.values()):
            raise FloatingPointError(
                "the noisy gradient is not finite: the mechanism's noise overflowed float32 (omega drawn as 0, "
                "possible when the Gamma shape is < 1 and no Uniform component bounds omega away from 0)"
            )
        for name, p in parameters.items():
            p.grad = noisy[name].to(p.dtype)
        self.original_optimizer.step()
        out = StepOutput(loss=loss, batch_size=examples, epsilon=epsilon, clipped_fraction=clipped_fraction)
        self.clipping.reset()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.original_optimizer.state_dict(),
            "ledger": self.ledger.state_dict(),
            "noise_generator": self.noise_generator.get_state(),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.original_optimizer.load_state_dict(state_dict["optimizer"])
        self.ledger.load_state_dict(state_dict["ledger"])
        self.noise_generator.set_state(state_dict["noise_generator"].cpu())  # a state moved to a device (accelerate does) is refused

    def __repr__(self) -> str:
        return f"DPOptimizer({self.original_optimizer!r})"
