"""``lmodp epsilon``: a sound (ε, δ) bound for a Poisson-subsampled noise mechanism run T times."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from lmodp.accounting.api import account
from lmodp.accounting.registry import AUTO, require_accountant_fits, resolve_accountant
from lmodp.cli._output import CLI_PLD_FIX
from lmodp.cli._run import add_accountant_argument, flags, not_given, run_from_args
from lmodp.mechanisms import LMO, Gaussian, Laplace, Mechanism, mechanism_from_dict
from lmodp.mechanisms.lmo import PAPER_KEYS
from lmodp.paper.params import paper_budgets, paper_mechanism
from lmodp.paper.setting import SST2

#: The built-in example: the LMO-DP paper's task1 ε=0.3 parameter set (E_lambda read as a
#: rate), RoBERTa on SST-2 as in the paper (:data:`lmodp.paper.setting.SST2`), L2 clipping C = 1.
#: The run settings are required with a mechanism and taken from SST-2 without one.
EXAMPLE_PAPER_SET = 0.3
# Keys of a paper file that are not parameters.
_PAPER_METADATA = ("distributions",)

_LMO_FLAGS = (
    "gamma_weight",
    "gamma_shape",
    "gamma_scale",
    "exponential_weight",
    "exponential_rate",
    "uniform_weight",
    "uniform_low",
    "uniform_high",
)

_EPILOG = f"""\
With no mechanism arguments it runs the built-in example: the LMO-DP paper's task1 eps=0.3
parameter set with E_lambda read as a rate, on SST-2 (sample rate 2048/67350, {SST2.steps} steps,
delta {SST2.delta:g}), L2 geometry with clip norm (sensitivity) 1, as in DP-SGD; the output
says which run settings came from the example. With a mechanism, --sample-rate, --steps and
--delta are required.
Examples:
  lmodp epsilon
  lmodp epsilon --sigma 1.0 --sample-rate 0.01 --steps 1000 --delta 1e-5
  lmodp epsilon --scale 2 --geometry scalar --sample-rate 0.01 --steps 100 --delta 1e-6   (Laplace)
  lmodp epsilon --gamma-weight 1 --gamma-shape 2 --gamma-scale 1 --sample-rate 0.01 --steps 100 --delta 1e-6   (LMO)
  lmodp epsilon --paper-set 2 --paper-exponential scale --sample-rate 0.0304083 --steps 192 --delta 1e-10 --json
  lmodp epsilon --params my_lmo.json ...  (an lmodp Mechanism.to_dict() file, a `lmodp search
                                           --out` result, or a paper file with --paper-exponential)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``epsilon`` subcommand."""
    p = subparsers.add_parser(
        "epsilon",
        help="(epsilon, delta) of a Poisson-subsampled Gaussian, Laplace or LMO mechanism",
        description="Compute a sound upper bound on epsilon for T Poisson-subsampled releases of a noise mechanism.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mech = p.add_argument_group("mechanism (default: the built-in example)")
    mech.add_argument(
        "--mechanism", choices=("gaussian", "laplace", "lmo"), help="noise family (default: implied by the parameters given)"
    )
    mech.add_argument("--sigma", type=float, help="Gaussian standard deviation")
    mech.add_argument("--scale", type=float, help="Laplace scale b")
    mech.add_argument("--params", type=Path, metavar="FILE.json", help="a mechanism of any registered family: its to_dict() JSON, a `lmodp search --out` result, or a paper file")
    mech.add_argument("--paper-set", type=float, metavar="EPS", help=f"a shipped task1 paper set, EPS in {paper_budgets('task1')}")
    mech.add_argument(
        "--paper-exponential",
        choices=("rate", "scale"),
        help="how to read a paper file's E_lambda (required with paper files and --paper-set)",
    )
    for name in _LMO_FLAGS:
        mech.add_argument(f"--{name.replace('_', '-')}", type=float, help=f"LMO {name.replace('_', ' ')}")
    run_group = p.add_argument_group("training run (required with a mechanism)")
    run_group.add_argument("--sample-rate", type=float, help=f"Poisson sampling rate q (built-in example: {SST2.sample_rate:.6g})")
    run_group.add_argument("--steps", type=int, help=f"number of steps T (built-in example: {SST2.steps})")
    run_group.add_argument("--delta", type=float, help=f"target delta (built-in example: {SST2.delta:g})")
    run_group.add_argument("--geometry", choices=("scalar", "l2"), default="l2", help="sensitivity geometry (default: l2)")
    run_group.add_argument("--sensitivity", type=float, default=1.0, help="sensitivity / clip norm (default: 1)")
    add_accountant_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _paper_file_mechanism(data: dict[str, Any], exponential: str | None) -> LMO:
    if exponential is None:
        raise ValueError("--paper-exponential {rate,scale} is required for the paper's parameter files")
    return LMO.from_paper_json(data, exponential=exponential)  # type: ignore[arg-type]


def _mechanism(args: argparse.Namespace) -> tuple[Mechanism, bool]:
    """The mechanism, and whether it is the built-in example."""
    lmo_flags = {k: getattr(args, k) for k in _LMO_FLAGS if getattr(args, k) is not None}
    sources = [args.params is not None, args.paper_set is not None, args.mechanism is not None]
    if sum(sources) > 1:
        raise ValueError("give only one of --mechanism, --params, --paper-set")
    if args.paper_set is not None:
        if args.paper_exponential is None:
            raise ValueError("--paper-set requires --paper-exponential {rate,scale}")
        return paper_mechanism(args.paper_set, "task1", exponential=args.paper_exponential), False
    if args.params is not None:
        try:
            data = json.loads(args.params.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"--params: cannot read {args.params}: {err}") from None
        if not isinstance(data, dict):
            raise ValueError("--params must hold a JSON object")
        if isinstance(data.get("mechanism"), dict):
            data = data["mechanism"]
        if "family" in data:
            try:
                return mechanism_from_dict(data), False
            except ValueError as err:
                raise ValueError(f"--params {args.params}: {err}") from None
        unknown = sorted(set(data) - set(PAPER_KEYS) - set(_PAPER_METADATA))
        if unknown:
            raise ValueError(
                f"--params {args.params}: unknown key(s) {unknown}; an lmodp file has \"family\" and that family's "
                f"parameters (Mechanism.to_dict()), a paper file the keys {list(PAPER_KEYS)}"
            )
        return _paper_file_mechanism(data, args.paper_exponential), False
    given = {"gaussian": args.sigma is not None, "laplace": args.scale is not None, "lmo": bool(lmo_flags)}
    families = [f for f, present in given.items() if present]
    if len(families) > 1:
        raise ValueError("--sigma (Gaussian), --scale (Laplace) and the LMO flags exclude each other")
    family = args.mechanism if args.mechanism is not None else (families[0] if families else None)
    if families and families[0] != family:
        raise ValueError(f"the {families[0]} parameters do not fit --mechanism {family}")
    if family == "gaussian":
        if args.sigma is None:
            raise ValueError("--mechanism gaussian requires --sigma")
        return Gaussian(args.sigma), False
    if family == "laplace":
        if args.scale is None:
            raise ValueError("--mechanism laplace requires --scale")
        return Laplace(args.scale), False
    if family == "lmo":
        return LMO(**lmo_flags), False
    return paper_mechanism(EXAMPLE_PAPER_SET, "task1", exponential="rate"), True


def run(args: argparse.Namespace) -> int:
    """Compute and print ε (text or ``--json``); returns the exit code."""
    mechanism, example = _mechanism(args)
    missing = not_given(args)
    if missing and not example:
        example_flags = " ".join(f"{flags([name])} {getattr(SST2, name):.6g}" for name in ("sample_rate", "steps", "delta"))
        raise ValueError(f"give the run settings {flags(missing)} (the paper's SST-2 run, for instance, is {example_flags})")
    spec, defaulted = run_from_args(args)
    require_accountant_fits(args.accountant, {repr(mechanism): mechanism}, [spec.geometry], fix=CLI_PLD_FIX)
    accountant = resolve_accountant(args.accountant, mechanism, spec.geometry)
    acc = account(mechanism, spec, accountant=accountant)
    eps, order = acc.get_epsilon_and_order(spec.delta)
    result = {
        "epsilon": eps,
        "delta": spec.delta,
        "optimal_order": order if math.isfinite(order) else None,
        "pure_dp_bound": math.isinf(order),
        "accountant": accountant,
        "accountant_requested": args.accountant,
        "mechanism": mechanism.to_dict(),
        "sample_rate": spec.sample_rate,
        "steps": spec.steps,
        "geometry": spec.geometry,
        "sensitivity": spec.sensitivity,
        "builtin_example": example,
        "defaulted": defaulted,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    if example:
        print("built-in example: LMO-DP paper task1 eps=0.3 set (E_lambda as a rate), SST-2 run")
    if defaulted:
        print(f"NOTE: {flags(defaulted)} not given: taken from the built-in example (the paper's SST-2 run)")
    print(f"mechanism:     {mechanism!r}")
    print(f"run:           sample_rate={spec.sample_rate:.6g}, steps={spec.steps}, geometry={spec.geometry}, sensitivity={spec.sensitivity:g}")
    print(f"epsilon:       {eps:.6g}  (delta={spec.delta:g})")
    if math.isinf(order):
        print("optimal order: none (the pure-DP composition bound, smaller than every order's)")
    else:
        print(f"optimal order: {'n/a' if result['optimal_order'] is None else format(order, 'g')}")
    how = " (auto: the tightest sound accountant here)" if args.accountant == AUTO else ""
    print(f"accountant:    {accountant}{how}")
    return 0
