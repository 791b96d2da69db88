"""Noise mechanisms: Gaussian, Laplace and the LMO Laplace scale mixture."""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from lmodp.mechanisms.base import Mechanism
from lmodp.mechanisms.describe import describe
from lmodp.mechanisms.gaussian import Gaussian
from lmodp.mechanisms.laplace import Laplace
from lmodp.mechanisms.lmo import LMO
from lmodp.mechanisms.mixture import LaplaceScaleMixture

_FAMILIES = {"gaussian": Gaussian, "laplace": Laplace, "lmo": LMO}


def mechanism_from_dict(data: Mapping[str, Any]) -> Mechanism:
    """Rebuild a mechanism from :meth:`Mechanism.to_dict` output; ValueError naming any unknown key."""
    family = data.get("family")
    if family not in _FAMILIES:
        raise ValueError(f"family must be one of {sorted(_FAMILIES)}, got {family!r}")
    parameters = [p for p in inspect.signature(_FAMILIES[family].__init__).parameters if p != "self"]
    unknown = sorted(set(data) - {"family", "convention"} - set(parameters))
    if unknown:
        raise ValueError(f"unknown {family} parameter(s) {unknown}; the {family} parameters are {parameters}")
    return _FAMILIES[family].from_dict(data)


__all__ = ["Gaussian", "LMO", "Laplace", "LaplaceScaleMixture", "Mechanism", "describe", "mechanism_from_dict"]
