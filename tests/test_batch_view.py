"""Facts about the batch view: the compare tables batch_size / test_stats (batch_view.py) and their
figures (batch_plots.py), checked against numbers worked out by hand from synthetic run folders.

The main sweep: MLP runs of batch norm and layer norm at batch sizes 4 and 32, seeds 0, 1, 2, two log
steps each, with the final test accuracy ACC (under the run's own test-time statistics) and BATCHSTATS
(under the test batch's statistics; for layer norm train.py writes test_acc there, so the same).
Batch norm at batch 4, seed 2 diverged (its last logged accuracy is its final one, as compare reads it).
"""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ics_cli.figures import batch as batch_plots, plots
from ics_cli.figures import draw
from ics_cli.figures import style
from ics_cli.analyse import batch as batch_view, compare
from ics_cli.analyse.base import ALL_TABLE_NAMES, BATCH_VIEW_NAMES
from ics_cli.analyse import outputs
from ics_cli.analyse.keys import ALWAYS_KEY, key_columns, table_key
from ics_cli.store import runs as store
from ics_cli.store import files
from ics_cli.cli import main
from ics_cli.config import HASHED_UNLESS, RunConfig
from ics_cli.store.runs import find_runs

from expect import ci, one
from synthetic import edit_config, write_run

ACC = {("batch", 4): [0.60, 0.70, 0.65], ("batch", 32): [0.90, 0.92, 0.91],
       ("layer", 4): [0.85, 0.86, 0.88], ("layer", 32): [0.87, 0.86, 0.89]}
BATCHSTATS = {("batch", 4): [0.70, 0.75, 0.72], ("batch", 32): [0.89, 0.90, 0.90]}
DIVERGED = ("batch", 4, 2)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def batch_run(root, *, norm, seed, acc, acc_batch=None, batch_size=60, status="completed", lr=0.5,
              model="mlp", old=False, **fields) -> Path:
    """One finished run folder (synthetic.write_run) with `batch_size` and other config `fields` set,
    final test accuracy `acc` and batch-statistics accuracy `acc_batch` (default: `acc`, as train.py
    writes for norms without batch statistics). `old`: config.json as an ics before the batch view
    wrote it, without the fields of config.HASHED_UNLESS."""
    where = Path(root) / f"{norm}-{batch_size}-{seed}-{len(list(Path(root).glob('*')))}"
    folder = write_run(where, norm=norm, seed=seed, test_acc=[0.1, acc], log_every=10, lr=lr,
                       model=model, status=status)
    acc_batch = acc if acc_batch is None else acc_batch
    edit_config(folder, rehash=True, drop=HASHED_UNLESS if old else (), batch_size=batch_size, **fields)
    metrics = pd.read_csv(folder / "metrics.csv")
    metrics["test_acc_batchstats"] = [0.1, acc_batch]
    (folder / "metrics.csv").write_text(metrics.to_csv(index=False, na_rep=""))
    summary = json.loads((folder / "summary.json").read_text())
    if summary["final"] is not None:
        summary["final"]["test_acc_batchstats"] = acc_batch
    files.write_json(folder / "summary.json", summary)
    return folder


def write_sweep(root) -> Path:
    root = Path(root)
    for (norm, bs), accs in ACC.items():
        for seed, acc in enumerate(accs):
            status = "diverged" if (norm, bs, seed) == DIVERGED else "completed"
            batch = BATCHSTATS.get((norm, bs), accs)[seed]
            batch_run(root, norm=norm, seed=seed, acc=acc, acc_batch=batch, batch_size=bs, status=status)
    return root


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("batch"))


@pytest.fixture(scope="module")
def tables(sweep):
    return compare.build(find_runs(sweep))


# --------------------------------------------------------------------------- batch_size.csv


def test_the_batch_view_follows_the_other_tables(tables):
    assert tuple(tables) == ALL_TABLE_NAMES + BATCH_VIEW_NAMES


