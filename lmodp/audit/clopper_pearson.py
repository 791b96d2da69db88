r"""The one-sided Clopper–Pearson upper confidence bound of a binomial proportion.

For k successes in n independent trials with success probability p, the exact one-sided upper
bound at significance α (Clopper and Pearson, Biometrika 1934) is

.. math:: p_u = \sup\{p : P_p[\mathrm{Bin}(n, p) \le k] \ge \alpha\}
              = \mathrm{BetaInv}(1 - \alpha;\ k + 1,\ n - k)\quad(k < n),\qquad p_u = 1\ (k = n),

so that P_p[p ≤ p_u] ≥ 1 − α for every p and every n, with no normal approximation.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from lmodp._validation import require_delta


def clopper_pearson_upper(successes: ArrayLike, trials: ArrayLike, *, significance: float) -> np.ndarray:
    """The exact one-sided upper confidence bound p_u (elementwise): P[p <= p_u] >= 1 - significance."""
    k = np.asarray(successes)
    n = np.asarray(trials)
    for name, x in (("successes", k), ("trials", n)):
        if not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"{name} must be integers, got dtype {x.dtype}")
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError("need 0 <= successes <= trials and trials >= 1")
    alpha = require_delta("significance", significance)
    failures = np.maximum(n - k, 1)
    return np.where(k < n, special.betaincinv(k + 1, failures, 1.0 - alpha), 1.0)
