"""The papers' knobs: CIFAR-10's binary layout and the held-out split (on files written here),
ICS_DATA_DIR, what a run records about its data, lr schedules, the eval-mode training loss, the
scale-free gradient ICS and the early window of the second view.

Real MNIST and CIFAR-10 are tested in test_real_data.py; here every file is generated, so the
damaged-file paths can be tested too.
"""

from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from ics_cli.config import RunConfig
from ics_cli.net import data, schedule
from ics_cli import train as train_mod
from ics_cli.train import load_model

from expect import error_line, refused
from helpers import run
from ics_cli.cli import main

RECORDS = 4      # records per generated CIFAR batch (the official batch holds 10,000)


@pytest.fixture
def small_cifar(monkeypatch):
    """Generated CIFAR-10 batches of RECORDS images: the reader's batch size and held-out count follow."""
    monkeypatch.setattr(data, "CIFAR_BATCH", RECORDS)
    monkeypatch.setattr(data, "HELDOUT", {**data.HELDOUT, "cifar10": RECORDS})
    data.clear_cache()
    yield
    data.clear_cache()


def images(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def write_bin(path, x: np.ndarray, y: np.ndarray) -> None:
    """The official binary layout: per record a label byte, then the R, G and B planes, row-major."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.concatenate([y[:, None], x.reshape(len(x), -1)], 1).astype(np.uint8).tofile(path)


def write_cifar_bin(folder, test: str | None = "test_batch.bin"):
    """Five training batches (and a test batch) of generated images; their images and labels."""
    batches = [images(i, RECORDS) for i in range(1, 6)]
    for i, (x, y) in enumerate(batches, 1):
        write_bin(folder / f"data_batch_{i}.bin", x, y)
    x_te, y_te = images(9, RECORDS)
    if test:
        write_bin(folder / test, x_te, y_te)
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]), x_te, y_te


def test_the_binary_layout_reads_as_the_python_layout(tmp_path, small_cifar, monkeypatch):
    """The same images in both official layouts give the same tensors (channel planes, row-major)."""
    import torchvision.datasets.cifar

    x_tr, y_tr, x_te, y_te = write_cifar_bin(tmp_path / "bin" / data.CIFAR_BIN)
    py = tmp_path / "py" / "cifar-10-batches-py"
    py.mkdir(parents=True)
    for i in range(5):
        with open(py / f"data_batch_{i + 1}", "wb") as f:
            part = slice(i * RECORDS, (i + 1) * RECORDS)
            pickle.dump({"data": x_tr[part].reshape(RECORDS, -1), "labels": y_tr[part].tolist()}, f, protocol=2)
    with open(py / "test_batch", "wb") as f:
        pickle.dump({"data": x_te.reshape(RECORDS, -1), "labels": y_te.tolist()}, f, protocol=2)
    with open(py / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f, protocol=2)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    for split in ("official", "heldout"):
        a = data.read_raw("cifar10", tmp_path / "bin", False, split)
        b = data.read_raw("cifar10", tmp_path / "py", False, split)
        for u, v in zip(a[:4], b[:4]):
            assert torch.equal(u, v)
    x, y, xt, yt, info = data.read_raw("cifar10", tmp_path / "bin", False, "official")
    assert torch.equal(x, torch.from_numpy(x_tr)) and torch.equal(yt, torch.from_numpy(y_te).long())
    assert info["files"][-1] == "test_batch.bin" and not info["test_partial"]


def test_heldout_is_batches_one_to_four_against_batch_five(tmp_path, small_cifar):
    x_tr, y_tr, _, _ = write_cifar_bin(tmp_path / data.CIFAR_BIN, test=None)
    x, y, xt, yt, info = data.read_raw("cifar10", tmp_path, False, "heldout")
    assert torch.equal(x, torch.from_numpy(x_tr[:4 * RECORDS])) and torch.equal(xt, torch.from_numpy(x_tr[4 * RECORDS:]))
    assert torch.equal(yt, torch.from_numpy(y_tr[4 * RECORDS:]).long())
    assert (info["split"], info["train_size"], info["test_size"]) == ("heldout", 4 * RECORDS, RECORDS)
    assert "data_batch_5" in info["test_source"]
    with pytest.raises(data.DataError, match="no test_batch.bin for --split official"):
        data.read_raw("cifar10", tmp_path, False, "official")


def test_the_partial_test_batch_is_said_in_the_run_config(tmp_path, small_cifar):
    write_cifar_bin(tmp_path / "d" / data.CIFAR_BIN, test="test_batch_first1000.bin")
    result = run(tmp_path / "runs", dataset="cifar10", data_dir=str(tmp_path / "d"), split="official",
                 model="cnn", activation="relu", batch_size=4, probe_size=4, steps=2, depth=1, width=4)
    recorded = json.loads((result.path / "config.json").read_text())
    assert recorded["config"]["split"] == "official"
    assert recorded["data"]["test_partial"] is True and "first" in recorded["data"]["test_source"]
    assert recorded["data"]["test_size"] == RECORDS


@pytest.mark.parametrize("damage, needle", [
    (lambda p: p.write_bytes(p.read_bytes()[:-5]), "not a whole number of 3,073-byte records"),
    (lambda p: p.write_bytes(p.read_bytes()[:-data.CIFAR_RECORD]), "a training batch holds"),
    (lambda p: p.write_bytes(b"\x0a" + p.read_bytes()[1:]), "label 10"),
    (lambda p: p.unlink(), "data_batch_3.bin is missing"),
])
def test_a_damaged_binary_batch_is_one_line(tmp_path, small_cifar, capsys, damage, needle):
    folder = tmp_path / "d" / data.CIFAR_BIN
    write_cifar_bin(folder)
    damage(folder / "data_batch_3.bin")
    refused(capsys, ["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "d"), "--model", "cnn",
                     "--batch-size", "4", "--steps", "1"], tmp_path / "out", needle)


def test_ics_data_dir_names_one_folder_for_every_dataset(tmp_path, small_cifar, monkeypatch, capsys):
    write_cifar_bin(tmp_path / "all" / "cifar10" / data.CIFAR_BIN)
    monkeypatch.setenv(data.ENV_DIR, str(tmp_path / "all"))
    rc = main(["train", "--dataset", "cifar10", "--model", "cnn", "--depth", "1", "--width", "4", "--batch-size",
               "4", "--probe-size", "4", "--steps", "1", "--quiet", "--out", str(tmp_path / "runs")])
    assert rc == 0, capsys.readouterr().err
    (folder,) = (tmp_path / "runs").iterdir()
    recorded = json.loads((folder / "config.json").read_text())
    assert recorded["config"]["data_dir"] == str(tmp_path / "all")
    assert recorded["data"]["split"] == "heldout" and len(recorded["data"]["sha256"]) == 64
    monkeypatch.setenv(data.ENV_DIR, str(tmp_path / "empty"))
    error_line(main(["train", "--dataset", "cifar10", "--steps", "1", "--out", str(tmp_path / "o")]), capsys,
               "not found", "cifar-10-batches-bin")


def test_a_split_a_dataset_lacks_is_refused(tmp_path, capsys):
    refused(capsys, ["train", "--split", "heldout", "--steps", "1"], tmp_path / "out",
            "--split heldout", "mnist-5k", "cifar10")


# --------------------------------------------------------------------------- lr schedules


def cfg_for(**kw) -> RunConfig:
    return RunConfig(**{"steps": 100, "lr": 0.4, **kw})


def test_the_step_schedule_decays_at_each_milestone():
    cfg = cfg_for(lr_schedule="step", lr_milestones="0.5,0.75", lr_decay=0.1)
    lrs = [schedule.lr_at(cfg, s, 0.4) for s in range(100)]
    assert lrs[:50] == [0.4] * 50
    assert lrs[50] == pytest.approx(0.04) and lrs[74] == pytest.approx(0.04)
    assert lrs[75] == pytest.approx(0.004) and lrs[99] == pytest.approx(0.004)


def test_cosine_falls_from_the_lr_to_zero_and_warmup_rises_to_it():
    cfg = cfg_for(lr_schedule="cosine", lr_warmup=0.1)
    lrs = [schedule.lr_at(cfg, s, 0.4) for s in range(101)]
    assert lrs[:10] == pytest.approx([0.4 * (s + 1) / 10 for s in range(10)])
    assert lrs[10] == pytest.approx(0.4) and lrs[55] == pytest.approx(0.2)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[100] == pytest.approx(0, abs=1e-12)
    assert schedule.lr_at(cfg_for(), 37, 0.4) == 0.4 and not schedule.varies(cfg_for())


@pytest.mark.parametrize("argv, needle", [
    (["--lr-milestones", "0.75,0.5"], "--lr-milestones"), (["--lr-milestones", "1.5"], "--lr-milestones"),
    (["--lr-milestones", "a"], "--lr-milestones"), (["--lr-decay", "0"], "--lr-decay"),
    (["--lr-warmup", "1"], "--lr-warmup"), (["--lr-schedule", "linear"], "--lr-schedule"),
])
def test_bad_schedule_options_are_one_line(tmp_path, capsys, argv, needle):
    refused(capsys, ["train", "--lr-schedule", "step", *argv, "--steps", "5"] if "--lr-schedule" not in argv
            else ["train", *argv, "--steps", "5"], tmp_path / "out", needle)


def test_the_optimizer_takes_the_scheduled_lr(tmp_path):
    """SGD's update is lr x gradient: the recorded update ratio gives back the lr each update used, and
    the metrics rows record it."""
    result = run(tmp_path, steps=20, log_every=1, eval_every=5, lr=0.2, lr_schedule="step",
                 lr_milestones="0.5", lr_decay=0.1)
    grads = pd.read_csv(result.path / "grads.csv")
    first = grads[grads["layer"] == "hidden1"].set_index("step")
    weights = first["weight_norm"].shift(1)    # ‖W‖ before update s is the norm after update s - 1
    used = first["update_ratio"] * weights / first["grad_norm"]
    cfg = RunConfig(steps=20, lr=0.2, lr_schedule="step", lr_milestones="0.5", lr_decay=0.1)
    for step in range(2, 21):           # update s (1-based row) used lr_at(s - 1)
        assert used[step] == pytest.approx(schedule.lr_at(cfg, step - 1, 0.2), rel=0.02), step
    metrics = pd.read_csv(result.path / "metrics.csv").set_index("step")
    assert metrics.loc[5, "lr"] == 0.2 and metrics.loc[10, "lr"] == pytest.approx(0.02)


# --------------------------------------------------------------------------- eval-mode training loss


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_the_training_subset_is_scored_in_eval_mode(tmp_path, norm):
    """train_loss_eval is the eval-mode loss (running statistics) of a fixed training subset: recomputed
    here from the saved model; with batch norm at batch 4 it is not the train-mode (batch statistics) loss."""
    result = run(tmp_path, norm=norm, steps=30, batch_size=4, eval_every=30, lr=0.1)
    last = pd.read_csv(result.path / "metrics.csv").iloc[-1]
    _, model, ds = load_model(result.path)
    gen = torch.Generator().manual_seed(train_mod.EVAL_TRAIN_SEED)
    chosen = torch.randperm(len(ds.x_train), generator=gen)[:train_mod.EVAL_TRAIN_SAMPLES]
    x, y = ds.x_train[chosen], ds.y_train[chosen]
    with torch.no_grad():
        logits = model.eval()(x)
        loss = torch.nn.functional.cross_entropy(logits, y).item()
        acc = (logits.argmax(1) == y).double().mean().item()
        batch_mode = torch.nn.functional.cross_entropy(model.train()(x[:4]), y[:4]).item()
    assert last["train_loss_eval"] == pytest.approx(loss, rel=1e-6)
    assert last["train_acc_eval"] == pytest.approx(acc)
    eval_first4 = torch.nn.functional.cross_entropy(model.eval()(x[:4]), y[:4]).item()
    assert (batch_mode != pytest.approx(eval_first4, rel=1e-3)) == (norm == "batch")


def test_a_log_begun_without_the_new_columns_resumes_under_them(tmp_path):
    """A metrics.csv written before train_*_eval existed, resumed: its rows keep their values, the new
    columns empty."""
    from ics_cli.store import files, schema

    path = tmp_path / "metrics.csv"
    old = [c for c in schema.METRICS_COLUMNS if not c.endswith("_eval")]
    path.write_text(",".join(old) + "\n" + ",".join(["0"] + ["1.5"] * (len(old) - 1)) + "\n5,1")
    log = files.CsvLog(path, schema.METRICS_COLUMNS, fresh=False)
    log.append([[1] + [2.0] * (len(schema.METRICS_COLUMNS) - 1)])
    table = pd.read_csv(path)
    assert list(table.columns) == schema.METRICS_COLUMNS and len(table) == 2     # the cut last line dropped
    assert table.loc[0, "test_acc"] == 1.5 and math.isnan(table.loc[0, "train_loss_eval"])
    assert table.loc[1, "train_acc_eval"] == 2.0


# --------------------------------------------------------------------------- second view


def test_ics_rel_is_the_shift_over_the_gradient_and_the_window_ends_early(tmp_path):
    result = run(tmp_path, steps=20, ics_every=2, second_view_until=0.25, lr=0.3)
    table = pd.read_csv(result.path / "grad_ics.csv")
    assert sorted(table["step"].unique()) == [0, 2, 4]           # steps before ⌈0.25 x 20⌉ = 5
    later = table[table["layer"] != "hidden1"]
    np.testing.assert_allclose(later["ics_rel"], later["ics_l2"] / later["grad_norm"], rtol=1e-6)
    assert (later["ics_rel"] > 0).all()
    assert (table.loc[table["layer"] == "hidden1", "ics_rel"] == 0).all()
