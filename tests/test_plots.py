"""Every figure of ``lmodp.plots`` renders headlessly to a non-trivial file; ω's density is right."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import integrate, stats

matplotlib = pytest.importorskip("matplotlib")

import lmodp  # noqa: E402
from lmodp import LMO, Gaussian, Laplace, LaplaceMixture, mechanism_from_dict  # noqa: E402
from lmodp import plots  # noqa: E402
from lmodp.cli import main  # noqa: E402
from lmodp.paper.params import paper_mechanism  # noqa: E402
from lmodp.search import equal_budget_table  # noqa: E402

RELEASED = paper_mechanism(0.7, exponential="rate")
HEAVY = LMO(gamma_weight=1.0, gamma_shape=0.5, gamma_scale=2.0, exponential_weight=0.5, exponential_rate=1.5)
MIN_BYTES = 5_000
SMALL = dict(sample_rate=0.05, steps=20, delta=1e-5)


def _non_trivial(path):
    assert path.is_file() and path.stat().st_size > MIN_BYTES, f"{path} missing or tiny"


def test_import_lmodp_does_not_import_matplotlib():
    code = "import sys, lmodp, lmodp.cli; lmodp.cli.build_parser(); print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_noise_density(tmp_path, suffix):
    path = tmp_path / f"density{suffix}"
    fig = plots.noise_density([RELEASED, HEAVY, Gaussian(2.0), Laplace(1.5)], samples=5_000, path=path)
    _non_trivial(path)
    assert len(fig.axes) == 2


def test_noise_density_gaussian_only_has_one_panel(tmp_path):
    assert len(plots.noise_density(Gaussian(1.0), samples=1_000).axes) == 1


@pytest.mark.parametrize("mechanism", [RELEASED, HEAVY, LMO(gamma_weight=0.3, gamma_shape=2.0, gamma_scale=1.0, uniform_weight=1.0, uniform_low=2.0, uniform_high=2.0)])
def test_omega_density_against_scipy_quadrature(mechanism):
    """Mass 1, mean E[ω], and the CDF at the median of sampled ω against independent references."""
    od = plots.omega_density(mechanism)
    h = od.x[1] - od.x[0]
    assert od.density.sum() * h == pytest.approx(1.0, abs=1e-5)
    assert (od.x * od.density).sum() * h == pytest.approx(mechanism.omega_mean(), rel=2e-3)
    # Independent reference: the CDF of ω by sampling, at three quantiles.
    draws = mechanism.sample_omega(400_000, np.random.default_rng(1))
    for q in (0.1, 0.5, 0.9):
        x_q = np.quantile(draws, q)
        below = od.x <= x_q
        assert od.density[below].sum() * h == pytest.approx(q, abs=0.01)


def test_omega_density_exponential_only_matches_closed_form():
    m = LMO(exponential_weight=2.0, exponential_rate=4.0)  # ω ~ Exp(rate 2)
    od = plots.omega_density(m)
    inner = (od.x > 0.05) & (od.x < 3.0)
    np.testing.assert_allclose(od.density[inner], stats.expon(scale=0.5).pdf(od.x[inner]), rtol=2e-3)
    assert integrate.trapezoid(od.density, od.x) == pytest.approx(1.0, abs=2e-3)


def test_omega_density_of_laplace_is_an_atom():
    assert plots.omega_density(Laplace(4.0)).atom == pytest.approx(0.25)


def test_omega_of_a_finite_laplace_mixture_is_its_atoms():
    m = LaplaceMixture(omega_atoms=[0.5, 1.0, 3.0], omega_weights=[0.2, 0.5, 0.3])
    od = plots.omega_density(m)
    np.testing.assert_array_equal(od.atoms, [0.5, 1.0, 3.0])
    np.testing.assert_array_equal(od.atom_weights, [0.2, 0.5, 0.3])
    assert od.atom is None


def test_finite_mixture_omega_is_drawn_as_arrows_with_heights_by_probability():
    m = LaplaceMixture(omega_atoms=[0.5, 1.0, 3.0], omega_weights=[0.2, 0.5, 0.3])
    omega_ax = plots.noise_density({"mixture": m, "LMO": RELEASED}, samples=1_000).axes[1]
    arrows = sorted((a for a in omega_ax.texts if getattr(a, "arrow_patch", None) is not None), key=lambda a: a.xy[0])
    assert [a.xy[0] for a in arrows] == [0.5, 1.0, 3.0]
    assert [a.xy[1] for a in arrows] == pytest.approx([0.6 * 0.2 / 0.5, 0.6, 0.6 * 0.3 / 0.5])
    legend = [t.get_text() for t in omega_ax.get_legend().get_texts()]
    assert "mixture" in legend and any("point masses" in t and "no density" in t for t in legend)
    assert omega_ax.get_xlim()[1] > 3.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="path"):
        plots.noise_density(Gaussian(1.0), samples=1_000, path="figure.txt")
    with pytest.raises(ValueError, match="mechanisms"):
        plots.noise_density([])
    with pytest.raises(ValueError, match="samples"):
        plots.noise_density(Gaussian(1.0), samples=3)
    with pytest.raises(ValueError, match="Laplace scale mixture"):
        plots.omega_density(Gaussian(1.0))
    with pytest.raises(ValueError, match="x must be"):
        plots.training_curve({"step": [1], "epsilon": [0.1], "loss": [1.0]}, x="time")
    with pytest.raises(ValueError, match="geometry"):
        plots.epsilon_curve(Gaussian(1.0), geometry="l3", **SMALL)


def test_rdp_curve(tmp_path):
    path = tmp_path / "rdp.png"
    fig = plots.rdp_curve(RELEASED, path=path)
    _non_trivial(path)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any("MGF" in label for label in labels) and any("domain" in label for label in labels)


def test_rdp_curve_gaussian(tmp_path):
    path = tmp_path / "rdp_gauss.svg"
    plots.rdp_curve(Gaussian(2.0), path=path)
    _non_trivial(path)


def test_epsilon_curve(tmp_path):
    path = tmp_path / "eps.png"
    fig = plots.epsilon_curve({"Gaussian": Gaussian(1.5), "LMO": RELEASED}, x="epochs", points=8, path=path, **SMALL)
    _non_trivial(path)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]  # below the axes, off the data
    # the tightest sound accountant per line; the Gaussian's two geometries are one pair, drawn once
    assert legend == ["Gaussian — PLD, scalar and l2 (identical)", "LMO — PLD, scalar", "LMO — RDP, l2"]
    assert "T = 20 steps" in fig.axes[0].get_title() and "δ = 1e-05" in fig.axes[0].get_title()
    lines = fig.axes[0].get_lines()
    assert np.all(np.diff(lines[0].get_ydata()) >= 0)  # ε grows with the number of steps
    expected = lmodp.epsilon(Gaussian(1.5), sample_rate=0.05, steps=20, delta=1e-5, geometry="l2", accountant="pld")
    assert lines[0].get_ydata()[-1] == pytest.approx(expected, rel=1e-12)
    rdp = plots.epsilon_curve({"LMO": RELEASED}, accountant="rdp", points=4, **SMALL)
    assert [t.get_text() for t in rdp.legends[0].get_texts()] == ["LMO — RDP, scalar", "LMO — RDP, l2"]


def test_epsilon_curve_with_pld(tmp_path):
    path = tmp_path / "eps_pld.png"
    fig = plots.epsilon_curve(Laplace(3.0), accountant="rdp", pld=True, points=6, pld_points=1, path=path, **SMALL)
    _non_trivial(path)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("PLD, scalar" in t for t in legend) and any("l2 interval" in t for t in legend)


def test_compare_mechanisms(tmp_path):
    path = tmp_path / "compare.png"
    rows = equal_budget_table([2.0], shapes={"Gaussian": Gaussian(1.0), "LMO": RELEASED}, tolerance=1e-2, **SMALL)
    assert {(r.label, r.geometry) for r in rows} == {(m, g) for m in ("Gaussian", "LMO") for g in ("scalar", "l2")}
    for r in rows:
        assert r.epsilon <= r.target_epsilon  # one-sided calibration
        assert lmodp.epsilon(mechanism_from_dict(r.mechanism), geometry=r.geometry, accountant=r.accountant, **SMALL) <= r.target_epsilon
    assert {(r.label, r.geometry, r.accountant) for r in rows} == {
        ("Gaussian", "scalar", "pld"), ("Gaussian", "l2", "pld"), ("LMO", "scalar", "pld"), ("LMO", "l2", "rdp")
    }
    fig = plots.plot_equal_budget(rows, path=path)
    _non_trivial(path)
    # one panel per geometry, so that no curve hides another; each names its accountant(s)
    assert [ax.get_title() for ax in fig.axes] == [
        "scalar geometry (a one-dimensional query)\nε by PLD",
        "l2 geometry (a clipped gradient: DP-SGD)\nε by PLD (Gaussian), RDP (the others)",
    ]
    assert [line.get_label() for line in fig.axes[1].get_lines()] == ["Gaussian", "LMO"]
    fig = plots.compare_mechanisms([1.0, 4.0], shapes={"Gaussian": Gaussian(1.0), "Laplace": Laplace(1.0)}, geometry="scalar", magnitude="std", tolerance=1e-2, **SMALL)
    assert "standard deviation" in fig.axes[0].get_ylabel()


def test_compare_refuses_pld_for_laplace_mixtures_in_l2_before_calibrating():
    with pytest.raises(ValueError, match="accountant='auto'"):
        equal_budget_table([1.0], shapes={"Laplace": Laplace(1.0)}, geometry="l2", accountant="pld", **SMALL)
    rows = equal_budget_table([2.0], shapes={"Gaussian": Gaussian(1.0)}, geometry="l2", accountant="pld", tolerance=1e-2, **SMALL)
    assert rows[0].accountant == "pld" and rows[0].epsilon <= 2.0


def test_point_mass_omega_is_an_arrow_not_a_density(tmp_path):
    fig = plots.noise_density({"Laplace": Laplace(2.0), "LMO": RELEASED}, samples=1_000)
    omega_ax = fig.axes[1]
    arrows = [a for a in omega_ax.texts if getattr(a, "arrow_patch", None) is not None]
    assert len(arrows) == 1 and arrows[0].xy[0] == pytest.approx(0.5)
    legend = [t.get_text() for t in omega_ax.get_legend().get_texts()]
    assert any("point mass" in t and "no density" in t for t in legend)
    assert omega_ax.get_xlim()[1] > 1.0  # the released set's ω (around 0.6-1.5) is not cut off
    only = plots.noise_density(Laplace(2.0), samples=1_000).axes[1]
    assert list(only.get_yticks()) == [] and "no density" in only.get_ylabel()


def test_training_curve_names_delta_and_says_the_loss_is_not_private():
    fig = plots.training_curve(dict(HISTORY, delta=1e-5))
    assert "δ = 1e-05" in fig._suptitle.get_text()
    assert "NOT private" in fig.axes[0].get_title()
    assert "δ = 1e-05" in fig.axes[0].get_xlabel()
    assert plots.training_curve(HISTORY, title="mine")._suptitle.get_text() == "mine"


HISTORY = {
    "step": [1, 2, 3, 4, 5],
    "epsilon": [0.1, 0.18, 0.25, 0.31, 0.36],
    "loss": [0.69, 0.6, 0.52, 0.47, 0.45],
    "eval_accuracy": [None, 0.61, None, 0.7, 0.72],
}


@pytest.mark.parametrize("history", [HISTORY, [dict(zip(HISTORY, v)) for v in zip(*HISTORY.values())]], ids=["columns", "records"])
def test_training_curve(tmp_path, history):
    path = tmp_path / "training.png"
    fig = plots.training_curve(history, path=path)
    _non_trivial(path)
    assert len(fig.axes) == 2


def test_training_curve_from_finetune_history(tmp_path):
    """A ``TrainingHistory``: evaluations are placed at their step and named after the metric."""
    train = pytest.importorskip("lmodp.train")
    history = train.TrainingHistory(
        task="classification", delta=1e-5, sample_rate=0.1, total_steps=3, mechanism=None, metric_name="accuracy",
        step=[1, 2, 3], loss=[0.7, None, 0.5], epsilon=[0.1, 0.2, 0.3], batch_size=[3, 0, 4], eval_step=[0, 3], eval_metric=[0.5, 0.8],
    )
    columns = plots.training.history_columns(history)
    np.testing.assert_array_equal(columns["eval accuracy"], [np.nan, np.nan, 0.8])
    assert np.isnan(columns["loss"][1])
    path = tmp_path / "history.png"
    fig = plots.training_curve(history, path=path)
    _non_trivial(path)
    assert [ax.get_legend().get_texts()[0].get_text() for ax in fig.axes] == ["loss", "eval accuracy"]


@pytest.mark.parametrize(
    "argv",
    [
        ["density", "-m", "paper:0.3", "-m", "gaussian:2", "--samples", "2000"],
        ["rdp", "-m", "laplace:1"],
        ["epsilon", "-m", "gaussian:2", "--sample-rate", "0.05", "--steps", "20", "--delta", "1e-5"],
        ["compare", "-m", "gaussian:1", "--targets", "1", "4", "--sample-rate", "0.05", "--steps", "20", "--delta", "1e-5", "--geometry", "l2"],
    ],
    ids=lambda a: a[0],
)
def test_plot_cli(tmp_path, capsys, argv):
    out = tmp_path / f"{argv[0]}.png"
    assert main(["plot", *argv, "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"kind": argv[0], "path": str(out), "paper_run": None, "from_paper_run": []}
    _non_trivial(out)


def test_plot_cli_needs_the_run_or_says_which_settings_the_paper_run_gave(tmp_path, capsys):
    out = tmp_path / "eps.png"
    assert main(["plot", "epsilon", "-m", "gaussian:2", "--steps", "20", "--out", str(out)]) == 2
    assert "give --sample-rate, --delta, or --paper-run NAME" in capsys.readouterr().err
    assert main(["plot", "epsilon", "-m", "gaussian:2", "--steps", "20", "--paper-run", "sst2", "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["from_paper_run"] == ["sample_rate", "delta"]
    assert "NOTE: --sample-rate, --delta taken from the paper's SST-2 run (--paper-run)" in captured.err


def test_plot_compare_pld_in_l2_fails_up_front_naming_the_cli_fix(tmp_path, capsys):
    import time

    started = time.perf_counter()
    argv = ["-m", "gaussian:1", "-m", "laplace:1", "-m", "paper:0.7", "--paper-run", "sst2"]
    assert main(["plot", "compare", *argv, "--accountant", "pld", "--out", str(tmp_path / "c.png")]) == 2
    assert time.perf_counter() - started < 2.0  # before any calibration
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--accountant auto" in err and "--geometry scalar" in err and "lmodp.plots" not in err
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("kind", ["density", "rdp", "epsilon", "compare"])
def test_plot_draws_the_mechanisms_named_no_paper_set_by_default(capsys, tmp_path, kind):
    with pytest.raises(SystemExit) as done:
        main(["plot", kind, "--paper-run", "sst2", "-o", str(tmp_path / "x.png")] if kind in ("epsilon", "compare") else ["plot", kind])
    assert done.value.code == 2 and "required: -m/--mechanism" in capsys.readouterr().err


def test_plot_cli_training_and_mechanism_file(tmp_path, capsys):
    history = tmp_path / "history.json"
    history.write_text(json.dumps(HISTORY))
    out = tmp_path / "training.svg"
    assert main(["plot", "training", str(history), "--out", str(out)]) == 0
    _non_trivial(out)
    spec = tmp_path / "mech.json"
    spec.write_text(json.dumps({"mechanism": RELEASED.to_dict()}))
    assert main(["plot", "density", "-m", str(spec), "--samples", "1000", "--out", str(tmp_path / "d.png")]) == 0
    assert main(["plot", "density", "-m", "paper:0.5"]) == 2
    assert "paper:0.5" in capsys.readouterr().err
