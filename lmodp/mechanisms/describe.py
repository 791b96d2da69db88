"""One-line, human-readable descriptions of mechanisms (legends, tables, logs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lmodp.mechanisms.base import Mechanism


def describe(mechanism: Mechanism, *, digits: int = 3) -> str:
    """The family and the parameters that define ``mechanism``, each to ``digits`` significant digits.

    LMO is written as its mixing law, e.g. ``LMO ω = 0.1·Γ(k=2, θ=1) + 0.2·U[7, 8]`` (the
    Exponential by its rate); components of weight 0 are left out. A finite Laplace mixture lists
    its atoms with their probabilities; other families are their ``repr``.
    """
    d = mechanism.to_dict()

    def num(x: float) -> str:
        return f"{x:.{digits}g}"

    if mechanism.family == "gaussian":
        return f"Gaussian σ={num(d['sigma'])}"
    if mechanism.family == "laplace":
        return f"Laplace b={num(d['scale'])}"
    if mechanism.family == "lmo":
        parts = []
        if d["gamma_weight"] > 0:
            parts.append(f"{num(d['gamma_weight'])}·Γ(k={num(d['gamma_shape'])}, θ={num(d['gamma_scale'])})")
        if d["exponential_weight"] > 0:
            parts.append(f"{num(d['exponential_weight'])}·Exp(rate {num(d['exponential_rate'])})")
        if d["uniform_weight"] > 0:
            parts.append(f"{num(d['uniform_weight'])}·U[{num(d['uniform_low'])}, {num(d['uniform_high'])}]")
        return "LMO ω = " + " + ".join(parts)
    if mechanism.family == "laplace_mixture":
        atoms = ", ".join(f"{num(a)} (p {num(w)})" for a, w in zip(d["omega_atoms"], d["omega_weights"]))
        return f"Laplace mixture ω ∈ {{{atoms}}}"
    if mechanism.family == "generalized_gaussian":
        return f"generalized Gaussian s={num(d['scale'])}, p={num(d['power'])}"
    return repr(mechanism)


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
