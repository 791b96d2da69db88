"""``lmodp audit``: check a noise sampler against the accounted ε of its mechanism (one release).

Exit code 0 when the ε lower bound stays at or below the accounted ε, 1 when it exceeds it (the
noise drawn is not the noise accounted), 2 on bad input. torch (the ``train`` extra) is imported
only when the audit runs.
"""

from __future__ import annotations

import argparse
import json

from lmodp.accounting.registry import require_accountant_fits
from lmodp.cli._mechanism import parse_mechanism, spec_help
from lmodp.cli._output import CLI_PLD_FIX
from lmodp.cli._run import add_accountant_argument

_EPILOG = f"""\
{spec_help()}
Exit code: 0 if the lower bound is at most the accounted epsilon, 1 if it exceeds it, 2 on bad input.
Examples:
  lmodp audit -m gaussian:1 --delta 1e-5
  lmodp audit -m laplace:1 --geometry l2 --samples 1000000
  lmodp audit -m paper:0.3 --sampler paper-scale:0.3 --delta 1e-10      (the paper's sampler: caught)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``audit`` subcommand."""
    p = subparsers.add_parser(
        "audit",
        help="empirical epsilon lower bound of a noise sampler, against the accounted epsilon",
        description=(
            "Draw noise from a sampler at two neighbouring inputs, test the outputs with the privacy loss of\n"
            "the accounted density, and report a Clopper-Pearson epsilon lower bound beside the accounted\n"
            "single-release epsilon."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-m", "--mechanism", required=True, metavar="SPEC", help="the accounted mechanism")
    p.add_argument("--sampler", metavar="SPEC", help="draw the noise from this mechanism's torch sampler instead")
    p.add_argument("--delta", type=float, default=1e-5, help="delta (default: %(default)g)")
    p.add_argument("--geometry", choices=("scalar", "l2"), default="scalar", help="sensitivity geometry (default: scalar)")
    p.add_argument("--sensitivity", type=float, default=1.0, help="sensitivity / clip norm (default: 1)")
    p.add_argument("--samples", type=int, default=10**7, help="evaluation outputs per input (default: %(default)s)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence of the lower bound (default: %(default)s)")
    p.add_argument("--seed", type=int, help="seed of the draws (default: random)")
    add_accountant_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the audit and print the result; returns the exit code."""
    mechanism = parse_mechanism(args.mechanism, option="-m").mechanism
    sampled = None if args.sampler is None else parse_mechanism(args.sampler, option="--sampler").mechanism
    if args.samples < 100:
        raise ValueError(f"--samples must be >= 100, got {args.samples}")
    require_accountant_fits(args.accountant, {repr(mechanism): mechanism}, [args.geometry], fix=CLI_PLD_FIX)
    try:
        from lmodp.audit import audit_mechanism
        from lmodp.train.noise import torch_sampler
    except ImportError as err:
        raise ValueError(f"the audit needs the train extra (torch): {err}") from None

    result = audit_mechanism(
        mechanism,
        delta=args.delta,
        geometry=args.geometry,
        sensitivity=args.sensitivity,
        samples=args.samples,
        confidence=args.confidence,
        sampler=None if sampled is None else torch_sampler(sampled),
        audit_seed=args.seed,
        accountant=args.accountant,
        progress=not args.no_progress,
    )
    code = 1 if result.exceeds_accounted else 0
    if args.json:
        print(json.dumps({**result.to_dict(), "sampler": (sampled or mechanism).to_dict()}))
        return code
    print(f"accounted mechanism:  {mechanism!r}")
    print(f"sampler:              {'its own torch sampler' if sampled is None else repr(sampled)}")
    print(
        f"test:                 privacy loss >= {result.threshold:.6g} on {result.coordinates} coordinate(s), "
        f"{result.samples} outputs per input"
    )
    print(f"error rates:          false positive {result.false_positive_rate:.4g}, false negative {result.false_negative_rate:.4g}")
    print(f"epsilon lower bound:  {result.epsilon_lower:.4f}  (confidence {result.confidence:g}, delta {result.delta:g})")
    print(
        f"accounted epsilon:    {result.epsilon_accounted:.4f}  ({result.accountant}, one release, "
        f"{result.geometry}, sensitivity {result.sensitivity:g})"
    )
    if result.exceeds_accounted:
        print("verdict:              FAIL: the lower bound exceeds the accounted epsilon; the noise drawn is not the noise accounted")
    else:
        print("verdict:              consistent: the lower bound does not exceed the accounted epsilon")
    return code
