"""Facts about TensorBoard output (ics_cli/tensorboard.py): the events read back with TensorBoard's own
reader hold the documented tags with the CSVs' values at the CSVs' steps, live and exported alike;
writing them changes no recorded byte; a resumed run holds each step once; export replaces what it
exported before; a missing package or bad input is one line, exit 2.

Runs use the tiny `synthetic` dataset (512 train images of 1x8x8, 10 classes; 8 steps per epoch).
"""

import math
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from ics_cli.analyse.keys import ALWAYS_KEY, key_columns
from ics_cli.store.runs import runs_under
from ics_cli.store import runs as store
from ics_cli.store import files
from ics_cli.store import tensorboard as tb
from ics_cli.cli import main
from ics_cli.config import RunConfig
from ics_cli.errors import IcsError
from ics_cli.train import train

from expect import error_line, refused
from helpers import runner

# TensorBoard's own reader (the `tensorboard` extra, in `dev`).
EventAccumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator").EventAccumulator
KW = dict(dataset="synthetic", steps=40, log_every=10, eval_every=20)
run = runner(**KW)

# The documented tag scheme (docs/metrics.md, "TensorBoard tags"), written out again here.
METRICS = {"train_loss": "loss/train_since_eval", "test_loss": "loss/test",
           "test_loss_batchstats": "loss/test_batchstats", "train_acc": "accuracy/train_since_eval", "test_acc": "accuracy/test",
           "test_acc_batchstats": "accuracy/test_batchstats", "lr": "lr",
           "train_loss_eval": "loss/train_eval", "train_acc_eval": "accuracy/train_eval"}
TRAIN = {"batch_loss": "loss/train", "batch_acc": "accuracy/train"}
LAYER_COLUMNS = ("mean", "var", "unit_mean_abs", "unit_var_mean", "drift_mean", "drift_var", "drift_mean_init",
                 "drift_var_init", "drift_mean_scaled", "drift_mean_scaled_init", "dead_units")


def events(folder: Path) -> tuple[dict, dict]:
    """{tag: [(step, value)]} of the scalars and {tag: [(step, histogram)]} of the histograms in
    `folder`, read by TensorBoard's EventAccumulator, every event kept, in the order read."""
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = acc.Tags()
    return ({t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]},
            {t: [(e.step, e.histogram_value) for e in acc.Histograms(t)] for t in tags["histograms"]})


def expected(run_dir: Path) -> dict:
    """{tag: [(step, value)]}: every non-blank cell of the run's tables, tagged as documented."""
    want = defaultdict(list)

    def add(tag, step, value):
        if not math.isnan(value):
            want[tag].append((int(step), float(value)))

    for _, r in store.read_table(run_dir, "metrics").iterrows():
        for column, tag in METRICS.items():
            add(tag, r.step, r[column])
    for _, r in store.read_table(run_dir, "train").iterrows():
        for column, tag in TRAIN.items():
            add(tag, r.step, r[column])
    for _, r in store.read_table(run_dir, "layers").iterrows():
        for column in LAYER_COLUMNS:
            add(f"{'drift' if column == 'drift_mean_scaled' else column}/{r.layer}/{r.site}", r.step, r[column])
    for _, r in store.read_table(run_dir, "grads").iterrows():
        for column in ("grad_norm", "weight_norm", "update_ratio"):
            add(f"{column}/{r.layer}", r.step, r[column])
    for _, r in store.read_table(run_dir, "grad_ics").iterrows():
        for column in ("grad_norm", "ics_l2", "ics_cos", "ics_rel"):
            add(f"grad_ics/{column}/{r.layer}", r.step, r[column])
    landscape = store.read_table(run_dir, "landscape")
    for _, r in landscape.iterrows():
        for column in ("eta", "loss", "grad_diff", "beta"):
            add(f"landscape/{column}/eta_mult={files.fmt(float(r.eta_mult))}", r.step, r[column])
    for _, r in landscape.drop_duplicates("step").iterrows():
        add("landscape/loss0", r.step, r.loss0)
        add("landscape/grad_norm", r.step, r.grad_norm)
    return dict(want)


def assert_scalars_are_the_csvs(scalars: dict, run_dir: Path) -> None:
    want = expected(run_dir)
    assert set(scalars) == set(want), set(scalars) ^ set(want)
    for tag, rows in want.items():
        got = sorted(scalars[tag])
        assert [s for s, _ in got] == [s for s, _ in rows], tag            # each CSV step, once
        assert [v for _, v in got] == pytest.approx([v for _, v in rows], rel=1e-6, abs=1e-30), tag


