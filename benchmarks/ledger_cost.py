"""The training ledger's cost per step: this ledger against the ledger of lmodp before it.

A run of T homogeneous steps with a budget (``max_epsilon`` = the run's own ε by the ledger's
accountant, so every step is checked and all T fit, as in ``finetune(target_epsilon=...)``): the ledger is built, charged T
times and asked for ε once at the end; the figure is the wall time over T (ms per step), setup
included. Settings: a MiniLM-sized fine-tune, q = 512/18,512, δ = 1e-6; Gaussian σ = 3.97 in l2
(the PLD's calibration to ε = 0.3 over 108 steps), the LMO-DP paper's task1 ε = 2 set in l2
(no tight PLD there: the RDP) and in the scalar geometry (where the PLD applies).

Baselines, measured in the same run: the ledger of lmodp at ``BASELINE`` (its ``budget.py`` and
both accountants, loaded from git), with the RDP and with the PLD accountant. It keeps one event
per step, steps a copy of the accountant one step ahead, and asks for ε after every step; the
PLD composes each step's PLD into the run's. Its cost grows with the step count, so where a run
would take more than ``--direct-limit`` seconds its cost is *estimated*: the marginal cost of one
step is measured at t = 10, 100, ... (the state of step t built directly) and integrated over
t = 1..T (piecewise linear in t); such figures are marked "est.".

Run: ``python benchmarks/ledger_cost.py`` (about 10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np

import lmodp
from lmodp import Gaussian
from lmodp.accounting.events import MechanismEvent
from lmodp.accounting.pld.compose import self_compose
from lmodp.paper import paper_mechanism
from lmodp.train.ledger import PrivacyLedger

ROOT = Path(__file__).resolve().parents[1]
#: The commit whose ledger is the baseline (the last one before the constant-cost ledger).
BASELINE = "340fdc9"
Q, DELTA = 512 / 18_512, 1e-6
STEP_COUNTS = (10, 1_000, 100_000)
CASES = (
    ("Gaussian σ = 3.97", Gaussian(3.97), "l2"),
    ("LMO (task1 ε = 2)", paper_mechanism(2, "task1", exponential="rate"), "l2"),
    ("LMO (task1 ε = 2)", paper_mechanism(2, "task1", exponential="rate"), "scalar"),
)


def baseline_module(path: str, name: str) -> types.ModuleType:
    """The module at ``path`` as of :data:`BASELINE`, executed under ``name``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BASELINE}:{path}"], capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType(name)
    module.__file__ = f"{BASELINE}:{path}"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


OLD_LEDGER = baseline_module("lmodp/train/budget.py", "baseline_budget").PrivacyLedger
OLD_ACCOUNTANTS = {
    "rdp": baseline_module("lmodp/accounting/rdp/accountant.py", "baseline_rdp").RDPAccountant,
    "pld": baseline_module("lmodp/accounting/pld/accountant.py", "baseline_pld").PLDAccountant,
}


def budget_of(mechanism, geometry: str, steps: int, accountant: str = "auto") -> float:
    """The run's own ε by ``accountant``, with room for the baseline's step-by-step rounding."""
    return lmodp.epsilon(mechanism, sample_rate=Q, steps=steps, delta=DELTA, geometry=geometry, accountant=accountant) * (1 + 1e-6)


def new_ledger_ms(mechanism, geometry: str, steps: int) -> tuple[float, float, str]:
    start = time.perf_counter()
    ledger = PrivacyLedger(mechanism=mechanism, sample_rate=Q, delta=DELTA, geometry=geometry,
                           max_epsilon=budget_of(mechanism, geometry, steps), on_exhausted="stop")
    for _ in range(steps):
        if ledger.charge_step() is None:
            raise RuntimeError("the budget refused a step of its own run")
    eps = ledger.epsilon()
    return (time.perf_counter() - start) / steps * 1e3, eps, ledger.accountant.name


def old_ledger(name: str, mechanism, geometry: str, budget: float):
    return OLD_LEDGER(OLD_ACCOUNTANTS[name](), mechanism=mechanism, sample_rate=Q, delta=DELTA, geometry=geometry,
                      max_epsilon=budget, on_exhausted="stop")


