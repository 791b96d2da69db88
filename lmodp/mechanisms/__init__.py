"""Noise families: Gaussian, Laplace, LMO and other Laplace scale mixtures, the generalized
Gaussian, and user-defined densities. Each family is one module ending with its registration
(:func:`register_family`, :mod:`lmodp.mechanisms.family`), kept in one registry
(:mod:`lmodp.mechanisms.registry`) that accounting, search, training and the figures ask."""

from __future__ import annotations

from lmodp.mechanisms.base import Mechanism
from lmodp.mechanisms.density import SymmetricDensity
from lmodp.mechanisms.describe import describe
from lmodp.mechanisms.family import Figures, NoiseFamily, SearchSpace
from lmodp.mechanisms.gaussian import Gaussian
from lmodp.mechanisms.generalized_gaussian import GeneralizedGaussian
from lmodp.mechanisms.laplace import Laplace
from lmodp.mechanisms.laplace_mixture import LaplaceMixture
from lmodp.mechanisms.lmo import LMO
from lmodp.mechanisms.mixing import FiniteMixing, LMOMixing, MixingLaw
from lmodp.mechanisms.mixture import LaplaceScaleMixture
from lmodp.mechanisms.registry import (
    family_class,
    family_of,
    mechanism_from_dict,
    register_family,
    register_mechanism,
    registered_families,
    require_accountable,
    require_registered,
)

__all__ = [
    "Figures",
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
    "NoiseFamily",
    "SearchSpace",
    "SymmetricDensity",
    "describe",
    "family_class",
    "family_of",
    "mechanism_from_dict",
    "register_family",
    "register_mechanism",
    "registered_families",
    "require_accountable",
    "require_registered",
]
