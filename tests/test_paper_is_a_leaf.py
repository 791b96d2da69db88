"""The paper's reproduction is a leaf: no core package imports ``lmodp.paper`` (issue 23, item 2).

Two checks: the source of every module of lmodp.accounting, lmodp.search, lmodp.train and
lmodp.mechanisms has no import of lmodp.paper anywhere (functions included) and names no hook
in it; and a fresh interpreter that imports every one of those modules and runs the accountants
and a search (which resolve the families' hooks) has not loaded lmodp.paper.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import lmodp

CORE = ("accounting", "search", "train", "mechanisms")
#: The one exception, for one release: the deprecated aliases LMO.from_paper_json/to_paper_json
#: load the paper package when (and only when) they are called.
DEPRECATED_ALIASES = {"mechanisms/lmo.py": ["lmodp.paper.params", "lmodp.paper.params"]}
ROOT = Path(lmodp.__file__).parent


def _core_files() -> list[Path]:
    return sorted(p for package in CORE for p in (ROOT / package).rglob("*.py"))


def _paper_references(path: Path) -> list[str]:
    """Imports of lmodp.paper (absolute, or relative from inside lmodp) and hook strings naming it."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "lmodp.paper" or a.name.startswith("lmodp.paper.")]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # a relative import: resolve it against the file's package
                package = path.relative_to(ROOT.parent).parent.parts
                module = ".".join([*package[: len(package) - node.level + 1], *([module] if module else [])])
            if module == "lmodp.paper" or module.startswith("lmodp.paper.") or (module == "lmodp" and any(a.name == "paper" for a in node.names)):
                found.append(module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(("lmodp.paper:", "lmodp.paper.")) and " " not in node.value:
            found.append(node.value)
    return found


def test_no_core_module_imports_the_paper():
    files = _core_files()
    assert len(files) > 60
    offenders = {str(p.relative_to(ROOT)): refs for p in files if (refs := _paper_references(p))}
    assert offenders == DEPRECATED_ALIASES


_PROBE = """
import importlib, json, pkgutil, sys, warnings
warnings.simplefilter("ignore")
import lmodp
modules = []
for package in {packages}:
    root = importlib.import_module(package)
    modules.append(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)
        modules.append(info.name)
from lmodp import LMO, Gaussian, GeneralizedGaussian, Laplace, epsilon
from lmodp.search import search
from lmodp.train import torch_sampler
run = dict(sample_rate=0.05, steps=10, delta=1e-5)
for m in (Gaussian(1.0), Laplace(1.0), GeneralizedGaussian(1.0, 1.5), LMO(gamma_weight=1.0, gamma_shape=2.0)):
    for geometry in ("scalar", "l2"):
        epsilon(m, geometry=geometry, **run)
    torch_sampler(m)
search(2.0, family="laplace", geometry="scalar", **run)
print(json.dumps({{"modules": len(modules), "paper": sorted(n for n in sys.modules if n.startswith("lmodp.paper"))}}))
"""


def test_core_packages_load_and_run_without_the_paper():
    code = _PROBE.format(packages=[f"lmodp.{p}" for p in CORE])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["modules"] > 60
    assert report["paper"] == []
