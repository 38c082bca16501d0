"""An nn.Sequential MLP with batch norm on the embedded MNIST subset, recorded by ics.watch.

    python examples/mlp_mnist.py --out runs/mlp --steps 200
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

import ics_cli as ics
from ics_cli.net import data


def main(out: str, steps: int = 200, every: int = 50, lr: float = 0.1, norm: bool = True, seed: int = 0) -> Path:
    ds = data.load("mnist-5k")          # 4,000 training images, embedded in the package
    torch.manual_seed(seed)
    bn = (lambda w: nn.BatchNorm1d(w)) if norm else (lambda w: nn.Identity())
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), bn(100), nn.ReLU(),
                          nn.Linear(100, 100), bn(100), nn.ReLU(), nn.Linear(100, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.functional.cross_entropy
    gen = torch.Generator().manual_seed(seed)
    with ics.watch(model, out=out, every=every, probe=ds.x_train[:512], quantities=["grad_ics"],
                   loss_fn=loss_fn, optimizer=opt, steps=steps, seed=seed) as w:
        for step in range(steps):
            idx = torch.randint(len(ds.x_train), (60,), generator=gen)
            x, y = ds.x_train[idx], ds.y_train[idx]
            logits = model(x)
            loss = loss_fn(logits, y)
            opt.zero_grad()
            loss.backward()
            w.step(loss=loss, x=x, y=y, out=logits)
            opt.step()
    return Path(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/mlp")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    print(main(args.out, args.steps))
