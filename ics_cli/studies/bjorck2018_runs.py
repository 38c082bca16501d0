"""bjorck2018's protocol values, its runs and the per-run quantities its claims read.

The claims, figures and the Study live in bjorck2018.py, which reads this module; nothing here
decides a verdict.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..analyse.quantities import BLOWUP   # B1: "blows up" = L(θ − α∇L)/L(θ) above 10³ (the paper's Fig. 2 scale)
from ..config import RunConfig
from ..store.runs import run_config
from ..sweep.run import Sweep
from .claims import MissingData
from .context import Context, run_groups

INIT = {"resmlp": "init_resmlp", "mlp": "init_mlp"}     # group of runs at initialization, per model
CIFAR = "init_resnet"      # B1-cifar: the paper's own setting, a CIFAR-10 ResNet at initialization
SWEEP = "lr_sweep"
NORMS = ("none", "batch")

# --------------------------------------------------------------------------- protocol
# Every threshold below is the same for every norm; bjorck2018.STUDY.history says which changed
# after data was seen.

ALPHAS = "1e-6:10:29"      # relative-loss step sizes: quarter-decades from 1e-6 to 10
CIFAR_ALPHAS = "1e-6:10:15"  # B1-cifar: half-decades (each α is one forward pass of the ResNet)
STEP_RATIO = 10.0          # B1: α*(BN) / α*(none) ≥ 10 (the "≥ 10× smaller")
CONTRAST_ALPHA = 0.1       # B1c: the plain MLP without BN blows up, if at all, only at α ≥ 0.1
SITE = "act"               # B2: each block's output; in resmlp the residual stream itself
GROW = 0.05                # B2a, B2c: "grows" = slope of log10 vs depth ≥ 0.05 decades/layer (≥ 10× over 20)
EXCESS = math.log10(2) / 20    # B2b-sqrt: at most a factor 2 over the 20 layers beyond √depth growth
LR_RATIO = 5.0             # B3: largest stable lr, BN / none ≥ 5
STABLE_FRACTION = 0.9      # B3: stable = not diverged, final test acc ≥ 0.9 × the seed's best ...
LEARNED = 0.5              # ... and ≥ 0.5 (chance is 0.1): the network learned something
MARGIN = 0.02              # B4: |test_acc(BN) − test_acc(none)| < 2 points (equivalence margin)
CHANCE = 0.1               # B4: a diverged run's weights are unusable: it counts at chance

# Decades from 1e-7 (the network without BN may need tiny steps), half-decades from 1e-4 to 3.16.
LR_GRID = [1e-7, 1e-6, 1e-5] + [float(f"{10 ** (k / 2):.3g}") for k in range(-8, 2)]

# Every value spelled out, so a change of a project default cannot change the study.
COMMON = RunConfig(dataset="mnist-5k", binarize=False, model="resmlp", depth=20, width=100,
                   activation="relu", init="kaiming", eps=1e-5, bn_momentum=0.1, optimizer="sgd",
                   lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=128, probe="fixed",
                   probe_size=512, track_units=1, relative_alphas=ALPHAS)
# B4 compares two networks at one lr: sharpness (Lanczos, both ends of the spectrum) at steps 0,
# 150 and 300, so sharpness × lr says whether either sits at the edge of stability (≈ 2).
SHARP = dict(sharpness_every=150, sharpness_iters=10, sharpness_method="lanczos")
# B1-cifar: He et al.'s CIFAR ResNet (6n+2 layers, 16-32-64 channels) on CIFAR-10's held-out split.
RESNET = replace(COMMON, dataset="cifar10", split="heldout", model="resnet", depth=20, width=16,
                 probe_size=128, relative_alphas=CIFAR_ALPHAS, eval_batchstats=False)
CIFAR_SEEDS = 2            # B1-cifar: the first two of the study's seeds (one ResNet step is minutes)
FULL = dict(seeds=[0, 1, 2, 3, 4], steps=300, log_every=100, lrs=LR_GRID, cifar=True)
QUICK = dict(seeds=[0, 1], steps=100, log_every=50, lrs=LR_GRID[::2], cifar=False)


def plan(quick: bool, seeds: list[int] | None = None) -> dict[str, Sweep]:
    p = QUICK if quick else FULL
    seeds = seeds or p["seeds"]
    # At initialization only: one step, the relative loss and the activation statistics at step 0.
    init = dict(steps=1, log_every=1, eval_every=1, relative_loss_every=1)
    sweep = replace(COMMON, steps=p["steps"], log_every=p["log_every"], eval_every=p["log_every"], **SHARP)
    groups = {   # longest runs first: the short ones fill the pool's tail
        SWEEP: Sweep(common=sweep, norms=list(NORMS), lrs=p["lrs"], seeds=seeds,
                     batch_sizes=[COMMON.batch_size]),
        **{group: Sweep(common=replace(COMMON, model=model, **init), norms=list(NORMS), lrs=[COMMON.lr],
                        seeds=seeds, batch_sizes=[COMMON.batch_size]) for model, group in INIT.items()},
    }
    if p["cifar"]:      # real data: full protocol only, so quick mode and the tests stay offline
        groups = {CIFAR: Sweep(common=replace(RESNET, **init), norms=list(NORMS), lrs=[COMMON.lr],
                               seeds=seeds[:CIFAR_SEEDS], batch_sizes=[COMMON.batch_size]), **groups}
    return groups


def run(out: Path, quick: bool = False, jobs: int | None = None, on_outcome=None,
        seeds: list[int] | None = None) -> Context:
    return run_groups(out, plan(quick, seeds), quick=quick, jobs=jobs, on_outcome=on_outcome)


# --------------------------------------------------------------------------- per-run quantities


def num(series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def blowup(run) -> tuple[float, float, float]:
    """(point, lower, upper) of α*: the smallest α at step 0 whose relative loss exceeds BLOWUP or
    whose loss is not finite. Blown up at grid α_k: [α_(k-1), α_k] (lower 0 at the first α);
    never: point and lower the largest α, upper inf."""
    rel = run.table("relative_loss")
    if rel is None or not len(rel):
        raise MissingData(f"no relative_loss.csv in {run.path.name}")
    rel = rel[num(rel["step"]) == 0]
    alpha = num(rel["alpha"]).to_numpy(float)
    order = np.argsort(alpha)
    alpha = alpha[order]
    r = num(rel["rel_loss"]).to_numpy(float)[order]
    loss = num(rel["loss"]).to_numpy(float)[order]
    blown = ~(r <= BLOWUP) | ~np.isfinite(loss)     # NaN compares False: a blank ratio blew up
    if not blown.any():
        return float(alpha[-1]), float(alpha[-1]), math.inf
    k = int(np.argmax(blown))
    return float(alpha[k]), float(alpha[k - 1]) if k else 0.0, float(alpha[k])


def blowups(ctx: Context, group: str, norm: str) -> dict[int, tuple[float, float, float]]:
    return {s: blowup(r) for s, r in ctx.by_seed(group, norm=norm).items()}


def sqrt_depth_slope(depth: np.ndarray) -> float:
    """The slope (decades per layer) that √depth growth gives over these layer indices: the growth
    of a residual stream whose every block adds a branch of the same variance."""
    return float(np.polyfit(depth, 0.5 * np.log10(depth), 1)[0])


def slopes(run, null: bool = False) -> tuple[float, float]:
    """(mean slope, std slope): least-squares slope over the hidden layers of log10 unit_mean_abs and
    of log10 sqrt(unit_var_mean) against the layer index, at step 0, site SITE (decades per layer).
    With `null`, each minus the √depth slope over the same layers (the excess over the construction)."""
    lay = run.table("layers")
    lay = lay[(num(lay["step"]) == 0) & (lay["site"].astype(str) == SITE)
              & lay["layer"].astype(str).str.fullmatch(r"hidden\d+")]
    if len(lay) < 2:
        raise MissingData(f"fewer than two hidden layers at step 0 in {run.path.name}")
    depth = lay["layer"].astype(str).str[6:].astype(int).to_numpy(float)
    out = []
    for values in (num(lay["unit_mean_abs"]), np.sqrt(num(lay["unit_var_mean"]))):
        v = values.to_numpy(float)
        ok = np.isfinite(v) & (v > 0)
        slope = float(np.polyfit(depth[ok], np.log10(v[ok]), 1)[0]) if ok.sum() >= 2 else math.nan
        out.append(slope - sqrt_depth_slope(depth[ok]) if null and ok.sum() >= 2 else slope)
    return out[0], out[1]


def final_acc(run) -> float:
    """Final test accuracy; a diverged run counts at chance (its weights are unusable)."""
    if run.status == "diverged":
        return CHANCE
    value = ((run.summary or {}).get("final") or {}).get("test_acc")
    if value is None:
        logged = num(run.table("metrics")["test_acc"]).dropna()
        return float(logged.iloc[-1]) if len(logged) else math.nan
    return float(value)


def stable_lrs(runs: dict[float, object], floor: bool = True) -> list[float]:
    """The stable lrs of one seed's runs by lr (see the protocol), ascending. Without `floor`: every
    lr whose run did not diverge (B3-div, B4)."""
    if not floor:
        return [lr for lr in sorted(runs) if runs[lr].status != "diverged"]
    acc = {lr: (math.nan if r.status == "diverged" else final_acc(r)) for lr, r in runs.items()}
    finite = [a for a in acc.values() if math.isfinite(a)]
    if not finite:
        return []
    best = max(finite)
    return [lr for lr in sorted(runs) if math.isfinite(acc[lr]) and acc[lr] >= STABLE_FRACTION * best
            and acc[lr] >= LEARNED]


def largest_stable(runs: dict[float, object], floor: bool = True) -> tuple[float, float, float]:
    """(point, lower, upper) of one seed's largest stable lr: the largest stable grid lr and the next
    grid lr above it (inf beyond the grid); no stable lr: [0, smallest lr], point the smallest lr."""
    grid = sorted(runs)
    stable = stable_lrs(runs, floor)
    if not stable:
        return grid[0], 0.0, grid[0]
    top = stable[-1]
    above = [lr for lr in grid if lr > top]
    return top, top, (above[0] if above else math.inf)


def sweep_runs(ctx: Context, norm: str) -> dict[int, dict[float, object]]:
    """The lr sweep's finished runs of one norm: seed -> lr -> run."""
    by_seed: dict[int, dict[float, object]] = {}
    for r in ctx.runs(SWEEP, norm=norm):
        cfg = run_config(r)
        by_seed.setdefault(int(cfg["seed"]), {})[float(cfg["lr"])] = r
    if not by_seed:
        raise MissingData(f"no finished {SWEEP} runs for {norm}")
    return by_seed


def matched_lrs(none_sweep: dict[int, dict[float, object]], floor: bool = False) -> dict[int, float]:
    """Per seed: the largest grid lr stable without BN on every other seed (NaN where none is)."""
    stable = {s: set(stable_lrs(runs, floor)) for s, runs in none_sweep.items()}
    out = {}
    for s in none_sweep:
        others = [stable[t] for t in none_sweep if t != s]
        common = set.intersection(*others) if others else set()
        out[s] = max(common) if common else math.nan
    return out

