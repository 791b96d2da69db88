"""Warnings reach the command line as one line each on stderr, with advice that can be acted on;
the PLD accountant gives a finite ε (or a stated fallback) at any δ."""

from __future__ import annotations

from lmodp.cli import main


def test_order_grid_edge_warning_is_one_line(capsys):
    argv = ["epsilon", "-m", "laplace:0.1", "--sample-rate", "0.01", "--steps", "1000", "--delta", "1e-5"]
    assert main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("lmodp: warning: the optimal Rényi order 1.05 is the smallest")
    assert "RDPAccountant(orders=...)" in err[0]


def test_pld_at_tiny_delta_prints_a_finite_epsilon(capsys):
    argv = ["epsilon", "-m", "gaussian:1", "--sample-rate", "0.01", "--steps", "1000", "--delta", "1e-16", "--accountant", "pld"]
    assert main(argv) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("epsilon:"))
    assert float(line.split()[1]) < 6.0


def test_pld_fallback_is_stated_in_one_line(capsys):
    argv = ["epsilon", "-m", "gaussian:1", "--geometry", "scalar", "--sample-rate", "0.01", "--steps", "10", "--delta", "1e-300",
            "--accountant", "pld"]  # the Gaussian: Laplace has a pure-DP bound, reported without a fallback
    assert main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("lmodp: warning: delta=1e-300 is below what the PLD resolves")
    assert all(line.startswith("lmodp: warning: ") for line in err)  # the RDP bound may add its own
