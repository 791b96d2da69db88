"""What lmodp needs from a noise family, declared once: :class:`NoiseFamily`.

A family is a :class:`~lmodp.mechanisms.base.Mechanism` subclass (its constructor holds the
parameters and their validation; its methods the numpy sampler, the density and tails, the
moments) plus one registration, :func:`lmodp.mechanisms.registry.register_family`, at the end of
its module, which declares everything the other layers ask of it:

==================  =========================================================================
facet               who asks, and what it is
==================  =========================================================================
``rdp_law``         the RDP accountant: ``mechanism -> NoiseLaw``
                    (:class:`lmodp.accounting.rdp.noise_laws.NoiseLaw`: the scalar and l2
                    Rényi bounds of one release, their Poisson-subsampled versions, pure DP)
``pld_model``       the PLD accountant: ``(mechanism, *, sensitivity, window_tail) -> model``
                    of the hockey-stick curve (:mod:`lmodp.accounting.pld.hockey_stick`)
``pld_closed_form`` the PLD's grid cap: True where the model's level sets are closed forms
                    (no root-finding, so one step may use the whole grid; the Gaussian)
``accountants``     ``"auto"`` and the accountants' checks: per geometry, the accountants
                    whose bound holds for the family, tightest first
``torch_sampler``   training: ``mechanism -> TorchNoiseSampler`` (:mod:`lmodp.train.noise`)
``search``          :func:`lmodp.search.search`: a :class:`SearchSpace`
``figures``         :mod:`lmodp.plots`: the extra panels and curves (:class:`Figures`)
``describe``        legends and tables: ``(mechanism, num) -> str`` (``num`` formats a float)
``check``           ``mechanism -> None``: raises ``ValueError`` where the law is incomplete
==================  =========================================================================

A hook (``rdp_law``, ``pld_model``, ``torch_sampler``, ``SearchSpace.strategy``) is a callable
or the name ``"package.module:attribute"`` of one, imported when first asked for: a family
module names the accounting, torch and search code it plugs into without importing it, so
``import lmodp.mechanisms`` loads neither torch nor the accountants. A facet left out is
inherited from the nearest base class that declares it: a subclass of
:class:`~lmodp.mechanisms.density.SymmetricDensity` (a family without closed forms) gets the
density-based RDP and PLD, a subclass of :class:`~lmodp.mechanisms.mixture.LaplaceScaleMixture`
those of the Laplace scale mixtures.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Callable, Mapping

from lmodp.mechanisms.base import Mechanism

#: A callable, or ``"package.module:attribute"`` naming one (:func:`lmodp._lazy.resolve`).
Hook = str | Callable[..., Any]

#: Where no family says otherwise: the PLD's dominating pair is tight in the scalar geometry
#: only (for non-Gaussian noise in l2 no tight pair is known; the RDP bound holds there).
SCALAR_PLD: Mapping[str, tuple[str, ...]] = MappingProxyType({"scalar": ("pld", "rdp"), "l2": ("rdp",)})


@dataclass(frozen=True)
class SearchSpace:
    """How :func:`lmodp.search.search` parameterises a family.

    ``representative``: a member; ``search(family=<name>)`` calibrates its scale, and whether an
    accountant fits the family is judged on it. ``strategy``: a hook searching the family's
    shape (``lmodp.search.strategies.SearchProblem -> Mechanism``), or None where the scale is
    the only parameter. ``label``: the family's name in a summary ("LMO")."""

    representative: Mechanism
    strategy: Hook | None = None
    label: str = ""


@dataclass(frozen=True)
class Figures:
    """The panels :mod:`lmodp.plots` draws for a family beyond its density and RDP curves:
    ``density_panels`` of :func:`~lmodp.plots.noise_density` (``"omega"``: the law of a Laplace
    scale mixture's inverse scale) and ``rdp_curves`` of :func:`~lmodp.plots.rdp_curve`
    (``"mgf_bound"``: the LMO paper's closed-form bound)."""

    density_panels: tuple[str, ...] = ()
    rdp_curves: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoiseFamily:
    """One family's registration (see the module docstring for each facet). ``None``: not
    declared here (inherited from a base class, or absent)."""

    mechanism: type[Mechanism]
    rdp_law: Hook | None = None
    pld_model: Hook | None = None
    pld_closed_form: bool | None = None
    accountants: Mapping[str, tuple[str, ...]] | None = None
    torch_sampler: Hook | None = None
    search: SearchSpace | None = None
    figures: Figures | None = None
    describe: Callable[[Any, Callable[[float], str]], str] | None = None
    check: Callable[[Any], Any] | None = None

    @property
    def name(self) -> str:
        """The family's name (the ``"family"`` key of its ``to_dict``)."""
        return self.mechanism.family

    @property
    def accountable(self) -> bool:
        """Whether both accountants can account it (an RDP law and a PLD model are declared)."""
        return self.rdp_law is not None and self.pld_model is not None

    def fitting_accountants(self, geometry: str) -> tuple[str, ...]:
        """The accountants whose bound holds in ``geometry``, tightest first."""
        return self.accountants[geometry]  # type: ignore[index]  # the root declaration sets them

    def over(self, base: "NoiseFamily") -> "NoiseFamily":
        """This declaration with every facet it leaves out taken from ``base``."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name in FACETS}
        inherited = {name: getattr(base, name) for name, value in values.items() if value is None}
        return NoiseFamily(self.mechanism, **{**values, **inherited})


#: The facets a registration may declare.
FACETS = ("rdp_law", "pld_model", "pld_closed_form", "accountants", "torch_sampler", "search", "figures", "describe", "check")
