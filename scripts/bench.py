"""Benchmarks of `ics` against what a user could write by hand: ratios, with the targets of the issue.

This is a benchmark, not a test: it prints one table and fails nothing. Every ratio is measured in
ONE run of this script, its two sides run in turn (A B A B ..., after a warm-up where cheap) and the
median of the repeats taken; one thread per process (`torch.set_num_threads(1)` here,
`OMP_NUM_THREADS=1` for every subprocess). The machine is shared, so only ratios from one run
compare; the raw numbers are there to read the ratios by, not to compare across runs.

1. Overhead of training: default `ics train --norm batch` (MLP, 2000 steps, a log step every 100)
   ÷ a bare loop of the same model, steps, batch size (60) and SGD (lr 0.5): data in memory via
   `ics_cli.data.load`, no hooks, no logging. Measured twice: whole-process wall time of the two
   as subprocesses (start-up counts on both sides), and time per step in this process (`train()`
   vs the loop; the ics side includes its log steps). Target ≤ 1.10.
2. Dense recording: `ics train --norm batch --log-every 1` (300 and 2000 steps) ÷ a hand-written
   hook script (DataLoader over a TensorDataset, batch 60, shuffled; forward hooks on every
   Linear/BatchNorm1d/Sigmoid storing per-unit mean and variance with `.cpu().numpy()` every step;
   one pandas DataFrame written to CSV at the end). Whole-process wall time. The issue's target is
   ics ≥ 5x faster, i.e. a ratio ≤ 0.20.
3. Cost of one log step: (time per step at `--log-every 10` - at logs only at the ends) per extra
   log step, ÷ one no-grad train-mode forward pass of the 512-image probe batch, both in this
   process. Target ≤ 3.
4. Sweep scaling: throughput (runs/s) of `ics sweep --jobs 2` ÷ `--jobs 1` on 4 small runs
   (norms none,batch x lrs 0.5,0.1). Target ≥ 1.7 (on a machine with at least 2 free cores).
5. Ratios 1 and 3 for `--model cnn --activation relu` (fewer steps). Same targets.

Usage:
    .venv/bin/python scripts/bench.py [--quick] [--device cpu|cuda]

The script also runs its own hand-written sides as subprocesses (`--side bare|hooks`, internal).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ics_cli import data, models
from ics_cli.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent
BATCH, LR, PROBE = 60, 0.5, 512
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Steps and repeats of each measurement: full run, and --quick (about a minute).
FULL = dict(repeats=3, mlp_steps=2000, dense_steps=(300, 2000), dense_repeats=(3, 1),
            log_steps=1000, sweep_steps=500, cnn_steps=300)
QUICK = dict(repeats=1, mlp_steps=500, dense_steps=(100, 200), dense_repeats=(1, 1),
             log_steps=200, sweep_steps=100, cnn_steps=60)


# ---------------------------------------------------------------------------------------------
# The hand-written sides (run in this process, or as a subprocess through --side)

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def model_config(model: str, activation: str) -> RunConfig:
    return RunConfig(model=model, activation=activation, norm="batch", lr=LR, batch_size=BATCH)


def bare_loop(model: str, activation: str, steps: int, device: torch.device) -> None:
    """`steps` SGD updates of the ics model on shuffled batches of in-memory tensors; nothing else."""
    torch.manual_seed(0)
    ds = data.load("mnist-5k", device=device)
    net = models.build(model_config(model, activation), ds.shape, ds.num_classes).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(0)
    n, done = len(ds.x_train), 0
    net.train()
    while done < steps:
        perm = torch.randperm(n, generator=gen).to(device)
        for a in range(0, min(n // BATCH, steps - done) * BATCH, BATCH):
            idx = perm[a:a + BATCH]
            loss = F.cross_entropy(net(ds.x_train[idx]), ds.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
    sync(device)


def hook_script(steps: int, device: torch.device, csv_path: str) -> None:
    """What a user writes by hand: DataLoader, forward hooks, lists of arrays, one CSV at the end."""
    import numpy as np
    import pandas as pd
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    ds = data.load("mnist-5k")
    loader = DataLoader(TensorDataset(ds.x_train, ds.y_train), batch_size=BATCH, shuffle=True,
                        drop_last=True)
    net = models.build(model_config("mlp", "sigmoid"), ds.shape, ds.num_classes).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    rec: dict[str, list] = {"step": [], "module": [], "mean": [], "var": []}
    step = 0

    def hook(name):
        def record(module, inputs, out):
            out = out.detach()
            rec["step"].append(step)
            rec["module"].append(name)
            rec["mean"].append(out.mean(0).cpu().numpy())
            rec["var"].append(out.var(0).cpu().numpy())
        return record

    for name, module in net.named_modules():
        if isinstance(module, (nn.Linear, nn.BatchNorm1d, nn.Sigmoid)):
            module.register_forward_hook(hook(name))
    net.train()
    while step < steps:
        for x, y in loader:
            if step == steps:
                break
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    sizes = [len(m) for m in rec["mean"]]
    pd.DataFrame({"step": np.repeat(rec["step"], sizes), "module": np.repeat(rec["module"], sizes),
                  "unit": np.concatenate([np.arange(k) for k in sizes]),
                  "mean": np.concatenate(rec["mean"]), "var": np.concatenate(rec["var"])}
                 ).to_csv(csv_path, index=False)


# ---------------------------------------------------------------------------------------------
# Timing

def interleaved(*sides, repeats: int, warmup: bool = False) -> list[float]:
    """Median seconds of each side, the sides run in turn `repeats` times (after one warm-up round)."""
    if warmup:
        for side in sides:
            side()
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(repeats):
        for side, ts in zip(sides, times):
            ts.append(side())
    return [statistics.median(ts) for ts in times]


def process_time(argv: list[str]) -> float:
    """Whole-process wall time of one subprocess (one thread), in seconds."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, env=ENV, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def ics_process(device: str, *args) -> float:
    with tempfile.TemporaryDirectory() as out:
        return process_time([sys.executable, "-m", "ics_cli", *map(str, args), "--device", device,
                             "--out", out, "--quiet"])


