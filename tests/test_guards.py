"""Nothing lost, nothing read that was not meant to be (issue 21): a command never writes into or
replaces a folder of runs it did not create; files are read without following links; numeric options
keep a run finite; an option that changes nothing does not change the run's folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from expect import error_line
from ics_cli.cli import main
from ics_cli.config import RunConfig
from ics_cli.store import files, runs

TINY = ["--steps", "4", "--log-every", "2", "--eval-every", "2", "--width", "8"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two finished runs in a sweep folder (written once for the module; tests copy what they damage)."""
    out = tmp_path_factory.mktemp("guards") / "sweep"
    assert main(["sweep", "--norms", "none,batch", "--seeds", "0", "-q", *TINY, "--out", str(out)]) == 0
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_tensorboard_into_the_sweep_itself_is_refused_and_nothing_changes(sweep, capsys):
    pytest.importorskip("tensorboard")
    before = snapshot(sweep)
    rc = main(["export", "tensorboard", str(sweep), "--logdir", str(sweep)])
    error_line(rc, capsys, "--logdir", "holds run folders")
    assert snapshot(sweep) == before
    run = next(p for p in sweep.iterdir() if p.is_dir())
    rc = main(["export", "tensorboard", str(sweep), "--logdir", str(run)])
    error_line(rc, capsys, "is a run folder")
    assert snapshot(sweep) == before


def test_compare_out_into_a_folder_of_runs_is_refused(sweep, capsys):
    before = snapshot(sweep)
    error_line(main(["compare", str(sweep), "--out", str(sweep)]), capsys, "--out", "holds run folders")
    assert snapshot(sweep) == before


def test_report_and_export_never_write_into_a_run_folder(sweep, tmp_path, capsys):
    run = next(p for p in sweep.iterdir() if p.is_dir())
    before = snapshot(sweep)
    error_line(main(["report", str(sweep), "-o", str(run / "report.html")]), capsys, "inside the run folder")
    error_line(main(["export", str(run), "--table", "metrics", "--out", str(run / "metrics.csv")]), capsys,
               "inside the run folder")
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    error_line(main(["report", str(sweep), "-o", str(other)]), capsys, "not an HTML page")
    assert other.read_text() == "mine"
    assert snapshot(sweep) == before


def test_a_linked_sweep_json_is_not_read_into_the_report(sweep, tmp_path, capsys):
    copy = tmp_path / "sweep"
    copy.mkdir()
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"password": "hunter2"}))
    (copy / "sweep.json").symlink_to(secret)
    for run in (p for p in sweep.iterdir() if p.is_dir()):      # real copies: a linked run is refused anyway
        (copy / run.name).mkdir()
        for f in run.iterdir():
            if f.is_file():
                (copy / run.name / f.name).write_bytes(f.read_bytes())
    dest = tmp_path / "page.html"
    rc = main(["report", str(copy), "-o", str(dest)])
    if rc == 0:
        assert "hunter2" not in dest.read_text()
    else:
        error_line(rc, capsys, "sweep.json", "symbolic link")
        assert not dest.exists()


@pytest.mark.parametrize("text", ["{", "[1, 2", "\x00\x01", ""])
def test_a_malformed_json_file_is_one_line_not_a_traceback(tmp_path, text):
    path = tmp_path / "sweep.json"
    path.write_text(text)
    with pytest.raises(files.DamagedFile) as e:
        files.read_json(path)
    assert "\n" not in str(e.value) and "sweep.json" in str(e.value)


