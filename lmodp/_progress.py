"""Progress on stderr: a tqdm bar on a terminal, a few plain lines elsewhere.

``progress_bar(..., enabled=True)`` is a tqdm bar where stderr is a terminal. Where it is not
(a log file, a pipe, CI) it is a :class:`LineProgress`: plain lines, never carriage returns,
``desc: n/total unit (t s), what it is doing`` at most every ``every`` seconds (10 by default)
and one when it ends if any was written, so that a long redirected run still shows that it is
alive and a short one writes nothing. ``every=0`` writes a line for each step that starts (a
new ``set_postfix_str``) and each update: what ``lmodp demo`` prints. ``enabled=False``
(``--quiet`` on the command line) shows nothing anywhere.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TextIO

from tqdm.auto import tqdm

#: Seconds between two lines of a redirected progress report.
LINE_INTERVAL = 10.0


class LineProgress:
    """The part of tqdm's interface that lmodp uses, reported as plain lines on ``stream``."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        initial: float = 0,
        every: float = LINE_INTERVAL,
        stream: TextIO | None = None,
        **_ignored: Any,
    ) -> None:
        self.iterable = iterable
        self.total = total if total is not None or iterable is None else _length(iterable)
        self.desc = desc
        self.unit = unit
        self.every = every
        self.stream = stream
        self.n = initial
        self.postfix = ""
        self._started = self._last = time.monotonic()
        self._written = False
        self._named_steps = False

    def _write(self, note: str = "") -> None:
        elapsed = time.monotonic() - self._started
        count = f"{self.n:g}" if self.total is None else f"{self.n:g}/{self.total:g}"
        what = f", {self.postfix}" if self.postfix else ""
        stream = self.stream or sys.stderr
        stream.write(f"{self.desc}: {count} {self.unit} ({elapsed:.0f} s){what}{note}\n")
        stream.flush()
        self._last = time.monotonic()
        self._written = True

    def update(self, n: float = 1) -> None:
        """Count ``n`` more; write a line if ``every`` seconds have passed since the last (with
        ``every=0``, where no step is named by :meth:`set_postfix_str`, at every update)."""
        self.n += n
        if self.every == 0 and self._named_steps:
            return
        if time.monotonic() - self._last >= self.every:
            self._write()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """What is being done now; with ``every=0`` a line saying so (each step once)."""
        changed = s != self.postfix
        self.postfix = s
        if changed and self.every == 0:
            self._named_steps = True
            self._write()

    def set_postfix(self, **values: Any) -> None:
        """As :meth:`set_postfix_str` with ``key=value`` pairs."""
        self.set_postfix_str(", ".join(f"{k}={v}" for k, v in values.items()))

    def close(self) -> None:
        """A last line, if any was written."""
        if self._written:
            self.postfix = ""
            self._write(", done")
            self._written = False

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update()
        self.close()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _length(iterable: Iterable[Any]) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal."""
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


#: What :func:`progress_bar` returns.
ProgressBar = tqdm | LineProgress


def progress_bar(iterable: Any = None, *, enabled: bool, every: float | None = None, **kwargs: Any) -> ProgressBar:
    """A tqdm bar (keyword arguments as for tqdm) when ``enabled`` and stderr is a terminal; a
    :class:`LineProgress` writing a line at most every ``every`` seconds (default
    :data:`LINE_INTERVAL`) when stderr is not one; nothing when not ``enabled``."""
    if enabled and not stderr_is_terminal():
        return LineProgress(iterable, every=LINE_INTERVAL if every is None else every, **kwargs)
    return tqdm(iterable, disable=None if enabled else True, **kwargs)
