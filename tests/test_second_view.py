"""Facts about the second view's compare tables (second_view.py) and figures (second_plots.py),
checked against numbers worked out by hand from the run folders written here.

Four MLP runs of tests/fixtures_runs.py (none and batch at lr 0.1, seeds 0 and 1), each given the
four quantity tables below, built from one number k per run (none: k = 1, 3; batch: k = 0.1, 0.2):

* landscape.csv, steps 0, 10, 20, 30 (u = 1 + step/10), η multiples m = 0.5, 1, 2:
  loss = 10 + k (m − 1) u, grad_diff = k m u, beta = k (3 − m) u^p (p = 1 for none, 0 for batch).
  none seed 1 at step 30, m = 2: loss inf (left out of the band).
* relative_loss.csv, steps 0 and 20, α = 1e-3, 1e-2, 1e-1, 1: the rel_loss lists of REL below.
* grad_ics.csv, steps 0 and 20: hidden1 (ℓ2 0, cos 1) and hidden2 (ℓ2 k/2 (1 + step/20), cos 1 − k/10).
* sharpness.csv, steps 0 and 20: sharpness 10 k (1 + step/20), lr 0.1.
"""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from ics_cli.analyse import compare, quantities as second_view
from ics_cli.figures import style
from ics_cli.store import files
from ics_cli.analyse.base import ALL_TABLE_NAMES, SECOND_VIEW_NAMES
from ics_cli.analyse import outputs
from ics_cli.figures import plots, quantities as second_plots
from ics_cli.figures import draw
from ics_cli.cli import main
from ics_cli.store.runs import find_runs

from expect import ci, one
from fixtures_runs import RUNS, write_runs
from synthetic import write_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
K = {("none", 0): 1.0, ("none", 1): 3.0, ("batch", 0): 0.1, ("batch", 1): 0.2}
MULTS = (0.5, 1.0, 2.0)
ALPHAS = (1e-3, 1e-2, 1e-1, 1.0)
INF, NAN = math.inf, math.nan
# rel_loss per (norm, seed, step) over ALPHAS; the loss is 2 × rel_loss (loss0 = 2), inf and NaN as they are.
REL = {("none", 0, 0): [1.0, 5.0, 2e3, 1e6], ("none", 1, 0): [1.0, 2e3, INF, NAN],
       ("batch", 0, 0): [1.0, 1.0, 2.0, 50.0], ("batch", 1, 0): [1.0, 1.0, 3.0, 5e3],
       ("none", 0, 20): [1.0, 1.0, 1.0, 1.0], ("none", 1, 20): [1.0, 1.0, 1.0, 1.0],
       ("batch", 0, 20): [1.0, 1.0, 1.0, 1.0], ("batch", 1, 20): [1.0, NAN, 1.0, 1.0]}
LR = 0.1


def add_quantities(folder, norm, seed):
    k = K[norm, seed]
    p = 1 if norm == "none" else 0
    land = []
    for step in (0, 10, 20, 30):
        u = 1 + step / 10
        for m in MULTS:
            loss = INF if (norm, seed, step, m) == ("none", 1, 30, 2.0) else 10 + k * (m - 1) * u
            land.append([step, m, m * LR, 10.0, loss, 1.0, k * m * u, k * (3 - m) * u ** p])
    write_csv(folder / "landscape.csv", ["step", "eta_mult", "eta", "loss0", "loss", "grad_norm",
                                         "grad_diff", "beta"], land)
    rel = [[step, a, 2.0, 2 * r, r] for step in (0, 20) for a, r in zip(ALPHAS, REL[norm, seed, step])]
    write_csv(folder / "relative_loss.csv", ["step", "alpha", "loss0", "loss", "rel_loss"], rel)
    ics = [[step, layer, k, l2, cos] for step in (0, 20)
           for layer, l2, cos in (("hidden1", 0.0, 1.0), ("hidden2", k / 2 * (1 + step / 20), 1 - k / 10))]
    write_csv(folder / "grad_ics.csv", ["step", "layer", "grad_norm", "ics_l2", "ics_cos"], ics)
    sharp = [[step, 10 * k * (1 + step / 20), LR, LR * 10 * k * (1 + step / 20), 20, 1e-4] for step in (0, 20)]
    write_csv(folder / "sharpness.csv", ["step", "sharpness", "lr", "sharpness_lr", "iterations",
                                         "rel_change"], sharp)


