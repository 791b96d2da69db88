"""Running ``lmodp`` in-process from a test: exit code, stdout and stderr."""

from __future__ import annotations

from lmodp.cli import main


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``lmodp ARGV``; a ``SystemExit`` (argparse) gives its code."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err