def test_batch_size_table_holds_the_error_means_and_intervals_over_seeds(tables):
    t = tables["batch_size"]
    assert list(zip(t["norm"], t["batch_size"])) == [("batch", 4), ("batch", 32), ("layer", 4), ("layer", 32)]
    for (norm, bs), accs in ACC.items():
        r = one(t, norm=norm, batch_size=bs)
        assert r["n_seeds"] == 3 and r["norm_batch"] == bs and r["scored_by"] == "final_test_acc"
        ci(r, "final_test_error", [1 - a for a in accs])
        ci(r, "final_test_error_batchstats", [1 - a for a in BATCHSTATS.get((norm, bs), accs)])
        assert r["n_diverged"] == (1 if (norm, bs) == DIVERGED[:2] else 0)
        # Layer norm takes no statistics from the batch: no stats_batch.
        assert (r["stats_batch"] == bs) if norm == "batch" else math.isnan(r["stats_batch"])


def test_error_is_one_minus_the_summary_accuracy(tables):
    merged = tables["batch_size"].merge(tables["summary"], on=ALWAYS_KEY)
    assert np.allclose(merged["final_test_error_mean"], 1 - merged["final_test_acc_mean"], atol=1e-12)
    assert np.allclose(merged["final_test_error_ci_low"], 1 - merged["final_test_acc_ci_high"], atol=1e-12)


def test_one_batch_size_and_default_options_write_no_batch_view(tmp_path):
    for seed in (0, 1):
        batch_run(tmp_path, norm="batch", seed=seed, acc=0.9, acc_batch=0.8, batch_size=60)
        batch_run(tmp_path, norm="none", seed=seed, acc=0.8, batch_size=60)
    tables = compare.build(find_runs(tmp_path))
    assert tuple(tables) == ALL_TABLE_NAMES
    assert key_columns(find_runs(tmp_path)) == list(ALWAYS_KEY)


def test_only_models_with_a_batch_axis_get_one(tmp_path):
    """A comparison of a CNN swept over batch sizes and an MLP at one batch size: batch_size.csv and
    test_stats.csv hold the CNN's rows only (an MLP figure would have one point per line)."""
    for bs in (4, 16):
        batch_run(tmp_path, norm="batch", seed=0, acc=0.8, batch_size=bs, model="cnn")
    batch_run(tmp_path, norm="batch", seed=0, acc=0.8, batch_size=4, model="mlp")
    batch_run(tmp_path, norm="batch", seed=0, acc=0.8, batch_size=60, model="resmlp")
    built = compare.build(find_runs(tmp_path))
    assert set(built["batch_size"]["model"]) == {"cnn"}
    assert set(built["test_stats"]["model"]) == {"cnn"}


def test_micro_batches_alone_are_a_batch_axis(tmp_path):
    """One batch size, two normalization batches (micro-batch 4 and the whole batch of 60)."""
    for seed in (0, 1):
        batch_run(tmp_path, norm="batch", seed=seed, acc=0.7 + 0.1 * seed, batch_size=60, micro_batch=4)
        batch_run(tmp_path, norm="batch", seed=seed, acc=0.9, batch_size=60)
    t = compare.build(find_runs(tmp_path))["batch_size"]
    assert "micro_batch" in t.columns
    assert sorted(t["norm_batch"]) == [4, 60]
    ci(one(t, norm_batch=4), "final_test_error", [0.3, 0.2])


def test_stats_batch_of_each_norm():
    cfg = {"ghost_size": 8, "batch_size": 64, "micro_batch": None}
    assert batch_view.stats_batch({**cfg, "norm": "ghost-batch"}) == 8
    assert batch_view.stats_batch({**cfg, "norm": "batch", "micro_batch": 16}) == 16
    assert batch_view.stats_batch({**cfg, "norm": "batch"}) == 64
    assert math.isnan(batch_view.stats_batch({**cfg, "norm": "group"}))


