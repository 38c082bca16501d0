"""Benchmarks of `ics` against what a user could write by hand: ratios, with the targets of the issue.

This is a benchmark, not a test: it prints one table and fails nothing. Every ratio is measured in
ONE run of this script, its two sides run in turn (A B A B ..., after a warm-up where cheap) and the
median of the repeats taken; one thread per process (`torch.set_num_threads(1)` here,
`OMP_NUM_THREADS=1` for every subprocess). The machine is shared, so only ratios from one run
compare; the raw numbers are there to read the ratios by, not to compare across runs.

1. Overhead of training: default `ics train --norm batch` (MLP, 2000 steps, a log step every 100)
   ÷ a bare loop of the same model, steps, batch size (60) and SGD (lr 0.5): data in memory via
   `ics_cli.net.data.load`, no hooks, no logging. Measured twice: whole-process wall time of the two
   as subprocesses (start-up counts on both sides), and time per step in this process (`train()`
   vs the loop; the ics side includes its log steps). Target ≤ 1.10.
2. Dense recording: `ics train --norm batch --probe train --log-every 1` (statistics of every
   step's own training batch; 300 and 2000 steps) ÷ a hand-written hook script (DataLoader over a
   TensorDataset, batch 60, shuffled; forward hooks on every Linear/BatchNorm1d/Sigmoid storing
   per-unit mean and variance with `.cpu().numpy()` every step; one pandas DataFrame written to CSV
   at the end). Measured twice: whole-process wall time (start-up, about 2 s of importing torch,
   counts on both sides and bounds the ratio), and time per step in this process (`train()` vs the
   hook script's function, each with its own writing, no start-up). The issue's target is ics ≥ 5x
   faster, i.e. a ratio ≤ 0.20. Where `ics train` has no `--probe` yet, the rows say so.
3. Cost of one log step at `--probe fixed`: (time per step at `--log-every 10` - at logs only at
   the ends) per extra log step, ÷ one no-grad train-mode forward pass of the 512-image probe batch,
   both in this process. Both runs evaluate the test set only at the ends (`eval_every` = steps),
   so evaluation is not counted as logging (where ics has `eval_every`; before it, a log step
   evaluated too). Target ≤ 3.
4. Sweep scaling: throughput (runs/s) of `ics sweep --jobs 2` ÷ `--jobs 1`, whole process, on 4
   runs (norms none,batch x lrs 0.5,0.1) long enough that worker start-up is not the whole
   measurement (2000 steps each; --quick 300). Target ≥ 1.7 (on a machine with at least 2 free
   cores; with more, each of the 2 workers uses half the cores, `--jobs 1` one thread). Read it
   against its ceiling on this machine at the time, printed below it: two bare-loop processes
   started together ÷ run in turn (2 on two free cores).
5. Ratios 1 and 3 for `--model cnn --activation relu` (fewer steps). Same targets.
6. Cost of the second view of ICS: for each quantity, (time per step with it measured on every
   step - time per step without) ÷ time per step without, in this process, on the default MLP with
   batch norm (sharpness with its default 20 power iterations). The cost of one measurement in
   training steps; no target (issue 10 asks for none): read it to choose a cadence.
7. The Ray backend on one machine: wall time of `ics sweep --backend ray` (a local Ray instance,
   started and stopped inside the process, one 1-CPU task per run) ÷ `--backend local --jobs 2`,
   whole process, on 16 short runs of the default MLP (norms none,batch x lrs 0.5,0.1 x seeds
   0-3; 500 steps each, --quick 200). Target: parity or a small overhead (≤ 1.25); Ray's start-up
   (seconds) counts on its side, and is printed below it: a process that starts a local Ray
   instance and stops it, doing nothing else. Where Ray is not installed, the row says so.
8. Real data: updates per second on CIFAR-10 (batch 60, one core) of the CNN (relu), VGG-8 and
   ResNet-20 with batch norm, three ways: a bare loop; `ics train` recording nothing between its ends
   (`--log-every` and `--eval-every` = steps); and `ics train` recording activations every 10 steps
   (`--log-every 10`, ten times the default's density; test set at the ends). In process; the
   per-step time is (T(2N) − T(N)) / N, so the start and the evaluations at the ends cancel out (the
   official split's smaller test set is used, without the batch-statistics evaluation, to keep the
   bench short). No target: it sets what a study on real data can afford. Needs the data
   (`--data-dir`, else $ICS_DATA_DIR, else ../shared/data); where it is absent the row says so.
9. Start-up: whole-process wall time of commands that do not train (`ics --help`, `ics --version`,
   `ics train --help`, a refused option `ics train --lr -1`, `ics compare` of a 2-run sweep made
   first, `ics plot` of its output), each beside whether the process imported torch (the issue's
   target: none does), and two references: `python -c pass` and `python -c "import torch"`.
11. Your own model (`ics.watch`, issue 26): time of the ResNet-18 example's loop (torchvision's
   resnet18(num_classes=10), random init, SGD, batch 60 of CIFAR-10 at 32x32) under `ics.watch` at `ics
   train`'s default cadences (activations every 100 steps from a fixed 512-image probe, gradient norms
   every step, no quantities) ÷ the same loop bare, in process, the two sides in turn; 300 steps
   (--quick 100). No target: read it as what recording costs on a real model. Needs the data as ratio 8.
10. A study's budget: whole-process wall time of `ics reproduce note --quick --jobs 2` from an empty
   folder (the quick protocol of the study with the most runs; the full studies' times from empty run
   folders are in each results/<study>/README.md). No target: a regression shows here.

Usage:
    .venv/bin/python scripts/bench.py [--quick] [--device cpu|cuda] [--only 2,4] [--data-dir DIR]

The script also runs its own hand-written sides as subprocesses (`--side bare|hooks`, internal).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ics_cli.net import data, models
from ics_cli.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent
BATCH, LR, PROBE = 60, 0.5, 512
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Steps and repeats of each measurement: full run (about 6 minutes), and --quick (about 2).
FULL = dict(repeats=3, mlp_steps=2000, dense_steps=(300, 2000), dense_repeats=(3, 1),
            log_steps=1000, sweep_steps=2000, cnn_steps=300, quantity_steps=300, ray_steps=500, cifar_steps=50,
            watch_steps=300)
QUICK = dict(repeats=1, mlp_steps=500, dense_steps=(100, 300), dense_repeats=(1, 1),
             log_steps=200, sweep_steps=300, cnn_steps=60, quantity_steps=60, ray_steps=200, cifar_steps=20,
             watch_steps=100)
SWEEP = ["--norms", "none,batch", "--lrs", "0.5,0.1"]     # 4 runs
RAY_SWEEP = [*SWEEP, "--seeds", "0,1,2,3"]                # 16 runs
RATIOS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
CIFAR_MODELS = (("cnn", {"activation": "relu"}), ("vgg", {}), ("resnet", {"depth": 20}))
QUANTITIES = ("ics_every", "landscape_every", "relative_loss_every", "sharpness_every")


class SideFailed(RuntimeError):
    """One side of a ratio could not run (e.g. an option this version of ics does not have)."""


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
    done = subprocess.run(argv, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise SideFailed(lines[-1])
    return elapsed


def ics_process(device: str, *args) -> float:
    with tempfile.TemporaryDirectory() as out:
        return process_time([sys.executable, "-m", "ics_cli", *map(str, args), "--device", device,
                             "--out", out, "--quiet"])


def side_process(device: str, *args) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return process_time([sys.executable, __file__, "--device", device, *map(str, args),
                             "--csv", os.path.join(tmp, "stats.csv")])


def run_config(**values) -> RunConfig:
    """RunConfig(**values); values for options this version of ics lacks (probe, eval_every) must
    be None (then left out), so the bench runs before and after they exist."""
    have = {f.name for f in dataclasses.fields(RunConfig)}
    missing = sorted(k for k, v in values.items() if k not in have and v is not None)
    if missing:
        raise SideFailed(f"this ics has no {', '.join(missing)}")
    return RunConfig(**{k: v for k, v in values.items() if v is not None})


def has_option(name: str) -> bool:
    return name in {f.name for f in dataclasses.fields(RunConfig)}


def ics_in_process(device: str, steps: int, log_every: int, model: str = "mlp",
                   activation: str = "sigmoid", probe: str | None = None,
                   eval_every: int | None = None, **quantity) -> float:
    """Seconds of `ics_cli.train.train` in this process (data already cached after the first)."""
    from ics_cli.train import train

    with tempfile.TemporaryDirectory() as out:
        cfg = run_config(model=model, activation=activation, norm="batch", steps=steps,
                         log_every=log_every, device=device, out=out, probe=probe, eval_every=eval_every,
                         **quantity)
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


def hooks_in_process(device: str, steps: int) -> float:
    """Seconds of the hook script's function in this process: its loop and its CSV, no start-up."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        hook_script(steps, torch.device(device), os.path.join(tmp, "stats.csv"))
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
    label = f"2 mlp {steps} steps, --probe train --log-every 1: ics train / hook script, whole process"
    try:
        t_ics, t_hooks = interleaved(
            lambda: ics_process(device, "train", "--norm", "batch", "--probe", "train", "--log-every", 1,
                                "--steps", steps),
            lambda: side_process(device, "--side", "hooks", "--steps", steps),
            repeats=repeats)
    except SideFailed as e:
        return [not_measured(label, "<= 0.20", e)]
    return [(label, t_ics / t_hooks, f"{t_ics:.2f} s", f"{t_hooks:.2f} s", "<= 0.20",
             t_ics / t_hooks <= 0.20)]


