"""Wall time of `lmodp search` (default settings) across budgets, against a baseline checkout.

Each search runs as `python -m lmodp search ...` in its own process (numba caches warm, the same
commands as a user types), first with this checkout, then, with ``--baseline-root``, with another
checkout (e.g. `git worktree add /tmp/base <commit>`), in the same run; a search still running
after ``--timeout`` seconds is stopped and shown as "> timeout". Runs: q = 0.01, T = 100,
δ = 1e-5 (the issue's run) and the paper's SST-2 run (q = 2048/67350, T = 192, δ = 1e-10), scalar
geometry by default.

    python benchmarks/search_budgets.py [--targets 1 5 10 100 1000] [--geometry scalar|l2]
        [--baseline-root /tmp/base] [--timeout 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

RUNS = {
    "q=0.01, T=100, delta=1e-5": ["--sample-rate", "0.01", "--steps", "100", "--delta", "1e-5"],
    "SST-2": ["--sample-rate", str(2048 / 67350), "--steps", "192", "--delta", "1e-10"],
}


def timed_search(root: Path, run: list[str], target: float, geometry: str, timeout: float) -> tuple[float | None, str]:
    """(seconds, first line of the output) of one search with ``root`` first on the path; None if it timed out."""
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "lmodp", "search", "--target-epsilon", str(target), *run, "--geometry", geometry, "-q"]
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=root)
    except subprocess.TimeoutExpired:
        return None, ""
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        return seconds, f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}"
    return seconds, done.stdout.splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=float, nargs="+", default=[1.0, 5.0, 10.0, 100.0, 1000.0])
    parser.add_argument("--geometry", choices=("scalar", "l2"), default="scalar")
    parser.add_argument("--baseline-root", type=Path, help="another checkout, timed on the same searches")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    roots = {"this checkout": here} | ({"baseline": args.baseline_root.resolve()} if args.baseline_root else {})
    for root in roots.values():  # numba compilation / cache load, not timed
        timed_search(root, RUNS["SST-2"], 1.0, args.geometry, args.timeout)
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; geometry {args.geometry}; timeout {args.timeout:g} s")
    print("| run | target epsilon | " + " | ".join(roots) + (" | ratio |" if len(roots) > 1 else ""))
    print("|---|---|" + "---|" * (len(roots) + (len(roots) > 1)))

    def shown(seconds: float | None) -> str:
        return f"> {args.timeout:g} s" if seconds is None else f"{seconds:.1f} s"

    for name, run in RUNS.items():
        for target in args.targets:
            times = {label: timed_search(root, run, target, args.geometry, args.timeout) for label, root in roots.items()}
            cells = [shown(seconds) for seconds, _ in times.values()]
            if len(roots) > 1:
                (ours, _), (theirs, _) = times.values()
                ratio = "n/a" if ours is None else (f"> {args.timeout / ours:.1f}x" if theirs is None else f"{theirs / ours:.1f}x")
                cells.append(ratio)
            print(f"| {name} | {target:g} | " + " | ".join(cells) + " |", flush=True)
            print(f"<!-- {next(iter(times.values()))[1]} -->", flush=True)


if __name__ == "__main__":
    main()