def test_readers_refuse_links_fifos_and_oversized_files(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("{}")
    (tmp_path / "link.json").symlink_to(target)
    with pytest.raises(files.DamagedFile, match="symbolic link"):
        files.read_json(tmp_path / "link.json")
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(files.DamagedFile, match="not a regular file"):
        files.read_json(tmp_path / "fifo.json")
    (tmp_path / "big.json").write_text("[" + "0," * 100 + "0]")
    with pytest.raises(files.DamagedFile, match="more than a file of its kind"):
        files.read_json(tmp_path / "big.json", limit=50)


def test_a_damaged_summary_is_run_again_not_a_traceback(sweep, tmp_path, capsys):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    run = next(p for p in copy.iterdir() if p.is_dir() and "batch" in p.name)
    (run / "summary.json").write_text('{"status": "comp')
    assert runs.finished(run) is None
    assert main(["sweep", "--norms", "none,batch", "--seeds", "0", "--json", *TINY, "--out", str(copy)]) == 0
    outcomes = {o["name"]: o["status"] for o in json.loads(capsys.readouterr().out)}
    assert outcomes[run.name] == "completed" and list(outcomes.values()).count("skipped") == 1
    assert runs.finished(run)["status"] == "completed"


@pytest.mark.parametrize("argv, needle", [
    (["--sharpness-iters", "100000000", "--sharpness-every", "1", "--steps", "1"], "--sharpness-iters"),
    (["--steps", "1000000000"], "--steps"),
    (["--epochs", "10000000"], "--epochs"),
])
def test_numeric_options_are_bounded_so_a_run_ends(argv, needle, tmp_path, capsys):
    out = tmp_path / "out"
    error_line(main(["train", *argv, "--out", str(out)]), capsys, needle)
    assert not out.exists()


@pytest.mark.parametrize("inert, base", [
    ({"norm": "batch", "ghost_size": 8}, {"norm": "batch"}),
    ({"norm": "layer", "renorm_rmax": 2.0, "renorm_warmup": 5}, {"norm": "layer"}),
    ({"lr_base_batch": 30}, {}),
    ({"norm": "batch", "precise_samples": 500}, {"norm": "batch"}),
])
def test_an_option_that_changes_nothing_does_not_change_the_run_folder(inert, base):
    assert RunConfig(**inert).name() == RunConfig(**base).name()


@pytest.mark.parametrize("live, base", [
    ({"norm": "ghost-batch", "ghost_size": 8}, {"norm": "ghost-batch"}),
    ({"norm": "batch-renorm", "renorm_rmax": 2.0}, {"norm": "batch-renorm"}),
    ({"lr_scaling": "linear", "lr_base_batch": 30}, {"lr_scaling": "linear"}),
    ({"norm": "batch", "bn_eval": "precise", "precise_samples": 500}, {"norm": "batch", "bn_eval": "precise"}),
])
def test_the_same_option_where_it_acts_does_change_it(live, base):
    """The rule above can fail: where the option changes the computation, the folder differs."""
    assert RunConfig(**live).name() != RunConfig(**base).name()


def test_planted_event_files_are_rebuilt_from_the_tables_on_resume(tmp_path):
    """A garbage or linked event file in RUN/tensorboard/ does not crash a resume: the events, which only
    mirror the tables, are written again from them."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ics_cli.store import tensorboard as tb

    out = tmp_path / "runs"
    assert main(["train", "-q", "--tensorboard", *TINY, "--out", str(out)]) == 0
    run = next(out.iterdir())
    for planted in ("garbage", "link"):
        folder = run / tb.FOLDER
        for f in tb.event_files(folder):
            f.unlink()
        if planted == "garbage":    # a well-framed record whose payload is no Event: DecodeError
            from tensorboard.summary.writer.record_writer import RecordWriter

            with open(folder / "events.out.tfevents.1.planted", "wb") as f:
                RecordWriter(f).write(b"\xff\xff\xff garbage, not an Event")
        else:
            secret = tmp_path / "secret"
            secret.write_bytes(b"\x01" * 64)
            (folder / "events.out.tfevents.2.planted").symlink_to(secret)
        events = tb.Events(run, fresh=False)
        events.truncate({"metrics": 2, "layers": 2, "units": 2, "grads": 2, "train": 2})
        events.close()
        files_now = tb.event_files(run / tb.FOLDER)
        assert files_now and not any(f.is_symlink() or "planted" in f.name for f in files_now)
        acc = EventAccumulator(str(run / tb.FOLDER), size_guidance={"scalars": 0})
        acc.Reload()
        steps = {e.step for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)}
        assert steps == {0, 1, 2}          # metrics and layers at 0 and 2, grads every step, none past 2


def test_backfill_of_a_damaged_run_leaves_no_event_file(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from ics_cli.store import tensorboard as tb

    out = tmp_path / "runs"
    assert main(["train", "-q", *TINY, "--out", str(out)]) == 0
    run = next(out.iterdir())
    (run / "grads.csv").write_bytes(b"\x00\x01binary")
    rc = main(["train", "-q", "--tensorboard", *TINY, "--out", str(out)])
    error_line(rc, capsys, "grads.csv")
    assert not (run / tb.FOLDER).exists()


def test_a_sweep_refused_before_it_starts_prints_one_line_and_no_progress(tmp_path, capsys):
    """--out a file, or a Ray cluster that cannot be reached: the error line alone, no progress bar before it."""
    target = tmp_path / "a-file"
    target.write_text("mine")
    rc = main(["sweep", "--norms", "none", "--seeds", "0", *TINY, "--out", str(target)])
    error_line(rc, capsys, "--out", absent=("sweep ━",))
    assert target.read_text() == "mine"
    pytest.importorskip("ray")
    rc = main(["sweep", "--norms", "none", "--seeds", "0", *TINY, "--backend", "ray",
               "--ray-address", "garbage:1", "--out", str(tmp_path / "ray")])
    error_line(rc, capsys, "--ray-address", absent=("sweep ━",))
    assert not (tmp_path / "ray").exists()


# --------------------------------------------------------------------------- every reader, fed garbage

def _garbage(seed: int, size: int) -> bytes:
    import random

    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(size))


@pytest.fixture(scope="module")
def compared(sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("compared") / "compare"
    assert main(["compare", str(sweep), "--out", str(out)]) == 0
    return out


def _readers(sweep: Path, compared: Path):
    """(name, the file it reads, a call reading it): every reader of a file a user can damage."""
    from ics_cli.analyse import outputs

    run = next(p for p in sorted(sweep.iterdir()) if p.is_dir() and "batch" in p.name)
    for table in ("metrics", "layers", "grads"):
        yield table, run / f"{table}.csv", lambda r=run, t=table: runs.read_table(r, t)
    yield "units", run / "units.parquet", lambda r=run: runs.read_table(r, "units")
    yield "config", run / "config.json", lambda r=run: runs.read_run(r)
    yield "summary", run / "summary.json", lambda r=run: runs.read_run(r)
    yield "sweep.json", sweep / "sweep.json", lambda s=sweep: files.read_json(s / "sweep.json")
    yield "compare summary", compared / "summary.csv", lambda c=compared: outputs.load(c)
    yield "long table", compared / "long" / "drift.csv", lambda c=compared: outputs.load_long(c, "drift")


def _damages(original: bytes):
    yield "empty", b""
    for cut in (1, len(original) // 3, len(original) - 1):
        yield f"cut at {cut}", original[:cut]
    for seed in range(3):
        yield f"random {seed}", _garbage(seed, 64 + 200 * seed)
    yield "random tail", original[: len(original) // 2] + _garbage(9, 100)
    yield "link", None


def test_every_reader_fed_garbage_gives_one_line_or_reads_and_never_follows_a_link(sweep, compared, tmp_path):
    """Random bytes, truncations and symbolic links, into every file a reader takes: an IcsError of one
    line, or (a cut that leaves a readable prefix) a table; never another exception, never a link's target."""
    from ics_cli.errors import IcsError

    outside = tmp_path / "outside"
    seen = 0
    for name, path, read in _readers(sweep, compared):
        original = path.read_bytes()
        try:
            for what, data in _damages(original):
                path.unlink()
                if data is None:
                    outside.write_bytes(original)
                    path.symlink_to(outside)
                else:
                    path.write_bytes(data)
                try:
                    read()
                except IcsError as e:
                    assert "\n" not in str(e), (name, what, str(e))
                    if data is None:
                        assert "link" in str(e), (name, what, str(e))
                else:
                    assert data is not None, f"{name}: a symbolic link was read"
                seen += 1
        finally:
            path.unlink()
            path.write_bytes(original)
    assert seen == 9 * 9


def test_a_units_parquet_with_foreign_metadata_is_read(sweep, tmp_path):
    """Metadata another writer left (pandas' JSON that does not decode) is not read at all."""
    import pyarrow.parquet as pq

    run = next(p for p in sorted(sweep.iterdir()) if p.is_dir())
    copy = tmp_path / run.name
    copy.mkdir()
    for f in run.iterdir():
        if f.is_file():
            (copy / f.name).write_bytes(f.read_bytes())
    table = pq.read_table(copy / "units.parquet")
    pq.write_table(table.replace_schema_metadata({b"pandas": b"\xff\xfe{", b"other": b"\x80"}), copy / "units.parquet")
    assert runs.read_table(copy, "units").equals(runs.read_table(run, "units"))


def test_a_damaged_run_under_a_command_is_one_warning_line_not_pythons(sweep, tmp_path, capsys):
    """`ics report` of a sweep with a damaged run: `ics: warning: skipping …`, once, and no Python
    `DamagedRunWarning` line with its file and line number."""
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    run = next(p for p in copy.iterdir() if p.is_dir() and "batch" in p.name)
    (run / "layers.csv").write_bytes(b"x\x00")
    assert main(["report", str(copy), "-o", str(tmp_path / "page.html")]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "skipping" in ln]
    assert lines == [f"ics: warning: skipping {run}: layers.csv is not a CSV (binary data, not UTF-8 text)"]
    assert "DamagedRunWarning" not in err and ".py:" not in err


@pytest.mark.parametrize("field, value", [("step", 10**18), ("step", -5), ("step", "3"), ("step", 3.0),
                                          ("elapsed", float("nan")), ("ema", "x"), ("interval", [1.0]),
                                          ("initial_loss", None)])
def test_a_planted_checkpoint_is_one_line_never_a_hang(tmp_path, capsys, field, value):
    """A checkpoint that passes weights_only but holds what no run wrote is refused, at once."""
    import torch

    from ics_cli.train import train

    cfg = RunConfig(steps=8, log_every=2, eval_every=2, width=8, checkpoint_every=0, out=str(tmp_path / "runs"))

    def stop(step):
        if step == 4:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_step=stop)
    ckpt = tmp_path / "runs" / cfg.name() / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    assert state["step"] == 4
    state[field] = value
    torch.save(state, ckpt)
    argv = ["train", "--steps", "8", "--log-every", "2", "--eval-every", "2", "--width", "8",
            "--checkpoint-every", "0", "--out", str(tmp_path / "runs")]
    error_line(main(argv), capsys, "checkpoint.pt", "start the run afresh")


