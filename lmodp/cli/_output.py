"""Output paths of the command line, checked before any long computation starts; and the
command-line wording of the fix for a refused accountant.

A path that cannot be written (a read-only or missing device, a file where a folder is needed,
no permission) raises ``ValueError`` naming the option and the reason, which the dispatcher
turns into a one-line error and exit code 2. Missing parent folders are created, as they would
be when the output is written.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

#: The command line's fix for ``--accountant pld`` with non-Gaussian noise in l2.
CLI_PLD_FIX = "use --accountant auto (PLD where it is tight, RDP otherwise) or --accountant rdp, or --geometry scalar"


def _cannot_write(option: str, path: Path, err: OSError) -> ValueError:
    return ValueError(f"{option}: cannot write to {str(path)!r}: {err.strerror or err}")


def writable_file(path: Path, option: str) -> Path:
    """``path`` once a file there is known to be writable (a file it creates to check is removed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "a"):
            pass
        if not existed:
            path.unlink()
    except OSError as err:
        raise _cannot_write(option, path, err) from None
    return path


def writable_folder(path: Path, option: str) -> Path:
    """``path`` once it is a folder (created if missing) in which files can be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise _cannot_write(option, path, err) from None
    return path