def test_regression_runs_have_no_error(tmp_path):
    for bs in (4, 32):
        folder = batch_run(tmp_path, norm="batch", seed=0, acc=0.5, batch_size=bs)
        metrics = pd.read_csv(folder / "metrics.csv")
        metrics["test_acc"] = math.nan
        metrics["test_acc_batchstats"] = math.nan
        (folder / "metrics.csv").write_text(metrics.to_csv(index=False, na_rep=""))
        summary = json.loads((folder / "summary.json").read_text())
        summary["final"].update(test_acc=None, test_acc_batchstats=None)
        files.write_json(folder / "summary.json", summary)
    t = compare.build(find_runs(tmp_path))["batch_size"]
    assert set(t["scored_by"]) == {"final_loss_drop"}
    assert t["final_test_error_mean"].isna().all() and t["final_test_error_batchstats_mean"].isna().all()


def test_no_eval_batchstats_leaves_the_batch_statistics_error_blank(tmp_path):
    """With --no-eval-batchstats train.py copies test_acc into test_acc_batchstats: not a batch-statistics
    number, so it is left blank for batch norm (and kept for layer norm, which has no batch statistics)."""
    for bs in (4, 32):
        batch_run(tmp_path, norm="batch", seed=0, acc=0.5, batch_size=bs, eval_batchstats=False)
        batch_run(tmp_path, norm="layer", seed=0, acc=0.6, batch_size=bs, eval_batchstats=False)
    t = compare.build(find_runs(tmp_path))["batch_size"]
    assert t[t["norm"] == "batch"]["final_test_error_batchstats_mean"].isna().all()
    assert np.allclose(t[t["norm"] == "layer"]["final_test_error_batchstats_mean"], 0.4)


# --------------------------------------------------------------------------- configurations and old runs


def bn_eval_runs(root):
    """Batch norm at one batch size, seeds 0 and 1, evaluated with EMA and with PreciseBN (the two runs
    of a seed train identically: the same batch-statistics accuracy)."""
    own = {("ema", 0): 0.80, ("ema", 1): 0.84, ("precise", 0): 0.88, ("precise", 1): 0.87}
    batch = {0: 0.90, 1: 0.85}
    for (bn_eval, seed), acc in own.items():
        batch_run(root, norm="batch", seed=seed, acc=acc, acc_batch=batch[seed], batch_size=8, bn_eval=bn_eval)
    return own, batch


def test_runs_differing_only_in_bn_eval_are_separate_configurations(tmp_path):
    own, batch = bn_eval_runs(tmp_path)
    runs = find_runs(tmp_path)
    assert key_columns(runs) == [*ALWAYS_KEY, "bn_eval"]
    tables = compare.build(runs)
    summary = tables["summary"]
    assert list(summary["bn_eval"]) == ["ema", "precise"] and list(summary["n_seeds"]) == [2, 2]
    assert "batch_size" not in tables          # one batch size, one normalization batch
    t = tables["test_stats"]
    for mode in ("ema", "precise"):
        r = one(t, bn_eval=mode)
        assert r["n_seeds"] == 2 and r["n_paired"] == 2 and r["norm_batch"] == 8
        ci(r, "final_test_error", [1 - own[mode, s] for s in (0, 1)])
        ci(r, "final_test_error_batchstats", [1 - batch[s] for s in (0, 1)])
        # Paired per seed: (1 − own) − (1 − batch) = batch − own.
        ci(r, "error_own_minus_batchstats", [batch[s] - own[mode, s] for s in (0, 1)])


def test_test_stats_names_the_runs_own_statistics_when_bn_eval_does_not_vary(tables):
    t = tables["test_stats"]
    assert set(t["norm"]) == {"batch"}             # layer norm has no batch statistics
    assert set(t["bn_eval"]) == {"ema"}
    r = one(t, batch_size=32)
    ci(r, "error_own_minus_batchstats", [b - a for a, b in zip(ACC["batch", 32], BATCHSTATS["batch", 32])])


