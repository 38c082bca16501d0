"""Facts about ics_cli.net.data: splits, normalization, determinism, real on-disk formats, error messages."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ics_cli.net import data
from ics_cli.errors import DataError


pytestmark = pytest.mark.usefixtures("fresh_cache")     # fixtures in conftest.py


def per_class(y):
    return torch.bincount(y, minlength=10).tolist()


# --- registry -------------------------------------------------------------------------------------


def test_registry_order_and_unknown_name():
    assert list(data.DATASETS) == ["mnist-5k", "synthetic", "mnist", "fashion-mnist", "cifar10", "gaussian-linear"]
    with pytest.raises(DataError) as info:
        data.load("imagenet")
    assert str(info.value) == (
        "unknown dataset 'imagenet'; choose one of: mnist-5k, synthetic, mnist, fashion-mnist, cifar10, "
        "gaussian-linear"
    )


def test_import_is_light():
    # torchvision costs over a second to import and mlxtend is only for the converter script.
    code = "import sys, ics_cli.net.data; print('torchvision' in sys.modules, 'mlxtend' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- mnist-5k -------------------------------------------------------------------------------------


def test_mnist5k_split_and_normalization():
    ds = data.load("mnist-5k")
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert per_class(ds.y_train) == [400] * 10
    assert per_class(ds.y_test) == [100] * 10
    # Train split standardized with its own statistics; test uses the same (train) statistics.
    assert abs(ds.x_train.mean().item()) < 1e-4
    assert abs(ds.x_train.std(correction=0).item() - 1) < 1e-4
    assert abs(ds.x_test.mean().item()) < 0.1
    # Train and test together are the 5000 distinct embedded images: nothing lost, nothing shared.
    both = torch.cat([ds.x_train, ds.x_test]).flatten(1)
    assert both.unique(dim=0).shape[0] == 5000
    # Not stored sorted by class.
    assert (ds.y_train[1:] != ds.y_train[:-1]).sum() > 1000


def test_mnist5k_split_is_deterministic():
    first = data.load("mnist-5k")
    data.clear_cache()
    torch.manual_seed(123)  # the split must not depend on the run seed
    np.random.seed(123)
    second = data.load("mnist-5k")
    assert first is not second
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(first, name), getattr(second, name))


def test_mnist5k_binarize():
    ds = data.load("mnist-5k", binarize=True)
    assert set(ds.x_train.unique().tolist()) == {0.0, 1.0}
    assert set(ds.x_test.unique().tolist()) == {0.0, 1.0}
    # Same images as the standardized version: binary pixel is on exactly where the raw pixel > 0.5.
    raw = data._mnist5k()[0].float() / 255
    assert torch.equal(ds.x_train, (raw > 0.5).float())


def test_cache_returns_same_object():
    assert data.load("mnist-5k") is data.load("mnist-5k", device="cpu")
    assert data.load("mnist-5k") is not data.load("mnist-5k", binarize=True)


# --- synthetic ------------------------------------------------------------------------------------


def test_synthetic_shapes_determinism_and_global_rng():
    state = torch.random.get_rng_state()
    first = data.load("synthetic")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert first.x_train.shape == (512, 1, 8, 8) and first.x_test.shape == (256, 1, 8, 8)
    assert first.shape == (1, 8, 8)
    assert sorted(first.y_train.unique().tolist()) == list(range(10))
    data.clear_cache()
    torch.manual_seed(7)
    second = data.load("synthetic")
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)


def test_synthetic_is_learnable():
    # Nearest class mean of the train split classifies most test images: there is signal to learn.
    ds = data.load("synthetic")
    means = torch.stack([ds.x_train[ds.y_train == c].mean(0) for c in range(10)]).flatten(1)
    pred = torch.cdist(ds.x_test.flatten(1), means).argmin(1)
    assert (pred == ds.y_test).float().mean() > 0.9


# --- torchvision datasets from real on-disk formats ------------------------------------------------


def write_idx(folder, prefix, images, labels):
    """MNIST idx files: big-endian int32 header (magic 2051 images / 2049 labels, sizes), then uint8."""
    n, h, w = images.shape
    with open(folder / f"{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(np.array([2051, n, h, w], dtype=">i4").tobytes() + images.tobytes())
    with open(folder / f"{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(np.array([2049, n], dtype=">i4").tobytes() + labels.tobytes())


def fake_split(rng, n, shape):
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def expected(train_u8, test_u8):
    """What load() promises: /255, then standardize per channel (axis 1) with train statistics."""
    train, test = torch.from_numpy(train_u8).float() / 255, torch.from_numpy(test_u8).float() / 255
    std, mean = torch.std_mean(train, dim=(0, 2, 3), correction=0, keepdim=True)
    return (train - mean) / std, (test - mean) / std


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_like_from_idx_files(tmp_path, name, folder):
    rng = np.random.default_rng(1)
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    x_tr, y_tr = fake_split(rng, 30, (28, 28))
    x_te, y_te = fake_split(rng, 12, (28, 28))
    write_idx(raw, "train", x_tr, y_tr)
    write_idx(raw, "t10k", x_te, y_te)

    ds = data.load(name, data_dir=tmp_path)
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.shape == (12, 1, 28, 28)
    want_train, want_test = expected(x_tr[:, None], x_te[:, None])
    torch.testing.assert_close(ds.x_train, want_train)
    torch.testing.assert_close(ds.x_test, want_test)
    assert torch.equal(ds.y_train, torch.from_numpy(y_tr).long())
    assert torch.equal(ds.y_test, torch.from_numpy(y_te).long())

    binary = data.load(name, data_dir=tmp_path, binarize=True)
    assert torch.equal(binary.x_test, torch.from_numpy(x_te[:, None] / 255 > 0.5).float())


def test_cifar10_from_python_pickles(tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    # torchvision checks the md5 of each file (batches and meta) against the real CIFAR-10 release;
    # our small fake files cannot match, so the check here is only that each file exists.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    # The real files are Python 2 pickles whose byte-string keys torchvision reads with
    # encoding="latin1", i.e. as str keys ("data", "labels"); str keys here are what it sees there.
    def write_batch(file, n):
        x, y = fake_split(rng, n, (3072,))
        with open(folder / file, "wb") as f:
            pickle.dump({"data": x, "labels": y.tolist()}, f, protocol=2)
        return x.reshape(n, 3, 32, 32), y  # rows are channel-major: 1024 R, 1024 G, 1024 B

    batches = [write_batch(f"data_batch_{i}", 4) for i in range(1, 6)]
    x_te, y_te = write_batch("test_batch", 5)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f, protocol=2)
    x_tr = np.concatenate([x for x, _ in batches])
    y_tr = np.concatenate([y for _, y in batches])

    ds = data.load("cifar10", data_dir=tmp_path, split="official")
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (5, 3, 32, 32)
    assert ds.shape == (3, 32, 32)
    want_train, want_test = expected(x_tr, x_te)
    torch.testing.assert_close(ds.x_train, want_train)
    torch.testing.assert_close(ds.x_test, want_test)
    # Each channel standardized separately.
    torch.testing.assert_close(ds.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    assert torch.equal(ds.y_train, torch.from_numpy(y_tr).long())
    assert torch.equal(ds.y_test, torch.from_numpy(y_te).long())


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, where",
    [("mnist", "MNIST/raw/"), ("fashion-mnist", "FashionMNIST/raw/"), ("cifar10", "cifar-10-batches-py/")],
)
def test_missing_files_offline(tmp_path, name, where):
    with pytest.raises(DataError) as info:
        data.load(name, data_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert f"dataset '{name}' not found" in message
    assert "--download" in message and f"{tmp_path}/{where}" in message


def test_failed_download_is_one_line(tmp_path):
    # The no_network fixture makes the download fail immediately, as it would offline.
    with pytest.raises(DataError) as info:
        data.load("mnist", data_dir=tmp_path, download=True)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("dataset 'mnist' could not be downloaded")
    assert f"{tmp_path}/MNIST/raw/" in message


@pytest.mark.parametrize("name", sorted(data.MADE_HERE))
def test_the_sizes_a_config_is_checked_against_are_the_data(name):
    x, y, xt, yt, info = data.read_raw(name, Path("unused"), False, "official")
    assert data.MADE_HERE[name] == (len(x), len(xt), tuple(x.shape[1:])) == data.sizes(name)
