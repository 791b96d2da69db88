"""The run settings on the command line: ``--sample-rate``, ``--steps``, ``--delta``,
``--geometry``, ``--sensitivity`` and ``--accountant``, read into a :class:`~lmodp.accounting.spec.RunSpec`.

Subcommands with an example run take the settings not given from the paper's SST-2 run
(:data:`lmodp.paper.setting.SST2`) and say which (``defaulted``).
"""

from __future__ import annotations

import argparse

from lmodp.accounting.registry import AUTO, accountant_choices
from lmodp.accounting.spec import REQUIRED, RunSpec
from lmodp.paper.setting import SST2

#: The help of ``--accountant`` wherever its default is ``auto``.
AUTO_HELP = "accountant (default: auto, the tightest sound one: PLD in the scalar geometry and for the Gaussian, RDP otherwise)"


def flags(names: list[str]) -> str:
    """``--sample-rate, --delta`` for ``["sample_rate", "delta"]``."""
    return ", ".join(f"--{name.replace('_', '-')}" for name in names)


def add_accountant_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--accountant`` with every registered name and ``auto`` (the default)."""
    parser.add_argument("--accountant", choices=accountant_choices(), default=AUTO, help=AUTO_HELP)


def not_given(args: argparse.Namespace) -> list[str]:
    """The required run settings (:data:`~lmodp.accounting.spec.REQUIRED`) missing from ``args``."""
    return [name for name in REQUIRED if getattr(args, name) is None]


def run_from_args(args: argparse.Namespace, *, geometry: str | None = None) -> tuple[RunSpec, list[str]]:
    """The run of ``args`` (its ``geometry`` unless one is given here), the required settings not
    given taken from :data:`~lmodp.paper.setting.SST2`; and the names of those taken."""
    missing = not_given(args)
    values = {name: getattr(SST2 if name in missing else args, name) for name in REQUIRED}
    run = RunSpec(**values, geometry=args.geometry if geometry is None else geometry, sensitivity=args.sensitivity)
    return run, missing
