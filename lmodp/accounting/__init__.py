"""lmodp.accounting: what a run of noise releases spends, as sound upper bounds.

* :class:`PrivacyAccountant` — the interface of every accountant; :class:`RDPAccountant`
  (:mod:`~lmodp.accounting.rdp`) and :class:`PLDAccountant` (:mod:`~lmodp.accounting.pld`)
  implement it, and :mod:`~lmodp.accounting.registry` names them (``"rdp"``, ``"pld"``, ``"auto"``).
* :class:`RunSpec` — the settings of a run (sample rate, steps, δ, geometry, sensitivity).
* :func:`epsilon`, :func:`epsilon_and_order` — one call; :func:`epsilon_interval` — an interval
  for the l2 geometry.
* Shared pieces: :mod:`~lmodp.accounting.events` (what happened), :mod:`~lmodp.accounting.orders`
  and :mod:`~lmodp.accounting.conversion` (Rényi orders, RDP to (ε, δ)).

Names are imported on first use (nothing heavy is loaded by ``import lmodp.accounting``).
"""

from lmodp._lazy import lazy_exports

_EXPORTS = {
    "PrivacyAccountant": "lmodp.accounting.base",
    "MechanismEvent": "lmodp.accounting.events",
    "NoFiniteBoundWarning": "lmodp.accounting.events",
    "RunSpec": "lmodp.accounting.spec",
    "run_spec": "lmodp.accounting.spec",
    "ACCOUNTANTS": "lmodp.accounting.registry",
    "AUTO": "lmodp.accounting.registry",
    "accountant_choices": "lmodp.accounting.registry",
    "accountant_from_state_dict": "lmodp.accounting.registry",
    "make_accountant": "lmodp.accounting.registry",
    "register_accountant": "lmodp.accounting.registry",
    "tightest_accountant": "lmodp.accounting.registry",
    "RDPAccountant": "lmodp.accounting.rdp.accountant",
    "PLDAccountant": "lmodp.accounting.pld.accountant",
    "epsilon": "lmodp.accounting.api",
    "epsilon_and_order": "lmodp.accounting.api",
    "EpsilonInterval": "lmodp.accounting.interval",
    "epsilon_interval": "lmodp.accounting.interval",
    "DEFAULT_ORDERS": "lmodp.accounting.orders",
    "OrderGridEdgeWarning": "lmodp.accounting.conversion",
    "rdp_to_delta": "lmodp.accounting.conversion",
    "rdp_to_epsilon": "lmodp.accounting.conversion",
    "poisson_subsampled_rdp": "lmodp.accounting.rdp.subsampling",
    "sampled_gaussian_rdp": "lmodp.accounting.rdp.subsampling",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
