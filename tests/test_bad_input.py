"""Bad input ends as one line `ics: error: ...` on stderr, exit code 2, no traceback, nothing written.

Each case runs the CLI in-process and then looks in --out: no run folder (and for a sweep, no file at
all) may be left behind. Dataset files are written in their real on-disk formats; no test reaches
the network.
"""

import json
import pickle

import numpy as np
import pytest

from ics_cli.cli import main

from expect import refused

TRAIN = ["train", "--dataset", "synthetic", "--steps", "3", "--log-every", "10", "--quiet"]


pytestmark = pytest.mark.usefixtures("fresh_cache")     # fixtures in conftest.py


# --------------------------------------------------------------------------- options of one run


def test_seed_out_of_range(tmp_path, capsys):
    out = tmp_path / "runs"
    refused(capsys, TRAIN + ["--seed", "99999999999999999999999"], out, "--seed", "[0, 2**63)")
    refused(capsys, TRAIN + ["--seed", str(2**63)], out, "--seed")
    refused(capsys, TRAIN + ["--seed", "-1"], out, "--seed")


def test_largest_seed_runs(tmp_path, capsys):
    assert main(TRAIN + ["--seed", str(2**63 - 1), "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize("args", [["--width", "1000000000000"], ["--depth", "1000000000000"],
                                  ["--model", "cnn", "--depth", "1000000000000"],
                                  ["--model", "cnn", "--width", "100000000"]])
def test_a_network_too_large_for_memory_is_refused_before_allocation(tmp_path, capsys, args):
    refused(capsys, TRAIN + args, tmp_path / "runs", "parameters", "--width", "--depth")


def test_probe_size_larger_than_the_training_set(tmp_path, capsys):
    refused(capsys, TRAIN + ["--probe-size", "513"], tmp_path / "runs", "--probe-size 513", "512 images")
    assert main(TRAIN + ["--probe-size", "512", "--out", str(tmp_path / "ok")]) == 0


def test_batch_size_larger_than_the_training_set(tmp_path, capsys):
    # It used to hang: zero batches per epoch, an endless loop.
    refused(capsys, TRAIN + ["--batch-size", "600"], tmp_path / "runs", "--batch-size 600", "512 images")


def test_a_dataset_smaller_than_one_batch(tmp_path, capsys):
    write_mnist(tmp_path / "data", n_train=30)
    refused(capsys, ["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--probe-size", "8",
                     "--steps", "3", "--quiet"], tmp_path / "runs", "--batch-size 60", "30 images")


@pytest.mark.parametrize("args, needle", [
    (["--log-every", "0"], "--log-every"), (["--steps", "-3"], "--steps"), (["--lr", "-1"], "--lr"),
    (["--epochs", "0"], "--epochs"), (["--steps", "5", "--epochs", "1"], "either --steps or --epochs"),
])
def test_options_already_refused_stay_refused(tmp_path, capsys, args, needle):
    argv = [a for a in TRAIN if a not in ("--steps", "3")] + args
    refused(capsys, argv, tmp_path / "runs", needle)


# --------------------------------------------------------------------------- --epochs


def test_epochs_sets_the_run_length_and_names_the_same_run_as_steps(tmp_path, capsys):
    base = ["train", "--dataset", "synthetic", "--log-every", "100", "--json", "--out", str(tmp_path)]
    assert main(base + ["--epochs", "1"]) == 0
    by_epochs = json.loads(capsys.readouterr().out)
    assert by_epochs["steps_done"] == 9          # ceil(1 x 512 / 60)
    assert main(base + ["--steps", "9"]) == 0
    by_steps = json.loads(capsys.readouterr().out)
    assert by_steps["path"] == by_epochs["path"]  # the same computation, the same run folder
    assert main(base + ["--epochs", "2.5", "--batch-size", "100"]) == 0
    assert json.loads(capsys.readouterr().out)["steps_done"] == 13   # ceil(2.5 x 512 / 100)