def dense_in_process(device: str, steps: int, repeats: int) -> list[tuple]:
    """Ratio 2 without start-up: time per step of train() vs the hook script, both in this process."""
    label = f"2 mlp {steps} steps, --probe train --log-every 1: time per step, in process"
    try:
        run_config(probe="train")
        ics_in_process(device, 20, 1, probe="train")     # warm-up: first-use costs of both sides
        hooks_in_process(device, 20)
        t_ics, t_hooks = interleaved(lambda: ics_in_process(device, steps, 1, probe="train"),
                                     lambda: hooks_in_process(device, steps), repeats=repeats)
    except SideFailed as e:
        return [not_measured(label, "<= 0.20", e)]
    return [(label, t_ics / t_hooks, f"{steps / t_ics:.0f} steps/s", f"{steps / t_hooks:.0f} steps/s",
             "<= 0.20", t_ics / t_hooks <= 0.20)]


def log_step_cost(device: str, steps: int, repeats: int, model: str, activation: str) -> list[tuple]:
    dense, sparse = 10, steps
    # The same probe and evaluation cadence on both sides: the difference is the log steps alone.
    same = dict(probe="fixed" if has_option("probe") else None,
                eval_every=steps if has_option("eval_every") else None)
    t_dense, t_sparse, t_fwd = interleaved(
        lambda: ics_in_process(device, steps, dense, model, activation, **same),
        lambda: ics_in_process(device, steps, sparse, model, activation, **same),
        lambda: probe_forward(device, model, activation),
        repeats=repeats, warmup=True)
    per_log = (t_dense - t_sparse) / (log_steps(steps, dense) - log_steps(steps, sparse))
    return [(f"3 {model} {activation} {steps} steps: one log step / probe forward", per_log / t_fwd,
             f"{per_log * 1e3:.2f} ms", f"{t_fwd * 1e3:.2f} ms", "<= 3", per_log / t_fwd <= 3)]


