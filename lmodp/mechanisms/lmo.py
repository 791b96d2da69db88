r"""The LMO family (Yang et al. 2024, "LMO-DP", arXiv 2405.18776; R2DP, CCS 2020): the mechanism
and its registration (its accounting is the Laplace scale mixtures', :mod:`lmodp.mechanisms.mixture`).

Per coordinate, draw the inverse Laplace scale

.. math:: \omega = a_1 G + a_3 E + a_4 U,\qquad G\sim\Gamma(\text{shape }k,\ \text{scale }\theta),
          \ E\sim\mathrm{Exponential}(\text{rate }\lambda),\ U\sim\mathcal U[u_{lo}, u_{hi}]

and output :math:`Y\mid\omega\sim\mathrm{Laplace}(0, 1/\omega)`. Parameter names in lmodp and
the paper:

==========================  =======  ==========================================
lmodp keyword               paper    meaning
==========================  =======  ==========================================
``gamma_weight``            a1       weight of the Gamma component
``gamma_shape``             k        Gamma shape
``gamma_scale``             θ        Gamma scale
``exponential_weight``      a3       weight of the Exponential component
``exponential_rate``        λ        Exponential RATE: mean 1/λ
``uniform_weight``          a4       weight of the Uniform component
``uniform_low/high``        U_a/U_b  bounds of the Uniform component
==========================  =======  ==========================================

(The paper has no a2.) The authors' released parameter files are read by
:func:`lmodp.paper.lmo_from_paper_json`, which makes the caller say whether their λ is a rate or
a scale (their code reads it both ways).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Mapping

from lmodp._validation import require_finite, require_nonnegative, require_positive
from lmodp.mechanisms.family import SearchSpace
from lmodp.mechanisms.mixing import LMOMixing
from lmodp.mechanisms.mixture import LaplaceScaleMixture
from lmodp.mechanisms.registry import register_family

CONVENTION = "exponential_rate"


class LMO(LaplaceScaleMixture):
    """Laplace noise with inverse scale omega = a1·Gamma(k, θ) + a3·Exp(rate λ) + a4·U[lo, hi].

    Any component may be switched off with weight 0. ``uniform_low == uniform_high`` makes the
    Uniform a point mass, so ``LMO(uniform_weight=1, uniform_low=c, uniform_high=c)`` is plain
    Laplace with scale 1/c.
    """

    family = "lmo"

    def __init__(
        self,
        *,
        gamma_weight: float = 0.0,
        gamma_shape: float = 1.0,
        gamma_scale: float = 1.0,
        exponential_weight: float = 0.0,
        exponential_rate: float = 1.0,
        uniform_weight: float = 0.0,
        uniform_low: float = 0.0,
        uniform_high: float = 1.0,
    ) -> None:
        self.gamma_weight = require_nonnegative("gamma_weight", gamma_weight)
        self.gamma_shape = require_positive("gamma_shape", gamma_shape)
        self.gamma_scale = require_positive("gamma_scale", gamma_scale)
        self.exponential_weight = require_nonnegative("exponential_weight", exponential_weight)
        self.exponential_rate = require_positive("exponential_rate", exponential_rate)
        self.uniform_weight = require_nonnegative("uniform_weight", uniform_weight)
        self.uniform_low = require_nonnegative("uniform_low", uniform_low)
        self.uniform_high = require_finite("uniform_high", uniform_high)
        if self.uniform_high < self.uniform_low:
            raise ValueError(
                f"uniform_high must be >= uniform_low, got uniform_low={self.uniform_low}, "
                f"uniform_high={self.uniform_high}"
            )
        if not (self.gamma_weight > 0 or self.exponential_weight > 0 or (self.uniform_weight > 0 and self.uniform_high > 0)):
            raise ValueError(
                "omega would be 0 almost surely: at least one of gamma_weight, exponential_weight, "
                "or uniform_weight (with uniform_high > 0) must be > 0"
            )
        self._mixing = LMOMixing(
            self.gamma_weight,
            self.gamma_shape,
            self.gamma_scale,
            self.exponential_weight,
            self.exponential_rate,
            self.uniform_weight,
            self.uniform_low,
            self.uniform_high,
        )

    def scaled(self, factor: float) -> "LMO":
        """Noise times ``factor`` is omega divided by ``factor``: every weight divided by it."""
        factor = require_positive("factor", factor)
        d = self.to_dict()
        for key in ("gamma_weight", "exponential_weight", "uniform_weight"):
            d[key] /= factor
        return LMO.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "convention": CONVENTION,
            "gamma_weight": self.gamma_weight,
            "gamma_shape": self.gamma_shape,
            "gamma_scale": self.gamma_scale,
            "exponential_weight": self.exponential_weight,
            "exponential_rate": self.exponential_rate,
            "uniform_weight": self.uniform_weight,
            "uniform_low": self.uniform_low,
            "uniform_high": self.uniform_high,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LMO":
        """Inverse of :meth:`to_dict`; rejects a missing or foreign ``convention``."""
        if data.get("convention") != CONVENTION:
            raise ValueError(f"convention must be {CONVENTION!r}, got {data.get('convention')!r}")
        kwargs = {k: v for k, v in data.items() if k not in ("family", "convention")}
        return cls(**kwargs)

    @classmethod
    def from_paper_json(cls, data: Mapping[str, Any] | str | os.PathLike[str], *, exponential: str) -> "LMO":
        """Deprecated (removed in the next release): :func:`lmodp.paper.lmo_from_paper_json`. The
        paper's keys live in the paper package; this alias loads it only when called."""
        warnings.warn("LMO.from_paper_json is deprecated: use lmodp.paper.lmo_from_paper_json", DeprecationWarning, stacklevel=2)
        from lmodp.paper.params import lmo_from_paper_json

        return lmo_from_paper_json(data, exponential=exponential)  # type: ignore[arg-type]

    def to_paper_json(self) -> dict[str, float]:
        """Deprecated (removed in the next release): :func:`lmodp.paper.lmo_to_paper_json`."""
        warnings.warn("LMO.to_paper_json is deprecated: use lmodp.paper.lmo_to_paper_json", DeprecationWarning, stacklevel=2)
        from lmodp.paper.params import lmo_to_paper_json

        return lmo_to_paper_json(self)


def _describe(mechanism: LMO, num) -> str:
    """``LMO ω = 0.1·Γ(k=2, θ=1) + 0.2·U[7, 8]``: the present components (the Exponential by its rate)."""
    m = mechanism
    parts = []
    if m.gamma_weight > 0:
        parts.append(f"{num(m.gamma_weight)}·Γ(k={num(m.gamma_shape)}, θ={num(m.gamma_scale)})")
    if m.exponential_weight > 0:
        parts.append(f"{num(m.exponential_weight)}·Exp(rate {num(m.exponential_rate)})")
    if m.uniform_weight > 0:
        parts.append(f"{num(m.uniform_weight)}·U[{num(m.uniform_low)}, {num(m.uniform_high)}]")
    return "LMO ω = " + " + ".join(parts)


register_family(
    LMO,
    torch_sampler="lmodp.train.noise:ScaleMixtureSampler",
    # searched over the shape box of lmodp.search.families; the representative is plain Laplace(1)
    search=SearchSpace(LMO(uniform_weight=1.0, uniform_low=1.0, uniform_high=1.0), strategy="lmodp.search.optimize:search_lmo", label="LMO"),
    describe=_describe,
)