def test_a_diverged_batch_norm_run_records_the_model_of_its_last_update(tmp_path):
    """The diverging batch's training pass updates batch norm's running statistics, but its update never
    happens: model.pt, norm_eval and the test loss at the stop step are those of θ_T, the same as a run of
    exactly T updates."""
    import torch

    from ics_cli.train import train

    common = dict(norm="batch", lr=50.0, log_every=1, eval_every=1, width=16, seed=3)
    diverged = train(RunConfig(steps=50, out=str(tmp_path / "a"), **common))
    at = diverged.summary["diverged_at_step"]
    assert diverged.summary["status"] == "diverged" and at is not None and at < 50
    exact = train(RunConfig(steps=at, out=str(tmp_path / "b"), **common))
    a = torch.load(diverged.path / "model.pt", weights_only=True)
    b = torch.load(exact.path / "model.pt", weights_only=True)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert any(name.endswith("num_batches_tracked") and int(a[name]) == at for name in a)
    la, lb = (runs.read_table(r.path, "layers") for r in (diverged, exact))
    last = lambda t: t[(t["step"] == at) & (t["site"] == "norm_eval")].reset_index(drop=True)  # noqa: E731
    assert last(la)[["mean", "var"]].equals(last(lb)[["mean", "var"]])
    assert diverged.summary["final"]["test_loss"] == exact.summary["final"]["test_loss"]


@pytest.mark.parametrize("name, text", [("study.json", "{"), ("study.json", "\x00\xff"), ("sweep.json", "[1,")])
def test_ics_report_of_a_folder_with_a_malformed_json_file_is_one_line(sweep, tmp_path, capsys, name, text):
    """A study or sweep folder whose study.json or sweep.json a user damaged: one error line naming it."""
    folder = tmp_path / "folder"
    if name == "study.json":
        folder.mkdir()
        (folder / "verdicts.csv").write_text("claim_id,verdict\nX1,PASS\n")
    else:
        shutil.copytree(sweep, folder)
    (folder / name).write_bytes(text.encode("latin-1"))
    dest = tmp_path / "page.html"
    error_line(main(["report", str(folder), "-o", str(dest)]), capsys, name)
    assert not dest.exists()