def sweep_scaling(device: str, steps: int, repeats: int) -> list[tuple]:
    def sweep(jobs: int) -> float:
        return ics_process(device, "sweep", *SWEEP, "--steps", steps, "--jobs", jobs)

    t_jobs2, t_jobs1 = interleaved(lambda: sweep(2), lambda: sweep(1), repeats=repeats)
    speedup = t_jobs1 / t_jobs2   # runs/s with 2 jobs ÷ runs/s with 1 (the same 4 runs)
    return [(f"4 sweep 4 runs x {steps} steps: runs/s --jobs 2 / --jobs 1, whole process", speedup,
             f"{4 / t_jobs2:.3f} runs/s", f"{4 / t_jobs1:.3f} runs/s", ">= 1.7", speedup >= 1.7)]


def two_at_once(device: str, steps: int, repeats: int) -> list[tuple]:
    """What this machine gives two processes now: two bare loops at once ÷ one after the other.

    Ratio 4's ceiling here: 2 on two free cores, less where the cores are shared or busy.
    """
    argv = [sys.executable, __file__, "--device", device, "--side", "bare", "--steps", str(steps)]

    def at_once() -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL) for _ in range(2)]
        if any(p.wait() for p in procs):
            raise SideFailed("a bare loop failed")
        return time.perf_counter() - start

    t_once, t_serial = interleaved(at_once, lambda: process_time(argv) + process_time(argv), repeats=repeats)
    return [(f"4 reference: 2 bare loops x {steps} steps at once / in turn, whole process", t_serial / t_once,
             f"{t_once:.2f} s", f"{t_serial:.2f} s", "(ceiling)", None)]


