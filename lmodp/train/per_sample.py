"""Deprecated: the vmap clipping engine moved to :mod:`lmodp.train.vmap_clipping` and the batch
helpers to :mod:`lmodp.train.batches` (this alias goes in the next release)."""

import warnings

from lmodp.train.batches import batch_size_of, model_inputs
from lmodp.train.vmap_clipping import PerSampleGradients, VmapClipping

warnings.warn(
    "lmodp.train.per_sample is now lmodp.train.vmap_clipping (PerSampleGradients, VmapClipping) and "
    "lmodp.train.batches (model_inputs, batch_size_of)", DeprecationWarning, stacklevel=2,
)

__all__ = ["PerSampleGradients", "VmapClipping", "batch_size_of", "model_inputs"]
