"""``lmodp epsilon``: a sound (ε, δ) bound for a Poisson-subsampled noise mechanism run T times.

The mechanism is a SPEC (:mod:`lmodp.cli._mechanism`); the spellings of earlier releases
(``--sigma``, ``--scale``, the LMO flags, ``--params``, ``--paper-set``, ``--paper-exponential``,
``--mechanism {gaussian,laplace,lmo}`` with them) still work for one release: each is turned into
its SPEC, which a NOTE on stderr shows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from lmodp.accounting.api import account
from lmodp.accounting.registry import AUTO, require_accountant_fits, resolve_accountant
from lmodp.cli._mechanism import parse_mechanism, read_json_object, spec_help
from lmodp.cli._output import CLI_PLD_FIX
from lmodp.cli._run import add_accountant_argument, add_run_arguments, note_paper_run, run_from_args

#: The LMO flags of earlier releases (``--gamma-weight`` ...), deprecated for ``-m lmo:NAME=VALUE,...``.
LMO_FLAGS = (
    "gamma_weight",
    "gamma_shape",
    "gamma_scale",
    "exponential_weight",
    "exponential_rate",
    "uniform_weight",
    "uniform_low",
    "uniform_high",
)
#: What a bare ``--mechanism`` name of earlier releases meant with the flags of its family.
_OLD_FAMILIES = ("gaussian", "laplace", "lmo")

_EPILOG = f"""\
{spec_help()}
The run: --sample-rate, --steps and --delta, or --paper-run NAME for those not given (the paper's
run on NAME; the output says which it took).
Examples:
  lmodp epsilon -m gaussian:1 --sample-rate 0.01 --steps 1000 --delta 1e-5
  lmodp epsilon -m laplace:2 --geometry scalar --sample-rate 0.01 --steps 100 --delta 1e-6
  lmodp epsilon -m lmo:gamma_weight=1,gamma_shape=2,gamma_scale=1 --sample-rate 0.01 --steps 100 --delta 1e-6
  lmodp epsilon -m paper:0.3 --paper-run sst2   (the authors' eps=0.3 set, the paper's SST-2 run)
  lmodp epsilon -m paper-scale:my_lmo.json --paper-run sst2 --steps 500 --json