def second_view_cost(device: str, steps: int, repeats: int) -> list[tuple]:
    """Ratio 6: one measurement of each quantity, in training steps of the default MLP."""
    rows = []
    for field in QUANTITIES:
        if not has_option(field):
            rows.append(not_measured(f"6. {field}=1, extra time per step ÷ step", "-",
                                     SideFailed(f"this ics has no {field}")))
            continue
        with_q, without = interleaved(
            lambda: ics_in_process(device, steps, steps, eval_every=steps, **{field: 1}),
            lambda: ics_in_process(device, steps, steps, eval_every=steps),
            repeats=repeats, warmup=True)
        rows.append((f"6. --{field.replace('_', '-')} 1: extra time per step ÷ step, {steps} steps",
                     (with_q - without) / without, f"{with_q / steps * 1e3:.1f} ms/step",
                     f"{without / steps * 1e3:.2f} ms/step", "-", None))
    return rows


def ray_backend(device: str, steps: int, repeats: int) -> list[tuple]:
    """Ratio 7: --backend ray ÷ --backend local --jobs 2, 16 runs, whole process (Ray's start-up included)."""
    from ics_cli.sweep import ray as rb

    label = f"7. sweep 16 runs x {steps} steps: --backend ray / local --jobs 2, whole process"
    if not rb.available():
        return [not_measured(label, "<= 1.25", SideFailed("Ray is not installed: pip install ray"))]

    def sweep(*backend) -> float:
        return ics_process(device, "sweep", *RAY_SWEEP, "--steps", steps, *backend)

    start_stop = [sys.executable, "-c", "import ray; ray.init(address='local', num_cpus=2, include_dashboard=False, "
                                        "logging_level='ERROR'); ray.shutdown()"]
    t_ray, t_local, t_start = interleaved(lambda: sweep("--backend", "ray"), lambda: sweep("--jobs", 2),
                                          lambda: process_time(start_stop), repeats=repeats)
    return [(label, t_ray / t_local, f"{t_ray:.1f} s", f"{t_local:.1f} s", "<= 1.25", t_ray / t_local <= 1.25),
            ("7 reference: a process that starts and stops a local Ray instance", None, f"{t_start:.1f} s",
             "-", "-", None)]


