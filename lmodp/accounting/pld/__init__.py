"""Privacy-loss-distribution accounting: tight (ε, δ) for the scalar geometry and the Gaussian.

* :mod:`~lmodp.accounting.pld.hockey_stick` — the exact hockey-stick curve of one release.
* :mod:`~lmodp.accounting.pld.connect_dots`, :mod:`~lmodp.accounting.pld.optimistic` — discrete
  laws above (pessimistic) and below (optimistic) that curve; :mod:`~lmodp.accounting.pld.discrete`
  holds them.
* :mod:`~lmodp.accounting.pld.compose` — composition by FFT.
* :mod:`~lmodp.accounting.pld.accountant` — :class:`PLDAccountant`.
"""

from lmodp.accounting.pld.accountant import DEFAULT_INTERVAL, PLDAccountant, PLDFallbackWarning, mechanism_pld

__all__ = ["DEFAULT_INTERVAL", "PLDAccountant", "PLDFallbackWarning", "mechanism_pld"]
