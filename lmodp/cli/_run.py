"""The run settings on the command line: ``--sample-rate``, ``--steps``, ``--delta`` (required, or
taken from one of the paper's runs with ``--paper-run NAME``), ``--geometry``, ``--sensitivity``
and ``--accountant``, read into a :class:`~lmodp.accounting.spec.RunSpec`.

There is no default run: a command that accounts a run needs q, T and δ. ``--paper-run sst2``
fills those not given from the paper's run on that dataset (:func:`lmodp.paper.paper_run`;
explicit flags override it), and the command says which it took (``from_paper_run``).
"""

from __future__ import annotations

import argparse
import re
import sys

from lmodp.accounting.registry import AUTO, accountant_choices
from lmodp.accounting.spec import REQUIRED, RunSpec

#: The help of ``--accountant`` wherever its default is ``auto``.
AUTO_HELP = "accountant (default: auto, the tightest sound one: PLD in the scalar geometry and for the Gaussian, RDP otherwise)"


def flags(names: list[str]) -> str:
    """``--sample-rate, --delta`` for ``["sample_rate", "delta"]``."""
    return ", ".join(f"--{name.replace('_', '-')}" for name in names)


def add_accountant_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--accountant`` with every registered name and ``auto`` (the default)."""
    parser.add_argument("--accountant", choices=accountant_choices(), default=AUTO, help=AUTO_HELP)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def paper_run_names() -> list[str]:
    """The datasets of the paper's runs (``SST-2``, ``QNLI``, ...), as ``--paper-run`` accepts them."""
    from lmodp.paper import PAPER_DATASETS

    return list(PAPER_DATASETS)


def paper_run_name(value: str) -> str:
    """The paper's dataset named by ``value`` (case, ``-`` and ``_`` ignored: ``sst2`` is ``SST-2``)."""
    names = {_key(name): name for name in paper_run_names()}
    if _key(value) not in names:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(paper_run_names())} (case and '-' ignored), got {value!r}")
    return names[_key(value)]


def add_run_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, required: bool = True) -> None:
    """``--sample-rate``, ``--steps``, ``--delta`` and ``--paper-run NAME``; ``required``: the first
    three, unless ``--paper-run`` supplies them (checked by :func:`run_from_args`)."""
    need = "required unless --paper-run" if required else "optional"
    parser.add_argument("--sample-rate", type=float, help=f"Poisson sampling rate q in (0, 1] ({need})")
    parser.add_argument("--steps", type=int, help=f"number of steps T >= 1 ({need})")
    parser.add_argument("--delta", type=float, help=f"target delta in (0, 1) ({need})")
    parser.add_argument(
        "--paper-run", type=paper_run_name, metavar="NAME",
        help=f"take q, T and delta not given from the LMO-DP paper's run on NAME: {', '.join(paper_run_names())} "
        "(e.g. sst2: q = 2048/67350, T = 192, delta = 1e-10)",
    )


def run_from_args(args: argparse.Namespace, *, geometry: str | None = None) -> tuple[RunSpec, list[str]]:
    """The run of ``args`` (its ``geometry`` unless one is given here), and the names of the settings
    taken from ``--paper-run``; ``ValueError`` naming the settings missing without it."""
    missing = [name for name in REQUIRED if getattr(args, name) is None]
    values = {name: getattr(args, name) for name in REQUIRED}
    if missing:
        if args.paper_run is None:
            raise ValueError(
                f"give {flags(missing)}, or --paper-run NAME to take them from the paper's run on NAME "
                f"({', '.join(paper_run_names())})"
            )
        from lmodp.paper import paper_run

        paper = paper_run(args.paper_run)
        values.update({name: getattr(paper, name) for name in missing})
    run = RunSpec(**values, geometry=args.geometry if geometry is None else geometry, sensitivity=args.sensitivity)
    return run, missing


def note_paper_run(command: str, args: argparse.Namespace, taken: list[str]) -> None:
    """Say on stderr which run settings were taken from ``--paper-run`` (nothing when none were)."""
    if taken:
        print(f"lmodp {command}: NOTE: {flags(taken)} taken from the paper's {args.paper_run} run (--paper-run)", file=sys.stderr)
