"""Datasets: the registry of names, the embedded MNIST subset, torchvision loaders, tensors on the device.

Every dataset is loaded once into four tensors (train/test images and labels) and lives whole on the
requested device; training indexes it directly, so there is no DataLoader and no per-sample Python.

`gaussian-linear` is the one regression dataset (task "regress", ics_cli/net/tasks.py): y = A x for a
fixed 10x10 matrix A with N(0, 1) entries and inputs x with N(0, 1) entries, 1000 train and 1000 test
samples, all drawn from a private generator with seed GAUSSIAN_LINEAR_SEED (the same data in every
run, whatever the run's seed). x is stored as (N, 10, 1, 1), a 10-channel 1x1 "image", so the
(N, C, H, W) convention holds (an MLP flattens it back to 10 numbers); y as float32 (N, 10). It is
neither scaled nor standardized: x is already zero-mean and unit-variance by construction, and
standardizing it with its sample statistics would change the map from x to y away from y = A x.

Input normalization is the same for every dataset:

* pixels are scaled to [0, 1] (uint8 / 255);
* default: each channel is standardized with the mean and std of the TRAIN split, computed over
  (N, H, W); the test split uses the same train statistics;
* ``binarize=True``: pixels are thresholded at 0.5 to {0.0, 1.0} and NOT standardized. This reproduces
  the "28x28 binary image as input" of the batch-normalization paper's MNIST experiment.

Where the files are: `data_dir` (--data-dir), else the environment variable ICS_DATA_DIR, else
./data. A dataset's files may lie in that folder itself (torchvision's layout: `MNIST/raw/`,
`FashionMNIST/raw/`, `cifar-10-batches-py/` or `cifar-10-batches-bin/`) or in a subfolder named like
the dataset (`mnist/MNIST/raw/`, `cifar10/cifar-10-batches-bin/`), so one ICS_DATA_DIR serves all.

CIFAR-10 comes in two official layouts, and either is read: the python version (torchvision, which
first compares each file's md5 with the release's) or the binary version (`data_batch_1.bin` …
`data_batch_5.bin`, `test_batch.bin`: records of 1 label byte and 3,072 pixel bytes, the red, green
and blue 32x32 planes in row-major order; read here with numpy). When both are present the python
version is read.

Splits (`split`): `official` is the dataset's own train/test split; `heldout` trains on the training
set minus its last HELDOUT[name] images (official order) and tests on those: for CIFAR-10 that is
data_batch_1–4 (40,000) against data_batch_5 (10,000), for MNIST 50,000 against 10,000. CIFAR-10's
default is `heldout`: it needs only the training files, so it is the same split whatever test batch
a folder holds. Under `official` a binary folder holding only `test_batch_first1000.bin` (the first
1,000 test images) is tested on those, and `Dataset.info` says so (`test_files`, `test_partial`).

Every dataset carries `info` (config.json's "data"): name, split, sizes, the files read and a SHA-256
over their bytes, in the order read, so a reader of a run folder knows exactly what was trained on.

Files that are absent are "not found" (rerun with --download); files that exist but cannot be read,
or hold labels outside 0..9, are "damaged", naming the file and what is wrong. MNIST-like IDX files
are checked here (header, size, label range) before torchvision reads them; CIFAR-10's binary
records here (whole records, 10,000 per training batch, labels 0..9).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError

if TYPE_CHECKING:      # torch is imported where tensors are made: the registry and the checks need none
    import torch

DATASETS: dict[str, str] = {
    "mnist-5k": "5000 MNIST digits embedded in the package (4000 train / 1000 test), offline",
    "synthetic": "tiny generated 8x8 images in 10 classes (512 train / 256 test), for fast tests",
    "mnist": "MNIST digits via torchvision (60000 train / 10000 test, 1x28x28)",
    "fashion-mnist": "Fashion-MNIST clothing via torchvision (60000 train / 10000 test, 1x28x28)",
    "cifar10": "CIFAR-10 colour images, python or binary version (default split heldout: 40000 train / "
               "10000 test from the training batches; official: 50000 / 10000, 3x32x32)",
    "gaussian-linear": "regression y = A x, fixed Gaussian 10x10 A and Gaussian x (1000 train / 1000 test), "
                       "generated, offline",
}
REGRESSION = ("gaussian-linear",)       # datasets whose task is "regress": y holds numbers, not labels
# The datasets made here, by size (train, test, (C, H, W)): a config is checked against these without
# reading or generating them (and without importing torch); tests/test_data.py holds them to the data.
MADE_HERE = {"mnist-5k": (4000, 1000, (1, 28, 28)), "synthetic": (512, 256, (1, 8, 8)),
             "gaussian-linear": (1000, 1000, (10, 1, 1))}
# split "heldout": the last this-many training images (official order) are the test set.
HELDOUT = {"cifar10": 10_000, "mnist": 10_000, "fashion-mnist": 10_000}
DEFAULT_SPLIT = {"cifar10": "heldout"}  # every other dataset: "official"
ENV_DIR = "ICS_DATA_DIR"
CIFAR_BIN = "cifar-10-batches-bin"
CIFAR_RECORD = 1 + 3 * 32 * 32          # a label byte, then the red, green and blue planes
CIFAR_BATCH = 10_000                    # records per official batch
GAUSSIAN_LINEAR_SEED = 0

_MNIST5K_FILE = Path(__file__).parent.parent / "data" / "mnist5k.npz"

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
    y_train: torch.Tensor = field(repr=False)  # int64 labels (N,); float32 targets (N, outputs) to regress
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    num_classes: int            # classes, or outputs of a regression
    task: str = "classify"      # or "regress" (ics_cli/net/tasks.py)
    info: dict = field(default_factory=dict)    # what was read: config.json's "data" (module docstring)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.x_train.shape[1:]
        return (c, h, w)


_cache: dict[tuple, Dataset] = {}
_sizes: dict[tuple, tuple[int, int, tuple[int, int, int]]] = {}


def default_split(name: str) -> str:
    """The split a run of dataset `name` uses unless --split says otherwise."""
    return DEFAULT_SPLIT.get(name, "official")


def root(data_dir: str | Path | None) -> Path:
    """Where dataset files are looked for: data_dir, else $ICS_DATA_DIR, else ./data."""
    return Path(data_dir if data_dir is not None else os.environ.get(ENV_DIR) or "data")


def check_split(name: str, split: str | None) -> None:
    """Refuse a split dataset `name` does not have."""
    if split not in (None, "official") and name not in HELDOUT:
        raise DataError(f"--split {split}: --dataset {name} has only its official split; a held-out split "
                        f"exists for {', '.join(HELDOUT)}")


def load(
    name: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    binarize: bool = False,
    device: str | torch.device = "cpu",
    split: str | None = None,
) -> Dataset:
    """Load dataset `name` as normalized tensors on `device` (see the module docstring for normalization).

    `data_dir` and `download` matter only for the datasets read from files; `split` None is the
    dataset's default. The result is cached per (name, folder, split, binarize, device), so a sweep in
    one process reads the files once.
    """
    import torch

    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}")
    split = split or default_split(name)
    check_split(name, split)
    device = torch.device(device)
    key = (name, str(root(data_dir)), split, binarize, str(device))
    if key not in _cache:
        *raw, info = read_raw(name, root(data_dir), download, split)
        # Move uint8 first: a quarter of the bytes of float32 cross to the device.
        x_train, y_train, x_test, y_test = (t.to(device) for t in raw)
        if name in REGRESSION:      # generated numbers, not pixels: used as drawn (module docstring)
            _cache[key] = Dataset(name, x_train, y_train, x_test, y_test, num_classes=y_train.shape[1],
                                  task="regress", info=info)
        else:
            x_train, x_test = _normalize(x_train, x_test, binarize)
            _cache[key] = Dataset(name, x_train, y_train, x_test, y_test, num_classes=10,
                                  info={**info, "binarize": binarize})
    return _cache[key]


def sizes(name: str, *, data_dir: str | Path | None = None, download: bool = False,
          split: str | None = None) -> tuple[int, int, tuple[int, int, int]]:
    """(train images, test images, (C, H, W)) of dataset `name`, without keeping its images in memory.

    What a config is checked against before a run (config.check_data); remembered per (name, folder, split).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}")
    split = split or default_split(name)
    check_split(name, split)
    if name in MADE_HERE:
        return MADE_HERE[name]
    key = (name, str(root(data_dir)), split)
    for (n, d, sp, *_), ds in _cache.items():
        if (n, d, sp) == key:
            return len(ds.x_train), len(ds.x_test), ds.shape
    if key not in _sizes:
        x_train, _, x_test, _, _ = read_raw(name, root(data_dir), download, split)
        c, h, w = x_train.shape[1:]
        _sizes[key] = (len(x_train), len(x_test), (c, h, w))
    return _sizes[key]


