"""Noise mechanisms: Gaussian, Laplace, LMO and other Laplace scale mixtures, the generalized
Gaussian, and user-defined densities; the registry of families (:mod:`lmodp.mechanisms.registry`)."""

from __future__ import annotations

from lmodp.mechanisms.base import Mechanism
from lmodp.mechanisms.density import SymmetricDensity
from lmodp.mechanisms.describe import describe
from lmodp.mechanisms.gaussian import Gaussian
from lmodp.mechanisms.generalized_gaussian import GeneralizedGaussian
from lmodp.mechanisms.laplace import Laplace
from lmodp.mechanisms.laplace_mixture import LaplaceMixture
from lmodp.mechanisms.lmo import LMO
from lmodp.mechanisms.mixing import FiniteMixing, LMOMixing, MixingLaw
from lmodp.mechanisms.mixture import LaplaceScaleMixture
from lmodp.mechanisms.registry import (
    family_class,
    mechanism_from_dict,
    register_mechanism,
    registered_families,
    require_accountable,
    require_registered,
)

__all__ = [
    "FiniteMixing",
    "Gaussian",
    "GeneralizedGaussian",
    "LMO",
    "LMOMixing",
    "Laplace",
    "LaplaceMixture",
    "LaplaceScaleMixture",
    "Mechanism",
    "MixingLaw",
    "SymmetricDensity",
    "describe",
    "family_class",
    "mechanism_from_dict",
    "register_mechanism",
    "registered_families",
    "require_accountable",
    "require_registered",
]
