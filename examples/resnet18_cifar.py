"""torchvision's ResNet-18 (random init, 10 classes) on a few CIFAR-10 images at 32x32, recorded by ics.watch.

    python examples/resnet18_cifar.py --out runs/resnet18 --steps 20 [--data ../shared/data/cifar10]

Reads the first images of CIFAR-10's binary version (data_batch_1.bin, 3,073-byte records: a label,
then 3x32x32 pixels), standardized per channel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

import ics_cli as ics

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "cifar10"
RECORD = 1 + 3 * 32 * 32


def cifar(folder: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n training images of CIFAR-10's binary version, standardized per channel, and labels."""
    path = next(Path(folder).rglob("data_batch_1.bin"))
    rows = np.fromfile(path, dtype=np.uint8, count=n * RECORD).reshape(n, RECORD)
    x = torch.from_numpy(rows[:, 1:].reshape(n, 3, 32, 32).astype(np.float32) / 255)
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    return x, torch.from_numpy(rows[:, 0].astype(np.int64))


def main(out: str, steps: int = 20, data: str | Path = DATA, batch: int = 32, every: int = 10,
         quantities=("grad_ics",), probe_size: int = 64) -> Path:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    x_all, y_all = cifar(Path(data), batch * 4 + probe_size)
    probe, x_all, y_all = x_all[:probe_size], x_all[probe_size:], y_all[probe_size:]
    model = resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.functional.cross_entropy
    with ics.watch(model, out=out, every=every, probe=probe, quantities=list(quantities), loss_fn=loss_fn,
                   optimizer=opt, steps=steps, seed=0, tags={"model": "resnet18"}) as w:
        for step in range(steps):
            i = (step * batch) % len(x_all)
            x, y = x_all[i:i + batch], y_all[i:i + batch]
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad()
            loss.backward()
            w.step(loss=loss, x=x, y=y, out=logits)
            opt.step()
    return Path(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/resnet18")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args()
    print(main(args.out, args.steps, args.data))
