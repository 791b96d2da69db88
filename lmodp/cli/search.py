"""``lmodp search``: the least noise of a family meeting a privacy budget (see :func:`lmodp.search.search`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lmodp.cli._output import CLI_PLD_FIX, writable_file
from lmodp.cli._run import add_accountant_argument, add_run_arguments, note_paper_run, run_from_args
from lmodp.paper import grid as _paper_grid  # noqa: F401  (registers --method paper-grid)
from lmodp.search import FAMILIES, OBJECTIVES, SearchOptions, search, search_methods

_EPILOG = """\
Examples (--paper-run sst2: the LMO-DP paper's SST-2 run, sample rate 2048/67350, 192 steps, delta 1e-10):
  lmodp search --target-epsilon 1 --delta 1e-5 --sample-rate 0.01 --steps 1000
  lmodp search --target-epsilon 0.7 --paper-run sst2 --geometry scalar
  lmodp search --target-epsilon 3 --paper-run sst2 --objective usefulness --gamma 0.9 --out result.json
  lmodp search ... --method paper-grid --grid-limit 500     (the authors' grid, judged soundly)
The result JSON (--out) stores the mechanism with its parameter convention (exponential_rate) and is
read back by lmodp.search.SearchResult.from_json.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``search`` subcommand."""
    p = subparsers.add_parser(
        "search",
        help="find the noise with the least magnitude meeting a privacy budget",
        description="Search a noise family for the mechanism with the best objective whose sound epsilon meets the target.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    budget = p.add_argument_group("privacy budget")
    budget.add_argument("--target-epsilon", type=float, required=True, help="target epsilon (> 0)")
    add_run_arguments(budget)
    budget.add_argument("--geometry", choices=("scalar", "l2"), default="l2", help="sensitivity geometry (default: l2)")
    budget.add_argument("--sensitivity", type=float, default=1.0, help="sensitivity / clip norm (default: 1)")
    add_accountant_argument(budget)
    what = p.add_argument_group("what to search")
    what.add_argument("--objective", choices=OBJECTIVES, default="mean_abs", help="objective (default: mean_abs)")
    what.add_argument("--gamma", type=float, default=0.9, help="gamma of the usefulness objective (default: 0.9)")
    what.add_argument("--family", choices=FAMILIES, default="lmo", help="noise family (default: lmo)")
    what.add_argument("--method", choices=search_methods(), default="optimize", help="search method (default: optimize)")
    what.add_argument("--seed", type=int, default=0, help="seed of the optimiser / grid subsample (default: 0)")
    what.add_argument("--maxiter", type=int, default=4, help="differential-evolution generations (default: 4)")
    what.add_argument("--popsize", type=int, default=3, help="population multiplier per generation (default: 3)")
    what.add_argument("--grid-limit", type=int, help="paper-grid: scan a seeded random subset of this many points")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=Path, metavar="RESULT.json", help="write the result as JSON to this file")
    out.add_argument("--json", action="store_true", help="print the result as one JSON object")
    out.add_argument(
        "-q", "--quiet", "--no-progress", dest="quiet", action="store_true",
        help="no progress bar (it is shown on stderr only when stderr is a terminal)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the search and print (or write) the result."""
    if args.out is not None:
        writable_file(args.out, "--out")
    options = SearchOptions(
        objective=args.objective,
        family=args.family,
        accountant=args.accountant,
        search_seed=args.seed,
        method=args.method,
        gamma=args.gamma,
        maxiter=args.maxiter,
        popsize=args.popsize,
        grid_limit=args.grid_limit,
        progress=not args.quiet,
    )
    options.require_accountant_fits(args.geometry, fix=CLI_PLD_FIX)
    run, taken = run_from_args(args)
    note_paper_run("search", args, taken)
    result = search(args.target_epsilon, run, options=options)
    if args.out is not None:
        result.to_json(args.out)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    better = "higher" if result.sense == "max" else "lower"
    used = result.settings["accountants"]
    print(f"best {args.family} mechanism: {result.summary()}")
    print(f"  epsilon {result.epsilon:.6g} (target {args.target_epsilon:g}, delta {run.delta:g}, {used['mechanism'].upper()} accountant)")
    print(f"  {result.objective} = {result.objective_value:.6g} ({better} is better)")
    print(
        f"Gaussian baseline: sigma = {result.baseline.sigma:.6g}, {result.objective} = {result.baseline_objective_value:.6g} "
        f"({used['baseline'].upper()} accountant)"
    )
    if result.laplace is not None and not result.laplace_is_best:
        print(f"plain Laplace: scale = {result.laplace.scale:.6g}, {result.objective} = {result.laplace_objective_value:.6g}")
    print(f"E|Y| ratio to Gaussian: {result.noise_ratio:.4g}")
    print(f"{result.evaluations} accountant evaluations, {result.wall_time_s:.1f} s")
    if args.out is not None:
        print(f"result written to {args.out}")
    return 0
