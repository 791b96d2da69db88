"""``lmodp demo``: Gaussian vs LMO noise at equal, soundly accounted budgets (the paper's SST-2 setting).

Writes figures, report.md, report.html and results.json into ``--out`` (checked before anything
is computed) and prints the summary table (``--json``: the numbers as JSON instead). ``--quick``
runs reduced settings. Progress goes to stderr: a bar on a terminal, a line for each step
elsewhere (``--quiet``: none).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from lmodp.cli._output import writable_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="Gaussian vs LMO noise at equal budget on SST-2: figures and a report", description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", type=Path, default=Path("lmodp-demo"), help="output folder (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="reduced settings: budgets 0.7 and 3, looser calibration, a shorter search")
    parser.add_argument("--budgets", type=float, nargs="+", metavar="EPS", help="budgets ε to report, among those of the paper's released sets (default: 0.3 0.7 2 3)")
    parser.add_argument("--no-search", action="store_true", help="skip the LMO search (report the released shapes rescaled only)")
    parser.add_argument("--search-l2", action="store_true", help="search the l2 geometry too (about two minutes longer)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar (shown on stderr only when it is a terminal)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import lmodp.plots  # noqa: F401  (the demo draws figures)
    except ImportError as err:
        raise SystemExit(f"lmodp demo: error: {err}") from None
    from lmodp.paper.demo import FULL, QUICK
    from lmodp.paper.demo_report import run_demo, text_table

    writable_folder(args.out, "--out")
    settings = QUICK if args.quick else FULL
    if args.budgets:
        settings = replace(settings, budgets=tuple(args.budgets))
    if args.no_search:
        settings = replace(settings, search=False)
    if args.search_l2:
        settings = replace(settings, search_geometries=(*settings.search_geometries, "l2"))
    result = run_demo(args.out, settings, progress=not args.quiet)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(text_table(result))
        print(f"\nFigures and report.md written to {args.out}/ in {result.wall_time_s:.1f} s.")
    return 0