def test_old_runs_without_the_new_config_keys_read_them_as_defaults(tmp_path):
    old = [batch_run(tmp_path, norm="batch", seed=s, acc=0.9, batch_size=bs, old=True)
           for s in (0, 1) for bs in (4, 32)]
    assert all("bn_eval" not in json.loads((f / "config.json").read_text())["config"] for f in old)
    new = [batch_run(tmp_path, norm="batch", seed=2, acc=0.8, batch_size=bs) for bs in (4, 32)]
    runs = find_runs(tmp_path)
    assert store.run_config(runs[0])["bn_eval"] == "ema"
    # Old (no bn_eval key) and new (bn_eval "ema") runs of one batch size are seeds of one configuration.
    assert key_columns(runs) == list(ALWAYS_KEY)
    t = compare.build(runs)["batch_size"]
    assert list(t["n_seeds"]) == [3, 3]
    ci(one(t, batch_size=4), "final_test_error", [0.1, 0.1, 0.2])
    # A newer run with another bn_eval is a configuration of its own; the old runs read as "ema".
    batch_run(tmp_path, norm="batch", seed=0, acc=0.7, batch_size=4, bn_eval="precise")
    summary = compare.build(find_runs(tmp_path))["summary"]
    assert list(zip(summary["batch_size"], summary["bn_eval"], summary["n_seeds"])) == [
        (4, "ema", 3), (4, "precise", 1), (32, "ema", 3)]
    assert len(new) == 2


# --------------------------------------------------------------------------- figures


def test_every_figure_kind_has_a_caption():
    assert set(batch_plots.CAPTIONS) == {f.__name__ for f in batch_plots.FIGURES}
    assert draw.caption("batch_size_mlp.png") == batch_plots.CAPTIONS["batch_size"]
    assert draw.caption("test_stats.svg") == batch_plots.CAPTIONS["test_stats"]
    assert draw.owns("batch_size.csv") and draw.owns("test_stats.png")


@pytest.fixture
def drawn(monkeypatch):
    """What each saved figure showed, captured before the figure is cleared."""
    figures = {}
    save = style.save_figure

    def spy(fig, out_dir, name, fmt):
        figures[name] = [{"xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(), "xscale": ax.get_xscale(),
                          "xticks": list(ax.get_xticks()), "lines": [(ln.get_label(), ln.get_color(),
                                                                        list(ln.get_xdata()))
                                                                       for ln in ax.get_lines()]}
                         for ax in fig.axes]
        return save(fig, out_dir, name, fmt)
    monkeypatch.setattr(batch_plots, "save_figure", spy)
    return figures


def test_error_against_batch_size_has_a_log2_axis_and_a_line_per_norm(tables, tmp_path, drawn):
    files.write_tables(tables, tmp_path / "c")
    loaded = outputs.load(tmp_path / "c")
    for figure in batch_plots.FIGURES:
        figure(loaded, tmp_path / "figs")
    assert set(drawn) == {"batch_size", "test_stats"}
    [ax] = drawn["batch_size"]
    assert ax["xscale"] == "log" and ax["xticks"] == [4, 32] and ax["xlabel"].startswith("batch size")
    assert "%" in ax["ylabel"]
    lines = {label: (color, x) for label, color, x in ax["lines"]}
    assert lines["batch"] == (style.norm_color("batch"), [4.0, 32.0])
    assert lines["layer"] == (style.norm_color("layer"), [4.0, 32.0])
    both, gap = drawn["test_stats"]
    assert [label for label, *_ in both["lines"] if not label.startswith("_")][0] == "batch"
    assert gap["xticks"] == [4, 32]


