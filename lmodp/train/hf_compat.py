"""Deprecated: the vmap-safe attention moved to :mod:`lmodp.train.vmap_attention` (this alias goes in the next release)."""

import warnings

from lmodp.train.vmap_attention import make_vmap_safe

warnings.warn("lmodp.train.hf_compat is now lmodp.train.vmap_attention", DeprecationWarning, stacklevel=2)

__all__ = ["make_vmap_safe"]