def assert_unit_histograms_are_the_units_table(hists: dict, run_dir: Path) -> None:
    units = store.read_table(run_dir, "units")
    groups = units.groupby(["layer", "site"])
    assert {t for t in hists if t.startswith("unit_mean/")} == {f"unit_mean/{l}/{s}" for l, s in groups.groups}
    for (layer, site), rows in groups:
        got = sorted(hists[f"unit_mean/{layer}/{site}"], key=lambda e: e[0])
        by_step = rows.groupby("step")["mean"]
        assert [s for s, _ in got] == sorted(by_step.groups)
        for (step, h), (_, means) in zip(got, by_step):
            assert h.num == len(means)                              # one value per unit
            assert h.sum == pytest.approx(means.sum(), rel=1e-9, abs=1e-9)
            assert (h.min, h.max) == pytest.approx((means.min(), means.max()))


# --------------------------------------------------------------------------- live events


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same batch-norm run (with landscape probes) without and with --tensorboard."""
    root = tmp_path_factory.mktemp("pair")
    kw = dict(norm="batch", landscape_every=20, landscape_etas="0.5,2")
    return run(root / "plain", **kw).path, run(root / "tb", tensorboard=True, **kw).path


def test_live_events_hold_every_csv_value_at_its_step(pair):
    _, folder = pair
    scalars, hists = events(folder / "tensorboard")
    assert_scalars_are_the_csvs(scalars, folder)
    assert "drift/hidden1/norm_eval" in scalars and "landscape/loss/eta_mult=0.5" in scalars
    assert [s for s, _ in sorted(scalars["update_ratio/hidden2"])] == [10, 20, 30, 40]     # blank between
    assert_unit_histograms_are_the_units_table(hists, folder)
    layer_steps = [0, 10, 20, 30, 40]
    for layer in ("hidden1", "hidden2", "hidden3"):
        for site in ("linear", "norm", "act", "norm_eval"):
            samples = hists[f"activations/{layer}/{site}"]
            assert [s for s, _ in samples] == layer_steps
            assert all(h.num == tb.SAMPLES for _, h in samples)     # 512 of the 512 x 100 values


def test_writing_events_changes_no_recorded_byte(pair):
    plain, folder = pair
    assert plain.name == folder.name                                # --tensorboard is not hashed
    for name in ("layers.csv", "grads.csv", "train.csv", "landscape.csv", "units.parquet", "model.pt"):
        assert (plain / name).read_bytes() == (folder / name).read_bytes(), name
    strip = [ln.rsplit(",", 1)[0] for ln in (plain / "metrics.csv").read_text().splitlines()]
    assert strip == [ln.rsplit(",", 1)[0] for ln in (folder / "metrics.csv").read_text().splitlines()]
    assert not (plain / "tensorboard").exists()


def test_the_train_loss_has_one_point_per_log_step_from_the_training_pass(pair, tmp_path):
    """loss/train and accuracy/train: one point per --log-every steps (10, 20, 30, 40 of a 40-step run
    evaluated every 20), each the loss of the update's own batch (train.csv); metrics.csv's mean since
    the previous evaluation keeps a tag of its own."""
    _, folder = pair
    scalars, _ = events(folder / "tensorboard")
    train_rows = store.read_table(folder, "train")
    assert train_rows.step.tolist() == [10, 20, 30, 40]
    for tag, column in (("loss/train", "batch_loss"), ("accuracy/train", "batch_acc")):
        got = sorted(scalars[tag])
        assert [s for s, _ in got] == [10, 20, 30, 40], tag
        assert [v for _, v in got] == pytest.approx(train_rows[column].tolist(), rel=1e-6), tag
    assert [s for s, _ in sorted(scalars["loss/train_since_eval"])] == [20, 40]
    assert train_rows.batch_loss.gt(0).all() and train_rows.batch_acc.between(0, 1).all()

    # Evaluated after every update, metrics.csv's mean over the updates since the previous row is the mean
    # over one update: the same number as train.csv's, so both come from the same training pass.
    every = run(tmp_path, steps=8, log_every=1, eval_every=1).path
    metrics, train_rows = store.read_table(every, "metrics"), store.read_table(every, "train")
    assert train_rows.step.tolist() == list(range(1, 9))
    assert train_rows.batch_loss.tolist() == pytest.approx(metrics.train_loss.iloc[1:].tolist(), rel=1e-8)
    assert train_rows.batch_acc.tolist() == pytest.approx(metrics.train_acc.iloc[1:].tolist(), rel=1e-8)


def test_a_training_probe_samples_without_effect(tmp_path):
    """--probe train: the sample is read from the training pass itself; the run is unchanged."""
    kw = dict(probe="train", steps=20, log_every=5)
    plain, folder = run(tmp_path / "a", **kw).path, run(tmp_path / "b", tensorboard=True, **kw).path
    for name in ("layers.csv", "grads.csv", "units.parquet"):
        assert (plain / name).read_bytes() == (folder / name).read_bytes(), name
    scalars, hists = events(folder / "tensorboard")
    assert_scalars_are_the_csvs(scalars, folder)
    assert [s for s, _ in hists["activations/hidden2/act"]] == [0, 5, 10, 15, 20]


def test_the_flag_is_not_hashed_and_compare_does_not_key_on_it(pair):
    assert RunConfig(tensorboard=True).hash() == RunConfig().hash()
    meta = store.read_json(pair[0] / "config.json")
    del meta["config"]["tensorboard"]                               # a config.json from before the flag
    assert RunConfig.from_dict(meta["config"]).hash() == meta["hash"]
    assert key_columns(store.find_runs(*pair)) == list(ALWAYS_KEY)


# --------------------------------------------------------------------------- resume, rerun


@pytest.mark.parametrize("probe", ["fixed", "train"])
def test_a_killed_and_resumed_run_holds_each_step_once(tmp_path, probe):
    """Killed at step 20 with its last checkpoint at 10: the tables and events hold steps past the
    checkpoint, which the resumed run records again. Each step is then in the events once, with the
    CSVs' values, and the events are those of an unbroken run."""
    kw = dict(steps=30, probe=probe, log_every=5, eval_every=10, ics_every=10, checkpoint_every=0,
              tensorboard=True)
    ref = run(tmp_path / "ref", **kw).path
    saved = tmp_path / "checkpoint-10.pt"

    def kill(step):
        if step == 10:
            shutil.copy(tmp_path / "cut" / ref.name / "checkpoint.pt", saved)
        if step == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", on_step=kill, **kw)
    folder = tmp_path / "cut" / ref.name
    assert max(s for s, _ in events(folder / "tensorboard")[0]["grad_norm/hidden1"]) == 20
    shutil.copy(saved, folder / "checkpoint.pt")                    # as if killed at 20: back to 10
    run(tmp_path / "cut", **kw)

    for name in ("layers.csv", "train.csv"):
        assert (folder / name).read_bytes() == (ref / name).read_bytes(), name
    scalars, hists = events(folder / "tensorboard")
    assert_scalars_are_the_csvs(scalars, folder)
    assert_unit_histograms_are_the_units_table(hists, folder)
    want_scalars, want_hists = events(ref / "tensorboard")
    assert {t: sorted(v) for t, v in scalars.items()} == {t: sorted(v) for t, v in want_scalars.items()}
    summary = lambda h: (h.num, h.min, h.max, h.sum)               # noqa: E731
    for tag, rows in want_hists.items():                            # the activation samples too
        assert sorted((s, summary(h)) for s, h in hists[tag]) == sorted((s, summary(h)) for s, h in rows), tag


