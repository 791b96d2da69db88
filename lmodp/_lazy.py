"""Attributes of a package imported on first use (PEP 562), so that importing the package is cheap.

``import lmodp`` must not load numba's kernels or scipy: a package lists its public names and the
module that defines each; :func:`lazy_exports` gives the module-level ``__getattr__`` and
``__dir__`` that import that module when the name is first read.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(``__getattr__``, ``__dir__``) for ``package`` whose public name N lives in module ``exports[N]``."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


def resolve(reference: str | Callable[..., Any]) -> Callable[..., Any]:
    """The callable a hook names: a callable itself, or ``"package.module:attribute.path"``,
    imported when first resolved (so that declaring a hook loads nothing)."""
    if callable(reference):
        return reference
    module, _, path = reference.partition(":")
    value: Any = importlib.import_module(module)
    for name in path.split("."):
        value = getattr(value, name)
    return value
