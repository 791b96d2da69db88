"""Names that changed: the old keyword keeps working for one release, with a ``DeprecationWarning``
that names the new one (and a ``ValueError`` when both are given)."""

from __future__ import annotations

import warnings
from typing import Any


def renamed_keyword(function: str, *, old: str, new: str, old_value: Any, new_value: Any, default: Any = None) -> Any:
    """The value of keyword ``new`` of ``function``, taken from its deprecated name ``old`` where
    only that was given (``None``: not given)."""
    if old_value is None:
        return default if new_value is None else new_value
    if new_value is not None:
        raise ValueError(f"{function}: give {new}= only ({old}= is its deprecated name)")
    warnings.warn(f"{function}({old}=...) is deprecated: use {new}=...", DeprecationWarning, stacklevel=3)
    return old_value


__all__ = ["renamed_keyword"]