def test_events_follow_the_tables_whatever_the_flag_was_before(tmp_path):
    out = tmp_path / "runs"

    def stop(step):
        if step == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):                          # begun without --tensorboard
        run(out, on_step=stop, checkpoint_every=0)
    folder = run(out, tensorboard=True).path                        # resumed with it: steps 0-20 from the CSVs
    scalars, hists = events(folder / "tensorboard")
    assert_scalars_are_the_csvs(scalars, folder)
    assert [s for s, _ in hists["activations/hidden1/linear"]] == [30, 40]     # live only
    assert_unit_histograms_are_the_units_table(hists, folder)

    train(RunConfig(out=str(out), **KW), force=True)
    assert not (folder / "tensorboard").exists()                    # a fresh start keeps no stale events
    assert run(out, tensorboard=True).skipped                       # finished: events from its tables
    scalars, hists = events(folder / "tensorboard")
    assert_scalars_are_the_csvs(scalars, folder)
    assert not [t for t in hists if t.startswith("activations/")]
    train(RunConfig(out=str(out), tensorboard=True, **KW), force=True)
    [only] = tb.event_files(folder / "tensorboard")                 # --force: one fresh file
    assert_scalars_are_the_csvs(events(folder / "tensorboard")[0], folder)


# --------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "S"
    assert main(["sweep", "--dataset", "synthetic", "--norms", "none,batch", "--seeds", "0", "--steps", "20",
                 "--log-every", "10", "--eval-every", "10", "--jobs", "1", "--quiet", "--tensorboard",
                 "--out", str(out)]) == 0
    return out