def cifar_throughput(device: str, steps: int, repeats: int, data_dir: str) -> list[tuple]:
    """Ratio 8: updates per second on CIFAR-10 of each model, bare and under ics train (see the docstring)."""
    from ics_cli.train import train

    label = "8. CIFAR-10 updates/s, batch 60"
    folder = Path(data_dir)
    if not (folder / data.CIFAR_BIN).is_dir() and not (folder / "cifar10" / data.CIFAR_BIN).is_dir():
        return [not_measured(label, "-", SideFailed(f"no CIFAR-10 binary version under {folder}"))]
    dev = torch.device(device)
    ds = data.load("cifar10", data_dir=folder, device=dev, split="official")
    rows = []
    for model, extra in CIFAR_MODELS:
        # The official split's test set (1,000 images here) and no batch-statistics evaluation: the
        # evaluations at the ends cancel out of the per-step time, and take less of the bench's.
        cfg = RunConfig(dataset="cifar10", data_dir=str(folder), split="official", eval_batchstats=False,
                        model=model, norm="batch", lr=0.05, batch_size=BATCH, device=device, **extra)

        def bare(n: int) -> float:
            torch.manual_seed(0)
            net = models.build(cfg.resolved(), ds.shape, ds.num_classes).to(dev).train()
            opt = torch.optim.SGD(net.parameters(), lr=cfg.lr)
            gen = torch.Generator().manual_seed(0)
            start = time.perf_counter()
            for _ in range(n):
                idx = torch.randint(len(ds.x_train), (BATCH,), generator=gen).to(dev)
                loss = F.cross_entropy(net(ds.x_train[idx]), ds.y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sync(dev)
            return time.perf_counter() - start

        def ics(n: int, log_every: int) -> float:
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                train(dataclasses.replace(cfg, steps=n, log_every=log_every, eval_every=n, out=out), force=True)
                return time.perf_counter() - start

        def per_step(fn, *args) -> float:
            return (fn(2 * steps, *args) - fn(steps, *args)) / steps

        b, quiet, default = interleaved(lambda: per_step(bare), lambda: per_step(lambda n: ics(n, n)),
                                        lambda: per_step(lambda n: ics(n, 10)), repeats=repeats)
        name = f"{model}-{cfg.resolved().hidden_depth}" if model != "cnn" else "cnn"
        rows += [(f"{label}, {name}: ics (ends only) ÷ bare", quiet / b, f"{1 / quiet:.1f}/s", f"{1 / b:.1f}/s",
                  "-", None),
                 (f"{label}, {name}: ics (log every 10) ÷ bare", default / b, f"{1 / default:.1f}/s",
                  f"{1 / b:.1f}/s", "-", None)]
    return rows


# Runs an ics command as `ics` does, then says on stderr whether torch was imported.
TORCH_PROBE = ("import sys, atexit; atexit.register(lambda: sys.stderr.write('torch imported: %s\\n' % "
               "('torch' in sys.modules))); from ics_cli.cli import main; sys.exit(main(sys.argv[1:]))")


def startup(repeats: int) -> list[tuple]:
    """Ratio 9: seconds of each command that does not train, and whether it imported torch."""
    def timed(argv: list[str], ok=(0,)) -> tuple[float, bool]:
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode not in ok:
            raise SideFailed((done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1])
        return elapsed, "torch imported: True" in done.stderr

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sweep_dir, out = os.path.join(tmp, "sweep"), os.path.join(tmp, "compare")
        subprocess.run([sys.executable, "-m", "ics_cli", "sweep", "--norms", "none,batch", "--steps", "20",
                        "--log-every", "10", "--eval-every", "10", "--quiet", "--out", sweep_dir], cwd=ROOT, env=ENV,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        commands = [("ics --help", ["--help"], (0,)), ("ics --version", ["--version"], (0,)),
                    ("ics train --help", ["train", "--help"], (0,)), ("ics train --lr -1 (refused)",
                                                                     ["train", "--lr", "-1"], (2,)),
                    ("ics compare (2 runs)", ["compare", sweep_dir, "--out", out], (0,)),
                    ("ics plot (its output)", ["plot", out], (0,))]
        for label, args, ok in commands:
            try:
                times = [timed([sys.executable, "-c", TORCH_PROBE, *args], ok) for _ in range(repeats)]
            except SideFailed as e:
                rows.append(not_measured(f"9. start-up: {label}", "no torch", e))
                continue
            seconds, torch_in = statistics.median(t for t, _ in times), times[-1][1]
            rows.append((f"9. start-up: {label}", None, f"{seconds:.2f} s", f"torch {'imported' if torch_in else 'not imported'}",
                         "no torch", not torch_in))
    for label, code in (("python -c pass", "pass"), ("python -c 'import torch'", "import torch")):
        seconds = statistics.median(timed([sys.executable, "-c", code])[0] for _ in range(repeats))
        rows.append((f"9 reference: {label}", None, f"{seconds:.2f} s", "-", "-", None))
    return rows


def study_budget() -> list[tuple]:
    """Ratio 10: seconds of the quick note study from an empty folder, two jobs, whole process."""
    with tempfile.TemporaryDirectory() as out:
        seconds = process_time([sys.executable, "-m", "ics_cli", "reproduce", "note", "--quick", "--jobs", "2",
                                "--out", out])
    return [("10. ics reproduce note --quick --jobs 2, from empty, whole process", None, f"{seconds:.1f} s",
             "-", "-", None)]


def watch_overhead(steps: int, repeats: int, data_dir: str) -> list[tuple]:
    """Ratio 11: the ResNet-18 example's loop under ics.watch (default cadences) ÷ bare, in process."""
    label = f"ResNet-18 on CIFAR-10, {steps} steps: ics.watch ÷ bare loop"
    folder = Path(data_dir) / "cifar10"
    if not folder.is_dir():
        return [not_measured(label, "-", FileNotFoundError(f"no CIFAR-10 at {folder}"))]
    sys.path.insert(0, str(ROOT / "examples"))
    import resnet18_cifar
    from torchvision.models import resnet18

    import ics_cli as ics

    x_all, y_all = resnet18_cifar.cifar(folder, BATCH * 10 + PROBE)
    probe, x_all, y_all = x_all[:PROBE], x_all[PROBE:], y_all[PROBE:]

    def side(watched: bool):
        def go() -> float:
            torch.manual_seed(0)
            model = resnet18(num_classes=10)
            start = time.perf_counter()
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
            with tempfile.TemporaryDirectory() as tmp:
                session = ics.watch(model, out=Path(tmp) / "run", every=100, probe=probe, optimizer=opt,
                                    steps=steps) if watched else None
                if session:
                    session.__enter__()
                for step in range(steps):
                    i = (step * BATCH) % len(x_all)
                    x, y = x_all[i:i + BATCH], y_all[i:i + BATCH]
                    logits = model(x)
                    loss = F.cross_entropy(logits, y)
                    opt.zero_grad()
                    loss.backward()
                    if session:
                        session.step(loss=loss, x=x, y=y, out=logits)
                    opt.step()
                if session:
                    session.__exit__(None, None, None)
            return time.perf_counter() - start
        return go

    watched, bare = interleaved(side(True), side(False), repeats=repeats)
    return [(f"11. {label}", watched / bare, f"{watched:.1f} s", f"{bare:.1f} s", "-", None)]


def not_measured(label: str, target: str, why: Exception) -> tuple:
    return (label, None, "not measured", str(why), target, None)


# ---------------------------------------------------------------------------------------------

def print_table(rows: list[tuple]) -> None:
    head = ("ratio", "value", "ics side", "other side", "target", "met")
    cells = [head] + [(label, "n/a" if r is None else f"{r:.2f}", a, b, target,
                       "-" if ok is None else "yes" if ok else "no")
                      for label, r, a, b, target, ok in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    for k, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and steps (about two minutes)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--only", default=",".join(map(str, RATIOS)),
                    help="comma-separated ratios to measure (default: all), e.g. 2,4")
    # Internal: run one hand-written side in this process (used by the subprocess measurements).
    ap.add_argument("--data-dir", default=os.environ.get(data.ENV_DIR) or str(ROOT.parent / "shared" / "data"),
                    help="where CIFAR-10 is for ratio 8 (default: $ICS_DATA_DIR, else ../shared/data)")
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
    only = {int(r) for r in args.only.split(",") if r.strip()}
    if not only <= set(RATIOS):
        ap.error(f"--only takes ratios among {RATIOS}, got {args.only}")
    start = time.perf_counter()
    rows = []
    if 1 in only:
        rows += overhead(args.device, p["mlp_steps"], p["repeats"], "mlp", "sigmoid")
    if 2 in only:
        for steps, repeats in zip(p["dense_steps"], p["dense_repeats"]):
            rows += dense_recording(args.device, steps, repeats)
        rows += dense_in_process(args.device, p["dense_steps"][-1], p["dense_repeats"][-1])
    if 3 in only:
        rows += log_step_cost(args.device, p["log_steps"], p["repeats"], "mlp", "sigmoid")
    if 4 in only:
        rows += sweep_scaling(args.device, p["sweep_steps"], p["repeats"])
        rows += two_at_once(args.device, p["sweep_steps"], p["repeats"])
    if 5 in only:
        rows += overhead(args.device, p["cnn_steps"], p["repeats"], "cnn", "relu")
        rows += log_step_cost(args.device, p["cnn_steps"], p["repeats"], "cnn", "relu")
    if 6 in only:
        rows += second_view_cost(args.device, p["quantity_steps"], p["repeats"])
    if 7 in only:
        rows += ray_backend(args.device, p["ray_steps"], p["repeats"])
    if 8 in only:
        rows += cifar_throughput(args.device, p["cifar_steps"], p["repeats"], args.data_dir)
    if 9 in only:
        rows += startup(p["repeats"])
    if 10 in only:
        rows += study_budget()
    if 11 in only:
        rows += watch_overhead(p["watch_steps"], p["repeats"], args.data_dir)
    print(f"bench.py{' --quick' if args.quick else ''} --device {args.device}: one thread per process, "
          f"median of {p['repeats']} interleaved repeats (ratio 2 at {p['dense_steps'][-1]} steps: "
          f"{p['dense_repeats'][-1]}); only ratios from one run compare")
    if 3 in only or 5 in only:
        print("ratio 3: " + ("both runs --probe fixed, evaluating only at their ends"
                             if has_option("eval_every")
                             else "this ics has no eval_every: its log steps include the test evaluation"))
    print_table(rows)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
