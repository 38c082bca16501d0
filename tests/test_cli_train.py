"""Facts about `ics train` as a person drives it: exit codes, one-line errors, the run-folder contract."""

import json
from datetime import datetime

import pandas as pd
import pytest

from ics_cli.store import runs as store
from ics_cli.cli import main
from ics_cli.config import RunConfig

from expect import error_line

BASE = ["train", "--dataset", "synthetic", "--steps", "3", "--log-every", "10", "--quiet"]

CONTRACT = {
    "metrics.csv": ["step", "train_loss", "train_acc", "test_loss", "test_acc", "test_acc_batchstats",
                    "lr", "elapsed_s"],
    "layers.csv": ["step", "layer", "site", "mean", "var", "unit_mean_abs", "unit_var_mean",
                   "drift_mean", "drift_var", "drift_mean_init", "drift_var_init",
                   "drift_mean_scaled", "drift_mean_scaled_init", "dead_units"],
    "units.parquet": ["step", "layer", "site", "unit", "mean", "var", "p15", "p50", "p85"],
    "grads.csv": ["step", "layer", "grad_norm", "weight_norm", "update_ratio"],
    "train.csv": ["step", "batch_loss", "batch_acc"],
}


def run_dirs(out):
    return [p for p in out.iterdir() if p.is_dir()] if out.exists() else []


# --------------------------------------------------------------------------- the happy path


