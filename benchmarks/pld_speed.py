"""PLD accounting speed: lmodp against dp-accounting on the same mechanisms and discretisation.

Prints, for Poisson-subsampled Gaussian and Laplace (q = 0.01, T = 10,000, δ = 1e-5,
value_discretization_interval = 1e-4), both libraries' wall times, their ratio and both ε, then
lmodp's time for an LMO mechanism (the paper's ε = 0.3 parameter set). Numba is warmed up
first (its compile cost, cached on disk by ``cache=True``, is printed separately).

Run: ``python benchmarks/pld_speed.py``
"""

from __future__ import annotations

import time

import dp_accounting
from dp_accounting.pld import PLDAccountant as ReferencePLD

from lmodp import Gaussian, Laplace
from lmodp.accounting.pld import PLDAccountant
from lmodp.paper import paper_mechanism

Q, STEPS, DELTA, INTERVAL = 0.01, 10_000, 1e-5, 1e-4


def lmodp_run(mechanism, steps: int = STEPS) -> tuple[float, float]:
    start = time.perf_counter()
    acc = PLDAccountant(value_discretization_interval=INTERVAL)
    acc.step(mechanism=mechanism, sample_rate=Q, steps=steps, geometry="scalar")
    eps = acc.get_epsilon(DELTA)
    return time.perf_counter() - start, eps


def reference_run(event) -> tuple[float, float]:
    start = time.perf_counter()
    acc = ReferencePLD(value_discretization_interval=INTERVAL)
    acc.compose(dp_accounting.PoissonSampledDpEvent(Q, event), STEPS)
    eps = acc.get_epsilon(DELTA)
    return time.perf_counter() - start, eps


def main() -> None:
    start = time.perf_counter()
    lmodp_run(Laplace(1.0), steps=2)
    lmodp_run(paper_mechanism(0.3, "task1", exponential="rate"), steps=2)
    lmodp_run(Gaussian(1.0), steps=2)
    print(f"numba warm-up (compile or load from cache): {time.perf_counter() - start:.2f} s")
    print(f"q = {Q}, T = {STEPS}, delta = {DELTA}, value_discretization_interval = {INTERVAL}")
    for name, mechanism, event in [
        ("Gaussian(sigma=1.0)", Gaussian(1.0), dp_accounting.GaussianDpEvent(1.0)),
        ("Laplace(scale=2.0)", Laplace(2.0), dp_accounting.LaplaceDpEvent(2.0)),
    ]:
        t_ours, e_ours = lmodp_run(mechanism)
        t_ref, e_ref = reference_run(event)
        print(
            f"{name:22s} lmodp {t_ours:7.3f} s (eps {e_ours:.6f})  dp-accounting {t_ref:7.3f} s "
            f"(eps {e_ref:.6f})  ratio {t_ours / t_ref:5.2f}"
        )
    lmo = paper_mechanism(0.3, "task1", exponential="rate")
    t_lmo, e_lmo = lmodp_run(lmo)
    print(f"LMO (paper eps=0.3 set)  lmodp {t_lmo:7.3f} s (eps {e_lmo:.6f})")


if __name__ == "__main__":
    main()
