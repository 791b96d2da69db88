"""Progress bars (tqdm on stderr) of the long commands: shown when stderr is a terminal, never
when it is redirected, never with ``--quiet``. ``lmodp demo`` is checked in tests/test_demo.py."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

pytest.importorskip("matplotlib")

COMPARE = ["plot", "compare", "-m", "gaussian:1", "--targets", "1", "4", "--sample-rate", "0.05", "--steps", "20",
           "--delta", "1e-5", "--geometry", "scalar"]


def _stderr_of(argv: list[str], *, terminal: bool) -> str:
    """Run ``python -m lmodp ARGV`` with stderr on a pseudo-terminal (or a pipe); return what it wrote there."""
    if not terminal:
        done = subprocess.run([sys.executable, "-m", "lmodp", *argv], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stderr
    controller, terminal_end = pty.openpty()
    fcntl.ioctl(terminal_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    process = subprocess.Popen([sys.executable, "-m", "lmodp", *argv], stdout=subprocess.DEVNULL, stderr=terminal_end)
    os.close(terminal_end)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.wait(timeout=300) == 0
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("progress")
    return {
        "terminal": _stderr_of([*COMPARE, "-o", str(folder / "a.png")], terminal=True),
        "quiet": _stderr_of([*COMPARE, "-o", str(folder / "b.png"), "--quiet"], terminal=True),
        "piped": _stderr_of([*COMPARE, "-o", str(folder / "c.png")], terminal=False),
    }


def test_plot_compare_shows_progress_on_a_terminal(outputs):
    assert "calibrating" in outputs["terminal"] and "2/2" in outputs["terminal"]


@pytest.mark.parametrize("case", ["quiet", "piped"])
def test_no_progress_when_quiet_or_redirected(outputs, case):
    assert "calibrating" not in outputs[case]
