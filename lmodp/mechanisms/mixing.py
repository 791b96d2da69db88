r"""Mixing laws of the inverse scale ω of a Laplace scale mixture.

A Laplace scale mixture draws ω > 0 and outputs Y | ω ~ Laplace(0, 1/ω)
(:class:`~lmodp.mechanisms.mixture.LaplaceScaleMixture`). Everything about Y follows from the
moment generating function :math:`M_\omega(t) = E[e^{t\omega}]`, so a mixing law here is what
knows M_ω (through the numba kernels of :mod:`lmodp.mechanisms.mixture_kernels`, which read
the packed vector :meth:`MixingLaw.kernel_params`), its moments and how to sample it. Two laws are implemented:

* :class:`LMOMixing`: ω = a1·Gamma(k, θ) + a3·Exponential(rate λ) + a4·Uniform[lo, hi]
  (independent components; Yang et al. 2024, arXiv 2405.18776; R2DP, CCS 2020);
* :class:`FiniteMixing`: ω takes finitely many values ω_i > 0 with probabilities w_i
  (a finite mixture of Laplace laws; plain Laplace(b) is the single atom 1/b).

The packed vector starts with the law's kind (:data:`~lmodp.mechanisms.mixture_kernels.LMO_KIND`
or :data:`~lmodp.mechanisms.mixture_kernels.FINITE_KIND`); only this module and the kernels
read it by index.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

from lmodp._validation import require_positive
from lmodp.mechanisms import mixture_kernels as K

# Largest accepted |sum of weights − 1| of a finite mixing law (the weights are then normalised).
_WEIGHT_SUM_SLACK = 1e-9


class MixingLaw(ABC):
    """The law of ω > 0. Immutable; :meth:`kernel_params` is a read-only float64 array."""

    _params: np.ndarray

    def kernel_params(self) -> np.ndarray:
        """The packed vector the numba kernels read (kind first)."""
        return self._params

    def _set_params(self, values: Sequence[float]) -> None:
        params = np.array(values, dtype=float)
        params.flags.writeable = False
        object.__setattr__(self, "_params", params)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (cannot set {name!r})")

    def __setstate__(self, state: dict) -> None:
        """Unpickled and deep-copied laws stay read-only."""
        self.__dict__.update(state)
        self._params.flags.writeable = False

    @abstractmethod
    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draw ω with a numpy ``Generator``."""

    @abstractmethod
    def mgf_domain(self) -> float:
        """Sup of the open set {t : M_ω(t) < ∞} (``math.inf`` when M_ω is entire)."""

    @abstractmethod
    def cumulants(self) -> tuple[float, float, float]:
        """The first three cumulants κ1, κ2, κ3 of ω."""

    @abstractmethod
    def tail_exponent(self) -> float:
        """d such that P(|Y| > s) ~ s^{−d} as s → ∞ (the order of the mass of ω at 0); ``math.inf``
        when ω is bounded away from 0 (an exponential tail)."""

    def mean(self) -> float:
        """E[ω] = D1(0), the tilted mean at s = 0."""
        return float(K.tilted_mean(0.0, self._params))

    def moments(self) -> tuple[float, float, float]:
        """(E[ω], E[ω²], E[ω³]) from the cumulants: E[ω²] = κ2 + κ1², E[ω³] = κ3 + 3κ2κ1 + κ1³."""
        k1, k2, k3 = self.cumulants()
        return float(k1), float(k2 + k1 * k1), float(k3 + 3.0 * k2 * k1 + k1**3)


