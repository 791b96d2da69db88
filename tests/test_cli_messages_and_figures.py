"""Messages of the command line, progress when redirected, what the figures say, and warnings
that name nothing the user did (issue 22, items 11-16)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("matplotlib")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lmodp import Gaussian, Laplace, RunSpec  # noqa: E402
from lmodp.cli import main  # noqa: E402
from lmodp.cli._mechanism import parse_mechanism  # noqa: E402
from lmodp.paper.demo import DemoRow  # noqa: E402
from lmodp.paper.params import paper_mechanism  # noqa: E402
from lmodp.plots import epsilon_curve, noise_density, plot_equal_budget, training_curve  # noqa: E402
from lmodp.plots._style import label_log_axis  # noqa: E402
from lmodp.search import calibrate_shape  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN = RunSpec(sample_rate=0.05, steps=20, delta=1e-5)


def _one_line_error(capsys, argv, message):
    try:
        code = main(argv)
    except SystemExit as exc:  # an argument the parser refuses
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_a_missing_mechanism_file_is_file_not_found(capsys, tmp_path):
    _one_line_error(capsys, ["plot", "density", "-m", str(tmp_path / "missing.json"), "-o", str(tmp_path / "d.png")], "no such file")


def test_a_negative_delta_is_read_as_a_value_and_named_out_of_range(capsys):
    _one_line_error(capsys, ["epsilon", "-m", "gaussian:1", "--sample-rate", "0.01", "--steps", "10", "--delta", "-1e-5"],
                    "delta must lie in the open interval (0, 1), got -1e-05")


def test_out_under_a_missing_parent_is_refused_and_nothing_is_created(capsys, tmp_path):
    _one_line_error(capsys, ["plot", "rdp", "-m", "gaussian:1", "-o", str(tmp_path / "typo" / "r.png")], "does not exist")
    _one_line_error(capsys, ["demo", "--out", str(tmp_path / "typo" / "demo")], "does not exist")
    assert not (tmp_path / "typo").exists()


def test_a_repeated_mechanism_of_a_one_mechanism_figure_is_refused(capsys, tmp_path):
    _one_line_error(capsys, ["plot", "rdp", "-m", "gaussian:1", "-m", "laplace:1", "-o", str(tmp_path / "r.png")], "-m given twice")
    assert not (tmp_path / "r.png").exists()


def test_the_audit_writes_no_carriage_returns_when_redirected(capsys):
    assert main(["audit", "-m", "gaussian:1", "--samples", "2000", "--seed", "0"]) == 0
    assert "\r" not in capsys.readouterr().err


def test_the_training_audit_does_not_announce_seeds_the_user_never_passed(caplog):
    pytest.importorskip("torch")
    from lmodp.audit import audit_training

    with caplog.at_level(logging.WARNING, logger="lmodp"):
        audit_training(Gaussian(2.0), canaries=20, examples=20, steps=2, sample_rate=0.5, audit_seed=0)
    assert not [r for r in caplog.records if " fixes " in r.getMessage()]


def test_best_lmo_is_plain_laplace_where_laplace_has_the_least_noise():
    row = DemoRow(budget=3.0, geometry="scalar", paper_epsilon=1.0, released_epsilon=5.0, released_mean_abs=1.0, gaussian_sigma=1.0,
                  gaussian_epsilon=3.0, gaussian_mean_abs=1.0, laplace_mean_abs=0.80, rescaled_lmo_mean_abs=0.90,
                  rescaled_lmo_epsilon=3.0, searched_lmo_mean_abs=0.85, searched_lmo_epsilon=3.0, searched_lmo={"family": "lmo"},
                  searched_lmo_is_laplace=False)
    assert row.best_lmo == "plain Laplace" and row.lmo_over_gaussian == pytest.approx(0.80)


def _legend_overlaps_data(fig: Figure) -> bool:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax_boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
    legends = [leg.get_window_extent(renderer) for leg in fig.legends] + [ax.get_legend().get_window_extent(renderer) for ax in fig.axes if ax.get_legend()]
    return any(box.overlaps(legend) for box in ax_boxes for legend in legends)


def test_epsilon_figure_keeps_its_legend_off_the_data_and_says_what_is_an_upper_bound():
    fig = epsilon_curve({"the paper's ε = 0.7 set": paper_mechanism(0.7, exponential="rate"), "Gaussian": Gaussian(10.0)}, RUN, points=6)
    assert not _legend_overlaps_data(fig)
    assert fig.axes[0].get_ylabel() == "ε at δ = 1e-05 (sound upper bound)"  # nothing is "marked"


def test_compare_figure_names_the_run_and_shows_coinciding_series():
    rows = [calibrate_shape(shape, t, RUN.replace(geometry="scalar"), tolerance=1e-2, label=label)
            for label, shape in (("Laplace", Laplace(1.0)), ("LMO close to Laplace", Laplace(1.0))) for t in (1.0, 3.0)]
    fig = plot_equal_budget(rows, run=RUN.replace(geometry="scalar"))
    title = fig.get_suptitle()
    assert "q = 0.05" in title and "T = 20" in title and "δ = 1e-05" in title
    first, second = (line.get_xdata() for line in fig.axes[0].get_lines())
    assert np.all(np.asarray(second) > np.asarray(first))  # equal values, side by side
    assert not _legend_overlaps_data(fig)


def test_rescaled_mechanisms_are_labelled_by_their_shape_and_paper_sets_by_name():
    assert parse_mechanism("gaussian:3").label(rescaled=True) == "Gaussian"
    assert parse_mechanism("laplace:2").label(rescaled=True) == "Laplace"
    assert parse_mechanism("paper:0.7").label(rescaled=True) == "LMO shape of the paper's ε = 0.7 set"
    assert parse_mechanism("paper:0.7").label().startswith("the paper's ε = 0.7 set")


@settings(max_examples=60, deadline=None)
@given(st.floats(1e-6, 1e6), st.floats(1.0001, 1e3))
def test_a_log_axis_has_at_least_two_labels_within_the_data(low, ratio):
    fig = Figure()
    ax = fig.subplots()
    ax.set_yscale("log")
    label_log_axis(ax.yaxis, [low, low * ratio])
    ticks = ax.yaxis.get_major_locator().locs
    assert sum(low * (1 - 1e-9) <= t <= low * ratio * (1 + 1e-9) for t in ticks) >= 2


def test_the_omega_panel_says_point_masses_and_names_what_has_no_omega():
    fig = noise_density({"Laplace b=1": Laplace(1.0), "Gaussian σ=1": Gaussian(1.0)}, samples=1000)
    omega = fig.axes[1]
    assert omega.get_title() == "Mixing law of ω (point masses)"
    assert any("Gaussian σ=1: not a Laplace mixture, no ω" in t.get_text() for t in omega.get_legend().get_texts())


def test_the_training_figure_names_the_noise_and_draws_no_empty_panel():
    history = {"step": [1, 2, 3], "loss": [0.7, 0.69, 0.68], "epsilon": [0.5, 0.8, 1.0], "eval_step": [], "eval_metric": [],
               "metric_name": "accuracy", "delta": 1e-5, "mechanism": {"family": "gaussian", "sigma": 1.2}}
    fig = training_curve(history, x="step")
    assert len(fig.axes) == 1  # no evaluation data: no evaluation panel
    assert fig.get_suptitle() == "Fine-tuning progress against the optimizer step\nnoise: Gaussian σ=1.2"
    assert "δ" not in fig.get_suptitle().splitlines()[0]


def test_readme_says_how_long_the_demo_takes_and_how_to_get_the_cpu_wheel():
    readme = (ROOT / "README.md").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in readme
    assert "lmodp demo` takes" in readme
