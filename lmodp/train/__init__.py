"""lmodp.train: DP-SGD fine-tuning with any lmodp noise mechanism (needs the ``train`` extra).

* :func:`make_private` — wrap (model, optimizer, data) into a DP-SGD trio.
* :func:`finetune` — a complete private (or non-private) fine-tuning loop with checkpoints.
* Causal LM: :func:`causal_lm_data` (prompt and padding masked from the targets),
  :func:`add_lora` (LoRA adapters), :func:`perplexity`, :func:`generate_samples`.
* Building blocks: per-sample gradients (:mod:`~lmodp.train.vmap_clipping`), clipping
  (:mod:`~lmodp.train.clipping`), torch noise samplers (:mod:`~lmodp.train.noise`), Poisson
  sampling (:mod:`~lmodp.train.sampling`), the privacy ledger (:mod:`~lmodp.train.ledger`).
* Data-parallel DP-SGD inside a ``torch.distributed`` process group: :mod:`~lmodp.train.distributed`
  (used by :func:`make_private` and :func:`finetune` when they find one).
"""

from lmodp.train.evaluation import perplexity
from lmodp.train.ledger import PrivacyBudgetExhausted, PrivacyLedger
from lmodp.train.finetune import TrainingHistory, finetune
from lmodp.train.generation import generate_samples
from lmodp.train.lora import add_lora
from lmodp.train.options import FinetuneOptions
from lmodp.train.noise import register_torch_sampler, torch_sampler
from lmodp.train.optimizer import DPOptimizer, StepOutput
from lmodp.train.privacy_engine import make_private
from lmodp.train.sampling import DPDataLoader
from lmodp.train.text_data import causal_lm_data

__all__ = [
    "DPDataLoader",
    "DPOptimizer",
    "FinetuneOptions",
    "PrivacyBudgetExhausted",
    "PrivacyLedger",
    "StepOutput",
    "TrainingHistory",
    "add_lora",
    "causal_lm_data",
    "finetune",
    "generate_samples",
    "make_private",
    "perplexity",
    "register_torch_sampler",
    "torch_sampler",
]
