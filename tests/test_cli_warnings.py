"""Warnings reach the command line as one line each on stderr, with advice that can be acted on."""

from __future__ import annotations

from lmodp.cli import main


def test_order_grid_edge_warning_is_one_line(capsys):
    argv = ["epsilon", "--scale", "0.1", "--sample-rate", "0.01", "--steps", "1000", "--delta", "1e-5"]
    assert main(argv) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("lmodp: warning: the optimal Rényi order 1.05 is the smallest")
    assert "RDPAccountant(orders=...)" in err[0]