def clear_cache() -> None:
    """Forget every loaded dataset (frees its memory; the next `load` reads the files again)."""
    _cache.clear()
    _sizes.clear()
    _digests.clear()


def read_raw(name: str, folder: Path, download: bool, split: str) -> tuple:
    """The four tensors of `split` and the dataset's info (what was read, for config.json)."""
    if name == "gaussian-linear":
        raw, files = _gaussian_linear(), []
    elif name == "mnist-5k":
        raw, files = _mnist5k(), [_MNIST5K_FILE]
    elif name == "synthetic":
        raw, files = _synthetic(), []
    elif (name == "cifar10" and not _base(folder, name, _TORCHVISION[name][1])
          and (base := _base(folder, name, CIFAR_BIN))):
        raw, files = _cifar_bin(base / CIFAR_BIN, split)
    else:
        raw, files = _torchvision(name, folder, download)
    source, partial = "the official test set", False
    if split == "heldout":      # the training set's last HELDOUT images are the test set
        x, y = raw[0], raw[1]
        cut = len(x) - HELDOUT[name]
        if cut < 1:
            raise DataError(f"--split heldout: the training set of '{name}' in {folder}/ holds {len(x):,} images; "
                            f"its last {HELDOUT[name]:,} are the test set, so it needs more; use --split official")
        raw = (x[:cut], y[:cut], x[cut:], y[cut:])
        source = f"the last {HELDOUT[name]:,} images of the official training set" + (
            " (data_batch_5)" if name == "cifar10" else "")
    elif name == "cifar10" and files and files[-1].name.startswith("test_batch_first"):
        source, partial = f"{files[-1].name}: only the first {len(raw[2]):,} official test images", True
    info = {"name": name, "split": split, "train_size": len(raw[0]), "test_size": len(raw[2]),
            "test_source": ("generated" if not files else "100 images per class of the embedded subset"
                            if name == "mnist-5k" else source), "test_partial": partial,
            "files": [f.name for f in files], "sha256": _digest(files) if files else None}
    return (*raw, info)


