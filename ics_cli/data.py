"""Datasets: the registry of names, the embedded MNIST subset, torchvision loaders, tensors on the device.

Every dataset is loaded once into four tensors (train/test images and labels) and lives whole on the
requested device; training indexes it directly, so there is no DataLoader and no per-sample Python.

Input normalization is the same for every dataset:

* pixels are scaled to [0, 1] (uint8 / 255);
* default: each channel is standardized with the mean and std of the TRAIN split, computed over
  (N, H, W); the test split uses the same train statistics;
* ``binarize=True``: pixels are thresholded at 0.5 to {0.0, 1.0} and NOT standardized. This reproduces
  the "28x28 binary image as input" of the batch-normalization paper's MNIST experiment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ics_cli.errors import DataError

DATASETS: dict[str, str] = {
    "mnist-5k": "5000 MNIST digits embedded in the package (4000 train / 1000 test), offline",
    "synthetic": "tiny generated 8x8 images in 10 classes (512 train / 256 test), for fast tests",
    "mnist": "MNIST digits via torchvision (60000 train / 10000 test, 1x28x28)",
    "fashion-mnist": "Fashion-MNIST clothing via torchvision (60000 train / 10000 test, 1x28x28)",
    "cifar10": "CIFAR-10 colour images via torchvision (50000 train / 10000 test, 3x32x32)",
}

_MNIST5K_FILE = Path(__file__).parent / "data" / "mnist5k.npz"

# torchvision class name and the folder (under data_dir) where its files must lie.
_TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw"),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py"),
}


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensor fields with == has no single truth value
class Dataset:
    """One dataset as whole tensors on one device. Treat the tensors as read-only: they may be cached."""

    name: str
    x_train: torch.Tensor = field(repr=False)  # float32 (N, C, H, W)
    y_train: torch.Tensor = field(repr=False)  # int64 (N,)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    num_classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.x_train.shape[1:]
        return (c, h, w)


_cache: dict[tuple, Dataset] = {}


def load(
    name: str,
    *,
    data_dir: str | Path = "data",
    download: bool = False,
    binarize: bool = False,
    device: str | torch.device = "cpu",
) -> Dataset:
    """Load dataset `name` as normalized tensors on `device` (see the module docstring for normalization).

    `data_dir` and `download` matter only for the torchvision datasets; the result is cached per
    (name, data_dir, binarize, device), so a sweep in one process reads the files once.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}")
    device = torch.device(device)
    key = (name, str(Path(data_dir)), binarize, str(device))
    if key not in _cache:
        if name == "mnist-5k":
            raw = _mnist5k()
        elif name == "synthetic":
            raw = _synthetic()
        else:
            raw = _torchvision(name, Path(data_dir), download)
        # Move uint8 first: a quarter of the bytes of float32 cross to the device.
        x_train, y_train, x_test, y_test = (t.to(device) for t in raw)
        x_train, x_test = _normalize(x_train, x_test, binarize)
        _cache[key] = Dataset(name, x_train, y_train, x_test, y_test, num_classes=10)
    return _cache[key]


def clear_cache() -> None:
    """Forget every loaded dataset (frees its memory; the next `load` reads the files again)."""
    _cache.clear()


def _normalize(x_train: torch.Tensor, x_test: torch.Tensor, binarize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images -> float32 in [0, 1] -> binarized, or standardized per channel with train statistics."""
    x_train = x_train.float().div_(255)
    x_test = x_test.float().div_(255)
    if binarize:
        return (x_train > 0.5).float(), (x_test > 0.5).float()
    std, mean = torch.std_mean(x_train, dim=(0, 2, 3), correction=0, keepdim=True)
    std = std.clamp_min(1e-8)  # a constant channel would otherwise divide by zero
    return (x_train - mean) / std, (x_test - mean) / std


def _mnist5k() -> tuple[torch.Tensor, ...]:
    """The embedded subset, split 400/100 per class by a fixed permutation (independent of the run seed)."""
    with np.load(_MNIST5K_FILE) as f:
        images, labels = f["images"], f["labels"].astype(np.int64)
    rng = np.random.default_rng(0)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        train.append(idx[:400])
        test.append(idx[400:])
    # Shuffle across classes so the stored order is not sorted by label.
    train_idx = rng.permutation(np.concatenate(train))
    test_idx = rng.permutation(np.concatenate(test))
    x = torch.from_numpy(images).unsqueeze(1)  # (5000, 1, 28, 28)
    y = torch.from_numpy(labels)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def _synthetic() -> tuple[torch.Tensor, ...]:
    """10 fixed 8x8 prototypes (pixels 0.2 or 0.8) plus Gaussian noise, quantized to uint8 like real images.

    A private generator with seed 0 makes the data identical in every run and leaves the global RNG alone.
    """
    gen = torch.Generator().manual_seed(0)
    prototypes = 0.2 + 0.6 * (torch.rand(10, 1, 8, 8, generator=gen) < 0.5).float()

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randperm(n, generator=gen) % 10
        x = prototypes[y] + 0.25 * torch.randn(n, 1, 8, 8, generator=gen)
        return (x.clamp(0, 1) * 255).round().to(torch.uint8), y

    x_train, y_train = split(512)
    x_test, y_test = split(256)
    return x_train, y_train, x_test, y_test


def _torchvision(name: str, data_dir: Path, download: bool) -> tuple[torch.Tensor, ...]:
    """Read a torchvision dataset's `.data` / `.targets` as uint8 (N, C, H, W) and int64 tensors."""
    import torchvision.datasets  # lazy: importing torchvision costs over a second

    class_name, folder = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, class_name)
    try:
        train = cls(root=str(data_dir), train=True, download=download)
        test = cls(root=str(data_dir), train=False, download=download)
    except Exception as err:  # torchvision raises many kinds (RuntimeError, URLError, OSError, ...)
        where = f"{data_dir / folder}/"
        if download:
            raise DataError(
                f"dataset '{name}' could not be downloaded to {data_dir}/ ({type(err).__name__}); "
                f"check the network, or place the files under {where}"
            ) from err
        raise DataError(
            f"dataset '{name}' not found in {data_dir}/ (offline); "
            f"rerun with --download, or place the files under {where}"
        ) from err
    return (*_as_tensors(train), *_as_tensors(test))


def _as_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(ds.data)
    if x.ndim == 3:  # MNIST-like: (N, H, W) grayscale
        x = x.unsqueeze(1)
    else:  # CIFAR: numpy (N, H, W, C)
        x = x.permute(0, 3, 1, 2).contiguous()
    return x, torch.as_tensor(ds.targets, dtype=torch.int64)
