r"""The density of the LMO mixing variable :math:`\omega = a_1 G + a_3 E + a_4 U`, numerically.

The three components are independent, so the density of :math:`\omega` is the convolution of
the densities of :math:`a_1 G\sim\Gamma(k, a_1\theta)`, :math:`a_3 E\sim\mathrm{Exp}(\text{rate }
\lambda/a_3)` and :math:`a_4 U\sim\mathcal U[a_4 u_{lo}, a_4 u_{hi}]`. It is computed exactly for a
discretised version: each component is replaced by its probability mass on bins of width h
(differences of its exact CDF, so an integrable singularity such as the Gamma's at 0 for k < 1
is handled), the bin masses are convolved by FFT, and the result divided by h. The sum of n
binned components lies within n·h of the true sum, so the curve is the true density smoothed
over a window of n·h (n <= 3); with the default 8192 bins over the central 1 − 2·10⁻⁶ of the
mass this is far below a plot's resolution. A degenerate Uniform (u_lo = u_hi) is a shift; a
mechanism whose ω takes finitely many values (plain Laplace: one; a finite Laplace mixture:
several) has no density and is reported as its atoms and their probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal, stats

from lmodp._validation import require_count, require_positive
from lmodp.mechanisms import FiniteMixing, LaplaceScaleMixture, LMOMixing, MixingLaw
from lmodp.mechanisms.mixture import require_mixture


@dataclass(frozen=True)
class OmegaDensity:
    """The law of ω: ``density`` on the grid ``x`` (an absolutely continuous ω), or, where ω
    takes finitely many values, those ``atoms`` with probabilities ``atom_weights`` (then ``x``
    holds the atoms and ``density`` is infinite there)."""

    x: np.ndarray
    density: np.ndarray
    atoms: np.ndarray = field(default_factory=lambda: np.empty(0))
    atom_weights: np.ndarray = field(default_factory=lambda: np.empty(0))

    @classmethod
    def point_masses(cls, atoms: np.ndarray, weights: np.ndarray) -> "OmegaDensity":
        """ω equal to ``atoms[i]`` with probability ``weights[i]``."""
        atoms = np.asarray(atoms, dtype=float)
        return cls(x=atoms, density=np.full(atoms.size, np.inf), atoms=atoms, atom_weights=np.asarray(weights, dtype=float))

    @property
    def atom(self) -> float | None:
        """The value of ω where ω is a single point mass (plain Laplace), else None."""
        return float(self.atoms[0]) if self.atoms.size == 1 else None


def _components(law: MixingLaw) -> tuple[list, float]:
    """The continuous components as frozen scipy laws, and the total shift of point masses."""
    laws, shift = [], 0.0
    parts = law.components if isinstance(law, LMOMixing) else {}
    if "gamma" in parts:
        a1, k, theta = parts["gamma"]
        laws.append(stats.gamma(k, scale=a1 * theta))
    if "exponential" in parts:
        a3, lam = parts["exponential"]
        laws.append(stats.expon(scale=a3 / lam))
    if "uniform" in parts:
        a4, lo, hi = parts["uniform"]
        if hi > lo:
            laws.append(stats.uniform(loc=a4 * lo, scale=a4 * (hi - lo)))
        else:
            shift += a4 * lo
    return laws, shift


def omega_density(mechanism: LaplaceScaleMixture, *, bins: int = 8192, tail_mass: float = 1e-6) -> OmegaDensity:
    """The density of ω for a Laplace scale mixture (LMO or Laplace), by binned convolution.

    ``tail_mass`` is the mass of each component left beyond the grid's upper end.
    """
    require_mixture(mechanism, "omega_density")
    require_count("bins", bins, 16)
    tail_mass = require_positive("tail_mass", tail_mass)
    if tail_mass >= 0.5:
        raise ValueError(f"tail_mass must lie in (0, 0.5), got {tail_mass}")
    if isinstance(mechanism.mixing, FiniteMixing):
        return OmegaDensity.point_masses(mechanism.mixing.atoms, mechanism.mixing.weights)
    laws, shift = _components(mechanism.mixing)
    if not laws:
        return OmegaDensity.point_masses(np.array([shift]), np.array([1.0]))
    lows = [law.support()[0] for law in laws]
    lower = shift + sum(lows)
    upper = shift + sum(law.ppf(1.0 - tail_mass) for law in laws)
    h = (upper - lower) / bins
    masses = None
    for law, low in zip(laws, lows):
        m = np.diff(law.cdf(low + h * np.arange(bins + 1)))
        masses = m if masses is None else signal.fftconvolve(masses, m)[:bins]
    masses = np.clip(masses, 0.0, None)
    x = lower + h * (np.arange(bins) + 0.5 * len(laws))
    return OmegaDensity(x=x, density=masses / h)