def test_sweep_with_epochs_runs(tmp_path, capsys):
    out = tmp_path / "sweep"
    rc = main(["sweep", "--dataset", "synthetic", "--norms", "none", "--batch-sizes", "60,256", "--epochs", "1",
               "--log-every", "100", "--jobs", "1", "--json", "--out", str(out)])
    outcomes = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert [o["status"] for o in outcomes] == ["completed", "completed"]
    assert sorted(o["summary"]["steps_done"] for o in outcomes) == [2, 9]


def test_sweep_batch_size_larger_than_the_training_set(tmp_path, capsys):
    refused(capsys, ["sweep", "--dataset", "synthetic", "--norms", "none", "--batch-sizes", "60,600",
                     "--steps", "3", "--quiet"], tmp_path / "sweep", "--batch-size 600", "512 images")


# --------------------------------------------------------------------------- damaged dataset files


def write_idx(folder, prefix, images, labels):
    n, h, w = images.shape
    with open(folder / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(np.array([2051, n, h, w], dtype=">i4").tobytes() + images.tobytes())
    with open(folder / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(np.array([2049, len(labels)], dtype=">i4").tobytes() + labels.tobytes())


def write_mnist(root, n_train=100, n_test=20, folder="MNIST"):
    rng = np.random.default_rng(0)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw, prefix, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                  rng.integers(0, 10, n, dtype=np.uint8))
    return raw


def mnist_argv(root):
    return ["train", "--dataset", "mnist", "--data-dir", str(root), "--batch-size", "10", "--probe-size", "10",
            "--steps", "2", "--quiet"]


def test_mnist_files_that_exist_read_fine(tmp_path, capsys):
    write_mnist(tmp_path / "data")
    assert main(mnist_argv(tmp_path / "data") + ["--out", str(tmp_path / "runs")]) == 0


def test_missing_mnist_is_not_found(tmp_path, capsys):
    raw = write_mnist(tmp_path / "data")
    (raw / "t10k-labels-idx1-ubyte").unlink()
    line = refused(capsys, mnist_argv(tmp_path / "data"), tmp_path / "runs", "not found", "--download",
                   "t10k-labels-idx1-ubyte")
    assert "damaged" not in line


@pytest.mark.parametrize("damage, needles", [
    ("truncate", ["damaged", "train-images-idx3-ubyte", "truncated"]),
    ("garbage", ["damaged", "train-images-idx3-ubyte", "not an IDX file"]),
    ("label", ["damaged", "t10k-labels-idx1-ubyte", "label 12", "0..9"]),
    ("count", ["damaged", "train-labels-idx1-ubyte", "99 labels", "100 images"]),
])
def test_damaged_mnist_names_the_file(tmp_path, capsys, damage, needles):
    raw = write_mnist(tmp_path / "data", folder="FashionMNIST")
    images = raw / "train-images-idx3-ubyte"
    if damage == "truncate":
        images.write_bytes(images.read_bytes()[:5000])
    elif damage == "garbage":
        images.write_bytes(b"<html>404 not found</html>" * 100)
    elif damage == "label":
        labels = raw / "t10k-labels-idx1-ubyte"
        body = bytearray(labels.read_bytes())
        body[8 + 3] = 12
        labels.write_bytes(bytes(body))
    else:
        labels = raw / "train-labels-idx1-ubyte"
        body = labels.read_bytes()
        labels.write_bytes(np.array([2049, 99], dtype=">i4").tobytes() + body[8:107])
    argv = mnist_argv(tmp_path / "data")
    argv[2] = "fashion-mnist"
    line = refused(capsys, argv, tmp_path / "runs", *needles)
    assert "not found" not in line


def write_cifar(root, *, label=None):
    rng = np.random.default_rng(2)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for file in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, 4).tolist()
        if label is not None and file == "data_batch_2":
            labels[1] = label
        with open(folder / file, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": labels}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f, protocol=2)
    return folder


CIFAR = ["train", "--dataset", "cifar10", "--batch-size", "4", "--probe-size", "4", "--steps", "2", "--quiet"]


def test_cifar_file_that_is_not_the_release_is_damaged(tmp_path, capsys):
    # torchvision compares each file's md5 with the CIFAR-10 release: our small files never match.
    write_cifar(tmp_path / "data")
    refused(capsys, CIFAR + ["--data-dir", str(tmp_path / "data")], tmp_path / "runs",
            "damaged", "data_batch_1", "checksum")


@pytest.fixture
def md5_passes(monkeypatch):
    import os

    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))