def side_process(device: str, *args) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return process_time([sys.executable, __file__, "--device", device, *map(str, args),
                             "--csv", os.path.join(tmp, "stats.csv")])


def ics_in_process(device: str, steps: int, log_every: int, model: str = "mlp",
                   activation: str = "sigmoid") -> float:
    """Seconds of `ics_cli.train.train` in this process (data already cached after the first)."""
    from ics_cli.train import train

    with tempfile.TemporaryDirectory() as out:
        cfg = RunConfig(model=model, activation=activation, norm="batch", steps=steps,
                        log_every=log_every, device=device, out=out)
        start = time.perf_counter()
        result = train(cfg, force=True)
        elapsed = time.perf_counter() - start
    if result.summary["status"] != "completed":
        raise SystemExit(f"ics run {result.summary['name']} ended {result.summary['status']}")
    return elapsed


def bare_in_process(device: str, steps: int, model: str = "mlp", activation: str = "sigmoid") -> float:
    start = time.perf_counter()
    bare_loop(model, activation, steps, torch.device(device))
    return time.perf_counter() - start


def probe_forward(device: str, model: str, activation: str, reps: int = 20) -> float:
    """Median seconds of one no-grad train-mode forward pass of a 512-image batch."""
    dev = torch.device(device)
    ds = data.load("mnist-5k", device=dev)
    torch.manual_seed(0)
    net = models.build(model_config(model, activation), ds.shape, ds.num_classes).to(dev).train()
    x = ds.x_train[:PROBE]
    times = []
    with torch.no_grad():
        for _ in range(reps + 2):
            sync(dev)
            start = time.perf_counter()
            net(x)
            sync(dev)
            times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def log_steps(steps: int, log_every: int) -> int:
    return len(set(range(0, steps + 1, log_every)) | {steps})


# ---------------------------------------------------------------------------------------------
# The ratios: each returns table rows (label, ratio, ics side, other side, target, met)

def overhead(device: str, steps: int, repeats: int, model: str, activation: str) -> list[tuple]:
    tag = f"{model} {activation} {steps} steps"
    t_ics, t_bare = interleaved(
        lambda: ics_process(device, "train", "--model", model, "--activation", activation,
                            "--norm", "batch", "--steps", steps),
        lambda: side_process(device, "--side", "bare", "--model", model, "--activation", activation,
                             "--steps", steps),
        repeats=repeats)
    i_ics, i_bare = interleaved(lambda: ics_in_process(device, steps, 100, model, activation),
                                lambda: bare_in_process(device, steps, model, activation),
                                repeats=repeats, warmup=True)
    return [(f"1 {tag}: ics train / bare loop, whole process", t_ics / t_bare,
             f"{t_ics:.2f} s", f"{t_bare:.2f} s", "<= 1.10", t_ics / t_bare <= 1.10),
            (f"1 {tag}: time per step, in process", i_ics / i_bare,
             f"{steps / i_ics:.0f} steps/s", f"{steps / i_bare:.0f} steps/s", "<= 1.10",
             i_ics / i_bare <= 1.10)]


