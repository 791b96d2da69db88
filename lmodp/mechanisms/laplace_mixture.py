r"""A finite mixture of Laplace laws: Laplace noise whose inverse scale ω takes finitely many values.

.. math:: f(y) = \sum_i w_i\,\frac{\omega_i}{2}\,e^{-\omega_i |y|},\qquad
          P(|Y| > s) = \sum_i w_i e^{-\omega_i s}

(ω = ω_i with probability w_i). It is the general Laplace scale mixture with a discrete mixing
law (:class:`~lmodp.mechanisms.mixing.FiniteMixing`); plain Laplace(b) is the single atom 1/b.
Every accountant, sampler and search accepts it like any other family (the mixtures' facets,
:mod:`lmodp.mechanisms.mixture`; its registration at the end).
"""

from __future__ import annotations

from typing import Any, Sequence

from lmodp._validation import require_positive
from lmodp.mechanisms.mixing import FiniteMixing
from lmodp.mechanisms.mixture import LaplaceScaleMixture
from lmodp.mechanisms.registry import register_family


class LaplaceMixture(LaplaceScaleMixture):
    """Laplace(0, 1/ω) noise with ω = ``omega_atoms[i]`` with probability ``omega_weights[i]``.

    ``omega_atoms`` must be > 0 and ``omega_weights`` > 0 with sum 1 (within 1e-9; the law divides
    them by their sum, ``to_dict`` keeps them as given). Example:
    ``LaplaceMixture(omega_atoms=[0.8, 4.0], omega_weights=[0.5, 0.5])``.
    """

    family = "laplace_mixture"

    def __init__(self, omega_atoms: Sequence[float], omega_weights: Sequence[float]) -> None:
        self._mixing = FiniteMixing(omega_atoms, omega_weights)
        self.omega_atoms = tuple(float(a) for a in self._mixing.atoms)
        self.omega_weights = tuple(float(w) for w in omega_weights)  # as given; the law normalises them

    def scaled(self, factor: float) -> "LaplaceMixture":
        """Noise times ``factor`` is ω divided by ``factor``: every atom divided by it."""
        factor = require_positive("factor", factor)
        return LaplaceMixture([a / factor for a in self.omega_atoms], self.omega_weights)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "omega_atoms": list(self.omega_atoms), "omega_weights": list(self.omega_weights)}



def _describe(mechanism: LaplaceMixture, num) -> str:
    atoms = ", ".join(f"{num(a)} (p {num(w)})" for a, w in zip(mechanism.omega_atoms, mechanism.omega_weights))
    return f"Laplace mixture ω ∈ {{{atoms}}}"


register_family(LaplaceMixture, describe=_describe)
