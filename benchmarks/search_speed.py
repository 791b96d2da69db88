"""Wall time of one LMO search beside the authors' exhaustive grid, judged by the same accountant.

Budget: SST-2 as in the paper (q = 2048/67350, T = 192, δ = 1e-10), target ε = 0.7 (sound, whole
run), scalar geometry by default, the search's default accountant ("auto": the PLD in the scalar
geometry, the RDP for LMO noise in l2) unless ``--accountant`` says otherwise. By default the
whole grid (40,824 points) is scanned with ``search(method="paper-grid")``, which uses the very
accountant the optimiser uses inside its loop (the full PLD; or the RDP accountant on the same
window of orders), and both winners are printed. With ``--grid-points N`` (N < 40,824) only a
seeded random sample of N points is timed, with that same accountant, and the time extrapolated
linearly to the full grid. The ratio printed is (full-grid time) / (one search's wall time).

    python benchmarks/search_speed.py [--geometry scalar|l2] [--target 0.7] [--grid-points N] [--accountant auto|rdp|pld]
"""

from __future__ import annotations

import argparse
import os
import time

import numba

from lmodp.accounting.registry import accountant_choices
from lmodp.paper import SST2
from lmodp.paper.grid import GRID_SIZE, paper_grid
from lmodp.search import search
from lmodp.search.oracle import accountant_epsilon, orders_epsilon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--geometry", choices=("scalar", "l2"), default="scalar")
    parser.add_argument("--target", type=float, default=0.7)
    parser.add_argument("--grid-points", type=int, default=GRID_SIZE)
    parser.add_argument("--accountant", choices=accountant_choices(), default="auto")
    args = parser.parse_args()
    run = SST2.replace(geometry=args.geometry)
    print(f"cores: {os.cpu_count()}, numba threads: {numba.get_num_threads()}")
    print(f"budget: eps <= {args.target} over SST-2 (q = {run.sample_rate:.6f}, T = {run.steps}, delta = {run.delta:g}), "
          f"{args.geometry}, accountant {args.accountant}")

    search(args.target, run, family="laplace", accountant=args.accountant)  # numba compilation / cache load, not timed
    started = time.perf_counter()
    result = search(args.target, run, family="lmo", search_seed=0, accountant=args.accountant)
    search_s = time.perf_counter() - started
    print(f"LMO search: {search_s:.1f} s, {result.evaluations} accountant evaluations, E|Y| {result.objective_value:.4g} "
          f"(Laplace {result.laplace_objective_value:.4g}, Gaussian {result.baseline_objective_value:.4g}); "
          f"accountants {result.settings['accountants']}")

    if args.grid_points >= GRID_SIZE:
        started = time.perf_counter()
        grid = search(args.target, run, family="lmo", method="paper-grid", accountant=args.accountant)
        full_grid_s = time.perf_counter() - started
        print(f"paper grid, all {GRID_SIZE} points: {full_grid_s:.1f} s, {grid.evaluations} accountant evaluations, "
              f"best E|Y| {grid.objective_value:.4g}: {grid.mechanism!r}")
    else:
        window = result.settings["search_orders"]  # None where the loop used the full accountant (the PLD)
        eps = accountant_epsilon(run, accountant=args.accountant) if window is None else orders_epsilon(window, run)
        started = time.perf_counter()
        feasible = sum(eps(m) <= args.target for m in paper_grid(args.grid_points, seed=0))
        grid_s = time.perf_counter() - started
        full_grid_s = grid_s / args.grid_points * GRID_SIZE
        print(f"paper grid: {args.grid_points} of {GRID_SIZE} points in {grid_s:.1f} s "
              f"({grid_s / args.grid_points * 1e3:.1f} ms/point, {feasible} feasible); "
              f"full grid extrapolated: {full_grid_s:.0f} s = {full_grid_s / 3600:.2f} h")
    print(f"ratio (full grid / one search): {full_grid_s / search_s:.0f}x")

if __name__ == "__main__":
    main()
