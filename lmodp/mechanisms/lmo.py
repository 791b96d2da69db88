r"""The LMO mechanism (Yang et al. 2024, "LMO-DP", arXiv 2405.18776; R2DP, CCS 2020).

Per coordinate, draw the inverse Laplace scale

.. math:: \omega = a_1 G + a_3 E + a_4 U,\qquad G\sim\Gamma(\text{shape }k,\ \text{scale }\theta),
          \ E\sim\mathrm{Exponential}(\text{rate }\lambda),\ U\sim\mathcal U[u_{lo}, u_{hi}]

and output :math:`Y\mid\omega\sim\mathrm{Laplace}(0, 1/\omega)`. Parameter names in lmodp and
the paper:

==========================  =======  ==========================================
lmodp keyword               paper    meaning
==========================  =======  ==========================================
``gamma_weight``            a1       weight of the Gamma component
``gamma_shape``             k        Gamma shape (``G_k`` in the JSON files)
``gamma_scale``             θ        Gamma scale (``G_theta``)
``exponential_weight``      a3       weight of the Exponential component
``exponential_rate``        λ        Exponential RATE: mean 1/λ (``E_lambda``, see below)
``uniform_weight``          a4       weight of the Uniform component
``uniform_low/high``        U_a/U_b  bounds of the Uniform component
==========================  =======  ==========================================

(The paper has no a2.) The released code reads ``E_lambda`` as a scale in its sampler and as a
rate in its accountant; lmodp always means a rate, and :meth:`LMO.from_paper_json` makes the
caller say which reading of a file to take.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Mapping


from lmodp._validation import require_finite, require_nonnegative, require_positive
from lmodp.mechanisms.mixing import LMOMixing
from lmodp.mechanisms.mixture import LaplaceScaleMixture

CONVENTION = "exponential_rate"
#: The keys of the LMO-DP authors' parameter files (:meth:`LMO.from_paper_json`).
PAPER_KEYS = ("a1", "a3", "a4", "G_theta", "G_k", "E_lambda", "U_a", "U_b")


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
    def from_paper_json(
        cls, data: Mapping[str, Any] | str | Path, *, exponential: Literal["rate", "scale"]
    ) -> "LMO":
        """Read one of the LMO-DP authors' parameter files (a mapping, or a path to the JSON file
        with keys a1, a3, a4, G_theta, G_k, E_lambda, U_a, U_b).

        ``exponential`` says how to read ``E_lambda``: ``"rate"`` is the released accountant's
        reading (mean 1/λ), ``"scale"`` the released sampler's (mean λ). There is no default
        because the two disagree by a factor λ² in the component's mean.
        """
        if exponential not in ("rate", "scale"):
            raise ValueError(f"exponential must be 'rate' or 'scale', got {exponential!r}")
        if isinstance(data, (str, Path)):
            data = json.loads(Path(data).read_text())
        missing = [k for k in PAPER_KEYS if k not in data]
        if missing:
            raise ValueError(f"paper parameter data lacks keys {missing}")
        e_lambda = require_positive("E_lambda", data["E_lambda"])
        return cls(
            gamma_weight=data["a1"],
            gamma_shape=data["G_k"],
            gamma_scale=data["G_theta"],
            exponential_weight=data["a3"],
            exponential_rate=e_lambda if exponential == "rate" else 1.0 / e_lambda,
            uniform_weight=data["a4"],
            uniform_low=data["U_a"],
            uniform_high=data["U_b"],
        )

    def to_paper_json(self) -> dict[str, float]:
        """The paper's keys, with ``E_lambda`` written as a rate (the accountant's reading)."""
        return {
            "a1": self.gamma_weight,
            "a3": self.exponential_weight,
            "a4": self.uniform_weight,
            "G_theta": self.gamma_scale,
            "G_k": self.gamma_shape,
            "E_lambda": self.exponential_rate,
            "U_a": self.uniform_low,
            "U_b": self.uniform_high,
        }
