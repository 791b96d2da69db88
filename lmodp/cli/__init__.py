"""The ``lmodp`` command line: one module per subcommand, each exposing ``register``.

A subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed namespace, returning an exit code). Bad arguments,
``ValueError`` raised by the library for bad values, and files that cannot be read or written
(``OSError``; output paths are checked up front, :mod:`lmodp.cli._output`) end in a one-line
error and exit code 2; warnings are printed as one line each on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
import warnings
from typing import NoReturn, Sequence

from lmodp import __version__

SUBCOMMANDS = ("epsilon", "plot", "demo", "search", "finetune", "audit")


#: A negative number, exponent included: argparse's own pattern misses ``-1e-5`` and reads it as an option.
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class OneLineErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single line on stderr and exit code 2, and which
    reads ``--delta -1e-5`` as a (negative) value, so that its check names the allowed range."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> OneLineErrorParser:
    """The full parser, with every subcommand in :data:`SUBCOMMANDS` registered."""
    parser = OneLineErrorParser(
        prog="lmodp",
        description="Sound privacy accounting and noise design for DP fine-tuning (LMO-DP).",
    )
    parser.add_argument("--version", action="version", version=f"lmodp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrorParser)
    subparsers.required = True
    for name in SUBCOMMANDS:
        importlib.import_module(f"lmodp.cli.{name}").register(subparsers)
    _add_verbose(subparsers)
    return parser


def _add_verbose(subparsers: argparse._SubParsersAction) -> None:
    """``-v`` also after a subcommand (``lmodp search -v ...``, ``lmodp plot epsilon -v``), at every level."""
    for subparser in subparsers.choices.values():
        subparser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress at INFO level")
        for action in subparser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_verbose(action)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Show a warning as one line on stderr (no source location or code line)."""
    print(f"lmodp: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lmodp`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return int(args.func(args) or 0)
    except (ValueError, OSError) as err:
        print(f"lmodp {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
