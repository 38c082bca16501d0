"""Facts about the long tables (issue 13, part 3): `ics compare` writes, in long/, the per-seed rows of
every wide table that aggregates runs over seeds, with the documented columns; grouping them and taking
compare's own mean and t interval gives the wide table back; the same runs give the same bytes; they are
part of the staged output set; and nothing that reads a compare folder needs them.

The runs: a real sweep of 8 tiny runs (none and batch, batch sizes 30 and 60, seeds 0 and 1, synthetic
data, 20 steps) recording every quantity of the second view, so every table family has a long table;
and a sweep of 2 runs over the learning rate (one of them diverging, at another width) whose long tables
start with the same key columns (issue 27).
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ics_cli.figures import draw
from ics_cli.figures import style
from ics_cli.analyse import compare, long as long_tables
from ics_cli.analyse import outputs
from ics_cli.analyse.keys import LONG_KEY, RUN_COLUMNS, SITE_ORDER, key_columns, table_key
from ics_cli.analyse.stats import aggregate
from ics_cli.store import runs as store
from ics_cli.store import staging
from ics_cli.cli import main
from ics_cli.errors import IcsError

SWEEP = ["--norms", "none,batch", "--lrs", "0.1", "--seeds", "0,1", "--batch-sizes", "30,60",
         "--steps", "20", "--dataset", "synthetic", "--log-every", "10", "--eval-every", "10",
         "--probe-size", "64", "--ics-every", "10", "--landscape-every", "10",
         "--relative-loss-every", "10", "--relative-alphas", "1e-3:1:4", "--sharpness-every", "10",
         "--sharpness-iters", "3", "--jobs", "1", "--quiet"]
# A second sweep over the learning rate (one that diverges) at another width, with no second view.
LR_SWEEP = ["--norms", "none", "--lrs", "0.1,50", "--seeds", "0", "--batch-sizes", "30", "--steps", "20",
            "--dataset", "synthetic", "--log-every", "10", "--eval-every", "10", "--probe-size", "64",
            "--width", "16", "--jobs", "1", "--quiet"]
# Wide tables with no long table: per run already (runs, percentiles) or read from runs.csv's rows.
NOT_LONG = {"summary", "lr_curve", "lr_tolerance", "best_lr", "percentiles", "runs"}
# Long values that the wide table counts or takes the first / largest of, rather than averaging.
NOT_AVERAGED = {"relative_loss_threshold": {"alpha_blowup", "blown", "alpha_max"},
                "batch_size": {"diverged", "scored_by"}, "test_stats": {"diverged", "scored_by"}}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("long") / "sweep"
    assert main(["sweep", *SWEEP, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def runs(sweep):
    return store.find_runs(sweep)


@pytest.fixture(scope="module")
def lr_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("long-lr") / "sweep"
    assert main(["sweep", *LR_SWEEP, "--out", str(out)]) == 0
    return store.find_runs(out)


@pytest.fixture(scope="module")
def compared(sweep, runs):
    """`outputs.save` of every run (tables only: figures/draw.save adds the figures): the tables as written."""
    outputs.save(compare.build(runs), sweep / "compare")
    return sweep / "compare"


@pytest.fixture
def one_figure(monkeypatch):
    """One small real figure instead of every one (test_plots.py draws them): draw_all, its reading of
    outputs.load's tables and its staging still run for real."""
    def one(tables, out_dir, fmt="png"):
        return [style.save_figure(style.new_figure(1, 1), out_dir, "lr_tolerance", fmt)]
    monkeypatch.setattr(draw, "FIGURES", (one,))