def test_export_of_a_sweep_writes_the_live_tags_but_the_samples(sweep, tmp_path, capsys):
    logdir = tmp_path / "tb"
    assert main(["export", "tensorboard", str(sweep), "--logdir", str(logdir)]) == 0
    assert capsys.readouterr().out.strip() == f"2 runs written to {logdir}"
    runs = store.find_runs(sweep)
    named = {f"mlp-{r.config['config']['norm']}-lr0.5-s0": r for r in runs}     # readable: no hash needed
    assert sorted(p.name for p in logdir.iterdir()) == sorted(named) == ["mlp-batch-lr0.5-s0", "mlp-none-lr0.5-s0"]
    for name, r in named.items():
        scalars, hists = events(logdir / name)
        assert_scalars_are_the_csvs(scalars, r.path)
        assert_unit_histograms_are_the_units_table(hists, r.path)
        live_scalars, live_hists = events(r.path / "tensorboard")
        assert {t: sorted(v) for t, v in scalars.items()} == {t: sorted(v) for t, v in live_scalars.items()}
        assert set(hists) == {t for t in live_hists if not t.startswith("activations/")}

    assert main(["export", "tensorboard", str(sweep), "--logdir", str(logdir)]) == 0    # again: replaced
    for name, r in named.items():
        [only] = tb.event_files(logdir / name)
        assert_scalars_are_the_csvs(events(logdir / name)[0], r.path)
    assert [p.name for p in tmp_path.iterdir()] == ["tb"]           # no staging folder left


def test_runs_with_a_tensorboard_folder_are_read_as_before(sweep):
    folders = [p for p in sweep.iterdir() if (p / "tensorboard").is_dir()]
    assert len(folders) == 2 and all(store.check_run(p) is None for p in folders)
    damaged = []
    assert len(runs_under(sweep, on_damaged=lambda path, why: damaged.append(why))) == 2
    assert damaged == []