def test_lines_keep_one_point_per_batch_size_when_the_lr_is_set_per_batch(tmp_path):
    """A sweep that scales the lr by hand (lr = 0.1 × batch / 4) gives one line per norm, not one per lr."""
    for bs in (4, 16):
        for norm in ("batch", "layer"):
            batch_run(tmp_path, norm=norm, seed=0, acc=0.8, batch_size=bs, lr=0.1 * bs / 4)
    t = compare.build(find_runs(tmp_path))["batch_size"]
    lines = batch_plots._lines(t)
    assert [(norm, list(df["norm_batch"])) for norm, _, _, df in lines] == [("batch", [4, 16]),
                                                                           ("layer", [4, 16])]


def test_lines_keep_one_point_per_batch_size_when_each_runs_the_same_epochs(tmp_path):
    """Under --epochs a smaller batch takes more steps, so `steps` varies with the batch size: still one
    line per norm (with 2 steps values at one batch size, steps would tell lines apart again)."""
    for bs in (4, 16):
        for norm in ("batch", "layer"):
            batch_run(tmp_path, norm=norm, seed=0, acc=0.8, batch_size=bs, steps=1600 // bs)
    t = compare.build(find_runs(tmp_path))["batch_size"]
    assert "steps" in table_key(t)
    lines = batch_plots._lines(t)
    assert [(norm, list(df["norm_batch"])) for norm, _, _, df in lines] == [("batch", [4, 16]),
                                                                           ("layer", [4, 16])]


def test_compare_and_plot_draw_the_same_bytes(sweep, tmp_path, monkeypatch):
    """`ics compare` writes the tables and draws the figures; `ics plot` redraws them from the CSVs alone
    (the run folders gone) to the same bytes."""
    monkeypatch.setattr(draw, "FIGURES", tuple(f for f in draw.FIGURES if f not in plots.FIGURES))  # the core figures are test_plots' business (and slow)
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    out = tmp_path / "out"
    assert main(["compare", str(copy), "--out", str(out), "--quiet", "--format", "svg"]) == 0
    for name in BATCH_VIEW_NAMES:
        assert (out / f"{name}.csv").is_file(), name
    first = {k: (out / f"{k}.svg").read_bytes() for k in ("batch_size", "test_stats")}
    assert all(b"<svg" in data[:2000] for data in first.values())
    shutil.rmtree(copy)
    for kind in first:
        (out / f"{kind}.svg").unlink()
    assert main(["plot", str(out), "--format", "svg"]) == 0
    assert {k: (out / f"{k}.svg").read_bytes() for k in first} == first
    assert main(["plot", str(out)]) == 0
    assert (out / "batch_size.png").read_bytes()[:8] == PNG_MAGIC


# --------------------------------------------------------------------------- real runs


def test_real_tiny_runs_at_two_batch_sizes(tmp_path):
    """End to end: real 4-step batch-norm runs at batch sizes 4 and 8, compared and drawn."""
    from ics_cli.train import train

    for bs in (4, 8):
        train(RunConfig(dataset="synthetic", steps=4, log_every=2, eval_every=2, norm="batch", depth=2,
                        width=8, batch_size=bs, track_units=0, device="cpu", out=str(tmp_path / "runs")))
    runs = find_runs(tmp_path / "runs")
    tables = compare.build(runs)
    t = tables["batch_size"]
    assert list(t["norm_batch"]) == [4, 8]
    for run in runs:
        cfg = store.run_config(run)
        final = run.summary["final"]
        r = one(t, norm=cfg["norm"], batch_size=cfg["batch_size"])
        assert r["final_test_error_mean"] == pytest.approx(1 - final["test_acc"])
        assert r["final_test_error_batchstats_mean"] == pytest.approx(1 - final["test_acc_batchstats"])
    assert set(tables["test_stats"]["norm"]) == {"batch"}
    files.write_tables(tables, tmp_path / "c")
    for figure in batch_plots.FIGURES:
        (path,) = figure(outputs.load(tmp_path / "c"), tmp_path / "figs")
        assert path.read_bytes()[:8] == PNG_MAGIC