FOUR = [r for r in RUNS if r["lr"] == 0.1 and r["seed"] in (0, 1)]


def write_view(root, *, quantities=True):
    sweep = write_runs(root, FOUR)
    if quantities:
        for folder in sweep.iterdir():
            cfg = json.loads((folder / "config.json").read_text())["config"]
            add_quantities(folder, cfg["norm"], cfg["seed"])
    return sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return write_view(tmp_path_factory.mktemp("view"))


@pytest.fixture(scope="module")
def tables(sweep):
    return compare.build(find_runs(sweep))


# --------------------------------------------------------------------------- tables


def test_the_second_view_tables_follow_the_core_tables(tables):
    assert tuple(tables)[:len(ALL_TABLE_NAMES)] == ALL_TABLE_NAMES
    assert tuple(tables)[len(ALL_TABLE_NAMES):] == SECOND_VIEW_NAMES


def test_landscape_band_predictiveness_and_beta_over_seeds(tables):
    t = tables["landscape_curves"]
    assert list(t.columns[:4]) == ["model", "norm", "lr", "batch_size"]
    assert list(zip(t["norm"], t["step"]))[:5] == [("none", 0), ("none", 10), ("none", 20), ("none", 30),
                                                    ("batch", 0)]
    r = one(t, norm="none", step=10)                    # u = 2; k = 1, 3
    assert r["n_seeds"] == 2
    ci(r, "loss_band_min", [10 - 0.5 * 1 * 2, 10 - 0.5 * 3 * 2])      # η = 0.5 lr: 9, 7
    ci(r, "loss_band_max", [10 + 1 * 2, 10 + 3 * 2])                  # η = 2 lr: 12, 16
    ci(r, "loss_band_width", [3.0, 9.0])
    ci(r, "grad_pred", [2 * 1 * 2, 2 * 3 * 2])                        # max over η of k m u
    ci(r, "grad_pred_min", [0.5 * 2, 0.5 * 3 * 2])
    ci(r, "beta_eff", [2.5 * 1 * 2, 2.5 * 3 * 2])                     # at m = 0.5: k 2.5 u
    # Step 30 (u = 4): seed 1's loss at η = 2 lr is inf, so its band ends at the largest finite loss, 10.
    r = one(t, norm="none", step=30)
    ci(r, "loss_band_max", [14.0, 10.0])
    ci(r, "loss_band_min", [8.0, 4.0])
    ci(one(t, norm="batch", step=20), "beta_eff", [0.25, 0.5])        # p = 0: k 2.5


def test_landscape_stability_is_the_variation_over_steps_then_over_seeds(tables):
    t = tables["landscape_stability"]
    assert list(t["norm"]) == ["none", "batch"]
    none, batch = one(t, norm="none"), one(t, norm="batch")
    # beta_eff of one run ∝ u = 1, 2, 3, 4: std (ddof 0) / mean, the same for both seeds.
    cv = np.std([1, 2, 3, 4]) / 2.5
    assert none["beta_eff_cv_mean"] == pytest.approx(cv)
    assert none["beta_eff_cv_ci_low"] == pytest.approx(cv) == none["beta_eff_cv_ci_high"]
    assert batch["beta_eff_cv_mean"] == 0.0
    # Early: steps t <= 40 / 4 = 10, i.e. u = 1 and 2: width 1.5 k u -> 2.25 k, grad_pred 2 k u -> 3 k.
    ci(none, "loss_band_width_early", [2.25, 6.75])
    ci(none, "grad_pred_early", [3.0, 9.0])
    ci(batch, "grad_pred_early", [0.3, 0.6])


