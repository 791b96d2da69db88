"""The grid of Rényi orders α at which lmodp evaluates RDP curves.

:data:`DEFAULT_ORDERS` (351 orders, ascending, all > 1):

* 1.05, 1.10, …, 2.00 (step 0.05) and 2.1, 2.2, …, 10.0 (step 0.1): fractional orders, where
  the optimum sits for large ε or few compositions; the grid contains every integer 2…10;
* every integer 11…256: the optimum for the usual DP-SGD regimes (ε ≈ 0.1…10, δ ≈ 1e-5…1e-10),
  and the integers that the binomial subsampling bounds need (they hold at integer orders only);
* 320, 384, 512, 768, 1024: a few very large orders for tiny ε or δ.

The conversion to (ε, δ) warns (:class:`~lmodp.accounting.conversion.OrderGridEdgeWarning`)
when the optimum is the smallest or largest order, in which case a wider grid may give a smaller ε.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_ORDERS: np.ndarray = np.unique(
    np.round(
        np.concatenate(
            [
                np.arange(1.05, 2.0001, 0.05),
                np.arange(2.1, 10.0001, 0.1),
                np.arange(11, 257),
                [320, 384, 512, 768, 1024],
            ]
        ),
        10,
    )
)
DEFAULT_ORDERS.setflags(write=False)


def validate_orders(orders: ArrayLike) -> np.ndarray:
    """``orders`` as a 1-D float array; raise ``ValueError`` unless every order is finite and > 1."""
    alphas = np.atleast_1d(np.asarray(orders, dtype=float))
    if alphas.ndim != 1 or alphas.size == 0:
        raise ValueError(f"orders must be a non-empty 1-D sequence of numbers > 1, got shape {alphas.shape}")
    if not np.all(np.isfinite(alphas)) or np.any(alphas <= 1.0):
        raise ValueError(f"orders must be finite numbers > 1, got {alphas[~(np.isfinite(alphas) & (alphas > 1))][:5]}")
    return alphas


def integer_mask(orders: np.ndarray) -> np.ndarray:
    """True where an order is an integer (the orders at which binomial expansions hold)."""
    return np.equal(np.floor(orders), orders)
