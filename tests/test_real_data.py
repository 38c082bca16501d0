"""Real MNIST and CIFAR-10 through every reader and split, and a few steps of each model on each.

The files are the shared copies beside the checkout (../shared/data, read through --data-dir; never
committed). Where that folder is absent every test here skips with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ics_cli.net import data
from helpers import run

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
MNIST, CIFAR = SHARED / "mnist", SHARED / "cifar10"
pytestmark = pytest.mark.skipif(not (MNIST / "MNIST" / "raw").is_dir() or not (CIFAR / data.CIFAR_BIN).is_dir(),
                                reason=f"the real datasets are not in {SHARED} (they are beside every CI checkout)")


@pytest.mark.parametrize("split, sizes", [("official", (60_000, 10_000)), ("heldout", (50_000, 10_000))])
def test_mnist_official_files(split, sizes):
    x, y, xt, yt, info = data.read_raw("mnist", MNIST, False, split)
    assert (len(x), len(xt)) == sizes == (info["train_size"], info["test_size"])
    assert x.shape[1:] == (1, 28, 28) and x.dtype == torch.uint8
    # MNIST's published class counts of 0 and 1: 5,923 and 6,742 training, 980 and 1,135 test images;
    # heldout splits the training set only.
    assert torch.bincount(torch.cat([y, yt])).tolist()[:2] == ([5923 + 980, 6742 + 1135] if split == "official"
                                                               else [5923, 6742])
    assert info["files"] == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                             "t10k-labels-idx1-ubyte"]


def test_cifar10_binary_files_are_the_real_cifar10():
    """The published facts: data_batch_1's class counts, 5,000 images per class, the per-channel mean and
    standard deviation of the training set (which also fixes the channel order of the reader)."""
    x, y, xt, yt, info = data.read_raw("cifar10", CIFAR, False, "official")
    assert x.shape == (50_000, 3, 32, 32) and xt.shape == (1000, 3, 32, 32) and info["test_partial"]
    assert torch.bincount(y[:10_000]).tolist() == [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    assert torch.bincount(y).tolist() == [5000] * 10
    pixels = x.float().div_(255)
    std, mean = torch.std_mean(pixels, dim=(0, 2, 3), correction=0)
    np.testing.assert_allclose(mean, [0.4914, 0.4822, 0.4465], atol=1e-4)
    np.testing.assert_allclose(std, [0.2470, 0.2435, 0.2616], atol=1e-4)
    held = data.read_raw("cifar10", CIFAR, False, "heldout")
    assert torch.equal(held[0], x[:40_000]) and torch.equal(held[2], x[40_000:])


def test_ics_data_dir_finds_both_datasets(monkeypatch):
    monkeypatch.setenv(data.ENV_DIR, str(SHARED))
    assert data.sizes("mnist") == (60_000, 10_000, (1, 28, 28))
    assert data.sizes("cifar10") == (40_000, 10_000, (3, 32, 32))


CASES = [("mnist", MNIST, "mlp", {}), ("mnist", MNIST, "cnn", {}), ("mnist", MNIST, "resmlp", {"depth": 3}),
         ("mnist", MNIST, "vgg", {"width": 8}), ("mnist", MNIST, "resnet", {"depth": 8}),
         ("cifar10", CIFAR, "resmlp", {"depth": 3}),
         ("cifar10", CIFAR, "mlp", {}), ("cifar10", CIFAR, "cnn", {"activation": "relu"}),
         ("cifar10", CIFAR, "vgg", {"width": 8}), ("cifar10", CIFAR, "resnet", {"depth": 8})]


@pytest.mark.parametrize("dataset, folder, model, extra", CASES, ids=[f"{d}-{m}" for d, _, m, _ in CASES])
def test_every_model_trains_on_real_data(tmp_path, dataset, folder, model, extra):
    """Two updates with batch norm on the official split (CIFAR-10: its 1,000 partial test images, said
    in the config); the run records its data."""
    result = run(tmp_path, dataset=dataset, data_dir=str(folder), split="official", model=model, norm="batch",
                 steps=2, batch_size=16, probe_size=32, eval_batchstats=False, **extra)
    assert result.summary["status"] == "completed"
    recorded = json.loads((result.path / "config.json").read_text())["data"]
    assert recorded["name"] == dataset and recorded["split"] == "official" and len(recorded["sha256"]) == 64
    assert recorded["test_partial"] == (dataset == "cifar10")


def test_the_issue_command_trains_on_the_heldout_split(tmp_path):
    result = run(tmp_path, dataset="cifar10", data_dir=str(CIFAR), model="cnn", activation="relu", norm="batch",
                 steps=3, eval_every=3)
    recorded = json.loads((result.path / "config.json").read_text())
    assert recorded["config"]["split"] == "heldout"
    assert (recorded["data"]["train_size"], recorded["data"]["test_size"]) == (40_000, 10_000)
    assert "data_batch_5" in recorded["data"]["test_source"] and not recorded["data"]["test_partial"]
