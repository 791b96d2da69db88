"""Progress bars: tqdm on stderr, shown only where someone is watching.

``progress_bar(..., enabled=True)`` is tqdm with ``disable=None``, which tqdm turns off when
its output stream (stderr) is not a terminal: redirected or piped runs, CI logs and tests stay
clean, and ``enabled=False`` (``--quiet`` on the command line) turns it off everywhere.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm


def progress_bar(iterable: Any = None, *, enabled: bool, **kwargs: Any) -> tqdm:
    """A tqdm bar (keyword arguments as for tqdm) that shows only when ``enabled`` and stderr is a terminal."""
    return tqdm(iterable, disable=None if enabled else True, **kwargs)
