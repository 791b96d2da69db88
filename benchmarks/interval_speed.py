"""``lmodp.epsilon_interval`` speed and lower end, against the previous implementation.

Baseline: ``epsilon_interval`` as of commit 1940fcf (lower end by rounding losses down on a grid
of step interval/n, shift spread over n <= 64 coordinates), loaded from git into this run. Both
use the current upper end (the l2 RDP bound) and the current numba kernels, so the difference is
the lower end. For each case it prints both wall times, their ratio and both intervals.

Cases: Laplace b = 1, q = 0.01, δ = 1e-5 at T = 1000 (the case of issue 14, where the d → ∞
limit is 1.8282) and T = 10,000; released paper sets (task1, E_lambda read as a rate or a scale)
on the SST-2 setting (q = 2048/67350, T = 192, δ = 1e-10), among them the slowest for the
baseline (several minutes each).

Run from the repository root: ``python benchmarks/interval_speed.py`` (``--quick``: the two
Laplace cases only).
"""

from __future__ import annotations

import subprocess
import sys
import time
import types
from pathlib import Path

import lmodp
from lmodp import Laplace
from lmodp.paper import SST2, paper_mechanism

BASELINE_COMMIT = "1940fcf"
#: Old module paths in the baseline's imports -> where those modules are now.
MOVED_MODULES = {f"lmodp.accounting.pld_{name} ": f"lmodp.accounting.pld.{name} " for name in ("compose", "discrete", "hockey_stick")}


def baseline_module() -> types.ModuleType:
    """lmodp/accounting/pld_interval.py at ``BASELINE_COMMIT``, as a module."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "-C", str(root), "show", f"{BASELINE_COMMIT}:lmodp/accounting/pld_interval.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for old, new in MOVED_MODULES.items():  # the accounting modules moved since
        source = source.replace(old, new)
    module = types.ModuleType("baseline_pld_interval")
    sys.modules[module.__name__] = module
    exec(compile(source, f"{BASELINE_COMMIT}:pld_interval.py", "exec"), module.__dict__)
    return module


def timed(function, mechanism, q: float, steps: int, delta: float):
    start = time.perf_counter()
    interval = function(mechanism, sample_rate=q, steps=steps, delta=delta)
    return time.perf_counter() - start, interval


def main() -> None:
    quick = "--quick" in sys.argv
    baseline = baseline_module()
    start = time.perf_counter()
    lmodp.epsilon_interval(Laplace(1.0), sample_rate=0.01, steps=10, delta=1e-5)
    baseline.epsilon_interval(Laplace(1.0), sample_rate=0.01, steps=10, delta=1e-5, dimensions=(1, 2))
    print(f"numba warm-up (compile or load from cache): {time.perf_counter() - start:.2f} s")
    cases = [("Laplace(1) q=0.01 T=1000 d=1e-5", Laplace(1.0), 0.01, 1000, 1e-5),
             ("Laplace(1) q=0.01 T=10000 d=1e-5", Laplace(1.0), 0.01, 10_000, 1e-5)]
    if not quick:
        for eps, reading in ((0.3, "rate"), (0.7, "scale"), (2, "scale"), (3, "rate")):
            cases.append((f"paper eps={eps} {reading} SST-2", paper_mechanism(eps, exponential=reading), SST2.sample_rate, SST2.steps, SST2.delta))
    for name, mechanism, q, steps, delta in cases:
        t_new, new = timed(lmodp.epsilon_interval, mechanism, q, steps, delta)
        t_old, old = timed(baseline.epsilon_interval, mechanism, q, steps, delta)
        print(
            f"{name:34s} lmodp {t_new:6.2f} s [{new.lower:.4f}, {new.upper:.4f}] (worst n={new.worst_dimensions})  "
            f"baseline {t_old:7.2f} s [{old.lower:.4f}, {old.upper:.4f}]  ratio {t_new / t_old:5.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
