r"""The LMO-DP paper's own privacy numbers, reproduced as its released code computed them.

NOT PRIVACY GUARANTEES. Every public function here emits a :class:`PaperNumberWarning`. They
exist to compare lmodp's sound accounting with what Yang et al. (arXiv 2405.18776) report; the
defects are listed in ``docs/accounting.md`` and in the paper notes.

The released pipeline (``check_privacy_and_statistics.py`` of the authors' code):

1. Per-step RDP, sensitivity 1, orders α = 2…128 (Mironov's Laplace RDP averaged over ω):
   R(α) = 1/(α−1)·log[(α·M(α−1) + (α−1)·M(−α)) / (2α−1)], M the MGF of
   ω = a1·Gamma(k, θ) + a3·Exp(rate λ) + a4·U[lo, hi]. The finite domain α − 1 < min(1/(a1 θ),
   λ/a3) is checked at α = 2 only. Past a pole, the plain-Python factors
   (1 − a1(α−1)θ)^(−k) and λ/(λ − a3(α−1)) turn negative (or complex for a non-integer k, or
   raise ZeroDivisionError exactly at a pole). The code maps an exception, a NaN (log of a
   negative number) and any R(α) ≤ 0 to +inf, but a product of two negative factors is positive
   and yields a finite garbage R(α), which is kept. :func:`paper_rdp_curve` reproduces this
   arithmetic operation by operation.
2. Conversion to (ε, δ) with the Canonne–Kamath–Steinke bound and the KL/TV shortcut
   (the tf-privacy ``get_privacy_spent``), δ = 1e-10, T = 1: :func:`paper_step_epsilon`.
3. "Overall ε": σ = √(2 ln(1.25/δ))/ε_step, then the sampled-Gaussian RDP with q = batch/N
   and T steps, converted the same way: :func:`paper_overall_epsilon`. It is a Gaussian's ε
   attached to the LMO run. The published numbers use the NOMINAL ε_step (the target in the
   file name), not the per-step ε computed in step 2: with orders 2…128 the task1 files give
   0.1574 / 0.2606 / 0.8230 / 1.3469 on SST-2 (the paper's 0.157 / 0.261 / 0.823 / 1.347),
   while the computed per-step ε would give 0.1564 / 0.2581 / 0.7890 / 1.3449. The table3 eps5
   file's ``overall_privacy`` 2.94911337199302 is reproduced to 1e-12 from ε_step = 5 with the
   default orders of the released ``RDPManager`` (1.1, 1.2, …, 10.9, 12, …, 127,
   :data:`PAPER_MANAGER_ORDERS`); its ``eps`` 4.921456706 at order 128 is step 2's output.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np

from lmodp._validation import require_delta, require_positive, require_sample_rate, require_steps
from lmodp.accounting.conversion import OrderGridEdgeWarning, rdp_to_epsilon
from lmodp.accounting.rdp.subsampling import sampled_gaussian_rdp
from lmodp.mechanisms import LMO
from lmodp.paper.params import PAPER_KEYS, lmo_to_paper_json, paper_parameters
from lmodp.paper.setting import PAPER_DELTA, paper_run

#: The released code's orders (``check_privacy_and_statistics.py``); its δ is :data:`~lmodp.paper.setting.PAPER_DELTA`.
PAPER_ORDERS = np.arange(2, 129, dtype=float)
#: The default orders of the released ``RDPManager`` (used for the table3 ``overall_privacy``).
PAPER_MANAGER_ORDERS = np.concatenate([1.0 + np.arange(1, 100) / 10.0, np.arange(12, 128, dtype=float)])


class PaperNumberWarning(UserWarning):
    """A number reproduced from the LMO-DP paper's released analysis: not a privacy guarantee."""


def _warn(what: str) -> None:
    warnings.warn(
        f"{what} reproduces the LMO-DP paper's released analysis; it is NOT a privacy guarantee "
        "(use lmodp.epsilon for a sound bound)",
        PaperNumberWarning,
        stacklevel=3,
    )


def _paper_dict(params: Mapping[str, Any] | LMO) -> dict[str, Any]:
    data = dict(params) if isinstance(params, Mapping) else lmo_to_paper_json(params)
    missing = [k for k in PAPER_KEYS if k not in data]
    if missing:
        raise ValueError(f"paper parameters lack keys {missing}")
    return data