def old_direct_ms(name: str, mechanism, geometry: str, steps: int) -> float:
    start = time.perf_counter()
    ledger = old_ledger(name, mechanism, geometry, budget_of(mechanism, geometry, steps, name))
    for _ in range(steps):
        if ledger.charge_step() is None:
            raise RuntimeError("the baseline's budget refused a step of its own run")
    ledger.epsilon()
    return (time.perf_counter() - start) / steps * 1e3


def old_state_at(ledger, name: str, mechanism, geometry: str, done: int) -> None:
    """Put the baseline ledger (and its look-ahead) in the state after ``done`` steps, as its own
    steps would have left it: ``done`` separate events and the composed curve or PLDs."""
    acc = ledger.accountant
    event = MechanismEvent.validated(mechanism, sample_rate=Q, steps=1, sensitivity=1.0, geometry=geometry)
    acc.step(mechanism=mechanism, sample_rate=Q, steps=1, geometry=geometry)  # per-step curve / PLDs, cached
    acc._events = [dataclasses.replace(event) for _ in range(done)]
    if name == "rdp":
        acc._rdp = done * acc._curves[event.key()]
    else:
        for direction in acc._composed:
            acc._composed[direction] = self_compose(acc._steps[(event.key(), direction)], done, tail_mass=acc.tail_mass_truncation)
    ledger.steps = done
    ledger._reset_lookahead()


def old_marginal_ms(name: str, mechanism, geometry: str, done: int, budget: float, repeats: int = 2) -> float:
    ledger = old_ledger(name, mechanism, geometry, budget)
    old_state_at(ledger, name, mechanism, geometry, done)
    start = time.perf_counter()
    for _ in range(repeats):
        ledger.charge_step()
    return (time.perf_counter() - start) / repeats * 1e3


def old_estimated_ms(name: str, mechanism, geometry: str, steps: int) -> float:
    """Setup plus the marginal step cost integrated over t = 1..T (module docstring), per step."""
    budget = budget_of(mechanism, geometry, steps, name)
    start = time.perf_counter()
    old_ledger(name, mechanism, geometry, budget)
    setup = (time.perf_counter() - start) * 1e3
    points = [t for t in (1, 10, 100, 1_000, 10_000, 100_000) if t < steps] + [steps - 1]
    costs = [old_marginal_ms(name, mechanism, geometry, t, budget) for t in points]
    total = setup + float(np.trapezoid(costs, points)) + costs[0]
    return total / steps


def old_ms(name: str, mechanism, geometry: str, steps: int, direct_limit: float) -> tuple[float, bool]:
    """(ms per step, estimated?) of the baseline ledger with accountant ``name``."""
    probe = old_marginal_ms(name, mechanism, geometry, steps - 1, budget_of(mechanism, geometry, steps, name), repeats=1)
    if probe * steps / 1e3 <= direct_limit:
        return old_direct_ms(name, mechanism, geometry, steps), False
    return old_estimated_ms(name, mechanism, geometry, steps), True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--direct-limit", type=float, default=60.0, help="seconds a baseline run may take before it is estimated")
    parser.add_argument("--steps", type=int, nargs="+", default=list(STEP_COUNTS))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for _, mechanism, geometry in CASES:  # numba compilation / cache loading, not timed
        new_ledger_ms(mechanism, geometry, 2)
    print(f"q = {Q:.6g}, delta = {DELTA:g}, budget = the run's own epsilon; baseline: lmodp at {BASELINE}; ms per step")
    print()
    print("| noise | geometry | T | this ledger (accountant) | ε at the end | before, RDP ledger | before, PLD ledger | speed-up against the same accountant |")
    print("|---|---|---|---|---|---|---|---|")
    for label, mechanism, geometry in CASES:
        for steps in args.steps:
            ours, eps, used = new_ledger_ms(mechanism, geometry, steps)
            before = {}
            for name in ("rdp", "pld"):
                if name == "pld" and geometry == "l2" and not isinstance(mechanism, Gaussian):
                    before[name] = None
                    continue
                before[name] = old_ms(name, mechanism, geometry, steps, args.direct_limit)
            cells = ["n/a (no tight PLD)" if v is None else f"{v[0]:.3g}{' est.' if v[1] else ''}" for v in before.values()]
            ratio = before[used][0] / ours if before.get(used) else math.nan
            print(f"| {label} | {geometry} | {steps:,} | {ours:.3g} ({used.upper()}) | {eps:.6g} | {cells[0]} | {cells[1]} | {ratio:.3g}× |",
                  flush=True)


if __name__ == "__main__":
    main()
