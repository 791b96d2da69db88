"""lmodp: sound privacy accounting and noise-mechanism design for DP fine-tuning (LMO-DP).

Core accounting and search need only numpy, scipy, numba and tqdm; ``lmodp.train`` needs the
``train`` extra (torch, transformers) and ``lmodp.plots`` the ``plots`` extra (matplotlib). The
names below are imported on first use, so ``import lmodp`` loads neither scipy nor numba.
"""

from lmodp._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "LMO": "lmodp.mechanisms",
    "Gaussian": "lmodp.mechanisms",
    "GeneralizedGaussian": "lmodp.mechanisms",
    "Laplace": "lmodp.mechanisms",
    "LaplaceMixture": "lmodp.mechanisms",
    "Mechanism": "lmodp.mechanisms",
    "SymmetricDensity": "lmodp.mechanisms",
    "mechanism_from_dict": "lmodp.mechanisms",
    "register_family": "lmodp.mechanisms",
    "register_mechanism": "lmodp.mechanisms",
    "RunSpec": "lmodp.accounting.spec",
    "epsilon": "lmodp.accounting.api",
    "epsilon_interval": "lmodp.accounting.interval",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [*sorted(_EXPORTS), "__version__"]
