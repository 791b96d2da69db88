r"""Proven bounds on sup_{0<u≤t} h_α(u)/u² near t = 0 for log-concave noise (the l2 bound's first cell).

h_α(u) = D_α(f(·−u) ‖ f), M(u) = e^{(α−1)h_α(u)} = ∫ f(x−u)^α f(x)^{1−α} dx, g = log f. For a
symmetric f with g' absolutely continuous (kinks allowed: then g'' has point masses),

    M''(u) = (α−1)·[(α−1)·A(u) + B(u)],  A(u) = ∫ e(x,u)·g'(x)² dx,  B(u) = ∫ e(x,u)·(−g''(x)) dx,

with e(x,u) = f(x−u)^α f(x)^{1−α} = f(x)·exp(α(g(x−u) − g(x))) (docs/l2-geometry.md, section 5.2),
M(0) = 1, M'(0) = 0 (symmetry) and A(0) = B(0) = I, the Fisher information (∫ f·(−g'') = ∫ f g'²
by parts). For log-concave f, −g'' ≥ 0, so both A and B are integrals of f·exp(α(g(x−u) − g(x)))
against positive weights, and any bound D(x, u) ≥ g(x−u) − g(x) that grows with u gives
M''(u) ≤ (α−1)·[(α−1)·Ā(t) + B̄(t)] on (0, t]. Then M(u) ≤ 1 + u²·sup M''/2 and log(1+x) ≤ x give

    sup_{0<u≤t} h_α(u)/u² ≤ [(α−1)·Ā(t) + B̄(t)]/2,

which tends to αI/2 as t → 0. To second order, M(u) ≤ 1 + (α−1)u²[αI/2 + X(t)u²/24] when
(α−1)A'' + B'' ≤ X(t) on (0, t], so sup_{0<u≤t} h_α(u)/u² ≤ αI/2 + X(t)·t²/24. Two families use it (proofs in docs/l2-geometry.md, section 5.4):

* :class:`LipschitzFirstCell` (user densities, S-Lipschitz g): D = S·u, Ā = B̄ = e^{αSt}·I, so the
  bound is α·I·e^{αSt}/2; to second order (A and B are even in u, with A'(0) = 0 and B'(0+) ≤ 0,
  kinks of g only adding concave kinks), A'' and B'' ≤ α²S²e^{αSt}·I, so
  sup h_α(u)/u² ≤ αI/2 + (α−1 + 1)·α²S²e^{αSt}I·t²/24 = (αI/2)(1 + α²S²t²e^{αSt}/12);
* :class:`GeneralizedGaussianFirstCell` (density ∝ exp(−|y/s|^p), 1 ≤ p ≤ 2): D = p·u·|x|^{p−1}/s^p,
  and with W = |Y/s|^p ~ Gamma(1/p, 1) and the tangent bound w^β ≤ (1−β)a^β + βa^{β−1}w
  (β = 1 − 1/p, any a > 0, λ = cβa^{β−1} < 1, c = αpt/s), E[W^γ e^{λW}] = Γ(1/p + γ)/(Γ(1/p)(1−λ)^{1/p+γ})
  gives, to first order, Ā = I·e^{c(1−β)a^β}(1−λ)^{−(2−1/p)}, B̄ = I·e^{c(1−β)a^β}(1−λ)^{−β};
  to second order (A and B are even in u, so A(u) ≤ I + u²·sup A''/2 and likewise B), bounds on
  A'' and B'' of the same form give sup h_α(u)/u² ≤ αI/2 + X(t)·t²/24. The smaller is used,
  each minimised over a few tangent points a.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Relative rounding slack of the bounds.
_ROUNDING = 1e-12
# Tangent points a, relative to the one that minimises the first-order growth, tried for the GG bound.
_TANGENT_FACTORS = (0.5, 0.7, 1.0, 1.4, 2.0)


@dataclass(frozen=True)
class LipschitzFirstCell:
    """For a log-concave f with |g'| ≤ S (``fisher`` ≥ I): the smaller of the first-order bound
    α·I·e^{αSt}/2 and the second-order bound (α·I/2)·(1 + α²S²t²e^{αSt}/12)."""

    fisher: float
    score: float
    #: h_α(t) is convex in t for log-concave noise (the l2 cells use chords).
    convex_in_shift = True

    def bound(self, alphas: np.ndarray, t: np.ndarray) -> np.ndarray:
        x = alphas * self.score * np.asarray(t, dtype=float)
        with np.errstate(over="ignore", invalid="ignore"):
            growth = np.exp(x)
            second = 1.0 + x * x * growth / 12.0
            return alphas * self.fisher / 2.0 * np.minimum(growth, second) * (1.0 + _ROUNDING)


@dataclass(frozen=True)
class GeneralizedGaussianFirstCell:
    """The smaller of the first- and second-order bounds of the module docstring for the
    generalized Gaussian with 1 < p < 2 (``fisher`` is its exact I)."""

    fisher: float
    scale: float
    power: float
    #: h_α(t) is convex in t for log-concave noise (the l2 cells use chords).
    convex_in_shift = True

    def bound(self, alphas: np.ndarray, t: np.ndarray) -> np.ndarray:
        v = np.asarray(t, dtype=float) / self.scale
        first = self._first_order(alphas, v)
        second = self._second_order(alphas, v)
        return np.minimum(first, second) * (1.0 + _ROUNDING)

    def _tangent_bound(self, alphas: np.ndarray, v: np.ndarray, exponents: tuple[float, ...], weights: tuple) -> np.ndarray:
        """min over tangent points a of e^{c(1−β)a^β}·Σ_i weights_i·(1−λ)^{−exponents_i}, c = αpv, λ = cβa^{β−1}
        (∞ where λ ≥ 1): the bound on E[Σ_i w_i W^{γ_i} e^{cW^β}]/E[W^{γ_i}] terms, with k + γ_i = exponents_i."""
        p = self.power
        beta = 1.0 - 1.0 / p
        c = alphas * p * v
        k_weight = ((alphas - 1.0) * (2.0 - 1.0 / p) + beta) / alphas
        best = np.full(np.broadcast(alphas, v).shape, np.inf)
        for factor in _TANGENT_FACTORS:
            a = k_weight * factor
            lam = c * beta * a ** (beta - 1.0)
            ok = lam < 1.0
            safe = np.where(ok, lam, 0.0)
            with np.errstate(over="ignore"):
                total = sum(w * (1.0 - safe) ** -e for w, e in zip(weights, exponents))
                value = np.exp(c * (1.0 - beta) * a**beta) * total
            best = np.minimum(best, np.where(ok, value, np.inf))
        return best

    def _first_order(self, alphas: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(I/2)·e^{c(1−β)a^β}·[(α−1)(1−λ)^{−(2−1/p)} + (1−λ)^{−β}] (in units of s = 1)."""
        p = self.power
        unit_fisher = self.fisher * self.scale**2
        bracket = self._tangent_bound(alphas, v, (2.0 - 1.0 / p, 1.0 - 1.0 / p), (alphas - 1.0, 1.0))
        return unit_fisher * bracket / 2.0 / self.scale**2

    def _second_order(self, alphas: np.ndarray, v: np.ndarray) -> np.ndarray:
        """αI/2 + X(v)·v²/24, X = (α−1)·Ā₂ + B̄₂ bounding (α−1)A'' + B'' on (0, v] (docs/l2-geometry.md 5.4)."""
        p = self.power
        k = 1.0 / p
        r = 2.0 * p - 2.0
        m_r = max(1.0, 2.0 ** (r - 1.0))
        unit_fisher = self.fisher * self.scale**2
        g = math.lgamma(k)
        a2 = alphas**2 * p**4 * m_r * self._tangent_bound(
            alphas, v, (4.0 - 3.0 / p, 2.0 - 1.0 / p), (math.exp(math.lgamma(4.0 - 3.0 / p) - g), v**r * math.exp(math.lgamma(2.0 - 1.0 / p) - g))
        )
        if p > 1.0:
            # p³(p−1)Γ(3−3/p)/Γ(1/p) and p³(p−1)Γ(1−1/p)/Γ(1/p) = p²·I (finite as p → 1)
            b2 = alphas**2 * m_r * self._tangent_bound(
                alphas, v, (3.0 - 3.0 / p, 1.0 - 1.0 / p),
                (p**3 * (p - 1.0) * math.exp(math.lgamma(3.0 - 3.0 / p) - g), v**r * p**2 * unit_fisher),
            )
        else:
            b2 = 0.0  # Laplace: B(u) = I·e^{−αu} <= I
        x = (alphas - 1.0) * a2 + b2
        with np.errstate(invalid="ignore"):
            return (alphas * unit_fisher / 2.0 + x * v * v / 24.0) / self.scale**2


def gg_fisher(scale: float, power: float) -> float:
    """I = p²Γ(2 − 1/p)/(s²Γ(1/p)), rounded up by 1e-12 relative."""
    p = power
    return p * p * math.exp(math.lgamma(2.0 - 1.0 / p) - math.lgamma(1.0 / p)) / scale**2 * (1.0 + _ROUNDING)