def test_train_writes_the_run_folder_contract(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["train", "--dataset", "synthetic", "--norm", "batch", "--steps", "20", "--log-every", "10",
            "--eval-every", "5", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    [run] = run_dirs(out)
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "summary.json", *CONTRACT} <= names
    # A finished run keeps no checkpoint, no uncompressed units table and no temporary file.
    assert not {"checkpoint.pt", "units.csv"} & names and not any(n.startswith(".") for n in names)

    for name, cols in CONTRACT.items():
        frame = store.read_table(run, name.split(".")[0])
        if name == "metrics.csv":
            assert set(cols) <= set(frame.columns) and frame.columns[0] == "step"
        else:
            assert list(frame.columns) == cols, name
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics.step.tolist() == [0, 5, 10, 15, 20]                  # --eval-every
    assert metrics.lr.eq(0.5).all() and metrics.test_acc.between(0, 1).all()
    assert sorted(pd.read_csv(run / "layers.csv").step.unique()) == [0, 10, 20]   # --log-every
    assert sorted(pd.read_csv(run / "grads.csv").step.unique()) == list(range(1, 21))   # every step
    assert pd.read_csv(run / "train.csv").step.tolist() == [10, 20]     # --log-every, the update's batch

    meta = json.loads((run / "config.json").read_text())
    assert {"config", "hash", "versions", "device", "timestamp"} <= set(meta)
    cfg = RunConfig.from_dict(meta["config"])
    assert (cfg.norm, cfg.steps, cfg.log_every, cfg.dataset, cfg.width) == ("batch", 20, 10, "synthetic", 100)
    assert meta["hash"] == cfg.hash() and meta["hash"] in run.name
    assert {"python", "torch", "ics"} <= set(meta["versions"])
    assert meta["device"].split(":")[0] in ("cpu", "cuda")
    datetime.fromisoformat(meta["timestamp"])

    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_done"] == 20
    assert summary["final"]["test_acc"] == pytest.approx(metrics.test_acc.iloc[-1])


def test_json_prints_the_summary(tmp_path, capsys):
    assert main(BASE + ["--out", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "completed" and doc["steps_done"] == 3
    assert json.loads(open(f"{doc['path']}/summary.json").read())["status"] == "completed"


def test_a_diverged_run_is_a_result_with_exit_code_0(tmp_path, capsys):
    rc = main(BASE[:-1] + ["--activation", "relu", "--lr", "10000", "--steps", "20", "--out", str(tmp_path), "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "diverged" and doc["diverged_at_step"] >= 1
    assert pd.read_csv(f"{doc['path']}/metrics.csv").step.iloc[0] == 0


@pytest.fixture
def ctrl_c_at_step_5(monkeypatch):
    """Make the run's progress callback raise KeyboardInterrupt after update 5, as Ctrl-C would."""
    from contextlib import contextmanager

    from ics_cli.report import terminal as report

    @contextmanager
    def interrupting(cfg, enabled=True):
        def on_step(step):
            if step == 5:
                raise KeyboardInterrupt
        yield None, on_step, None

    monkeypatch.setattr(report, "run_progress", interrupting)
    return monkeypatch


CTRL_C_ARGV = ["train", "--dataset", "synthetic", "--steps", "12", "--log-every", "4", "--json",
               "--checkpoint-every", "0"]


def test_ctrl_c_exits_130_and_the_same_command_resumes(tmp_path, capsys, ctrl_c_at_step_5):
    argv = CTRL_C_ARGV + ["--out", str(tmp_path)]
    assert main(argv) == 130
    assert "Traceback" not in capsys.readouterr().err
    [run] = run_dirs(tmp_path)
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    assert (run / "checkpoint.pt").exists()
    ctrl_c_at_step_5.undo()
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "completed" and doc["path"] == str(run) and doc["steps_done"] == 12


def test_ctrl_c_says_in_one_line_that_the_run_can_be_resumed(tmp_path, capsys, ctrl_c_at_step_5):
    assert main(CTRL_C_ARGV + ["--out", str(tmp_path)]) == 130
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0], lines


# --------------------------------------------------------------------------- bad input


def _file_below(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker / "runs"


BAD = [
    (["--norm", "weight"], "--norm"),
    (["--model", "transformer"], "--model"),
    (["--dataset", "imagenet"], "--dataset"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-0.1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--steps", "0"], "--steps"),
    (["--steps", "-5"], "--steps"),
    (["--steps", "many"], "--steps"),
    (["--norm", "batch", "--batch-size", "1"], "--batch-size"),
    (["--norm", "batch-nograd", "--probe-size", "1"], "--probe-size"),
    (["--norm", "group", "--groups", "3"], "--groups"),
    (["--norm", "instance"], "instance"),
    (["--nrom", "batch"], "--nrom"),
    (["--probe", "batch"], "--probe"),
    (["--eval-every", "0"], "--eval-every"),
    (["--checkpoint-every", "-1"], "--checkpoint-every"),
    (["--checkpoint-every", "inf"], "--checkpoint-every"),
]


@pytest.mark.parametrize("extra, needle", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, extra, needle):
    out = tmp_path / "runs"
    rc = main(BASE + ["--out", str(out)] + extra)
    error_line(rc, capsys, needle)
    assert run_dirs(out) == [] and (not out.exists() or not any(out.iterdir()))


def test_an_out_below_a_file_is_refused(tmp_path, capsys):
    out = _file_below(tmp_path)
    error_line(main(BASE + ["--out", str(out)]), capsys, "--out")
    assert (tmp_path / "a-file").read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_missing_offline_dataset_is_refused(tmp_path, capsys):
    empty, out = tmp_path / "empty", tmp_path / "runs"
    empty.mkdir()
    rc = main(["train", "--dataset", "mnist", "--data-dir", str(empty), "--steps", "3", "--quiet", "--out", str(out)])
    error_line(rc, capsys, "mnist")
    assert not out.exists() and not any(empty.iterdir())      # no download attempted, nothing written


@pytest.mark.parametrize("extra", [
    # synthetic 8x8 through three stride-2 convs ends at 1x1: one value per instance-norm group ...
    ["--model", "cnn", "--norm", "instance"],
    # ... and one value per channel for batch norm with a batch of one.
    ["--model", "cnn", "--norm", "batch", "--batch-size", "1"],
], ids=["cnn-instance-1x1", "cnn-batch-bs1-1x1"])
def test_cnn_norms_with_one_value_per_group_are_refused(tmp_path, capsys, extra):
    out = tmp_path / "runs"
    rc = main(BASE + ["--out", str(out)] + extra)
    error_line(rc, capsys, "--")
    assert run_dirs(out) == []
