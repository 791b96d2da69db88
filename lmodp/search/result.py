"""The outcome of a noise search, with a lossless JSON form.

Mechanisms are stored through :meth:`Mechanism.to_dict` (which names the LMO parameter
convention: the Exponential's λ is a rate) and rebuilt by :func:`mechanism_from_dict`. Floats
are written with ``repr`` precision by :mod:`json`, so ``from_json(to_json())`` returns an
equal result; an infinite objective value is written as ``Infinity`` (Python's JSON dialect).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lmodp.mechanisms import Gaussian, Mechanism, describe, family_class, family_of, mechanism_from_dict

_FORMAT = "lmodp.search.result/1"
_MECHANISM_FIELDS = ("mechanism", "baseline", "laplace")


def _searched_shapes(family: str) -> str | None:
    """The label of ``family`` where its search explores shapes (and may return plain Laplace or
    the Gaussian when none beats them: its search space names a strategy), else None."""
    try:
        space = family_of(family_class(family)).search
    except ValueError:
        return None
    return space.label if space is not None and space.strategy is not None else None


@dataclass
class SearchResult:
    """Best mechanism found for a budget, beside the Gaussian calibrated to the same budget.

    * ``mechanism``, ``epsilon``: the winner and its ε, recomputed by the sound accountant
      (``epsilon <= settings["target_epsilon"]``).
    * ``objective``, ``sense``, ``objective_value``: the objective's name, whether it is
      minimised ("min") or maximised ("max", usefulness), and its value for the winner.
    * ``baseline``, ``baseline_epsilon``, ``baseline_objective_value``: the Gaussian calibrated
      to the same budget with the same accountant and geometry.
    * ``noise_ratio``: E|Y| of the winner over E|Y| of the Gaussian baseline (< 1: less noise).
    * ``laplace``, ``laplace_objective_value``: the calibrated plain Laplace mechanism (the LMO
      search's reference point), or None where not computed. When no LMO shape beat it,
      ``mechanism`` IS that Laplace (:attr:`laplace_is_best`), never an LMO of Laplace shape.
      A generalized Gaussian search returns the better of that Laplace and the Gaussian
      baseline when no power 1 < p < 2 beat both.
    * ``evaluations``: accountant calls (cache hits excluded); ``wall_time_s``: seconds.
    * ``settings``: every argument of the search (target, δ, q, T, geometry, ...), and under
      ``"accountants"`` the accountant each reported ε came from (``"auto"`` resolves per mechanism).

    The JSON form (:meth:`to_dict`) also carries ``laplace_is_best`` and a one-line ``summary``.
    """

    mechanism: Mechanism
    epsilon: float
    objective: str
    sense: str
    objective_value: float
    baseline: Gaussian
    baseline_epsilon: float
    baseline_objective_value: float
    noise_ratio: float
    evaluations: int
    wall_time_s: float
    settings: dict[str, Any] = field(default_factory=dict)
    laplace: Mechanism | None = None
    laplace_objective_value: float | None = None

    @property
    def laplace_is_best(self) -> bool:
        """True when an LMO or generalized Gaussian search found no shape better than plain Laplace
        (``mechanism`` is the Laplace)."""
        return _searched_shapes(self.settings.get("family", "")) is not None and self.mechanism.family == "laplace"

    def summary(self) -> str:
        """The winner in one line, e.g. ``Laplace, scale b = 7.7 (no LMO shape beat plain Laplace)``."""
        searched = _searched_shapes(self.settings.get("family", ""))
        if self.mechanism.family == "laplace":
            text = f"Laplace, scale b = {self.mechanism.scale:.6g}"
            return text + f" (no {searched} shape beat plain Laplace)" if self.laplace_is_best else text
        if self.mechanism.family == "gaussian":
            text = f"Gaussian, sigma = {self.mechanism.sigma:.6g}"
            return text + f" (no {searched} shape beat the Gaussian)" if searched else text
        return describe(self.mechanism, digits=6)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (mechanisms as their ``to_dict()``), with ``laplace_is_best`` and ``summary``."""
        out: dict[str, Any] = {"format": _FORMAT}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Mechanism) else value
        out["laplace_is_best"] = self.laplace_is_best
        out["summary"] = self.summary()
        return out

    def to_json(self, path: str | Path | None = None, *, indent: int | None = 2) -> str:
        """The JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchResult":
        """Inverse of :meth:`to_dict`."""
        if data.get("format") != _FORMAT:
            raise ValueError(f"format must be {_FORMAT!r}, got {data.get('format')!r}")
        kwargs = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        for name in _MECHANISM_FIELDS:
            if kwargs.get(name) is not None:
                kwargs[name] = mechanism_from_dict(kwargs[name])
        if getattr(kwargs.get("baseline"), "family", None) != Gaussian.family:
            raise ValueError("baseline must be a Gaussian mechanism")
        return cls(**kwargs)

    @classmethod
    def from_json(cls, source: str | Path) -> "SearchResult":
        """Read a result from JSON text or from a path to a JSON file."""
        text = str(source)
        if isinstance(source, Path) or not text.lstrip().startswith("{"):
            text = Path(source).read_text()
        return cls.from_dict(json.loads(text))
