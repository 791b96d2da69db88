r"""The pure-DP composition bound of a history: an ε that holds with δ = 0, hence at every δ.

**One release.** Additive noise whose privacy loss is bounded, sup_y |log f(y − Δ) − log f(y)|
= ε₀ < ∞, is ε₀-DP for a query of sensitivity Δ in the scalar geometry
(:func:`lmodp.accounting.rdp.divergence.pure_dp_epsilon`: Δ/b for Laplace(b),
log(E[ω]/E[ω e^{−Δω}]) for a Laplace scale mixture, ∞ for the Gaussian).

**Poisson subsampling** (rate q, add/remove neighbours) makes it ε' = log(1 + q(e^{ε₀} − 1))-DP
(Li, Qardaji & Su, ASIACCS 2012, Theorem 1; Balle, Barthe & Gaboardi, NeurIPS 2018, for the
Poisson case). Derivation: let D' = D ∪ {x}; condition on the sample S of D (the same law under
both neighbours); for any event E write A = P[M(S) ∈ E] and B = P[M(S ∪ {x}) ∈ E], so that
e^{−ε₀}A ≤ B ≤ e^{ε₀}A. The subsampled release on D' has P = (1 − q)A + qB, on D it has A, and

* P/A ≤ 1 − q + q e^{ε₀} = 1 + q(e^{ε₀} − 1);
* A/P ≤ 1/(1 − q(1 − e^{−ε₀})), and with x = e^{ε₀},
  (1 + q(x − 1))(1 − q(x − 1)/x) = 1 + (q − q²)(x − 1)²/x ≥ 1, so this is also ≤ 1 + q(x − 1).

Both ratios hold for every S, hence after averaging over S.

**Composition.** Adaptive releases that are ε_i-DP compose to (Σ ε_i)-DP (Dwork & Roth 2014,
Theorem 3.16), so a history of events (steps T_i, rate q_i, ε₀ of event i) is
(Σ T_i ε'_i, 0)-DP. Each accountant reports the smaller of its own ε(δ) and this bound, which
matters at tiny δ, where (ε, δ) accounting of Laplace noise approaches it from above.

Only the scalar geometry has such a bound: in l2 the pure ε of i.i.d. noise on d coordinates
grows with d (Laplace: ‖v‖₁/b up to √d·C/b), so an l2 event makes the bound ∞.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable

from lmodp.accounting.events import MechanismEvent
from lmodp.mechanisms import mechanism_from_dict

# Relative slack covering the rounding of the logarithms and the sum.
_ROUNDING = 1e-14


def subsampled_pure_epsilon(epsilon0: float, sample_rate: float) -> float:
    """log(1 + q(e^{ε₀} − 1)): the pure ε of an ε₀-DP release on a Poisson sample of rate q
    (module docstring), in log space for large ε₀."""
    if math.isinf(epsilon0):
        return math.inf
    if sample_rate == 1.0:
        return epsilon0
    if epsilon0 < 700.0:
        return math.log1p(sample_rate * math.expm1(epsilon0))
    return epsilon0 + math.log(sample_rate) + math.log1p(math.exp(math.log1p(-sample_rate) - math.log(sample_rate) - epsilon0))


@functools.lru_cache(maxsize=256)
def _per_step(key: str) -> float:
    """ε' of one release of the event with this :meth:`~MechanismEvent.key` (∞ in l2 or for unbounded losses)."""
    from lmodp.accounting.rdp.divergence import pure_dp_epsilon

    mechanism, sample_rate, sensitivity, geometry = json.loads(key)
    if geometry != "scalar":
        return math.inf
    return subsampled_pure_epsilon(pure_dp_epsilon(mechanism_from_dict(mechanism), sensitivity=sensitivity), sample_rate)


def pure_composition_epsilon(events: Iterable[MechanismEvent]) -> float:
    """Σ steps·ε' over ``events`` (rounded up): the history is (this, 0)-DP; ∞ where an event has
    no pure-DP bound (the Gaussian, the l2 geometry), 0 for an empty history."""
    terms = []
    for event in events:
        if event.steps:
            per_step = _per_step(event.key())
            if math.isinf(per_step):
                return math.inf
            terms.append(event.steps * per_step)
    return math.fsum(terms) * (1.0 + _ROUNDING)


__all__ = ["pure_composition_epsilon", "subsampled_pure_epsilon"]