_digests: dict[tuple, str] = {}


def _digest(files: list[Path]) -> str:
    """SHA-256 over the bytes of `files`, in order (once per process per list of files)."""
    key = tuple(str(f) for f in files)
    if key not in _digests:
        h = hashlib.sha256()
        for f in files:
            with open(f, "rb") as stream:
                while chunk := stream.read(1 << 22):
                    h.update(chunk)
        _digests[key] = h.hexdigest()
    return _digests[key]


def _base(folder: Path, name: str, sub: str) -> Path | None:
    """Where dataset `name`'s folder `sub` lies: in `folder` itself, or in `folder/<name>` (one
    ICS_DATA_DIR for every dataset); None if in neither."""
    for base in (folder, folder / name):
        if (base / sub).is_dir():
            return base
    return None


def _cifar_bin(where: Path, split: str) -> tuple[tuple[torch.Tensor, ...], list[Path]]:
    """CIFAR-10's binary version: the five training batches, and (official split) the test batch, or
    the first 1,000 test images where only those are present. Every file is checked: whole records,
    10,000 per training batch, labels 0..9."""
    import torch

    fix = "replace it with the file from the official binary version"
    train = [where / f"data_batch_{i}.bin" for i in range(1, 6)]
    missing = [f for f in train if not f.is_file()]
    if missing:
        raise DataError(f"dataset 'cifar10' not found in {where}/ ({missing[0].name} is missing); place the "
                        f"binary version's files there, or rerun with --download for the python version")
    test = [] if split == "heldout" else [next((f for f in (where / "test_batch.bin",
                                                           where / "test_batch_first1000.bin") if f.is_file()), None)]
    if test == [None]:
        raise DataError(f"dataset 'cifar10': {where}/ has no test_batch.bin for --split official; "
                        f"use --split heldout (data_batch_5 as the test set), or add the test batch")

    def records(path: Path, full: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raw = np.fromfile(path, dtype=np.uint8)
        if len(raw) % CIFAR_RECORD or not len(raw) or (full and len(raw) != CIFAR_BATCH * CIFAR_RECORD):
            what = (f"{len(raw):,} bytes, not a whole number of {CIFAR_RECORD:,}-byte records" if len(raw) % CIFAR_RECORD
                    or not len(raw) else f"{len(raw) // CIFAR_RECORD:,} records; a training batch holds {CIFAR_BATCH:,}")
            raise DataError(f"dataset 'cifar10' is damaged: {path} has {what}; {fix}")
        rows = raw.reshape(-1, CIFAR_RECORD)
        bad = np.flatnonzero(rows[:, 0] >= 10)
        if len(bad):
            raise DataError(f"dataset 'cifar10' is damaged: {path} holds label {rows[bad[0], 0]} in record "
                            f"{bad[0]}; labels must be 0..9; {fix}")
        x = torch.from_numpy(rows[:, 1:].reshape(-1, 3, 32, 32).copy())
        return x, torch.from_numpy(rows[:, 0].astype(np.int64))

    xs, ys = zip(*(records(f, full=True) for f in train))
    x_train, y_train = torch.cat(xs), torch.cat(ys)
    if split == "heldout":      # the caller cuts data_batch_5 off as the test set
        return (x_train, y_train, x_train[:0], y_train[:0]), train
    x_test, y_test = records(test[0], full=test[0].name == "test_batch.bin")
    return (x_train, y_train, x_test, y_test), train + test


def _normalize(x_train: torch.Tensor, x_test: torch.Tensor, binarize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images -> float32 in [0, 1] -> binarized, or standardized per channel with train statistics."""
    import torch

    x_train = x_train.float().div_(255)
    x_test = x_test.float().div_(255)
    if binarize:
        return (x_train > 0.5).float(), (x_test > 0.5).float()
    std, mean = torch.std_mean(x_train, dim=(0, 2, 3), correction=0, keepdim=True)
    std = std.clamp_min(1e-8)  # a constant channel would otherwise divide by zero
    return (x_train - mean) / std, (x_test - mean) / std


def _mnist5k() -> tuple[torch.Tensor, ...]:
    """The embedded subset, split 400/100 per class by a fixed permutation (independent of the run seed)."""
    import torch

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
    import torch

    gen = torch.Generator().manual_seed(0)
    prototypes = 0.2 + 0.6 * (torch.rand(10, 1, 8, 8, generator=gen) < 0.5).float()

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randperm(n, generator=gen) % 10
        x = prototypes[y] + 0.25 * torch.randn(n, 1, 8, 8, generator=gen)
        return (x.clamp(0, 1) * 255).round().to(torch.uint8), y

    x_train, y_train = split(512)
    x_test, y_test = split(256)
    return x_train, y_train, x_test, y_test


def _gaussian_linear(n_train: int = 1000, n_test: int = 1000) -> tuple[torch.Tensor, ...]:
    """x ~ N(0, I_10) as (N, 10, 1, 1) and y = A x as (N, 10), float32; A, then the train x, then the
    test x, from one private generator (the global RNG is left alone)."""
    import torch

    gen = torch.Generator().manual_seed(GAUSSIAN_LINEAR_SEED)
    a = torch.randn(10, 10, generator=gen)
    x_train, x_test = torch.randn(n_train, 10, generator=gen), torch.randn(n_test, 10, generator=gen)
    return x_train[:, :, None, None], x_train @ a.T, x_test[:, :, None, None], x_test @ a.T


def _torchvision(name: str, data_dir: Path, download: bool) -> tuple[tuple[torch.Tensor, ...], list[Path]]:
    """Read a torchvision dataset's `.data` / `.targets` as uint8 (N, C, H, W) and int64 tensors; and
    the files it read."""
    import torchvision.datasets  # lazy: importing torchvision costs over a second

    class_name, folder = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, class_name)
    data_dir = _base(data_dir, name, folder) or data_dir     # one ICS_DATA_DIR for every dataset
    where = data_dir / folder
    files = _files(cls)
    missing = [f for f in files if not (where / f).is_file()]
    if missing:
        if not download:
            raise DataError(
                f"dataset '{name}' not found in {data_dir}/ (offline; {missing[0]} is missing); "
                f"rerun with --download, or place the files under {where}/"
                + (f" (or the binary version's under {data_dir / CIFAR_BIN}/)" if name == "cifar10" else "")
            )
        try:
            cls(root=str(data_dir), train=True, download=True)   # fetches both splits
        except Exception as err:  # torchvision raises many kinds (RuntimeError, URLError, OSError, ...)
            raise DataError(
                f"dataset '{name}' could not be downloaded to {data_dir}/ ({type(err).__name__}); "
                f"check the network, or place the files under {where}/"
            ) from err
    if issubclass(cls, torchvision.datasets.MNIST):
        for split in ("train", "t10k"):
            _check_idx(name, where / f"{split}-images-idx3-ubyte", where / f"{split}-labels-idx1-ubyte")
    try:
        train = cls(root=str(data_dir), train=True, download=False)
        test = cls(root=str(data_dir), train=False, download=False)
    except Exception as err:  # noqa: BLE001 - whatever torchvision raises, the files are unreadable
        raise _damaged(name, cls, where, err) from err
    out = []
    for split, ds in (("train", train), ("test", test)):
        x, y = _as_tensors(ds)
        if len(x) != len(y) or ((y < 0) | (y >= 10)).any():
            problem = (f"{len(y)} labels for {len(x)} images" if len(x) != len(y)
                       else f"label {y[(y < 0) | (y >= 10)][0].item()}; labels must be 0..9")
            raise DataError(f"dataset '{name}' is damaged: the {split} split in {where}/ holds {problem}; "
                            f"replace the files (or delete them and rerun with --download)")
        out += [x, y]
    return tuple(out), [where / f for f in files]


def _files(cls) -> list[str]:
    """The file names a torchvision dataset class reads from its folder."""
    if hasattr(cls, "resources"):    # MNIST-like: the downloaded .gz files, unpacked
        return [Path(url).name.removesuffix(".gz") for url, _ in cls.resources]
    return [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]


def _damaged(name: str, cls, where: Path, err: Exception) -> DataError:
    """The error for files that exist but that torchvision cannot read: which file, if it can be told."""
    fix = "replace it (or delete it and rerun with --download)"
    if hasattr(cls, "train_list"):  # CIFAR: torchvision refuses a file whose md5 is not the release's
        import torchvision.datasets.cifar

        checksums = dict(cls.train_list + cls.test_list + [(cls.meta["filename"], cls.meta["md5"])])
        for file, md5 in checksums.items():
            if not torchvision.datasets.cifar.check_integrity(str(where / file), md5):
                return DataError(f"dataset '{name}' is damaged: {where / file} does not match the "
                                 f"checksum of the original release; {fix}")
    detail = " ".join(str(err).split())[:200] or "no message"
    file = _file_read_when(err)
    if file:
        return DataError(f"dataset '{name}' is damaged: {file} exists but cannot be read "
                         f"({type(err).__name__}: {detail}); {fix}")
    return DataError(f"dataset '{name}' is damaged: the files in {where}/ exist but cannot be read "
                     f"({type(err).__name__}: {detail}); replace them (or delete them and rerun with --download)")


def _file_read_when(err: Exception) -> str | None:
    """The file torchvision was reading when `err` was raised, if its frames tell (best effort)."""
    import traceback

    found = None
    for frame, _ in traceback.walk_tb(err.__traceback__):
        if "torchvision" in frame.f_code.co_filename:
            path = frame.f_locals.get("file_path") or frame.f_locals.get("path")
            if isinstance(path, (str, Path)):
                found = str(path)      # the innermost wins
    return found


def _check_idx(name: str, images: Path, labels: Path) -> None:
    """Refuse an IDX pair whose header, length or labels are not what MNIST's format promises."""
    fix = "replace it (or delete it and rerun with --download)"

    def dims(path: Path, ndim: int) -> tuple[bytes, list[int]]:
        raw = path.read_bytes()
        header = 4 + 4 * ndim
        magic = 0x0800 + ndim            # unsigned bytes, ndim dimensions
        if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
            what = (f"{len(raw)} bytes, shorter than its header" if len(raw) < header
                    else f"it does not start with the IDX number {magic} (unsigned bytes, {ndim}-d)")
            raise DataError(f"dataset '{name}' is damaged: {path} is not an IDX file ({what}); {fix}")
        shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        want = header + int(np.prod(shape, dtype=np.int64))
        if len(raw) != want:
            how = "truncated" if len(raw) < want else "extra bytes at the end"
            raise DataError(f"dataset '{name}' is damaged: {path} has {len(raw):,} bytes but its header "
                            f"({' x '.join(map(str, shape))}) promises {want:,} ({how}); {fix}")
        return raw[header:], shape

    _, image_shape = dims(images, 3)
    values, label_shape = dims(labels, 1)
    if label_shape[0] != image_shape[0]:
        raise DataError(f"dataset '{name}' is damaged: {labels} holds {label_shape[0]:,} labels for the "
                        f"{image_shape[0]:,} images of {images.name}; {fix}")
    y = np.frombuffer(values, dtype=np.uint8)
    bad = np.flatnonzero(y >= 10)
    if len(bad):
        raise DataError(f"dataset '{name}' is damaged: {labels} holds label {y[bad[0]]} at position "
                        f"{bad[0]}; labels must be 0..9; {fix}")


def _as_tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    x = torch.as_tensor(ds.data)
    if x.ndim == 3:  # MNIST-like: (N, H, W) grayscale
        x = x.unsqueeze(1)
    else:  # CIFAR: numpy (N, H, W, C)
        x = x.permute(0, 3, 1, 2).contiguous()
    return x, torch.as_tensor(ds.targets, dtype=torch.int64)