class LMOMixing(MixingLaw):
    """ω = a1·Gamma(shape k, scale θ) + a3·Exponential(RATE λ) + a4·Uniform[lo, hi] (independent).

    A component with weight 0 is absent; ``lo == hi`` makes the Uniform a point mass. The
    arguments are validated by :class:`~lmodp.mechanisms.lmo.LMO`, which builds this law.
    """

    def __init__(self, a1: float, k: float, theta: float, a3: float, lam: float, a4: float, lo: float, hi: float) -> None:
        self._set_params([K.LMO_KIND, a1, k, theta, a3, lam, a4, lo, hi])

    @property
    def components(self) -> dict[str, tuple[float, ...]]:
        """The present components: ``"gamma": (a1, k, θ)``, ``"exponential": (a3, λ)``, ``"uniform": (a4, lo, hi)``."""
        p = [float(v) for v in self._params]
        out: dict[str, tuple[float, ...]] = {}
        if p[K.A1] > 0.0:
            out["gamma"] = (p[K.A1], p[K.K], p[K.THETA])
        if p[K.A3] > 0.0:
            out["exponential"] = (p[K.A3], p[K.LAM])
        if p[K.A4] > 0.0:
            out["uniform"] = (p[K.A4], p[K.LO], p[K.HI])
        return out

    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        omega = np.zeros(size)
        c = self.components
        if "gamma" in c:
            a1, k, theta = c["gamma"]
            omega += a1 * rng.gamma(k, theta, size)
        if "exponential" in c:
            a3, lam = c["exponential"]
            omega += a3 * rng.exponential(1.0 / lam, size)
        if "uniform" in c:
            a4, lo, hi = c["uniform"]
            omega += a4 * rng.uniform(lo, hi, size)
        return omega

    def mgf_domain(self) -> float:
        """min(1/(a1 θ), λ/a3) over the present components, or ∞."""
        c = self.components
        bound = math.inf
        if "gamma" in c:
            bound = min(bound, 1.0 / (c["gamma"][0] * c["gamma"][2]))
        if "exponential" in c:
            bound = min(bound, c["exponential"][1] / c["exponential"][0])
        return bound

    def cumulants(self) -> tuple[float, float, float]:
        """Sums over the independent components. a·Gamma(k, θ): κ1 = k·aθ, κ2 = k·(aθ)², κ3 = 2k·(aθ)³;
        a·Exponential(rate λ): κ1 = a/λ, κ2 = (a/λ)², κ3 = 2(a/λ)³; a·Uniform[lo, hi]:
        κ1 = a(lo + hi)/2, κ2 = a²(hi − lo)²/12, κ3 = 0."""
        k1 = k2 = k3 = 0.0
        c = self.components
        if "gamma" in c:
            a1, k, theta = c["gamma"]
            s = a1 * theta
            k1, k2, k3 = k1 + k * s, k2 + k * s * s, k3 + 2.0 * k * s**3
        if "exponential" in c:
            s = c["exponential"][0] / c["exponential"][1]
            k1, k2, k3 = k1 + s, k2 + s * s, k3 + 2.0 * s**3
        if "uniform" in c:
            a4, lo, hi = c["uniform"]
            k1 += a4 * (lo + hi) / 2.0
            k2 += (a4 * (hi - lo)) ** 2 / 12.0
        return k1, k2, k3

    def tail_exponent(self) -> float:
        """Gamma contributes k, Exponential 1, a Uniform starting at 0 contributes 1; a Uniform
        bounded away from 0 makes ω >= a4·lo > 0 and the tail exponential."""
        c = self.components
        if "uniform" in c and c["uniform"][1] > 0.0:
            return math.inf
        exponent = 0.0
        if "gamma" in c:
            exponent += c["gamma"][1]
        if "exponential" in c:
            exponent += 1.0
        if "uniform" in c and c["uniform"][2] > 0.0:
            exponent += 1.0
        return exponent


class FiniteMixing(MixingLaw):
    """ω = ω_i with probability w_i (finitely many atoms ω_i > 0).

    ``weights`` must be positive and sum to 1 within 1e-9 (they are then divided by their sum).
    """

    def __init__(self, atoms: Sequence[float], weights: Sequence[float]) -> None:
        a = np.atleast_1d(np.asarray(atoms, dtype=float))
        w = np.atleast_1d(np.asarray(weights, dtype=float))
        if a.ndim != 1 or a.size == 0 or a.shape != w.shape:
            raise ValueError(
                f"omega_atoms and omega_weights must be non-empty 1-d sequences of the same length, got {a.size} and {w.size}"
            )
        for i, (atom, weight) in enumerate(zip(a, w)):
            require_positive(f"omega_atoms[{i}]", float(atom))
            require_positive(f"omega_weights[{i}]", float(weight))
        total = float(w.sum())
        if abs(total - 1.0) > _WEIGHT_SUM_SLACK:
            raise ValueError(f"omega_weights must sum to 1, got a sum of {total!r}")
        self._set_params([K.FINITE_KIND, float(a.size), *a, *(w / total)])

    @property
    def atoms(self) -> np.ndarray:
        """The values ω_i."""
        m = int(self._params[1])
        return self._params[2 : 2 + m]

    @property
    def weights(self) -> np.ndarray:
        """Their probabilities w_i (summing to 1)."""
        m = int(self._params[1])
        return self._params[2 + m :]

    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        if self.atoms.size == 1:
            return np.full(size, float(self.atoms[0]))
        return rng.choice(self.atoms, size=size, p=self.weights)

    def mgf_domain(self) -> float:
        return math.inf

    def cumulants(self) -> tuple[float, float, float]:
        """From the raw moments m_n = Σ w_i ω_i^n: κ1 = m1, κ2 = Σ w_i (ω_i − m1)², κ3 = Σ w_i (ω_i − m1)³."""
        m1 = float(np.dot(self.weights, self.atoms))
        centred = self.atoms - m1
        return m1, float(np.dot(self.weights, centred**2)), float(np.dot(self.weights, centred**3))

    def tail_exponent(self) -> float:
        return math.inf

