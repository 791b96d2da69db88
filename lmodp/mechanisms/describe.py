"""One-line, human-readable descriptions of mechanisms (legends, tables, logs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lmodp.mechanisms.base import Mechanism
from lmodp.mechanisms.registry import family_of


def describe(mechanism: Mechanism, *, digits: int = 3) -> str:
    """The family and the parameters that define ``mechanism``, each to ``digits`` significant
    digits, as its family's registration writes them (``describe`` facet), e.g. ``Laplace b=2``
    or ``LMO ω = 0.1·Γ(k=2, θ=1) + 0.2·U[7, 8]``; its ``repr`` where the family declares none."""

    def num(x: float) -> str:
        return f"{x:.{digits}g}"

    write = family_of(mechanism).describe
    return repr(mechanism) if write is None else write(mechanism, num)


def labelled(mechanisms: Mapping[str, Mechanism] | Sequence[Mechanism] | Mechanism) -> dict[str, Mechanism]:
    """Normalise the ways callers pass mechanisms into ``{legend label: mechanism}``."""
    if isinstance(mechanisms, Mechanism):
        mechanisms = [mechanisms]
    if isinstance(mechanisms, Mapping):
        items = dict(mechanisms)
    else:
        items = {}
        for m in mechanisms:
            items[describe(m)] = m
    if not items:
        raise ValueError("mechanisms must contain at least one mechanism")
    for label, m in items.items():
        if not isinstance(m, Mechanism):
            raise ValueError(f"mechanisms[{label!r}] must be an lmodp Mechanism, got {type(m).__name__}")
    return items
