r"""An ε lower bound from the two error rates of a test between neighbouring outputs.

If a mechanism M is (ε, δ)-DP for the neighbours x, x', then for every set S of outputs
P[M(x') ∈ S] ≤ e^ε P[M(x) ∈ S] + δ and P[M(x) ∉ S] ≤ e^ε P[M(x') ∉ S] + δ. For the test
"guess x' when the output is in S", with false-positive rate α = P[M(x) ∈ S] and false-negative
rate β = P[M(x') ∉ S], these read 1 − β ≤ e^ε α + δ and 1 − α ≤ e^ε β + δ (the hypothesis-testing
view of DP: Wasserman and Zhou, JASA 2010; Kairouz, Oh and Viswanath, ICML 2015), so

.. math:: \varepsilon \ge \max\Big(\log\frac{1 - \delta - \beta}{\alpha},\
                                  \log\frac{1 - \delta - \alpha}{\beta},\ 0\Big).

Both logarithms decrease in α and β, so upper confidence bounds on the two rates give a lower
bound on ε. :func:`epsilon_lower_bound` takes Clopper–Pearson upper bounds on α and β, each at
significance (1 − confidence)/2 (Bonferroni over the two rates): with probability at least
``confidence`` both hold, and then the returned value is at most every ε for which M is (ε, δ)-DP.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from lmodp._validation import require_delta
from lmodp.audit.clopper_pearson import clopper_pearson_upper


def epsilon_from_error_rates(false_positive_rate: ArrayLike, false_negative_rate: ArrayLike, *, delta: float) -> np.ndarray:
    """max(log((1 − δ − β)/α), log((1 − δ − α)/β), 0) elementwise, for α, β the false-positive and
    false-negative rates (a logarithm with a non-positive numerator counts as −inf)."""
    alpha = np.asarray(false_positive_rate, dtype=float)
    beta = np.asarray(false_negative_rate, dtype=float)
    for name, x in (("false_positive_rate", alpha), ("false_negative_rate", beta)):
        if not np.all((x >= 0.0) & (x <= 1.0)):
            raise ValueError(f"{name} must lie in [0, 1]")
    delta = require_delta("delta", delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        one = np.where(1.0 - delta - beta > 0.0, np.log(1.0 - delta - beta) - np.log(alpha), -np.inf)
        two = np.where(1.0 - delta - alpha > 0.0, np.log(1.0 - delta - alpha) - np.log(beta), -np.inf)
    return np.maximum(np.maximum(one, two), 0.0)


def epsilon_lower_bound(
    false_positives: ArrayLike,
    negatives: ArrayLike,
    false_negatives: ArrayLike,
    positives: ArrayLike,
    *,
    delta: float,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ε lower bound, upper bound on α, upper bound on β) at ``confidence``, elementwise, from
    ``false_positives`` out of ``negatives`` outputs of M(x) and ``false_negatives`` out of
    ``positives`` outputs of M(x'), for a test fixed before these outputs were drawn."""
    significance = 1.0 - require_delta("confidence", confidence)
    alpha_u = clopper_pearson_upper(false_positives, negatives, significance=significance / 2.0)
    beta_u = clopper_pearson_upper(false_negatives, positives, significance=significance / 2.0)
    return epsilon_from_error_rates(alpha_u, beta_u, delta=delta), alpha_u, beta_u