Deprecated for one release (a NOTE says what to write instead): --sigma, --scale, --gamma-weight ...
--uniform-high, --params, --paper-set, --paper-exponential, --mechanism {{gaussian,laplace,lmo}}.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``epsilon`` subcommand."""
    p = subparsers.add_parser(
        "epsilon",
        help="(epsilon, delta) of a Poisson-subsampled noise mechanism (Gaussian, Laplace, LMO, ...)",
        description="Compute a sound upper bound on epsilon for T Poisson-subsampled releases of a noise mechanism.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-m", "--mechanism", metavar="SPEC", help="the noise mechanism (required; SPEC below)")
    run_group = p.add_argument_group("training run")
    add_run_arguments(run_group)
    run_group.add_argument("--geometry", choices=("scalar", "l2"), default="l2", help="sensitivity geometry (default: l2)")
    run_group.add_argument("--sensitivity", type=float, default=1.0, help="sensitivity / clip norm (default: 1)")
    add_accountant_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (epsilon null: no finite bound)")
    old = p.add_argument_group()
    old.add_argument("--sigma", type=float, help=argparse.SUPPRESS)
    old.add_argument("--scale", type=float, help=argparse.SUPPRESS)
    old.add_argument("--params", type=Path, help=argparse.SUPPRESS)
    old.add_argument("--paper-set", type=float, help=argparse.SUPPRESS)
    old.add_argument("--paper-exponential", choices=("rate", "scale"), help=argparse.SUPPRESS)
    for name in LMO_FLAGS:
        old.add_argument(f"--{name.replace('_', '-')}", type=float, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _old_spelling(args: argparse.Namespace) -> tuple[str, str] | None:
    """(the flags of an earlier release as given, the SPEC they mean), or None where none is given."""
    lmo = {k: getattr(args, k) for k in LMO_FLAGS if getattr(args, k) is not None}
    given = [f"--{k.replace('_', '-')} {getattr(args, k):g}" for k in ("sigma", "scale", *LMO_FLAGS) if getattr(args, k) is not None]
    given += [f"--{k.replace('_', '-')} {getattr(args, k)}" for k in ("params", "paper_set", "paper_exponential") if getattr(args, k) is not None]
    if not given:
        return None
    if args.mechanism is not None:
        if args.mechanism not in _OLD_FAMILIES:
            raise ValueError(f"--mechanism {args.mechanism} takes no other mechanism flags; give only --mechanism SPEC")
        given.insert(0, f"--mechanism {args.mechanism}")
    sources = [args.params is not None, args.paper_set is not None, any(getattr(args, k) is not None for k in ("sigma", "scale")) or bool(lmo)]
    if sum(sources) > 1:
        raise ValueError("give one mechanism: --mechanism SPEC (the flags --sigma, --scale, --params, --paper-set are deprecated)")
    if args.params is not None:
        return " ".join(given), _params_spec(args.params, args.paper_exponential)
    if args.paper_set is not None:
        if args.paper_exponential is None:
            raise ValueError("--paper-set requires --paper-exponential {rate,scale}; better: --mechanism paper:EPS or paper-scale:EPS")
        return " ".join(given), f"{'paper' if args.paper_exponential == 'rate' else 'paper-scale'}:{args.paper_set!r}"
    families = [f for f, present in zip(_OLD_FAMILIES, (args.sigma is not None, args.scale is not None, bool(lmo))) if present]
    if len(families) != 1:
        raise ValueError("--paper-exponential reads a paper file or set: write --mechanism paper:... or paper-scale:...")
    family = families[0]
    if args.mechanism is not None and args.mechanism != family:
        raise ValueError(f"the {family} parameters do not fit --mechanism {args.mechanism}")
    if family == "gaussian":
        return " ".join(given), f"gaussian:{args.sigma!r}"
    if family == "laplace":
        return " ".join(given), f"laplace:{args.scale!r}"
    return " ".join(given), "lmo:" + ",".join(f"{k}={v!r}" for k, v in lmo.items())


def _params_spec(path: Path, exponential: str | None) -> str:
    """The SPEC of ``--params FILE`` (``paper:FILE``/``paper-scale:FILE`` for an authors' file)."""
    data = read_json_object(path, "--params")
    if "family" in data or isinstance(data.get("mechanism"), dict):
        return str(path)
    if exponential is None:
        raise ValueError(
            f"--params {path}: an authors' parameter file needs --paper-exponential {{rate,scale}}; better: "
            f"--mechanism paper:{path} (E_lambda read as a rate) or paper-scale:{path} (as a scale)"
        )
    return f"{'paper' if exponential == 'rate' else 'paper-scale'}:{path}"


def mechanism_spec(args: argparse.Namespace) -> tuple[str, str]:
    """The SPEC of ``args`` (``--mechanism``, or the one the deprecated flags mean) and the NOTE to
    print once it has run ("" without deprecated flags: a failed run prints its one-line error only)."""
    old = _old_spelling(args)
    if old is not None:
        return old[1], f"lmodp epsilon: NOTE: {old[0]} is deprecated (removed in the next release); write --mechanism {old[1]}"
    if args.mechanism is None:
        raise ValueError("give --mechanism SPEC (see lmodp epsilon --help); the example of earlier releases is -m paper:0.3 --paper-run sst2")
    return args.mechanism, ""


def run(args: argparse.Namespace) -> int:
    """Compute and print ε (text or ``--json``); returns the exit code."""
    text, deprecated = mechanism_spec(args)
    mechanism = parse_mechanism(text).mechanism
    spec, taken = run_from_args(args)
    require_accountant_fits(args.accountant, {repr(mechanism): mechanism}, [spec.geometry], fix=CLI_PLD_FIX)
    accountant = resolve_accountant(args.accountant, mechanism, spec.geometry)
    acc = account(mechanism, spec, accountant=accountant)
    eps, order = acc.get_epsilon_and_order(spec.delta)
    result = {
        "epsilon": eps if math.isfinite(eps) else None,
        "delta": spec.delta,
        "optimal_order": order if math.isfinite(order) else None,
        "pure_dp_bound": math.isinf(order) and math.isfinite(eps),
        "accountant": accountant,
        "accountant_requested": args.accountant,
        "mechanism": mechanism.to_dict(),
        "sample_rate": spec.sample_rate,
        "steps": spec.steps,
        "geometry": spec.geometry,
        "sensitivity": spec.sensitivity,
        "paper_run": args.paper_run,
        "from_paper_run": taken,
    }
    if deprecated:
        print(deprecated, file=sys.stderr)
    note_paper_run("epsilon", args, taken)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"mechanism:     {mechanism!r}")
    print(f"run:           sample_rate={spec.sample_rate:.6g}, steps={spec.steps}, geometry={spec.geometry}, sensitivity={spec.sensitivity:g}")
    unbounded = "" if math.isfinite(eps) else ": no finite bound for this noise at this sensitivity"
    print(f"epsilon:       {eps:.6g}  (delta={spec.delta:g}){unbounded}")
    if result["pure_dp_bound"]:
        print("optimal order: none (the pure-DP composition bound, smaller than every order's)")
    else:
        print(f"optimal order: {'n/a' if result['optimal_order'] is None else format(order, 'g')}")
    how = " (auto: the tightest sound accountant here)" if args.accountant == AUTO else ""
    print(f"accountant:    {accountant}{how}")
    return 0
