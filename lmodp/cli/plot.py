"""``lmodp plot KIND``: draw one of lmodp's figures to a PNG/SVG/PDF file.

Mechanisms are given with ``-m/--mechanism SPEC`` (repeatable), where SPEC is one of
``gaussian:SIGMA``, ``laplace:SCALE``, ``paper:EPS`` (the authors' released task1 set for
per-step ε = EPS, with E_lambda read as a RATE, as the paper's accountant reads it;
``paper:EPS:GROUP`` picks another group), or the path of a JSON file holding a mechanism
(``Mechanism.to_dict()`` output) or a search result (its ``"mechanism"`` entry). The
accounting settings not given are the paper's SST-2 run (q = 2048/67350, T = 192, δ = 1e-10),
and every output says which were taken from it. The output file is checked before anything is
computed.

matplotlib (the ``plots`` extra) is imported only when a figure is drawn.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lmodp.accounting.registry import require_accountant_fits
from lmodp.cli._output import CLI_PLD_FIX, writable_file
from lmodp.cli._run import add_accountant_argument, flags, run_from_args
from lmodp.mechanisms import Gaussian, Laplace, Mechanism, describe, mechanism_from_dict
from lmodp.mechanisms.describe import labelled
from lmodp.paper.setting import SST2, SST2_TEXT
from lmodp.paper.params import comparison_shapes

KINDS = ("density", "rdp", "epsilon", "compare", "training")
SPEC_HELP = f"""\
SPEC: gaussian:SIGMA | laplace:SCALE | paper:EPS[:GROUP] (the authors' released set, E_lambda
read as a rate, as their accountant reads it) | paper-scale:EPS[:GROUP] (E_lambda read as a scale,
as their sampler reads it) | FILE.json (a Mechanism.to_dict() object or a search result).
Accounting settings not given: the paper's SST-2 run, {SST2_TEXT}
(a NOTE on stderr and "defaulted" in --json say which)."""


def parse_mechanism(spec: str) -> Mechanism:
    """A mechanism from a command-line SPEC (see the module docstring)."""
    family, _, rest = spec.partition(":")
    forms = {"gaussian": "gaussian:SIGMA", "laplace": "laplace:SCALE", "paper": "paper:EPS[:GROUP]", "paper-scale": "paper-scale:EPS[:GROUP]"}
    if family in forms:
        number, _, group = rest.partition(":")
        try:
            if group and not family.startswith("paper"):
                raise ValueError(group)
            value = float(number)
        except ValueError:
            raise ValueError(f"--mechanism {spec!r}: write {forms[family]} with a number, e.g. {family}:0.7") from None
        try:
            if family == "gaussian":
                return Gaussian(value)
            if family == "laplace":
                return Laplace(value)
            from lmodp.paper.params import paper_mechanism

            return paper_mechanism(value, group or "task1", exponential="rate" if family == "paper" else "scale")
        except ValueError as err:
            raise ValueError(f"--mechanism {spec!r}: {err}") from None
    path = Path(spec)
    if path.suffix.lower() == ".json" and not path.is_file():
        raise ValueError(f"--mechanism {spec!r}: no such file")
    if not path.is_file():
        raise ValueError(
            f"--mechanism must be gaussian:SIGMA, laplace:SCALE, paper:EPS[:GROUP], paper-scale:EPS[:GROUP] or a JSON "
            f"file, got {spec!r}"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"--mechanism {spec!r} is not valid JSON: {err}") from None
    if isinstance(data, dict) and isinstance(data.get("mechanism"), dict):
        data = data["mechanism"]
    if not isinstance(data, dict):
        raise ValueError(f"--mechanism {spec!r} must hold a JSON object")
    return mechanism_from_dict(data)


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
    p.add_argument("--json", action="store_true", help="print {kind, path, defaulted} as JSON instead of the path")


def _add_mechanisms(p: argparse.ArgumentParser, *, default: list[str] | None, single: bool = False, default_help: str = "") -> None:
    p.epilog = SPEC_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    if single:
        p.add_argument(
            "-m", "--mechanism", action=_Once, default=default[0] if default else None, required=default is None, metavar="SPEC",
            help="the mechanism, given once (default: %(default)s)",
        )
    else:
        shown = default_help or " ".join(default or [])
        p.add_argument("-m", "--mechanism", action="append", metavar="SPEC", help=f"a mechanism; repeat for several (default: {shown})")
        p.set_defaults(default_mechanisms=default)


def _add_accounting(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sample-rate", type=float, help="Poisson sampling rate q (default: SST-2's 2048/67350)")
    p.add_argument("--steps", type=int, help=f"number of steps T (default: SST-2's {SST2.steps})")
    p.add_argument("--delta", type=float, help=f"δ (default: SST-2's {SST2.delta:g})")
    p.add_argument("--sensitivity", type=float, default=1.0, help="sensitivity Δ or L2 clip norm C (default: %(default)s)")
    p.add_argument("--geometry", nargs="+", choices=("scalar", "l2"), default=["scalar", "l2"], help="geometries to draw (default: both)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plot", help="draw a figure (density, rdp, epsilon, compare, training)", description=__doc__.split("\n\n")[0])
    kinds = parser.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True

    p = kinds.add_parser("density", help="noise densities (log scale), sample histograms, and ω's density")
    _add_mechanisms(p, default=["paper:0.7", "gaussian:2", "laplace:1.5"])
    p.add_argument("--samples", type=int, default=200_000, help="draws per mechanism for the histograms (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    _add_output(p, "density")

    p = kinds.add_parser("rdp", help="per-step RDP against the order α: exact vs the paper's MGF bound")
    _add_mechanisms(p, default=["paper:0.7"], single=True)
    p.add_argument("--sensitivity", type=float, default=1.0, help="sensitivity Δ or L2 clip norm C (default: %(default)s)")
    _add_output(p, "rdp")

    p = kinds.add_parser("epsilon", help="ε against training steps or epochs")
    _add_mechanisms(p, default=["paper:0.7", "gaussian:10"])
    _add_accounting(p)
    add_accountant_argument(p)
    p.add_argument("--pld", action="store_true", help="add PLD values where the lines are RDP, and the l2 interval (slower)")
    p.add_argument("--x", choices=("steps", "epochs"), default="steps", help="x axis (default: %(default)s)")
    _add_output(p, "epsilon")

    p = kinds.add_parser("compare", help="noise magnitude against target ε at equal budget")
    _add_mechanisms(p, default=None, default_help="Gaussian, Laplace and the LMO shape of the paper's released ε=0.7 set")
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


def spec_label(spec: str, mechanism: Mechanism, *, rescaled: bool = False) -> str:
    """The legend label of a ``-m`` SPEC: a paper set by its name (the paper's ε = 0.7 set), the
    others described; ``rescaled`` (a figure that rescales each mechanism): the shape only."""
    family, _, rest = spec.partition(":")
    if family in ("paper", "paper-scale"):
        budget, _, group = rest.partition(":")
        name = f"the paper's ε = {float(budget):g} set" + ("" if group in ("", "task1") else f" ({group})")
        how = "E_λ a rate" if family == "paper" else "E_λ a scale"
        return f"LMO shape of {name}" if rescaled else f"{name} (LMO, {how})"
    if rescaled:
        return {"gaussian": "Gaussian", "laplace": "Laplace"}.get(mechanism.family, f"shape of {describe(mechanism)}")
    return describe(mechanism)


def _mechanisms(args: argparse.Namespace, *, rescaled: bool = False) -> dict[str, Mechanism]:
    specs = args.mechanism or args.default_mechanisms
    parsed = {spec: parse_mechanism(spec) for spec in specs}
    return {spec_label(spec, m, rescaled=rescaled): m for spec, m in parsed.items()}


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
    spec, defaulted = run_from_args(args, geometry=args.geometry[0]) if kind in ("epsilon", "compare") else (None, [])
    if kind == "density":
        if args.samples < 100:
            raise ValueError(f"--samples must be >= 100, got {args.samples}")
        plots.noise_density(_mechanisms(args), samples=args.samples, seed=args.seed, path=out)
    elif kind == "rdp":
        mechanism = parse_mechanism(args.mechanism)
        plots.rdp_curve(mechanism, sensitivity=args.sensitivity, label=spec_label(args.mechanism, mechanism), path=out)
    elif kind == "epsilon":
        plots.epsilon_curve(
            _mechanisms(args), spec, geometry=args.geometry, accountant=args.accountant, pld=args.pld, x=args.x, path=out
        )
    elif kind == "compare":
        shapes = _mechanisms(args, rescaled=True) if args.mechanism else comparison_shapes()
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
    if defaulted:
        print(f"lmodp plot {kind}: NOTE: {flags(defaulted)} not given: used the paper's SST-2 run ({SST2_TEXT})", file=sys.stderr)
    if args.json:
        print(json.dumps({"kind": kind, "path": str(out), "defaulted": defaulted}))
    else:
        print(out)
    return 0
