"""lmodp.accounting."""

from lmodp.accounting.api import epsilon, epsilon_and_order
from lmodp.accounting.conversion import OrderGridEdgeWarning, rdp_to_delta, rdp_to_epsilon
from lmodp.accounting.orders import DEFAULT_ORDERS
from lmodp.accounting.pld import PLDAccountant
from lmodp.accounting.interval import EpsilonInterval, epsilon_interval
from lmodp.accounting.events import MechanismEvent
from lmodp.accounting.rdp.accountant import RDPAccountant
from lmodp.accounting.rdp.subsampling import poisson_subsampled_rdp, sampled_gaussian_rdp

__all__ = [
    "DEFAULT_ORDERS",
    "EpsilonInterval",
    "MechanismEvent",
    "OrderGridEdgeWarning",
    "PLDAccountant",
    "RDPAccountant",
    "epsilon",
    "epsilon_and_order",
    "epsilon_interval",
    "poisson_subsampled_rdp",
    "rdp_to_delta",
    "rdp_to_epsilon",
    "sampled_gaussian_rdp",
]