def test_export_skips_a_damaged_run_with_one_warning(sweep, tmp_path, capsys):
    copy = tmp_path / "S"
    shutil.copytree(sweep, copy)
    damaged = next(p for p in sorted(copy.iterdir()) if p.is_dir() and p.name != "compare")
    (damaged / "metrics.csv").write_bytes(b"\x00\x01binary")
    assert main(["export", "tensorboard", str(copy), "--logdir", str(tmp_path / "tb")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"ics: warning: skipping {damaged}: metrics.csv"), err
    [kept] = [p for p in copy.iterdir() if p.is_dir() and p not in (damaged, copy / "compare")]
    assert [p.name for p in (tmp_path / "tb").iterdir()] == [f"mlp-{store.read_run(kept).config['config']['norm']}-lr0.5-s0"]


@pytest.mark.parametrize("case", ["missing", "empty", "file", "same names"])
def test_export_bad_input_is_one_line_exit_2_and_writes_nothing(sweep, tmp_path, capsys, case):
    logdir = tmp_path / "tb"
    (tmp_path / "empty").mkdir()
    paths = {"missing": [tmp_path / "missing"], "empty": [tmp_path / "empty"], "file": [sweep],
             "same names": [sweep, shutil.copytree(sweep, tmp_path / "copy")]}[case]
    if case == "file":
        logdir.write_text("not a folder")
    rc = main(["export", "tensorboard", *map(str, paths), "--logdir", str(logdir)])
    needle = {"missing": "no such folder", "empty": "no run folders under", "file": "--logdir",
              "same names": "two runs would both be named"}[case]
    error_line(rc, capsys, needle)
    assert logdir.is_file() if case == "file" else not logdir.exists()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_export_names_are_readable_with_a_hash_only_where_two_runs_would_share_one(tmp_path):
    def fake(norm="batch", lr=0.1, seed=0, batch_size=128, digest="1a2b3c4d"):
        cfg = dict(model="mlp", norm=norm, lr=lr, seed=seed, batch_size=batch_size)
        return store.Run(path=tmp_path / f"mlp-{norm}-relu-lr{lr:g}-bs{batch_size}-s{seed}-{digest}",
                         config={"config": cfg, "hash": digest}, summary=None)

    runs = [fake(), fake(norm="layer", digest="00aa00aa"), fake(lr=1e-3, digest="5e5e5e5e"),
            fake(seed=1, digest="77777777"),
            fake(batch_size=64, seed=2, digest="0f0f0f0f"), fake(batch_size=32, seed=2, digest="f0f0f0f0")]
    assert list(tb.export_names(runs)) == ["mlp-batch-lr0.1-s0", "mlp-layer-lr0.1-s0", "mlp-batch-lr0.001-s0",
                                           "mlp-batch-lr0.1-s1", "mlp-batch-lr0.1-s2-0f0f0f0f",
                                           "mlp-batch-lr0.1-s2-f0f0f0f0"]
    planted = fake(norm="../../elsewhere")                         # config.json is data, never a path
    assert list(tb.export_names([planted])) == ["mlp-.._.._elsewhere-lr0.1-s0"]
    with pytest.raises(IcsError, match="two runs would both be named mlp-batch-lr0.1-s0-1a2b3c4d"):
        tb.export_names([fake(), fake()])                           # the same run twice


def test_export_of_a_table_works_as_before(pair, tmp_path, capsys):
    _, folder = pair
    assert main(["export", str(folder), "--table", "units", "--out", str(tmp_path / "units.csv")]) == 0
    assert main(["export", "table", str(folder), "--table", "units", "--out", str(tmp_path / "again.csv")]) == 0
    assert (tmp_path / "units.csv").read_bytes() == (tmp_path / "again.csv").read_bytes()
    assert len((tmp_path / "units.csv").read_text().splitlines()) == 1 + 5 * 3 * 4 * 100
    capsys.readouterr()
    assert main(["export", "--help"]) == 0
    text = capsys.readouterr().out
    assert "table" in text and "tensorboard" in text


# --------------------------------------------------------------------------- without the package


def test_without_tensorboard_the_flag_and_export_are_one_line(pair, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)          # `import tensorboard` fails
    line = refused(capsys, ["train", "--dataset", "synthetic", "--tensorboard"], tmp_path / "out")
    assert "pip install tensorboard (or, in a checkout of ics: pip install -e '.[tensorboard]')" in line
    rc = main(["export", "tensorboard", str(pair[1]), "--logdir", str(tmp_path / "tb")])
    error_line(rc, capsys, "pip install tensorboard (or, in a checkout of ics: pip install -e '.[tensorboard]')")
    assert not (tmp_path / "tb").exists()


def test_without_tensorboard_a_process_exits_2_with_one_line(pair, tmp_path):
    code = ("import sys; sys.modules['tensorboard'] = None; from ics_cli.cli import main; "
            f"sys.exit(main(['export', 'tensorboard', {str(pair[1])!r}, '--logdir', {str(tmp_path / 'tb')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.splitlines() == ["ics: error: ics export tensorboard needs TensorBoard, which is not "
                                        "installed: pip install tensorboard (or, in a checkout of ics: pip install -e '.[tensorboard]')"], done.stderr


def test_every_run_carries_its_hparams_and_config_text(pair, tmp_path):
    """TensorBoard's HParams tab filters a sweep by norm, lr, seed: each run's events start with them."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, folder = pair
    for where in (folder / "tensorboard", tb.export([folder], tmp_path / "logs")[0]):
        values = [v for path in tb.event_files(where) for e in LegacyEventFileLoader(str(path)).Load()
                  if e.HasField("summary") for v in e.summary.value]
        starts = [plugin_data_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content).session_start_info
                  for v in values if v.tag == "_hparams_/session_start_info"]
        assert len(starts) >= 1
        hp = {k: v.string_value or v.number_value for k, v in starts[0].hparams.items()}
        assert hp["norm"] == "batch" and hp["model"] == "mlp" and hp["lr"] == 0.5 and hp["seed"] == 0
        texts = [v.tensor.string_val[0].decode() for v in values if v.tag.startswith("config")]
        assert texts and '"norm": "batch"' in texts[0]
