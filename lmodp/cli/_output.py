"""Output paths of the command line, checked before any long computation starts; and the
command-line wording of the fix for a refused accountant.

A path that cannot be written (a read-only or missing device, a file where a folder is needed,
no permission, a parent folder that does not exist) raises ``ValueError`` naming the option and
the reason, which the dispatcher turns into a one-line error and exit code 2. Nothing is created
by the checks: a missing parent folder is an error (a typo in ``--out`` does not create a tree
of folders), and an output folder is created only when the results are written.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

#: The command line's fix for ``--accountant pld`` with non-Gaussian noise in l2.
CLI_PLD_FIX = "use --accountant auto (PLD where it is tight, RDP otherwise) or --accountant rdp, or --geometry scalar"


def _cannot_write(option: str, path: Path, err: OSError) -> ValueError:
    return ValueError(f"{option}: cannot write to {str(path)!r}: {err.strerror or err}")


def _existing_parent(path: Path, option: str) -> Path:
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise ValueError(f"{option}: cannot write to {str(path)!r}: the folder {str(parent)!r} {what}")
    return parent


def writable_file(path: Path, option: str) -> Path:
    """``path`` once a file there is known to be writable (a file it creates to check is removed)."""
    _existing_parent(path, option)
    try:
        existed = path.exists()
        with open(path, "a"):
            pass
        if not existed:
            path.unlink()
    except OSError as err:
        raise _cannot_write(option, path, err) from None
    return path


def writable_folder(path: Path, option: str) -> Path:
    """``path`` once it is known to be (or, in an existing folder, to be creatable as) a folder
    in which files can be written; nothing is created."""
    try:
        if path.exists():
            if not path.is_dir():
                raise ValueError(f"{option}: cannot write to {str(path)!r}: it is a file, not a folder")
            with tempfile.TemporaryFile(dir=path):
                pass
        else:
            with tempfile.TemporaryFile(dir=_existing_parent(path, option)):
                pass
    except OSError as err:
        raise _cannot_write(option, path, err) from None
    return path
