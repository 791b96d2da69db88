"""``lmodp epsilon`` run in-process through the dispatcher."""

from __future__ import annotations

import json
import math

import pytest

import lmodp
from lmodp import Gaussian
from lmodp.cli import main
from lmodp.paper.params import paper_mechanism, paper_parameters


# The run settings every command with a mechanism must give.
SST2 = ["--sample-rate", str(2048 / 67350), "--steps", "192", "--delta", "1e-10"]


def _run_json(capsys, argv):
    assert main(["epsilon", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def dp_accounting_gaussian_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    """An independent reference: dp-accounting's PLD for the Poisson-subsampled Gaussian."""
    dp_accounting = pytest.importorskip("dp_accounting")
    from dp_accounting.pld import PLDAccountant

    acc = PLDAccountant(value_discretization_interval=1e-4)
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    return acc.get_epsilon(delta)


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["epsilon", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "gaussian:SIGMA" in out and "--paper-run" in out and "built-in example" not in out


def test_gaussian_json_matches_library(capsys):
    argv = ["--mechanism", "gaussian:1.0", "--sample-rate", "0.01", "--steps", "1000", "--delta", "1e-5"]
    out = _run_json(capsys, argv)
    # default "auto": the PLD, exact for the Gaussian (also in l2), against dp-accounting
    assert out["accountant"] == "pld" and out["accountant_requested"] == "auto"
    assert out["epsilon"] == lmodp.epsilon(Gaussian(1.0), sample_rate=0.01, steps=1000, delta=1e-5, geometry="l2", accountant="pld")
    assert abs(out["epsilon"] - dp_accounting_gaussian_epsilon(1.0, 0.01, 1000, 1e-5)) <= 1e-3
    assert out["optimal_order"] is None
    assert out["mechanism"] == {"family": "gaussian", "sigma": 1.0}
    assert out["paper_run"] is None and out["from_paper_run"] == []
    rdp = _run_json(capsys, [*argv, "--accountant", "rdp"])
    assert rdp["epsilon"] == lmodp.epsilon(Gaussian(1.0), sample_rate=0.01, steps=1000, delta=1e-5, geometry="l2", accountant="rdp")
    assert rdp["accountant"] == "rdp" and rdp["optimal_order"] > 1 and not rdp["pure_dp_bound"]
    assert out["epsilon"] < rdp["epsilon"]


def test_each_family_by_its_spec(capsys):
    gaussian = _run_json(capsys, ["-m", "gaussian:sigma=1.0", "--sample-rate", "0.01", "--steps", "1000", "--delta", "1e-5", "--accountant", "rdp"])
    assert gaussian["mechanism"] == {"family": "gaussian", "sigma": 1.0}
    assert gaussian["epsilon"] == lmodp.epsilon(Gaussian(1.0), sample_rate=0.01, steps=1000, delta=1e-5, geometry="l2", accountant="rdp")
    laplace = _run_json(capsys, ["-m", "laplace:2", "--geometry", "scalar", "--steps", "10", "--sample-rate", "0.05", "--delta", "1e-10"])
    assert laplace["mechanism"] == {"family": "laplace", "scale": 2.0}
    lmo_argv = ["-m", "lmo:uniform_weight=1,uniform_low=0.5,uniform_high=1", "--geometry", "l2", *SST2]
    lmo = _run_json(capsys, lmo_argv)
    assert lmo["mechanism"]["family"] == "lmo" and lmo["accountant"] == "rdp"  # "auto" in l2 for non-Gaussian noise
    expected = lmodp.LMO(uniform_weight=1.0, uniform_low=0.5, uniform_high=1.0)
    assert lmo["epsilon"] == lmodp.epsilon(expected, sample_rate=2048 / 67350, steps=192, delta=1e-10, geometry="l2")


def test_text_output(capsys):
    assert main(["epsilon", "--mechanism", "gaussian:2", *SST2]) == 0
    out = capsys.readouterr()
    assert "epsilon:" in out.out and "optimal order:" in out.out and "accountant:    pld (auto" in out.out
    assert "NOTE" not in out.out + out.err


def test_run_settings_are_required(capsys):
    """No default run: the settings not given are named, with the one flag that fills them."""
    assert main(["epsilon", "-m", "gaussian:1.0", "--steps", "1000"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "give --sample-rate, --delta, or --paper-run NAME" in err and "SST-2" in err


def test_a_mechanism_is_required(capsys):
    assert main(["epsilon", "--paper-run", "sst2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give --mechanism SPEC" in err and "-m paper:0.3 --paper-run sst2" in err


def test_paper_run_says_which_settings_it_supplied(capsys):
    assert main(["epsilon", "-m", "gaussian:2", "--paper-run", "sst2", "--steps", "500"]) == 0
    captured = capsys.readouterr()
    assert "NOTE: --sample-rate, --delta taken from the paper's SST-2 run (--paper-run)" in captured.err
    assert "steps=500" in captured.out
    out = _run_json(capsys, ["-m", "gaussian:2", "--paper-run", "SST-2", "--steps", "500"])
    assert out["paper_run"] == "SST-2" and out["from_paper_run"] == ["sample_rate", "delta"]
    assert out["sample_rate"] == 2048 / 67350 and out["delta"] == 1e-10 and out["steps"] == 500
    qnli = _run_json(capsys, ["-m", "gaussian:2", "--paper-run", "qnli"])
    assert (qnli["sample_rate"], qnli["steps"], qnli["from_paper_run"]) == (2048 / 104744, 306, ["sample_rate", "steps", "delta"])


@pytest.mark.parametrize(
    "content,named",
    [
        ({"family": "gaussian", "sigma": 1.0, "sigmaa": 2.0}, "['sigmaa']"),
        ({"family": "lmo", "convention": "exponential_rate", "gamma_weight": 1.0, "gamma_shap": 2.0}, "['gamma_shap']"),
        ({"a1": 0.1, "a3": 0.1, "a4": 0.1, "G_theta": 0.5, "G_k": 1, "E_lambda": 5, "U_a": 1, "U_b": 2, "U_c": 3}, "['U_c']"),
        ({"gamma_weight": 1.0}, "['gamma_weight']"),
    ],
)
def test_params_file_with_unknown_key_names_it(capsys, tmp_path, content, named):
    path = tmp_path / "params.json"
    path.write_text(json.dumps(content))
    spec = str(path) if "family" in content else f"paper:{path}"
    assert main(["epsilon", "-m", spec, *SST2]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err
    # the deprecated spelling: the same one-line error
    assert main(["epsilon", "--params", str(path), "--paper-exponential", "rate", *SST2]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err and "--paper-exponential" not in err


def test_params_file_in_lmodp_format(capsys, tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(Gaussian(1.5).to_dict()))
    out = _run_json(capsys, ["-m", str(path), "--steps", "50", "--sample-rate", "0.1", "--delta", "1e-6"])
    assert out["epsilon"] == lmodp.epsilon(Gaussian(1.5), sample_rate=0.1, steps=50, delta=1e-6, geometry="l2", accountant="pld")


@pytest.mark.parametrize(
    "mechanism",
    [lmodp.GeneralizedGaussian(2.0, 1.5), lmodp.LaplaceMixture(omega_atoms=[0.5, 1.0], omega_weights=[0.5, 0.5])],
    ids=["generalized_gaussian", "laplace_mixture"],
)
def test_params_file_of_any_family_alone_or_inside_a_search_result(capsys, tmp_path, mechanism):
    expected = lmodp.epsilon(mechanism, sample_rate=0.05, steps=20, delta=1e-6, geometry="scalar", accountant="pld")
    for i, content in enumerate((mechanism.to_dict(), {"format": "lmodp.search.result/1", "mechanism": mechanism.to_dict()})):
        path = tmp_path / f"m{i}.json"
        path.write_text(json.dumps(content))
        argv = ["-m", str(path), "--steps", "20", "--sample-rate", "0.05", "--delta", "1e-6", "--geometry", "scalar"]
        out = _run_json(capsys, argv)
        assert out["mechanism"] == mechanism.to_dict() and out["epsilon"] == expected


def test_paper_run_gives_the_old_builtin_example(capsys):
    """``lmodp epsilon`` with no arguments used to run the paper's task1 eps=0.3 set (E_lambda a rate) on
    SST-2; that is now ``-m paper:0.3 --paper-run sst2``, with the same number."""
    out = _run_json(capsys, ["-m", "paper:0.3", "--paper-run", "sst2"])
    assert out["accountant"] == "rdp" and out["from_paper_run"] == ["sample_rate", "steps", "delta"]
    assert out["mechanism"] == paper_mechanism(0.3, "task1", exponential="rate").to_dict()
    expected = lmodp.epsilon(paper_mechanism(0.3, "task1", exponential="rate"), sample_rate=2048 / 67350, steps=192, delta=1e-10, geometry="l2")
    assert out["epsilon"] == expected
    assert math.isfinite(out["epsilon"]) and out["epsilon"] > 0


def test_laplace_scalar(capsys):
    argv = ["--mechanism", "laplace:2", "--geometry", "scalar", "--steps", "100", "--sample-rate", "0.05", "--delta", "1e-10"]
    out = _run_json(capsys, argv)
    assert out["accountant"] == "pld"
    assert out["epsilon"] == lmodp.epsilon(lmodp.Laplace(2.0), sample_rate=0.05, steps=100, delta=1e-10, geometry="scalar", accountant="pld")
    assert _run_json(capsys, [*argv, "--accountant", "rdp"])["epsilon"] == lmodp.epsilon(
        lmodp.Laplace(2.0), sample_rate=0.05, steps=100, delta=1e-10, geometry="scalar", accountant="rdp"
    )


@pytest.mark.filterwarnings("ignore::lmodp.accounting.OrderGridEdgeWarning")
def test_paper_file_and_flags(capsys, tmp_path):
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(paper_parameters(2, "task1")))
    from_file = _run_json(capsys, ["-m", f"paper:{path}", "--geometry", "scalar", *SST2])
    spec = "lmo:gamma_weight=0.1,gamma_shape=2,gamma_scale=1,exponential_weight=0.1,exponential_rate=5,uniform_weight=0.2,uniform_low=7,uniform_high=8"
    by_parameters = _run_json(capsys, ["-m", spec, "--geometry", "scalar", *SST2])
    assert from_file["epsilon"] == by_parameters["epsilon"]
    assert from_file["mechanism"] == by_parameters["mechanism"] == paper_mechanism(2, exponential="rate").to_dict()
    as_scale = _run_json(capsys, ["-m", f"paper-scale:{path}", "--geometry", "scalar", *SST2])
    assert as_scale["mechanism"] == paper_mechanism(2, exponential="scale").to_dict()


@pytest.mark.parametrize(
    "argv",
    [
        ["--delta", "2", "-m", "gaussian:1", "--sample-rate", "0.1", "--steps", "10"],
        ["-m", "gaussian:1", "--sample-rate", "0", "--steps", "10", "--delta", "1e-5"],
        ["-m", "gaussian:1", "--steps", "-3", "--sample-rate", "0.1", "--delta", "1e-5"],
        ["-m", "gaussian:-1", "--paper-run", "sst2"],
        ["-m", "gaussian", "--paper-run", "sst2"],
        ["-m", "gaussian:1", "--paper-run", "sst3"],
        ["-m", "gaussian:1", "--geometry", "l1", "--paper-run", "sst2"],
        ["-m", "gaussian:x", "--paper-run", "sst2"],
        ["-m", "/nonexistent/file.json", "--paper-run", "sst2"],
        ["--bogus"],
        # the deprecated spellings' errors: one line (the NOTE is printed only after a successful run)
        ["--mechanism", "gaussian", "--paper-run", "sst2"],
        ["--mechanism", "laplace"],
        ["--sigma", "1", "--scale", "2"],
        ["--mechanism", "laplace", "--sigma", "1"],
        ["--mechanism", "gaussian", "--gamma-weight", "1"],
        ["--mechanism", "gaussian:1", "--sigma", "1"],
        ["--paper-set", "0.3"],
        ["--paper-exponential", "rate"],
        ["--params", "/nonexistent/file.json"],
        ["--mechanism", "gaussian", "--sigma", "1", "--paper-set", "0.3"],
        ["--mechanism", "gaussian", "--sigma", "x"],
        ["--sigma", "-1", "--paper-run", "sst2"],
        ["--sigma", "1", "--steps", "10"],
    ],
)
def test_bad_arguments_one_line_exit_2(capsys, argv):
    try:
        code = main(["epsilon", *argv])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "error" in err


def test_pld_for_non_gaussian_noise_in_l2_names_the_cli_fix(capsys):
    assert main(["epsilon", "-m", "laplace:2", *SST2, "--accountant", "pld"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--accountant auto" in err and "epsilon_interval(" not in err
    assert _run_json(capsys, ["-m", "laplace:2", *SST2, "--accountant", "pld", "--geometry", "scalar"])["accountant"] == "pld"


def test_paper_file_requires_its_reading(capsys, tmp_path):
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(paper_parameters(0.3, "task1")))
    assert main(["epsilon", "-m", str(path), *SST2]) == 2
    err = capsys.readouterr().err
    assert f"paper:{path}" in err and f"paper-scale:{path}" in err
    assert main(["epsilon", "--params", str(path), *SST2]) == 2
    err = capsys.readouterr().err
    assert "--paper-exponential" in err and f"--mechanism paper:{path}" in err


def test_the_pure_dp_bound_is_reported_without_an_order(capsys):
    """One release of Laplace(1) is exactly 1-DP: below the RDP conversion at δ = 1e-10."""
    argv = ["-m", "laplace:1", "--sample-rate", "1", "--steps", "1", "--delta", "1e-10", "--geometry", "scalar", "--accountant", "rdp"]
    out = _run_json(capsys, argv)
    assert out["pure_dp_bound"] and out["optimal_order"] is None and 1.0 <= out["epsilon"] <= 1.0 + 1e-13
    assert main(["epsilon", *argv]) == 0
    assert "pure-DP composition bound" in capsys.readouterr().out