def test_relative_loss_curves_give_the_linear_and_the_log_mean(tables):
    t = tables["relative_loss_curves"]
    r = one(t, norm="none", step=0, alpha=1e-2)
    ci(r, "rel_loss", [5.0, 2e3])
    ci(r, "log10_rel_loss", [math.log10(5.0), math.log10(2e3)])
    r = one(t, norm="none", step=0, alpha=1e-1)         # seed 1: inf, left out
    assert r["n_seeds"] == 2
    ci(r, "rel_loss", [2e3])
    ci(r, "log10_rel_loss", [math.log10(2e3)])
    assert list(t[(t["norm"] == "none") & (t["step"] == 0)]["alpha"]) == list(ALPHAS)


def test_alpha_blowup_is_the_smallest_step_above_a_thousand_with_non_finite_losses_blown(tables):
    t = tables["relative_loss_threshold"]
    r = one(t, norm="none", step=0)         # seed 0: 2e3 at 1e-1; seed 1: 2e3 at 1e-2
    assert (r["n_seeds"], r["n_blowup"], r["alpha_max"]) == (2, 2, 1.0)
    ci(r, "log10_alpha_blowup", [-1.0, -2.0])
    assert r["alpha_blowup_gmean"] == pytest.approx(10 ** -1.5)
    r = one(t, norm="batch", step=0)        # seed 0 never blows up (50 at α = 1); seed 1 at α = 1
    assert (r["n_seeds"], r["n_blowup"]) == (2, 1)
    ci(r, "log10_alpha_blowup", [0.0])
    r = one(t, norm="batch", step=20)       # seed 1's blank loss at α = 1e-2 counts as blown up
    assert r["n_blowup"] == 1
    ci(r, "log10_alpha_blowup", [-2.0])
    r = one(t, norm="none", step=20)        # none blew up: blank, not 0
    assert r["n_blowup"] == 0 and math.isnan(r["log10_alpha_blowup_mean"])
    assert math.isnan(r["alpha_blowup_gmean"])


def test_run_threshold_of_one_run():
    table = pd.DataFrame({"step": [0, 0, 0], "alpha": [1.0, 0.01, 0.1], "loss0": 1.0,
                          "loss": [1e4, 1.0, 999.0], "rel_loss": [1e4, 1.0, 999.0]})
    out = second_view.run_threshold(table)
    assert out["alpha_blowup"].tolist() == [1.0] and out["blown"].tolist() == [1]
    assert out["log10_alpha_blowup"].tolist() == [0.0]


def test_grad_ics_and_sharpness_curves(tables):
    t = tables["grad_ics_curves"]
    assert list(t[t["norm"] == "none"]["layer"]) == ["hidden1", "hidden1", "hidden2", "hidden2"]
    r = one(t, norm="none", layer="hidden2", step=20)
    ci(r, "ics_l2", [1.0, 3.0])
    ci(r, "ics_cos", [0.9, 0.7])
    ci(r, "grad_norm", [1.0, 3.0])
    ci(one(t, norm="batch", layer="hidden1", step=0), "ics_cos", [1.0, 1.0])
    s = tables["sharpness_curves"]
    ci(one(s, norm="batch", step=20), "sharpness", [2.0, 4.0])
    ci(one(s, norm="batch", step=20), "sharpness_lr", [0.2, 0.4])


