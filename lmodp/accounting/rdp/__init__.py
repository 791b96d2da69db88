"""Rényi-DP accounting: per-step RDP curves of subsampled mechanisms and their composition.

* :mod:`~lmodp.accounting.rdp.divergence` — Rényi divergences of one release (scalar and l2).
* :mod:`~lmodp.accounting.rdp.subsampling` — Poisson subsampling of an RDP curve.
* :mod:`~lmodp.accounting.rdp.accountant` — :class:`RDPAccountant`, the composed curve of a run.
"""

from lmodp.accounting.rdp.accountant import RDPAccountant
from lmodp.accounting.rdp.subsampling import poisson_subsampled_rdp, sampled_gaussian_rdp

__all__ = ["RDPAccountant", "poisson_subsampled_rdp", "sampled_gaussian_rdp"]