def test_cifar_truncated_pickle_is_damaged(tmp_path, capsys, md5_passes):
    folder = write_cifar(tmp_path / "data")
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    line = refused(capsys, CIFAR + ["--data-dir", str(tmp_path / "data")], tmp_path / "runs",
                   "damaged", "cifar-10-batches-py/data_batch_3", "cannot be read")
    assert "not found" not in line


def test_cifar_label_out_of_range_is_damaged(tmp_path, capsys, md5_passes):
    write_cifar(tmp_path / "data", label=10)
    refused(capsys, CIFAR + ["--data-dir", str(tmp_path / "data")], tmp_path / "runs",
            "damaged", "train split", "label 10", "0..9")


def test_missing_cifar_is_not_found(tmp_path, capsys, md5_passes):
    folder = write_cifar(tmp_path / "data")
    (folder / "test_batch").unlink()
    refused(capsys, CIFAR + ["--data-dir", str(tmp_path / "data")], tmp_path / "runs",
            "not found", "test_batch", "--download")


# --------------------------------------------------------------------------- sweep TOML files


@pytest.mark.parametrize("text, needles", [
    ('[common]\nsteps = "abc"\n', ["steps", "an integer", '"abc"']),
    ("[common]\ndepth = 2.5\n", ["depth", "an integer", "2.5"]),
    ("[common]\nlr = 0.1\n", ["[common] lr", "lrs = [0.1]"]),
    ('[common]\nnorm = "batch"\n', ["[common] norm", 'norms = ["batch"]']),
    ("[common]\nseed = 3\n", ["seeds = [3]"]),
    ("[common]\nbatch_size = 32\n", ["batch_sizes = [32]"]),
    ("[common]\nbinarize = 1\n", ["binarize", "true or false"]),
    ("[common]\nwidht = 10\n", ["unknown key 'widht'"]),
    ("common = 5\n", ["'common' must be a table"]),
    ("grid = [1]\n", ["'grid' must be a table"]),
    ("[grid]\nlrs = 0.1\n", ["[grid] lrs", "list of numbers"]),
    ('[grid]\nlrs = ["fast"]\n', ["[grid] lrs", "list of numbers"]),
    ("[grid]\nseeds = [1.5]\n", ["[grid] seeds", "list of integers"]),
    ("[grid]\nnorms = [1, 2]\n", ["[grid] norms", "list of strings"]),
    ("[grid]\nbatch_sizes = []\n", ["[grid] batch_sizes", "non-empty"]),
    ("[grid]\nwidths = [1]\n", ["unknown keys ['widths']"]),
    ("[grid\nnorms = 1\n", ["not valid TOML"]),
])
def test_bad_toml_is_one_line_naming_the_file_and_key(tmp_path, capsys, text, needles):
    grid = tmp_path / "grid.toml"
    grid.write_text('[common]\ndataset = "synthetic"\n' + text if text.startswith("[grid]") else text)
    refused(capsys, ["sweep", "--config", str(grid), "--steps", "3", "--quiet"], tmp_path / "sweep",
            str(grid), *needles)


def test_toml_with_integers_for_numbers_runs(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text('[grid]\nnorms = ["none"]\nlrs = [1]\n[common]\ndataset = "synthetic"\nsteps = 2\neps = 1\n')
    assert main(["sweep", "--config", str(grid), "--jobs", "1", "--quiet", "--out", str(tmp_path / "s")]) == 0
