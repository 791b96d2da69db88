"""lmodp: sound privacy accounting and noise-mechanism design for DP fine-tuning (LMO-DP).

Core accounting and search need only numpy, scipy, mpmath and numba; ``lmodp.train`` needs
the ``train`` extra (torch, transformers) and ``lmodp.plots`` the ``plots`` extra (matplotlib).
"""

from lmodp.accounting.api import epsilon
from lmodp.accounting.interval import epsilon_interval
from lmodp.mechanisms import LMO, Gaussian, Laplace, Mechanism, mechanism_from_dict

__version__ = "0.1.0"

__all__ = ["LMO", "Gaussian", "Laplace", "Mechanism", "mechanism_from_dict", "__version__", "epsilon", "epsilon_interval"]
