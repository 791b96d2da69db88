r"""The ε lower bound of a training run audited in one run (Steinke, Nasr and Jagielski, "Privacy
Auditing with One (1) Training Run", NeurIPS 2023, arXiv 2305.08846).

Setting. m canaries are each put into the training set independently with probability 1/2
(S_i ∈ {in, out}); the auditor sees the outcome of training and makes r guesses about the S_i
(abstaining on the other m − r), of which W are correct. If training is (ε, δ)-DP with respect to
adding or removing one canary, their main theorem for (ε, δ)-DP bounds, for every v,

.. math:: P[W \ge v] \le f(v) + 2m\delta\,\max_{i=1..v}\frac{f(v - i) - f(v)}{i},
          \qquad f(u) = P\big[\mathrm{Bin}(r, q_\varepsilon) \ge u\big],\quad q_\varepsilon = \frac{e^\varepsilon}{1 + e^\varepsilon}

(for δ = 0 the first term alone: W is dominated by the correct guesses of r randomised
responses). The right-hand side p(ε) is a p-value for the hypothesis "training is (ε, δ)-DP"; the
paper's Appendix D computes it this way and reports the largest ε with p(ε) below the
significance 1 − confidence.

Why this module does not bisect. p(ε) need not be monotone in ε (its second term is not), and a
bisection could stop at an ε above a point where p exceeds the significance. Instead the axis is
cut into cells [ε_a, ε_b], on which, f being increasing in q,

.. math:: p(\varepsilon) \le f_{b}(v) + 2m\delta\,\max_i \frac{f_{b}(v - i) - f_{a}(v)}{i}

(subscripts: evaluated at q_{ε_a}, q_{ε_b}); the bound returned is the left end of the first cell
whose envelope exceeds the significance. Then p ≤ significance on all of [0, ε_lower], so if the
true ε* were ≤ ε_lower the test at ε* (a fixed ε) would have rejected, which happens with
probability at most the significance: P[ε_lower ≥ ε*] ≤ 1 − confidence. Cells are 0.05 wide up
to ε = 40, refined to 5e-4 inside the first failing one.

Guessing (:func:`audit_scores`): higher scores mean "more likely in"; guess "in" for the k+
highest and "out" for the k− lowest. Several (k+, k−) candidates may be tried, each at
significance (1 − confidence)/(number of candidates) (Bonferroni), and the largest bound is kept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Integral
from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from lmodp._validation import require_delta

#: Fractions of m/2 guessed "in" and, as many, "out" by default.
DEFAULT_GUESS_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
_COARSE_STEP = 0.05
_FINE_STEP = 5e-4
_EPSILON_CAP = 40.0


def _require_counts(canaries: object, guesses: object, correct: object) -> tuple[int, int, int]:
    for name, value in (("canaries", canaries), ("guesses", guesses), ("correct", correct)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not correct <= guesses <= canaries:  # type: ignore[operator]
        raise ValueError(f"need 0 <= correct <= guesses <= canaries, got {correct}, {guesses}, {canaries}")
    return int(canaries), int(guesses), int(correct)  # type: ignore[arg-type]


def _tails(r: int, v: int, q: np.ndarray) -> np.ndarray:
    """f(v − i) = P[Bin(r, q) >= v − i] for i = 0..v (columns), one row per q."""
    points = v - np.arange(v + 1)
    return stats.binom.sf(points[None, :] - 1, r, q[:, None])


def _p_value_envelope(m: int, r: int, v: int, delta: float, q_low: np.ndarray, q_high: np.ndarray) -> np.ndarray:
    """Upper bound of p(ε) over each cell [q_low, q_high] (equal ends give p itself)."""
    high = _tails(r, v, q_high)
    f_low = stats.binom.sf(v - 1, r, q_low)
    if v == 0:
        return high[:, 0]
    increments = (high[:, 1:] - f_low[:, None]) / np.arange(1, v + 1)
    return high[:, 0] + 2.0 * m * delta * np.maximum(increments.max(axis=1), 0.0)


def one_run_p_value(canaries: int, guesses: int, correct: int, *, epsilon: float, delta: float) -> float:
    """p(ε): a bound on P[W >= correct] for a (ε, δ)-DP run with these counts (module docstring)."""
    m, r, v = _require_counts(canaries, guesses, correct)
    if not math.isfinite(epsilon) or epsilon < 0.0:
        raise ValueError(f"epsilon must be finite and >= 0, got {epsilon!r}")
    q = np.array([special.expit(epsilon)])
    return float(min(_p_value_envelope(m, r, v, require_delta("delta", delta), q, q)[0], 1.0))


def _first_failing_cell(m: int, r: int, v: int, delta: float, edges: np.ndarray, significance: float) -> int | None:
    q = special.expit(edges)
    envelope = _p_value_envelope(m, r, v, delta, q[:-1], q[1:])
    failing = np.flatnonzero(envelope > significance)
    return int(failing[0]) if failing.size else None


def one_run_epsilon_lower(canaries: int, guesses: int, correct: int, *, delta: float, significance: float) -> float:
    """The largest ε_lower (to 5e-4, at most 40) with p <= ``significance`` on all of [0, ε_lower]."""
    m, r, v = _require_counts(canaries, guesses, correct)
    delta = require_delta("delta", delta)
    significance = require_delta("significance", significance)
    coarse = np.arange(0.0, _EPSILON_CAP + _COARSE_STEP / 2, _COARSE_STEP)
    cell = _first_failing_cell(m, r, v, delta, coarse, significance)
    if cell is None:
        return float(coarse[-1])
    fine = np.linspace(coarse[cell], coarse[cell + 1], round(_COARSE_STEP / _FINE_STEP) + 1)
    fine_cell = _first_failing_cell(m, r, v, delta, fine, significance)
    return float(fine[fine_cell] if fine_cell is not None else fine[-1])


@dataclass(frozen=True)
class OneRunAudit:
    """The outcome of :func:`audit_scores`: the best bound and the guesses that gave it."""

    epsilon_lower: float
    delta: float
    confidence: float
    canaries: int
    guesses_in: int
    guesses_out: int
    correct: int
    candidates: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def default_guesses(canaries: int) -> list[tuple[int, int]]:
    """(k, k) for k = fraction·m/2 over :data:`DEFAULT_GUESS_FRACTIONS`, at least 1, without repeats."""
    ks = sorted({max(1, int(f * canaries / 2)) for f in DEFAULT_GUESS_FRACTIONS})
    return [(k, k) for k in ks]


def audit_scores(
    scores: ArrayLike,
    included: ArrayLike,
    *,
    delta: float,
    confidence: float = 0.95,
    guesses: Sequence[tuple[int, int]] | None = None,
) -> OneRunAudit:
    """One-run ε lower bound from canary ``scores`` (higher = more likely in) and the true
    ``included`` flags, for each (k+, k−) in ``guesses`` (default :func:`default_guesses`) with a
    Bonferroni correction; holds with probability >= ``confidence`` if the inclusions were fair
    independent coins drawn before training and the scores depend on them only through training."""
    s = np.asarray(scores, dtype=float)
    inc = np.asarray(included)
    if s.ndim != 1 or inc.shape != s.shape or s.size == 0:
        raise ValueError("scores and included must be 1-d arrays of the same non-zero length")
    if inc.dtype != bool:
        raise ValueError(f"included must be boolean, got dtype {inc.dtype}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    m = s.size
    candidates = default_guesses(m) if guesses is None else [(int(a), int(b)) for a, b in guesses]
    if not candidates or any(a < 0 or b < 0 or a + b < 1 or a + b > m for a, b in candidates):
        raise ValueError(f"every guess (k_in, k_out) needs k_in, k_out >= 0 and 1 <= k_in + k_out <= {m}, got {guesses!r}")
    significance = (1.0 - require_delta("confidence", confidence)) / len(candidates)
    order = np.argsort(-s, kind="stable")
    ranked = inc[order]
    best = None
    for k_in, k_out in candidates:
        correct = int(ranked[:k_in].sum()) + int((~ranked[m - k_out :]).sum())
        eps = one_run_epsilon_lower(m, k_in + k_out, correct, delta=delta, significance=significance)
        if best is None or eps > best[0]:
            best = (eps, k_in, k_out, correct)
    eps, k_in, k_out, correct = best  # type: ignore[misc]
    return OneRunAudit(eps, delta, confidence, m, k_in, k_out, correct, len(candidates))