def _released_mgf(p: Mapping[str, Any], t: int) -> Any:
    """M_ω(t) as the released code multiplies it: Python-float Gamma and Exponential factors
    (negative, complex or ZeroDivisionError past a pole) times a NumPy Uniform factor."""
    gamma = (1 - p["a1"] * t * p["G_theta"]) ** (-p["G_k"])
    exponential = p["E_lambda"] / (p["E_lambda"] - p["a3"] * t)
    u = p["a4"] * t
    uniform = (np.exp(u * p["U_b"]) - np.exp(u * p["U_a"])) / (u * (p["U_b"] - p["U_a"]))
    return gamma * exponential * uniform


def _released_rdp_at(p: Mapping[str, Any], alpha: int) -> float:
    """R(α) with the released code's operations and types; +inf where it produced inf."""
    try:
        ratio = (alpha * _released_mgf(p, alpha - 1) + (alpha - 1) * _released_mgf(p, -alpha)) / (2 * alpha - 1)
        rdp = (1 / (alpha - 1)) * np.log(ratio)
        return float(rdp) if rdp > 0 else math.inf
    except (ArithmeticError, TypeError):
        return math.inf


def paper_rdp_curve(params: Mapping[str, Any] | LMO) -> np.ndarray:
    """The released per-step RDP at α = 2…128 (+inf where the code produced inf, NaN, ≤ 0 or an error).

    ``params``: a paper JSON mapping (E_lambda read as a rate, as the released accountant does)
    or an :class:`~lmodp.mechanisms.LMO`. Raises ``ValueError`` where the released domain check
    (at α = 2 only) rejects the parameters.
    """
    _warn("paper_rdp_curve")
    p = _paper_dict(params)
    a1, a3, theta, lam = p["a1"], p["a3"], p["G_theta"], p["E_lambda"]
    if not (a1 * 1 < 1 / theta and a1 * -128 < 1 / theta and a3 * 1 < lam and a3 * -128 < lam):
        raise ValueError("the released accountant rejects these parameters (its domain check at alpha = 2 fails)")
    with np.errstate(all="ignore"):
        return np.array([_released_rdp_at(p, int(a)) for a in PAPER_ORDERS])


def _released_conversion(orders: np.ndarray, rdp: np.ndarray, delta: float) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OrderGridEdgeWarning)
        return rdp_to_epsilon(orders, rdp, delta=delta)


def paper_step_epsilon(params: Mapping[str, Any] | LMO, *, delta: float = PAPER_DELTA) -> tuple[float, float]:
    """The paper's per-step ε and its optimal order (q = 1, T = 1) — NOT a privacy guarantee."""
    _warn("paper_step_epsilon")
    delta = require_delta("delta", delta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaperNumberWarning)
        rdp = paper_rdp_curve(params)
    return _released_conversion(PAPER_ORDERS, rdp, delta)


def paper_overall_epsilon(
    step_epsilon: float,
    *,
    sample_rate: float,
    steps: int,
    delta: float = PAPER_DELTA,
    orders: np.ndarray = PAPER_ORDERS,
) -> tuple[float, float, float]:
    """The paper's "overall ε": (ε, optimal order, σ) of a sampled Gaussian with
    σ = √(2 ln(1.25/δ))/ε_step — NOT a privacy guarantee for the LMO run.

    Pass the nominal per-step ε to reproduce the published numbers; ``orders`` is
    :data:`PAPER_ORDERS` (task1 numbers) or :data:`PAPER_MANAGER_ORDERS` (table3 file)."""
    _warn("paper_overall_epsilon")
    step_epsilon = require_positive("step_epsilon", step_epsilon)
    q = require_sample_rate("sample_rate", sample_rate)
    steps = require_steps("steps", steps)
    delta = require_delta("delta", delta)
    sigma = math.sqrt(2 * math.log(1.25 / delta)) / step_epsilon
    rdp = sampled_gaussian_rdp(orders, noise_multiplier=sigma, sample_rate=q) * steps
    eps, order = _released_conversion(orders, rdp, delta)
    return eps, order, sigma


def paper_numbers(epsilon: float, group: str = "task1", *, dataset: str = "SST-2") -> dict[str, float]:
    """The full released pipeline for one shipped parameter file: the computed per-step ε and its
    order, and, from the nominal ``epsilon`` as the authors did, the Gaussian σ and the "overall ε"
    on ``dataset`` (batch 2048, orders 2…128) — NOT privacy guarantees."""
    _warn("paper_numbers")
    run = paper_run(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PaperNumberWarning)
        step_eps, step_order = paper_step_epsilon(paper_parameters(epsilon, group))
        overall, order, sigma = paper_overall_epsilon(epsilon, sample_rate=run.sample_rate, steps=run.steps)
    return {
        "step_epsilon": step_eps,
        "step_order": step_order,
        "sigma": sigma,
        "overall_epsilon": overall,
        "overall_order": order,
    }
