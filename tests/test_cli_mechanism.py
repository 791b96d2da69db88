"""The one ``--mechanism SPEC`` grammar of the command line (lmodp/cli/_mechanism.py): each form,
each error, the SPECs a command cannot use, ``lmodp epsilon``'s deprecated spellings (the same
numbers as their SPECs) and ``--paper-run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lmodp
from lmodp import LMO, Gaussian, GeneralizedGaussian, Laplace, LaplaceMixture
from lmodp.cli import main
from lmodp.cli._mechanism import CALIBRATED, parse_mechanism, parse_noise
from lmodp.paper import paper_budgets, paper_mechanism, paper_parameters


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "lmodp": tmp_path / "gg.json",
        "result": tmp_path / "result.json",
        "paper": tmp_path / "paper.json",
    }
    paths["lmodp"].write_text(json.dumps(GeneralizedGaussian(2.0, 1.5).to_dict()))
    paths["result"].write_text(json.dumps({"format": "lmodp.search.result/1", "mechanism": Laplace(3.0).to_dict()}))
    paths["paper"].write_text(json.dumps(paper_parameters(0.7)))
    return paths


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("gaussian:2", Gaussian(2.0)),
        ("gaussian:sigma=2", Gaussian(2.0)),
        ("laplace:1.5", Laplace(1.5)),
        ("laplace:scale=1.5", Laplace(1.5)),
        ("lmo:gamma_weight=1,gamma_shape=2,gamma_scale=1", LMO(gamma_weight=1.0, gamma_shape=2.0, gamma_scale=1.0)),
        ("generalized_gaussian:scale=1, power=1.5", GeneralizedGaussian(1.0, 1.5)),
        ("laplace_mixture:omega_atoms=[0.5,1],omega_weights=[0.25,0.75]", LaplaceMixture(omega_atoms=[0.5, 1.0], omega_weights=[0.25, 0.75])),
        ("paper:0.7", paper_mechanism(0.7, exponential="rate")),
        ("paper-scale:0.7", paper_mechanism(0.7, exponential="scale")),
        ("paper:3:task1", paper_mechanism(3.0, exponential="rate")),
    ],
)
def test_each_form(spec, expected):
    assert parse_mechanism(spec).mechanism == expected


def test_other_groups_of_released_sets():
    budget = paper_budgets("optimized_usefulness")[0]
    parsed = parse_mechanism(f"paper-scale:{budget!r}:optimized_usefulness")
    assert parsed.mechanism == paper_mechanism(budget, "optimized_usefulness", exponential="scale")
    assert parsed.paper_set == (budget, "optimized_usefulness", "scale")
    assert parsed.label() == f"the paper's ε = {budget:g} set (optimized_usefulness) (LMO, E_λ a scale)"


def test_files(files):
    assert parse_mechanism(str(files["lmodp"])).mechanism == GeneralizedGaussian(2.0, 1.5)
    result = parse_mechanism(str(files["result"]))
    assert result.mechanism == Laplace(3.0) and result.search_result == files["result"]
    assert parse_mechanism(f"paper:{files['paper']}").mechanism == paper_mechanism(0.7, exponential="rate")
    assert parse_mechanism(f"paper-scale:{files['paper']}").mechanism == paper_mechanism(0.7, exponential="scale")


def test_labels():
    assert parse_mechanism("paper:0.7").label() == "the paper's ε = 0.7 set (LMO, E_λ a rate)"
    assert parse_mechanism("paper:0.7").label(rescaled=True) == "LMO shape of the paper's ε = 0.7 set"
    assert parse_mechanism("gaussian:2").label(rescaled=True) == "Gaussian"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("gaussian", "only lmodp finetune has"),
        ("lmo", "only lmodp finetune has"),
        ("search", "only lmodp finetune has"),
        ("uniform", "must be one of gaussian:SIGMA, laplace:SCALE, FAMILY:NAME=VALUE"),
        ("uniform:low=0,high=1", "FAMILY must be one of ['gaussian', 'generalized_gaussian', 'laplace'"),
        ("gaussian:x", "write gaussian:SIGMA with a number"),
        ("gaussian:-1", "sigma must be > 0"),
        ("lmo:gamma_weight", "write FAMILY:NAME=VALUE"),
        ("lmo:gamma_weight=one", "write FAMILY:NAME=VALUE"),
        ("lmo:gamma_weight=1,gamma_weight=2", "gamma_weight given twice"),
        ("lmo:gamma_shap=2", "unknown lmo parameter(s) ['gamma_shap']; the lmo parameters are ['gamma_weight'"),
        ("generalized_gaussian:scale=1", "give generalized_gaussian's ['power']"),
        ("paper:abc", "write paper:EPS[:GROUP] with a number"),
        ("paper:0.4", "epsilon must be one of"),
        ("paper-scale:0.3:sideways", "group must be one of"),
        ("paper:/no/such/file.json", "no such file"),
        ("/no/such/file.json", "no such file"),
    ],
)
def test_each_error_names_the_spec_and_what_is_accepted(spec, message):
    with pytest.raises(ValueError) as err:
        parse_mechanism(spec, option="-m")
    text = str(err.value)
    assert message in text and "-m" in text and "\n" not in text


def test_file_errors_say_which_spelling_fits(files):
    with pytest.raises(ValueError, match=f"write paper:{files['paper']} .* or paper-scale:{files['paper']}"):
        parse_mechanism(str(files["paper"]))
    with pytest.raises(ValueError, match="is an lmodp file"):
        parse_mechanism(f"paper:{files['lmodp']}")


def test_calibrated_names_only_where_there_is_a_budget():
    assert all(parse_noise(name) == name for name in CALIBRATED)
    assert parse_noise("gaussian:2").mechanism == Gaussian(2.0)
    with pytest.raises(ValueError, match="only gaussian, laplace and search are calibrated"):
        parse_noise("lmo")
    with pytest.raises(ValueError, match="or gaussian, laplace or search"):
        parse_noise("uniform")


@pytest.mark.parametrize(
    "argv",
    [
        ["epsilon", "-m", "laplace", "--paper-run", "sst2"],
        ["audit", "-m", "search"],
        ["audit", "-m", "gaussian:1", "--sampler", "gaussian"],
        ["plot", "rdp", "-m", "lmo"],
        ["plot", "density", "-m", "gaussian:1", "-m", "uniform:2"],
    ],
    ids=" ".join,
)
def test_a_spec_the_command_cannot_use_is_one_line_and_exit_2(capsys, tmp_path, argv):
    out = ["-o", str(tmp_path / "x.png")] if argv[0] == "plot" else []
    assert main([*argv, *out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err and ("gaussian:SIGMA" in err)


@pytest.mark.parametrize("argv", [["epsilon"], ["plot", "density"], ["plot", "epsilon"], ["audit"], ["finetune"]], ids=" ".join)
def test_every_command_with_a_mechanism_shows_the_one_grammar(capsys, argv):
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    text = capsys.readouterr().out
    assert "FAMILY:NAME=VALUE,..." in text and "paper-scale:EPS[:GROUP]" in text and "paper:FILE.json" in text
    assert ("\n  search " in text) == (argv == ["finetune"])


# --- lmodp epsilon's deprecated spellings -----------------------------------------------------------
RUN = ["--sample-rate", "0.05", "--steps", "20", "--delta", "1e-6", "--accountant", "rdp"]


def _old_and_new(files: dict[str, Path]) -> list[tuple[list[str], list[str]]]:
    return [
        (["--mechanism", "gaussian", "--sigma", "1.5"], ["-m", "gaussian:1.5"]),
        (["--sigma", "1.5"], ["-m", "gaussian:1.5"]),
        (["--scale", "2", "--geometry", "scalar"], ["-m", "laplace:2", "--geometry", "scalar"]),
        (["--mechanism", "lmo", "--gamma-weight", "1", "--gamma-shape", "2", "--gamma-scale", "1"],
         ["-m", "lmo:gamma_weight=1,gamma_shape=2,gamma_scale=1"]),
        (["--uniform-weight", "1", "--uniform-low", "0.5", "--uniform-high", "1"], ["-m", "lmo:uniform_weight=1,uniform_low=0.5,uniform_high=1"]),
        (["--paper-set", "0.7", "--paper-exponential", "scale"], ["-m", "paper-scale:0.7"]),
        (["--paper-set", "0.7", "--paper-exponential", "rate"], ["-m", "paper:0.7"]),
        (["--params", str(files["lmodp"]), "--geometry", "scalar"], ["-m", str(files["lmodp"]), "--geometry", "scalar"]),
        (["--params", str(files["result"])], ["-m", str(files["result"])]),
        (["--params", str(files["paper"]), "--paper-exponential", "rate"], ["-m", f"paper:{files['paper']}"]),
    ]


def test_deprecated_spellings_give_the_same_numbers_and_say_what_to_write(capsys, files):
    for old, new in _old_and_new(files):
        assert main(["epsilon", *old, *RUN, "--json"]) == 0, old
        captured = capsys.readouterr()
        from_old = json.loads(captured.out)
        note = captured.err.strip()
        assert note.startswith("lmodp epsilon: NOTE: ") and "is deprecated" in note and len(note.splitlines()) == 1
        assert main(["epsilon", *new, *RUN, "--json"]) == 0, new
        captured_new = capsys.readouterr()
        from_new = json.loads(captured_new.out)
        assert captured_new.err == ""
        assert from_old == from_new, (old, new)
        written = note.split("write --mechanism ")[1]
        assert parse_mechanism(written).mechanism.to_dict() == from_new["mechanism"]


# --- --paper-run ------------------------------------------------------------------------------------
def test_paper_run_gives_the_old_default_numbers(capsys):
    """The numbers that ``lmodp epsilon`` and ``lmodp plot`` took by default (the paper's SST-2 run:
    q = 2048/67350, T = 192, δ = 1e-10) are one flag away; explicit flags override it."""
    assert main(["epsilon", "-m", "gaussian:3", "--paper-run", "sst2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["epsilon"] == lmodp.epsilon(Gaussian(3.0), sample_rate=2048 / 67350, steps=192, delta=1e-10, geometry="l2")
    assert (out["sample_rate"], out["steps"], out["delta"]) == (2048 / 67350, 192, 1e-10)
    assert main(["epsilon", "-m", "gaussian:3", "--paper-run", "Sst-2", "--delta", "1e-5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["delta"] == 1e-5 and out["from_paper_run"] == ["sample_rate", "steps"]


def test_paper_run_in_plot_and_search(capsys, tmp_path):
    path = tmp_path / "e.png"
    assert main(["plot", "epsilon", "-m", "gaussian:2", "--paper-run", "sst2", "--steps", "20", "-o", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"kind": "epsilon", "path": str(path), "paper_run": "SST-2", "from_paper_run": ["sample_rate", "delta"]}
    assert "NOTE: --sample-rate, --delta taken from the paper's SST-2 run (--paper-run)" in captured.err
    assert main(["search", "--target-epsilon", "1", "--steps", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give --sample-rate, --delta, or --paper-run NAME" in err