def dense_recording(device: str, steps: int, repeats: int) -> list[tuple]:
    t_ics, t_hooks = interleaved(
        lambda: ics_process(device, "train", "--norm", "batch", "--log-every", 1, "--steps", steps),
        lambda: side_process(device, "--side", "hooks", "--steps", steps),
        repeats=repeats)
    return [(f"2 mlp {steps} steps, log every step: ics train / hook script", t_ics / t_hooks,
             f"{t_ics:.2f} s", f"{t_hooks:.2f} s", "<= 0.20", t_ics / t_hooks <= 0.20)]


def log_step_cost(device: str, steps: int, repeats: int, model: str, activation: str) -> list[tuple]:
    dense, sparse = 10, steps
    t_dense, t_sparse, t_fwd = interleaved(
        lambda: ics_in_process(device, steps, dense, model, activation),
        lambda: ics_in_process(device, steps, sparse, model, activation),
        lambda: probe_forward(device, model, activation),
        repeats=repeats, warmup=True)
    per_log = (t_dense - t_sparse) / (log_steps(steps, dense) - log_steps(steps, sparse))
    return [(f"3 {model} {activation} {steps} steps: one log step / probe forward", per_log / t_fwd,
             f"{per_log * 1e3:.2f} ms", f"{t_fwd * 1e3:.2f} ms", "<= 3", per_log / t_fwd <= 3)]


def sweep_scaling(device: str, steps: int, repeats: int) -> list[tuple]:
    def sweep(jobs: int) -> float:
        return ics_process(device, "sweep", "--norms", "none,batch", "--lrs", "0.5,0.1",
                           "--steps", steps, "--jobs", jobs)

    t_jobs2, t_jobs1 = interleaved(lambda: sweep(2), lambda: sweep(1), repeats=repeats)
    speedup = t_jobs1 / t_jobs2   # runs/s with 2 jobs ÷ runs/s with 1 (the same 4 runs)
    return [(f"4 sweep 4 runs x {steps} steps: runs/s --jobs 2 / --jobs 1", speedup,
             f"{4 / t_jobs2:.3f} runs/s", f"{4 / t_jobs1:.3f} runs/s", ">= 1.7", speedup >= 1.7)]


# ---------------------------------------------------------------------------------------------

def print_table(rows: list[tuple]) -> None:
    head = ("ratio", "value", "ics side", "other side", "target", "met")
    cells = [head] + [(label, f"{r:.2f}", a, b, target, "yes" if ok else "no")
                      for label, r, a, b, target, ok in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    for k, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and steps (about a minute)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    # Internal: run one hand-written side in this process (used by the subprocess measurements).
    ap.add_argument("--side", choices=("bare", "hooks"), help=argparse.SUPPRESS)
    ap.add_argument("--model", default="mlp", help=argparse.SUPPRESS)
    ap.add_argument("--activation", default="sigmoid", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--csv", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.side == "bare":
        return bare_loop(args.model, args.activation, args.steps, torch.device(args.device))
    if args.side == "hooks":
        return hook_script(args.steps, torch.device(args.device), args.csv)

    p = QUICK if args.quick else FULL
    start = time.perf_counter()
    rows = overhead(args.device, p["mlp_steps"], p["repeats"], "mlp", "sigmoid")
    for steps, repeats in zip(p["dense_steps"], p["dense_repeats"]):
        rows += dense_recording(args.device, steps, repeats)
    rows += log_step_cost(args.device, p["log_steps"], p["repeats"], "mlp", "sigmoid")
    rows += sweep_scaling(args.device, p["sweep_steps"], p["repeats"])
    rows += overhead(args.device, p["cnn_steps"], p["repeats"], "cnn", "relu")
    rows += log_step_cost(args.device, p["cnn_steps"], p["repeats"], "cnn", "relu")
    print(f"bench.py{' --quick' if args.quick else ''} --device {args.device}: one thread per process, "
          f"median of {p['repeats']} interleaved repeats (ratio 2 at {p['dense_steps'][1]} steps: "
          f"{p['dense_repeats'][1]}); only ratios from one run compare")
    print_table(rows)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