def fingerprint(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- schema


def test_every_wide_table_over_seeds_has_a_long_table_of_the_documented_columns(compared):
    wide = outputs.load(compared)
    names = sorted(p.stem for p in (compared / long_tables.FOLDER).iterdir())
    assert names == sorted(set(wide) - NOT_LONG) == sorted(long_tables.NAMES)    # every family recorded
    key = table_key(wide["summary"])
    assert key == ["model", "norm", "lr", "batch_size"]
    for name in names:
        table = outputs.load_long(compared, name)
        assert list(table.columns) == long_tables.columns(name, key), name
        index, values = long_tables.SCHEMA[name]
        # A value is named as its wide column `<value>_mean`, less the suffix.
        averaged = [v for v in values if v not in NOT_AVERAGED.get(name, ())]
        assert {f"{v}_mean" for v in averaged} <= set(wide[name].columns), name
        assert table[["seed", "hash"]].notna().all().all() and len(table), name
    assert long_tables.columns("drift", key) == [
        "model", "norm", "lr", "batch_size", "optimizer", "depth", "width", "activation", "dataset", "steps",
        "seed", "hash", "status", "layer", "site", "drift_mean_total",
        "drift_var_total", "drift_mean_init_final", "drift_var_init_final", "drift_mean_step",
        "drift_var_step", "drift_mean_scaled_total", "drift_mean_scaled_step", "drift_mean_scaled_init_final"]
    # bn_eval is an index column of test_stats, unless the comparison is keyed by it.
    assert "bn_eval" in long_tables.columns("test_stats", key)
    assert long_tables.columns("test_stats", key + ["bn_eval"]).count("bn_eval") == 1


def test_long_tables_of_two_sweeps_start_with_the_same_key_and_name_each_runs_status(runs, lr_runs, tmp_path):
    """One sweep varies the batch size, the other the lr (at width 16, one run diverging): their long
    tables start with the same columns, which a wide key would not (`width` follows `batch_size` in
    the wide tables of both together). A field that varies outside LONG_KEY comes after it, never lost."""
    lead = [*LONG_KEY, *RUN_COLUMNS]
    by_batch, by_lr = compare.build(runs), compare.build(lr_runs)
    together = compare.build(runs + lr_runs)
    assert table_key(by_batch["summary"]) == table_key(by_lr["summary"]) == ["model", "norm", "lr", "batch_size"]
    assert table_key(together["summary"])[:5] == ["model", "norm", "lr", "batch_size", "width"]
    extra = [c for c in key_columns(runs + lr_runs) if c not in LONG_KEY]
    assert "ics_every" in extra and "width" not in extra           # the second view is on in one sweep only
    runs_csv = together["runs"].set_index("hash")["status"]
    for name in ("drift", "curves", "gradient_stability"):
        for tables in (by_batch, by_lr):
            assert list(tables.long[name].columns[:len(lead)]) == lead, name
        cols = list(together.long[name].columns)
        assert cols[:len(LONG_KEY) + len(extra) + len(RUN_COLUMNS)] == [*LONG_KEY, *extra, *RUN_COLUMNS], name
        rows = together.long[name]
        assert (rows["status"] == rows["hash"].map(runs_csv)).all(), name
    assert set(by_lr.long["curves"]["status"]) == {"completed", "diverged"}
    assert set(by_batch.long["curves"]["width"]) == {100} and set(by_lr.long["curves"]["width"]) == {16}
    # Read back from disk: the status is text, the key as written.
    long_tables.write(by_lr.long, tmp_path)
    read = long_tables.load(tmp_path, "curves")
    assert list(read.columns[:len(lead)]) == lead
    assert sorted(set(read["status"])) == ["completed", "diverged"] and set(read["dataset"]) == {"synthetic"}


def test_rows_are_one_per_run_and_index_in_reading_order(compared, runs):
    runs_csv = outputs.load(compared)["runs"]
    layers = outputs.load_long(compared, "layer_curves")
    # One row per run × layer × site × step: the 8 runs, 3 layers (hidden1, hidden2, output)...
    assert not layers.duplicated(["hash", "layer", "site", "step"]).any()
    assert set(layers["hash"]) == set(runs_csv["hash"]) and len(set(layers["hash"])) == len(runs) == 8
    # ... with the seed and the key of the run that hash names in runs.csv.
    joined = layers.merge(runs_csv, on="hash", suffixes=("", "_run"))
    for col in ("model", "norm", "lr", "batch_size", "seed", "status"):
        assert (joined[col] == joined[f"{col}_run"]).all(), col
    drift = outputs.load_long(compared, "drift")
    assert list(drift["norm"].drop_duplicates()) == ["none", "batch"]               # NORM_ORDER
    first = drift[drift["hash"] == drift["hash"].iloc[0]]
    assert list(first["site"].drop_duplicates()) == [s for s in SITE_ORDER if s in set(first["site"])]
    assert list(first["layer"].drop_duplicates()) == ["hidden1", "hidden2", "hidden3"]
    assert drift.groupby(["norm", "batch_size"], sort=False)["seed"].apply(
        lambda s: list(dict.fromkeys(s))).tolist() == [[0, 1]] * 4


# --------------------------------------------------------------------------- long -> wide


def _derived(name: str, long: pd.DataFrame, key: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The wide table's n_seeds and `<v>_mean, _ci_low, _ci_high` from the long one, by aggregate."""
    index, values = long_tables.SCHEMA[name]
    by = key + [c for c in index if c not in key]
    averaged = [v for v in values if v not in NOT_AVERAGED.get(name, ())]
    if name == "gradient_stability":        # the ratio: one number per run, repeated on its layers
        ratio = averaged.pop()
        per_run = long.drop_duplicates("hash")
        out = aggregate(long, by, averaged).merge(
            aggregate(per_run, key, [ratio]).drop(columns="n_seeds"), on=key)
        return out, by
    out = aggregate(long, by, averaged)
    g = long.groupby(by, dropna=False, sort=False)
    if name == "relative_loss_threshold":
        out = out.merge(pd.DataFrame({"n_blowup": g["blown"].sum(), "alpha_max": g["alpha_max"].max()})
                        .reset_index(), on=by)
    if name in ("batch_size", "test_stats"):
        out = out.merge(g["diverged"].sum().rename("n_diverged").reset_index(), on=by)
    if name == "test_stats":
        gap = long_tables.SCHEMA[name][1][-1]
        out = out.merge(g[gap].count().rename("n_paired").reset_index(), on=by)
    return out, by


def _close(a: pd.Series, b: pd.Series, scale: pd.Series) -> bool:
    """Equal blanks, and numbers equal to the 9 significant digits the CSVs hold (relative to `scale`)."""
    a, b = a.astype(float).to_numpy(), b.astype(float).to_numpy()
    same_blank = np.isnan(a) == np.isnan(b)
    tol = 1e-7 * scale.astype(float).abs().fillna(0).to_numpy() + 1e-300
    return bool(same_blank.all() and (np.abs(a - b)[~np.isnan(a)] <= tol[~np.isnan(a)]).all())


@pytest.mark.parametrize("name", long_tables.NAMES)
def test_grouping_a_long_table_and_taking_compares_mean_and_interval_gives_the_wide_table(compared, name):
    wide = outputs.load(compared)[name]
    key = table_key(outputs.load(compared)["summary"])
    derived, by = _derived(name, outputs.load_long(compared, name), key)
    assert len(derived) == len(wide)
    both = wide.merge(derived, on=by, how="outer", suffixes=("", "_long"), validate="one_to_one",
                      indicator=True)
    assert (both["_merge"] == "both").all(), both[both["_merge"] != "both"][by]
    checked = [c for c in derived.columns if c not in by]
    assert "n_seeds" in checked and any(c.endswith("_ci_low") for c in checked)
    for col in checked:
        if col.startswith("n_"):
            assert (both[col] == both[f"{col}_long"]).all(), (name, col)
            continue
        stem = col.rsplit("_", 2 if col.endswith(("_ci_low", "_ci_high")) else 1)[0]
        scale = (both[f"{stem}_mean"].abs() + (both[f"{stem}_ci_high"] - both[f"{stem}_ci_low"]).abs()
                 if f"{stem}_ci_high" in both else both[col].abs())
        assert _close(both[col], both[f"{col}_long"], scale), (name, col)
    assert (both["n_seeds"] == 2).all()                  # every configuration has both seeds


def test_one_seed_still_gives_a_long_table_whose_rows_are_the_wide_means(runs, tmp_path):
    one = [r for r in runs if store.run_config(r)["seed"] == 0]
    tables = compare.build(one)
    assert set(tables.long) == set(long_tables.NAMES)
    long_tables.write(tables.long, tmp_path)
    key = table_key(tables["summary"])
    for name in ("drift", "curves", "landscape_stability"):
        long = long_tables.load(tmp_path, name)
        wide = tables[name]
        assert len(long) == len(wide) and (wide["n_seeds"] == 1).all() and set(long["seed"]) == {0}
        index, values = long_tables.SCHEMA[name]
        by = key + list(index)
        both = wide.merge(long, on=by, validate="one_to_one")
        for v in values:
            assert both[f"{v}_ci_low"].isna().all() and both[f"{v}_ci_high"].isna().all()
            assert _close(both[f"{v}_mean"], both[v], both[v].abs()), (name, v)


# --------------------------------------------------------------------------- files


def test_the_same_runs_give_the_same_bytes_in_any_order(compared, runs, tmp_path):
    long_tables.write(compare.build(runs).long, tmp_path / "a")
    long_tables.write(compare.build(list(reversed(runs))).long, tmp_path / "b")
    a, b = fingerprint(tmp_path / "a"), fingerprint(tmp_path / "b")
    assert a == b == {k: v for k, v in fingerprint(compared).items() if k.startswith("long/")}
    assert len(a) == len(long_tables.NAMES)


def test_save_lists_the_long_tables_between_the_wide_tables_and_the_figures(runs, tmp_path, one_figure):
    written = draw.save(compare.build(runs[:2]), tmp_path / "c")
    rel = [str(p.relative_to(tmp_path / "c")) for p in written]
    wide = [r for r in rel if "/" not in r and r.endswith(".csv")]
    long = [r for r in rel if r.startswith("long/")]
    assert rel[:len(wide)] == wide and rel[len(wide):len(wide) + len(long)] == long
    assert long == [f"long/{n}.csv" for n in long_tables.NAMES if f"{n}.csv" in wide]
    assert all(p.is_file() for p in written) and len(rel) > len(wide) + len(long)   # then the figures


def test_a_rerun_replaces_the_long_tables_and_removes_those_the_new_set_lacks(compared, runs, tmp_path):
    dest = Path(shutil.copytree(compared, tmp_path / "compare"))
    (dest / "long" / "notes.txt").write_text("mine")
    plain = [r for r in runs if store.run_config(r)["batch_size"] == 60]     # no batch axis: no batch view
    tables = compare.build(plain)
    outputs.save(tables, dest)
    assert not (dest / "long" / "batch_size.csv").exists() and not (dest / "batch_size.csv").exists()
    assert len(outputs.load_long(dest, "curves")) == len(outputs.load_long(compared, "curves")) // 2
    assert (dest / "long" / "notes.txt").read_text() == "mine"
    # A set without long tables (a plain dict) leaves none of the earlier set's behind it.
    outputs.save(dict(tables), dest)
    assert sorted(p.name for p in (dest / "long").iterdir()) == ["notes.txt"]
    (dest / "long" / "notes.txt").unlink()
    outputs.save(dict(tables), dest)
    assert not (dest / "long").exists()
    with pytest.raises(IcsError, match="older than long tables"):
        outputs.load_long(dest, "curves")


def test_a_compare_killed_while_writing_leaves_the_previous_set_whole(compared, runs, tmp_path, monkeypatch):
    dest = Path(shutil.copytree(compared, tmp_path / "compare"))
    before = fingerprint(dest)

    def killed(tables, out_dir, fmt="png"):
        assert (Path(out_dir) / "long" / "drift.csv").is_file()      # the new long tables, staged...
        raise KeyboardInterrupt                                      # ... and a Ctrl-C before the figures

    monkeypatch.setattr(draw, "draw_all", killed)
    with pytest.raises(KeyboardInterrupt):
        draw.save(compare.build(runs[:3]), dest)
    assert fingerprint(dest) == before and not staging.staging_folder(dest).exists()
    (dest / staging.INCOMPLETE).write_text(staging.INCOMPLETE_NOTE)     # a hard kill while files moved in
    with pytest.raises(IcsError, match="incomplete set of compare outputs"):
        outputs.load_long(dest, "drift")


def test_a_compare_folder_from_before_long_tables_still_loads_and_plots(compared, tmp_path, capsys,
                                                                       one_figure):
    old = Path(shutil.copytree(compared, tmp_path / "old", ignore=shutil.ignore_patterns("long")))
    tables = outputs.load(old)
    assert set(tables) == {p.stem for p in compared.glob("*.csv")}
    assert main(["plot", str(old)]) == 0
    assert (old / "lr_tolerance.png").is_file() and "1 figures written" in capsys.readouterr().out
    assert not (old / "long").exists()                  # `ics plot` neither needs nor writes them
    with pytest.raises(IcsError, match="older than long tables wrote it; rerun `ics compare`"):
        outputs.load_long(old, "drift")
    with pytest.raises(IcsError, match="the long tables are: drift, gradient_stability"):
        outputs.load_long(compared, "summary")


def test_owns_claims_the_long_folder_and_its_tables_only():
    assert outputs.owns("long/") and outputs.owns("long/layer_curves.csv") and outputs.owns("long/.x.csv.1.tmp")
    assert not outputs.owns("long/notes.txt") and not outputs.owns("long/runs.csv")
    assert not outputs.owns("other/") and not outputs.owns("other/drift.csv") and outputs.owns("drift.csv")
    # A file called `long` is not one of the set's files (a report lists the files owns claims as figures).
    assert not outputs.owns("long")


def test_a_file_in_the_way_of_the_long_folder_stops_the_compare_and_is_kept(compared, runs, tmp_path):
    dest = tmp_path / "compare"
    dest.mkdir()
    (dest / "long").write_text("mine")
    with pytest.raises(IcsError, match="is in the way"):
        outputs.save(compare.build(runs[:2]), dest)
    assert (dest / "long").read_text() == "mine" and sorted(p.name for p in dest.iterdir()) == ["long"]
    assert not staging.staging_folder(dest).exists()

