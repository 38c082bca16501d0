"""Cost of recording: steps/s of the default MLP (and the CNN) with sparse vs dense log steps.

Prints one line per setting and the ratio to the sparsest, all measured in one process run (the
machine is shared, so only ratios taken together mean anything). Usage:
    .venv/bin/python scripts/bench_recording.py [--steps 2000]
"""

import argparse
import tempfile
import time

import torch

from ics_cli.config import RunConfig
from ics_cli.train import train


def rate(cfg: RunConfig) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train(RunConfig(**{**cfg.to_dict(), "out": out}), force=True)
        return cfg.steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rate(RunConfig(steps=200, log_every=100))      # warm-up: data load, allocator, first kernels
    for model, norm, steps in (("mlp", "batch", args.steps), ("cnn", "batch", args.steps // 10)):
        base = None
        for log_every in (steps, 100, 10):
            cfg = RunConfig(model=model, norm=norm, steps=steps, log_every=log_every,
                            activation="relu" if model == "cnn" else "sigmoid", lr=0.1)
            r = rate(cfg)
            base = base or r
            print(f"{model:4s} {norm:6s} log_every={log_every:<5d} {r:8.1f} steps/s  "
                  f"ratio to sparsest {r / base:5.2f}")


if __name__ == "__main__":
    main()
