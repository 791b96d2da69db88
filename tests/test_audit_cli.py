"""``lmodp audit`` run in-process (the generic --help / --json / one-line error checks are in test_cli.py)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from lmodp.cli import main


def test_json_for_a_consistent_sampler(capsys):
    """lmodp's own Gaussian sampler: exit 0 (a false alarm has probability <= 1e-3 at this confidence)."""
    code = main(["audit", "-m", "gaussian:1", "--samples", "20000", "--seed", "0", "--confidence", "0.999", "--json", "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["exceeds_accounted"] is False and out["epsilon_lower"] <= out["epsilon_accounted"]
    assert out["mechanism"] == out["sampler"] == {"family": "gaussian", "sigma": 1.0}
    assert out["accountant"] == "pld" and out["samples"] == 20000


def test_paper_scale_sampler_fails_with_exit_code_one(capsys):
    argv = ["audit", "-m", "paper:0.3", "--sampler", "paper-scale:0.3", "--delta", "1e-10", "--samples", "20000", "--seed", "0", "--no-progress"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "accounted epsilon:" in out and "exponential_rate=0.2" in out


def test_text_output_of_a_passing_audit(capsys):
    assert main(["audit", "-m", "laplace:1", "--geometry", "l2", "--samples", "2000", "--seed", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "consistent" in out and "rdp, one release, l2" in out


@pytest.mark.parametrize("argv", [["-m", "paper-scale:9"], ["-m", "gaussian:1", "--samples", "10"], ["-m", "nonsense"], ["-m", "gaussian:1", "--confidence", "1"]])
def test_bad_input_is_one_line_and_exit_two(capsys, argv):
    assert main(["audit", *argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err
