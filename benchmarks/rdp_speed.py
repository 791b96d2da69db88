"""Speed of a full LMO ε (RDP accountant) against plain scipy.integrate.quad divergences.

Run:  python benchmarks/rdp_speed.py

Setting: the task1 ε = 2 LMO set (Exponential read as a rate), q = 0.01, T = 10,000,
δ = 1e-5, sensitivity 1, the default order grid, "scalar" and "l2" geometry.

Printed, in one run:
* the first call of lmodp.epsilon in this process (numba warm-up: loading the on-disk cache),
  and a cold start in a fresh interpreter with NUMBA_CACHE_DIR pointing at an empty folder
  (the compile cost of a fresh checkout);
* the median of 5 later calls per geometry;
* the baseline: the same divergences with plain scipy.integrate.quad (split at 0 and Δ,
  epsrel 1e-10): for "scalar" both subsampled directions at every order; for "l2" every
  (t, α) divergence that lmodp's sup search evaluated. The baseline's cost per divergence is
  measured on a sample of 40 integrals and multiplied by the count (quoted as such).
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from scipy import integrate

import lmodp
from lmodp.accounting.rdp import l2_sup_bound
from lmodp.accounting.conversion import OrderGridEdgeWarning
from lmodp.accounting.orders import DEFAULT_ORDERS
from lmodp.paper import paper_mechanism

Q, STEPS, DELTA = 0.01, 10_000, 1e-5


def _epsilon(mech, geometry: str) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OrderGridEdgeWarning)
        return lmodp.epsilon(mech, sample_rate=Q, steps=STEPS, delta=DELTA, geometry=geometry)


def _quad_log_moment(mech, alpha: float, shift: float, q: float, reverse: bool) -> float:
    """log ∫ P^α f^{1−α} (or f^α P^{1−α}) with P = (1−q) f + q f(·−shift), by scipy quad."""

    def integrand(y: float) -> float:
        lf, ls = mech.logpdf(np.array([y, y - shift]))
        lp = np.logaddexp(math.log1p(-q) + lf, math.log(q) + ls) if q < 1 else ls
        a, b = (lf, lp) if reverse else (lp, lf)
        return math.exp(alpha * a + (1 - alpha) * b)

    total = 0.0
    for lo, hi in ((-np.inf, 0.0), (0.0, shift), (shift, np.inf)):
        total += integrate.quad(integrand, lo, hi, epsabs=0.0, epsrel=1e-10, limit=200)[0]
    return math.log(total)


def _quad_seconds_per_divergence(mech, rng: np.random.Generator) -> float:
    orders = rng.choice(DEFAULT_ORDERS, 20)
    start = time.perf_counter()
    for a in orders:
        _quad_log_moment(mech, float(a), 1.0, Q, reverse=False)
        _quad_log_moment(mech, float(a), 1.0, Q, reverse=True)
    return (time.perf_counter() - start) / (2 * orders.size)


def _count_l2_divergences(mech) -> int:
    """(t, α) pairs evaluated by the L2 sup search, counted by wrapping its evaluator."""
    count = 0
    original = l2_sup_bound._divergence_ratio

    def counting(mechanism, t, alphas):
        nonlocal count
        count += alphas.size
        return original(mechanism, t, alphas)

    l2_sup_bound._divergence_ratio = counting
    try:
        # the orders at which the l2 path evaluates the bound: the integers and those below 2
        evaluated = (DEFAULT_ORDERS == np.floor(DEFAULT_ORDERS)) | (DEFAULT_ORDERS < 2.0)
        lmodp.accounting.rdp.divergence.l2_renyi_bound(mech, DEFAULT_ORDERS[evaluated], l2_sensitivity=1.0)
    finally:
        l2_sup_bound._divergence_ratio = original
    return count


_COLD = """
import time, warnings
start = time.perf_counter()
import lmodp
from lmodp.paper import paper_mechanism
warnings.simplefilter("ignore")
lmodp.epsilon(paper_mechanism(2, exponential="rate"), sample_rate=0.01, steps=10000, delta=1e-5, geometry="l2")
print(time.perf_counter() - start)
"""


def _cold_start_seconds() -> float:
    """First l2 ε in a fresh interpreter with an empty numba cache (full JIT compilation)."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    mech = paper_mechanism(2, exponential="rate")
    print(f"mechanism: {mech}\nq = {Q}, T = {STEPS}, delta = {DELTA}, {DEFAULT_ORDERS.size} orders")
    start = time.perf_counter()
    _epsilon(mech, "scalar")
    print(f"first call in this process (numba cache load + scalar epsilon): {time.perf_counter() - start:.3f} s")
    print(f"cold start with an empty numba cache (import + compile + l2 epsilon): {_cold_start_seconds():.1f} s")
    per_quad = _quad_seconds_per_divergence(mech, np.random.default_rng(0))
    counts = {"scalar": 2 * DEFAULT_ORDERS.size, "l2": _count_l2_divergences(mech)}
    for geometry in ("scalar", "l2"):
        eps = _epsilon(mech, geometry)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            _epsilon(mech, geometry)
            times.append(time.perf_counter() - start)
        ours = statistics.median(times)
        baseline = per_quad * counts[geometry]
        print(
            f"{geometry:6s}: epsilon = {eps:.4f}; lmodp {ours:.3f} s (median of 5); "
            f"scipy quad baseline {baseline:.1f} s ({counts[geometry]} divergences x {per_quad * 1e3:.1f} ms); "
            f"ratio {baseline / ours:.0f}x"
        )


if __name__ == "__main__":
    main()