def test_depth_profile_at_step_0_and_the_last_step(tables):
    t = tables["depth_profile"]
    assert set(t["step"]) == {0, 40}
    assert list(t.columns[:8]) == ["model", "norm", "lr", "batch_size", "step", "site", "layer_index",
                                   "n_seeds"]
    assert list(t["step"][:4]) == [0, 0, 0, 0] and list(t["site"][:2]) == ["linear", "linear"]
    # Step 0: mean = l f M0 = 0, var = 1 + l f V0 = 1 for every layer and site.
    r = one(t, norm="none", step=0, site="act", layer_index=2)
    ci(r, "mean", [0.0, 0.0])
    ci(r, "std", [1.0, 1.0])
    # Step 40, hidden2 (l = 2), linear (f = 1): seed 0 M = 0.4, V = 1; seed 1 M = 0.8, V = 2.
    r = one(t, norm="none", step=40, site="linear", layer_index=2)
    ci(r, "mean", [0.8, 1.6])
    ci(r, "std", [math.sqrt(3), math.sqrt(5)])
    assert list(t[(t["norm"] == "none") & (t["step"] == 0) & (t["site"] == "linear")]["layer_index"]) == [1, 2]


def test_without_the_second_view_nothing_changes(sweep, tmp_path):
    """Runs that recorded none of the quantities get no new table, file or figure, and the tables
    they share with a comparison of the same runs plus the view are the same bytes."""
    plain = write_view(tmp_path / "plain", quantities=False)
    old = compare.build(find_runs(plain))
    assert tuple(old) == ALL_TABLE_NAMES
    written = files.write_tables(old, tmp_path / "out")
    assert [p.stem for p in written] == list(ALL_TABLE_NAMES)
    assert all(figure(outputs.load(tmp_path / "out"), tmp_path / "figs") == []
               for figure in second_plots.FIGURES)
    # An empty quantity table (asked for, no row) is no record either.
    folder = next(plain.iterdir())
    (folder / "sharpness.csv").write_text("step,sharpness,lr,sharpness_lr,iterations,rel_change\n")
    assert tuple(compare.build(find_runs(plain))) == ALL_TABLE_NAMES
    new = compare.build(find_runs(sweep))
    for name in ALL_TABLE_NAMES:
        if name != "runs":          # runs.csv names the folders, which differ
            assert files.to_csv(old[name]) == files.to_csv(new[name]), name


def test_write_load_round_trip(tables, tmp_path):
    files.write_tables(tables, tmp_path / "c")
    back = outputs.load(tmp_path / "c")
    assert tuple(back) == tuple(tables)
    for name in SECOND_VIEW_NAMES:
        assert files.to_csv(back[name]) == files.to_csv(tables[name]), name


# --------------------------------------------------------------------------- figures and the CLI


def test_every_figure_kind_has_a_caption():
    assert set(second_plots.CAPTIONS) == {f.__name__ for f in second_plots.FIGURES}
    assert draw.caption("landscape_mlp.png") == second_plots.CAPTIONS["landscape"]
    assert draw.caption("depth_profile.svg") == second_plots.CAPTIONS["depth_profile"]


