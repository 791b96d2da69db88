"""``lmodp plot KIND``: draw one of lmodp's figures to a PNG/SVG/PDF file.

Every figure of mechanisms draws those named with ``-m/--mechanism SPEC`` (the one grammar of
:mod:`lmodp.cli._mechanism`; there is no default mechanism). The figures of a run (``epsilon``,
``compare``) need ``--sample-rate``, ``--steps`` and ``--delta``, or ``--paper-run NAME`` for those
not given (each output says which it took). The output file is checked before anything is
computed.

matplotlib (the ``plots`` extra) is imported only when a figure is drawn.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lmodp.accounting.registry import require_accountant_fits
from lmodp.cli._mechanism import parse_mechanism, spec_help
from lmodp.cli._output import CLI_PLD_FIX, writable_file
from lmodp.cli._run import add_accountant_argument, add_run_arguments, note_paper_run, run_from_args
from lmodp.mechanisms import Mechanism
from lmodp.mechanisms.describe import labelled

KINDS = ("density", "rdp", "epsilon", "compare", "training")


class _Once(argparse.Action):
    """An option that may be given only once (a figure of one mechanism): a repeat is an error,
    not a silent choice of the last."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # noqa: ANN001
        if getattr(namespace, f"_{self.dest}_given", False):
            parser.error(f"{option_string} given twice: this figure draws one mechanism")
        setattr(namespace, f"_{self.dest}_given", True)
        setattr(namespace, self.dest, values)


def _add_output(p: argparse.ArgumentParser, kind: str) -> None:
    p.add_argument("-o", "--out", type=Path, default=Path(f"lmodp-{kind}.png"), help="output file: .png, .svg or .pdf (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print {kind, path, paper_run, from_paper_run} as JSON instead of the path")


def _add_mechanisms(p: argparse.ArgumentParser, *, single: bool = False) -> None:
    p.epilog = spec_help()
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    if single:
        p.add_argument("-m", "--mechanism", action=_Once, required=True, metavar="SPEC", help="the mechanism, given once (required)")
    else:
        p.add_argument("-m", "--mechanism", action="append", required=True, metavar="SPEC", help="a mechanism; repeat for several (required)")


def _add_accounting(p: argparse.ArgumentParser) -> None:
    add_run_arguments(p)
    p.add_argument("--sensitivity", type=float, default=1.0, help="sensitivity Δ or L2 clip norm C (default: %(default)s)")
    p.add_argument("--geometry", nargs="+", choices=("scalar", "l2"), default=["scalar", "l2"], help="geometries to draw (default: both)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plot", help="draw a figure (density, rdp, epsilon, compare, training)", description=__doc__.split("\n\n")[0])
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True

    p = kinds.add_parser("density", help="noise densities (log scale), sample histograms, and ω's density")
    _add_mechanisms(p)
    p.add_argument("--samples", type=int, default=200_000, help="draws per mechanism for the histograms (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    _add_output(p, "density")

    p = kinds.add_parser("rdp", help="per-step RDP against the order α: exact vs the paper's MGF bound")
    _add_mechanisms(p, single=True)
    p.add_argument("--sensitivity", type=float, default=1.0, help="sensitivity Δ or L2 clip norm C (default: %(default)s)")
    _add_output(p, "rdp")

    p = kinds.add_parser("epsilon", help="ε against training steps or epochs")
    _add_mechanisms(p)
    _add_accounting(p)
    add_accountant_argument(p)
    p.add_argument("--pld", action="store_true", help="add PLD values where the lines are RDP, and the l2 interval (slower)")
    p.add_argument("--x", choices=("steps", "epochs"), default="steps", help="x axis (default: %(default)s)")
    _add_output(p, "epsilon")

    p = kinds.add_parser("compare", help="noise magnitude against target ε at equal budget")
    _add_mechanisms(p)
    p.add_argument("--targets", type=float, nargs="+", default=[0.3, 0.7, 2.0, 3.0], help="target ε values (default: %(default)s)")
    _add_accounting(p)
    p.add_argument("--magnitude", choices=("mean_abs", "std"), default="mean_abs", help="noise magnitude shown (default: %(default)s)")
    add_accountant_argument(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (shown on stderr only when it is a terminal)")
    _add_output(p, "compare")

    p = kinds.add_parser("training", help="loss / metric against ε from a fine-tune history (JSON file)")
    p.add_argument("history", type=Path, help="JSON file: a finetune history (columns or a list of per-step records)")
    p.add_argument("--x", choices=("epsilon", "step"), default="epsilon", help="x axis (default: %(default)s)")
    _add_output(p, "training")

    parser.set_defaults(func=run)


def _mechanisms(args: argparse.Namespace, *, rescaled: bool = False) -> dict[str, Mechanism]:
    """The ``-m`` mechanisms by their legend labels (``rescaled``: a figure that rescales each)."""
    parsed = [parse_mechanism(text, option="-m") for text in args.mechanism]
    return {spec.label(rescaled=rescaled): spec.mechanism for spec in parsed}


def run(args: argparse.Namespace) -> int:
    try:
        from lmodp import plots
    except ImportError as err:
        raise SystemExit(f"lmodp plot: error: {err}") from None

    from lmodp.plots._style import SAVE_FORMATS

    kind, out = args.kind, args.out
    if out.suffix.lower() not in SAVE_FORMATS:
        raise ValueError(f"--out must end in one of {SAVE_FORMATS}, got {str(out)!r}")
    writable_file(out, "--out")
    spec, taken = run_from_args(args, geometry=args.geometry[0]) if kind in ("epsilon", "compare") else (None, [])
    if kind == "density":
        if args.samples < 100:
            raise ValueError(f"--samples must be >= 100, got {args.samples}")
        plots.noise_density(_mechanisms(args), samples=args.samples, seed=args.seed, path=out)
    elif kind == "rdp":
        parsed = parse_mechanism(args.mechanism, option="-m")
        plots.rdp_curve(parsed.mechanism, sensitivity=args.sensitivity, label=parsed.label(), path=out)
    elif kind == "epsilon":
        plots.epsilon_curve(
            _mechanisms(args), spec, geometry=args.geometry, accountant=args.accountant, pld=args.pld, x=args.x, path=out
        )
    elif kind == "compare":
        shapes = _mechanisms(args, rescaled=True)
        named = {repr(label): m for label, m in labelled(shapes).items()}
        require_accountant_fits(args.accountant, named, args.geometry, fix=CLI_PLD_FIX)
        plots.compare_mechanisms(
            args.targets, spec, shapes=shapes, geometry=args.geometry, magnitude=args.magnitude, accountant=args.accountant,
            path=out, progress=not args.quiet,
        )
    else:
        if not args.history.is_file():
            raise ValueError(f"history file {str(args.history)!r} does not exist")
        try:
            history = json.loads(args.history.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"history file {str(args.history)!r} is not valid JSON: {err}") from None
        plots.training_curve(history, x=args.x, path=out)
    note_paper_run(f"plot {kind}", args, taken)
    if args.json:
        print(json.dumps({"kind": kind, "path": str(out), "paper_run": getattr(args, "paper_run", None), "from_paper_run": taken}))
    else:
        print(out)
    return 0
