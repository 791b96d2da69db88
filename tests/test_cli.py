"""Cross-cutting checks of the command line, over EVERY subcommand in ``SUBCOMMANDS``.

Each leaf command (``lmodp epsilon``, ``lmodp plot density``, ...) must have ``--help``,
offer ``--json``, and end bad arguments (unknown flag, unparsable value, value out of range)
with exactly one line on stderr and exit code 2. Subcommand-specific behaviour is tested in
each subcommand's own test file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from lmodp.cli import SUBCOMMANDS, build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    children = _subparsers(parser)
    if not children:
        return [(prefix, parser)]
    return [leaf for name, child in children.items() for leaf in _leaves(child, prefix + (name,))]


LEAVES = _leaves(build_parser())
LEAF_IDS = [" ".join(argv) for argv, _ in LEAVES]

# Values outside the allowed range of options that several subcommands share.
OUT_OF_RANGE = {
    "--sample-rate": "1.5",
    "--delta": "2",
    "--steps": "-3",
    "--sensitivity": "-1",
    "--sigma": "-1",
    "--budgets": "-1",
    "--targets": "-1",
    "--target-epsilon": "-1",
    "--epsilon": "-1",
}


def _typed_options(parser: argparse.ArgumentParser) -> list[str]:
    return [
        a.option_strings[-1]
        for a in parser._actions
        if a.option_strings and a.type in (int, float) and not isinstance(a, argparse._HelpAction)
    ]


def _assert_one_line_error(capsys, argv: list[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, f"{argv}: exit code {code}, stderr {err!r}"
    assert len(err.splitlines()) == 1, f"{argv}: stderr is not one line: {err!r}"
    assert "error" in err


def test_every_subcommand_is_registered():
    assert set(SUBCOMMANDS) == set(_subparsers(build_parser()))
    assert {"epsilon", "plot", "demo"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("argv", [argv for argv, _ in LEAVES] + [(name,) for name in SUBCOMMANDS], ids=LEAF_IDS + list(SUBCOMMANDS))
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    assert f"usage: lmodp {' '.join(argv)}" in capsys.readouterr().out


@pytest.mark.parametrize("argv,parser", LEAVES, ids=LEAF_IDS)
def test_offers_json(argv, parser):
    assert "--json" in parser._option_string_actions, f"lmodp {' '.join(argv)} has no --json"


@pytest.mark.parametrize("argv", [argv for argv, _ in LEAVES], ids=LEAF_IDS)
def test_unknown_option(capsys, argv):
    _assert_one_line_error(capsys, [*argv, "--no-such-option"])


@pytest.mark.parametrize(
    "argv,option",
    [(argv, opt) for argv, parser in LEAVES for opt in _typed_options(parser)],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else v,
)
def test_unparsable_value(capsys, argv, option):
    _assert_one_line_error(capsys, [*argv, option, "not-a-number"])


@pytest.mark.parametrize(
    "argv,option",
    [(argv, opt) for argv, parser in LEAVES for opt in OUT_OF_RANGE if opt in parser._option_string_actions],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else v,
)
def test_out_of_range_value(capsys, tmp_path, monkeypatch, argv, option):
    monkeypatch.chdir(tmp_path)  # whatever a command writes before failing stays in tmp_path
    _assert_one_line_error(capsys, [*argv, option, OUT_OF_RANGE[option]])


def test_version(capsys):
    from lmodp import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"lmodp {__version__}"


# The least arguments with which each leaf that writes files would run (its output option last).
RUNNABLE = {
    ("demo",): ["--quick", "-o"],
    ("search",): ["--target-epsilon", "1", "--delta", "1e-5", "--sample-rate", "0.1", "--steps", "10", "--out"],
    ("plot", "density"): ["-m", "gaussian:1", "-o"],
    ("plot", "rdp"): ["-m", "gaussian:1", "-o"],
    ("plot", "epsilon"): ["-m", "gaussian:1", "--paper-run", "sst2", "-o"],
    ("plot", "compare"): ["-m", "gaussian:1", "--paper-run", "sst2", "-o"],
    ("plot", "training"): ["HISTORY", "-o"],
    ("finetune",): ["--data", "HISTORY", "--model", "HISTORY", "--delta", "1e-5", "--out"],
}


def test_every_leaf_that_writes_a_file_is_covered():
    writes = {argv for argv, parser in LEAVES if {"-o", "--out"} & set(parser._option_string_actions)}
    assert writes == set(RUNNABLE)


@pytest.mark.parametrize("argv", list(RUNNABLE), ids=" ".join)
@pytest.mark.parametrize("where", ["/proc/lmodp-forbidden", "A_FILE/below"], ids=["proc", "below-a-file"])
def test_unwritable_output_is_one_line_and_exit_2_before_any_work(capsys, tmp_path, argv, where):
    import time

    history = tmp_path / "history.json"
    history.write_text('{"step": [1, 2], "epsilon": [0.1, 0.2], "loss": [1.0, 0.9]}')
    (tmp_path / "a-file").write_text("")
    target = where.replace("A_FILE", str(tmp_path / "a-file"))
    target = target if argv in (("demo",), ("finetune",)) else target + ("/x.json" if argv == ("search",) else "/x.png")
    args = [str(history) if a == "HISTORY" else a for a in RUNNABLE[argv]]
    started = time.perf_counter()
    _assert_one_line_error(capsys, [*argv, *args, target])
    assert time.perf_counter() - started < 3.0  # checked up front, not after the computation


def test_missing_subcommand(capsys):
    _assert_one_line_error(capsys, [])
    _assert_one_line_error(capsys, ["no-such-command"])


def test_console_entry_point():
    """``python -m lmodp`` runs the same dispatcher: help exits 0, a bad command exits 2."""
    ok = subprocess.run([sys.executable, "-m", "lmodp", "--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and all(name in ok.stdout for name in SUBCOMMANDS)
    bad = subprocess.run([sys.executable, "-m", "lmodp", "no-such-command"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_cli_reference_matches_parser():
    """docs/cli.md is what docs/gen_cli_reference.py renders from the current parser."""
    import runpy
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    render = runpy.run_path(str(docs / "gen_cli_reference.py"))["render"]
    assert (docs / "cli.md").read_text() == render(), "docs/cli.md is stale: run python docs/gen_cli_reference.py"


def test_cli_reference_generator_help_prints_help_and_writes_nothing():
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "docs" / "gen_cli_reference.py"
    before = (script.parent / "cli.md").stat().st_mtime_ns
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage:") and "--check" in done.stdout
    assert (script.parent / "cli.md").stat().st_mtime_ns == before
    check = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "up to date" in check.stdout
    assert (script.parent / "cli.md").stat().st_mtime_ns == before