def test_ics_compare_and_ics_plot_write_the_tables_and_figures(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(draw, "FIGURES", tuple(f for f in draw.FIGURES if f not in plots.FIGURES))  # the core figures are test_plots' business (and slow)
    sweep = write_view(tmp_path)
    assert main(["compare", str(sweep), "--quiet"]) == 0
    out = sweep / "compare"
    for name in SECOND_VIEW_NAMES:
        assert (out / f"{name}.csv").is_file(), name
    kinds = [f.__name__ for f in second_plots.FIGURES]
    for kind in kinds:
        assert (out / f"{kind}.png").read_bytes()[:8] == PNG_MAGIC, kind
    # Redrawn from the CSVs alone: the run folders are gone.
    for folder in list(sweep.iterdir()):
        if folder.name != "compare":
            shutil.rmtree(folder)
    for kind in kinds:
        (out / f"{kind}.png").unlink()
    assert main(["plot", str(out)]) == 0
    for kind in kinds:
        assert (out / f"{kind}.png").read_bytes()[:8] == PNG_MAGIC, kind


@pytest.fixture
def drawn(monkeypatch):
    """What each saved figure showed: {file stem: Figure}, captured before the figure is cleared."""
    figures = {}
    save = style.save_figure

    def spy(fig, out_dir, name, fmt):
        figures[name] = {"title": fig._suptitle.get_text() if fig._suptitle else "",
                         "axes": [(ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale(),
                                   ax.get_yscale(), len(ax.get_lines())) for ax in fig.axes]}
        return save(fig, out_dir, name, fmt)
    monkeypatch.setattr(second_plots, "save_figure", spy)
    return figures


def test_figures_are_titled_labelled_and_log_where_values_span_decades(tables, tmp_path, drawn):
    files.write_tables(tables, tmp_path / "c")
    loaded = outputs.load(tmp_path / "c")
    for figure in second_plots.FIGURES:
        figure(loaded, tmp_path / "figs")
    assert set(drawn) == {f.__name__ for f in second_plots.FIGURES}
    for name, fig in drawn.items():
        assert fig["title"], name
        assert any(xlabel for _, xlabel, *_ in fig["axes"]), name
        assert any(ylabel for _, _, ylabel, *_ in fig["axes"]), name
    rel = drawn["relative_loss"]["axes"]
    assert [a[0] for a in rel] == ["initialization (step 0)", "step 20"]
    assert all(a[3] == "log" and a[4] == "log" for a in rel)
    # grad_ics: hidden1 (G′ = G by definition) is left out when deeper layers exist.
    assert [a[0] for a in drawn["grad_ics"]["axes"][:1]] == ["hidden2"]
    # Sharpness × lr panel: a line per configuration (2) plus the dashed edge of stability.
    sharp = drawn["sharpness"]["axes"][1]
    assert sharp[5] == 3
    # Landscape: β_eff spans 0.1 … 30 (over 30×): log.
    assert drawn["landscape"]["axes"][2][4] == "log"


def test_spread_keeps_the_first_and_the_last():
    assert second_plots._spread(list(range(1, 26))) == [1, 9, 17, 25]
    assert second_plots._spread([1, 2]) == [1, 2]


# --------------------------------------------------------------------------- real runs


def test_real_tiny_runs_give_every_table_and_figure(tmp_path):
    """End to end: two real 8-step runs that record every quantity, compared and drawn."""
    from ics_cli.config import RunConfig
    from ics_cli.train import train

    for norm in ("none", "batch"):
        train(RunConfig(dataset="synthetic", steps=8, log_every=4, eval_every=4, ics_every=4,
                        landscape_every=4, relative_loss_every=100, sharpness_every=4, sharpness_iters=3,
                        relative_alphas="1e-3:1:4", norm=norm, depth=3, width=16, device="cpu",
                        out=str(tmp_path / "runs")))
    runs = find_runs(tmp_path / "runs")
    tables = compare.build(runs)
    assert tuple(tables)[len(ALL_TABLE_NAMES):] == SECOND_VIEW_NAMES
    for name in SECOND_VIEW_NAMES:
        assert set(tables[name]["norm"]) == {"none", "batch"}, name
    # One seed: each mean is the run's own number, worked out here from its landscape.csv.
    run = next(r for r in runs if r.config["config"]["norm"] == "batch")
    raw = run.table("landscape")
    at4 = raw[raw["step"] == 4]
    r = one(tables["landscape_curves"], norm="batch", step=4)
    assert r["beta_eff_mean"] == pytest.approx(at4["beta"].max())
    assert r["loss_band_width_mean"] == pytest.approx(at4["loss"].max() - at4["loss"].min())
    assert math.isnan(r["beta_eff_ci_low"])
    assert list(tables["relative_loss_threshold"]["step"]) == [0, 0]
    assert set(tables["depth_profile"]["layer_index"]) == {1, 2, 3}
    assert set(tables["grad_ics_curves"]["step"]) == {0, 4}
    files.write_tables(tables, tmp_path / "c")
    loaded = outputs.load(tmp_path / "c")
    for figure in second_plots.FIGURES:
        (path,) = figure(loaded, tmp_path / "figs")
        assert path.read_bytes()[:8] == PNG_MAGIC
