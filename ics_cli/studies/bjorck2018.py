"""Bjorck, Gomes, Selman & Weinberger (2018), "Understanding Batch Normalization", Fig. 1-3.

Without batch norm a deep residual network's loss blows up along the gradient at tiny step sizes at
initialization (Fig. 2) and its activations grow with depth (Fig. 3), so it only trains at a small
learning rate; batch norm's gift is a larger usable learning rate (Fig. 1), and at the same small
learning rate both networks end about equally well. Scaled down from ResNet-110 on CIFAR-10 to a
20-block residual MLP on mnist-5k; the plain 20-layer MLP is a labelled contrast (no skip
connections: a reference computation found neither effect there).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..analyse.quantities import BLOWUP   # B1: "blows up" = L(θ − α∇L)/L(θ) above 10³ (the paper's Fig. 2 scale)
from ..config import RunConfig
from ..figures.plots import lr_tolerance as draw_lr_tolerance
from ..store.runs import run_config
from ..sweep.run import Sweep
from . import figures as fig
from .claims import (Claim, Interval, Measurement, MissingData, Study, bracketed, combine, decide,
                     directional, exp_interval, family, fmt_ci, interval, measurement, paired)
from .context import Context, listing, run_groups

PAPER = "Bjorck et al. 2018"
ISSUE = "issue 10's reference computation"
INIT = {"resmlp": "init_resmlp", "mlp": "init_mlp"}     # group of runs at initialization, per model
SWEEP = "lr_sweep"
NORMS = ("none", "batch")

# --------------------------------------------------------------------------- protocol
# Every threshold below was fixed before the study's first full run and is the same for every norm.

ALPHAS = "1e-6:10:29"      # relative-loss step sizes: quarter-decades from 1e-6 to 10
STEP_RATIO = 10.0          # B1: α*(BN) / α*(none) ≥ 10 (the issue's "≥ 10× smaller")
CONTRAST_ALPHA = 0.1       # B1c: the plain MLP without BN blows up, if at all, only at α ≥ 0.1
SITE = "act"               # B2: each block's output; in resmlp the residual stream itself
GROW = 0.05                # B2: "grows" = slope of log10 vs depth ≥ 0.05 decades/layer (≥ 10× over 20)
FLAT = 0.035               # B2: "flat" = slope ≤ 0.035 decades/layer (≤ 5× over 20 layers, ~ sqrt(depth))
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
FULL = dict(seeds=[0, 1, 2, 3, 4], steps=300, log_every=100, lrs=LR_GRID)
QUICK = dict(seeds=[0, 1], steps=100, log_every=50, lrs=LR_GRID[::2])


def plan(quick: bool, seeds: list[int] | None = None) -> dict[str, Sweep]:
    p = QUICK if quick else FULL
    seeds = seeds or p["seeds"]
    # At initialization only: one step, the relative loss and the activation statistics at step 0.
    init = replace(COMMON, steps=1, log_every=1, eval_every=1, relative_loss_every=1)
    sweep = replace(COMMON, steps=p["steps"], log_every=p["log_every"], eval_every=p["log_every"])
    return {   # longest runs first: the short ones fill the pool's tail
        SWEEP: Sweep(common=sweep, norms=list(NORMS), lrs=p["lrs"], seeds=seeds,
                     batch_sizes=[COMMON.batch_size]),
        **{group: Sweep(common=replace(init, model=model), norms=list(NORMS), lrs=[COMMON.lr],
                        seeds=seeds, batch_sizes=[COMMON.batch_size]) for model, group in INIT.items()},
    }


def run(out: Path, quick: bool = False, jobs: int | None = None, on_outcome=None,
        seeds: list[int] | None = None) -> Context:
    return run_groups(out, plan(quick, seeds), quick=quick, jobs=jobs, on_outcome=on_outcome)


PROTOCOL = f"""\
Every value, metric and threshold below was fixed before the study's first full run (only timing
pilots and one quick run came first, and nothing was changed after them) and is the same for both
networks; nothing is tuned per norm.

**Scaled down.** The paper trains ResNet-110 (54 residual blocks of two 3×3 convolutions, Kaiming
init) on CIFAR-10 with SGD, batch 128. A 2-core CPU cannot, so the residual network here is
`--model resmlp`: a plain first block from the 784 pixels to 100 units, then identity-skip residual
blocks x ← ReLU(x + norm(W x)) of width 100 (the post-activation form of the paper's ResNet, one layer
per block instead of two convolutions), {COMMON.depth} hidden layers in all, Kaiming (He normal) init,
a linear head; on `mnist-5k` (4,000 standardized training images, 1,000 test images). What carries over is the
mechanism the paper names: without normalization each residual sum adds a branch as large as the
stream, so activations and the gradient grow geometrically with depth. The plain 20-layer ReLU MLP
with the same init is the contrast: without skip connections Kaiming init keeps the scale, and
{ISSUE} found neither effect there.

| group | network | what varies | steps | seeds | used by |
|---|---|---|---|---|---|
| `{INIT['resmlp']}` | resmlp, depth {COMMON.depth}, width {COMMON.width}, ReLU, Kaiming | norm none / batch | at init (1 step) | {listing(FULL['seeds'])} | B1, B2a, B2b, Fig. 2, 3 |
| `{INIT['mlp']}` | plain MLP, depth {COMMON.depth}, width {COMMON.width}, ReLU, Kaiming (contrast) | norm none / batch | at init (1 step) | {listing(FULL['seeds'])} | B1c, B2c, Fig. 2, 3 |
| `{SWEEP}` | resmlp as above | norm none / batch × lr {listing(LR_GRID)} | {FULL['steps']} | {listing(FULL['seeds'])} | B3, B4 |

* **Training**: plain SGD, no momentum, no weight decay, batch {COMMON.batch_size} (the paper's),
  eps {COMMON.eps:g}; batch norm before each ReLU with the Linear's bias dropped. {FULL['steps']} steps
  = {FULL['steps'] * COMMON.batch_size / 4000:.1f} epochs of the subset (the paper trains 165 epochs;
  here the budget is the whole study in about 5 minutes on 2 cores). Test accuracy and activation
  statistics every {FULL['log_every']} steps. A run whose loss exceeds 10³ × its first loss, whose
  smoothed loss exceeds 4 × it, or whose loss is not finite ends as `diverged`: a recorded result.
* **Relative loss (B1, Fig. 2)**: at initialization, on the first training batch, with g = ∇L_B(θ₀):
  L(θ₀ − αg) / L(θ₀) for α on quarter-decades from 1e-6 to 10 (`--relative-alphas {ALPHAS}`).
  Per run, α* = the smallest α whose relative loss exceeds {BLOWUP:g} or whose loss is not finite;
  the threshold lies between the grid point below and α*, so each run gives a bracket (α* beyond the
  grid: [10, ∞)). **B1**: α*(BN) / α*(none) per seed on resmlp, a bracketed interval of the ratio
  (claims.py); PASS when it lies at or above {STEP_RATIO:g} (the paper's "at a step size ≥ 10× smaller").
  **B1c** (contrast): α* of the plain MLP without BN, bracketed, must be ≥ {CONTRAST_ALPHA:g}: a step of 0.1 is
  no "tiny step" (ordinary SGD learning rates for these networks are 0.01 to 1).
* **Activations vs depth (B2, Fig. 3)**: at initialization, at the `{SITE}` site of every hidden
  layer (the block's output: in resmlp the residual stream itself, ReLU(x + norm(W x)), which no norm
  normalizes by construction; in the plain MLP the layer's output), over the 512 probe images: the
  channel means' size (1/C) Σ|μ_c| (`unit_mean_abs`) and the channel standard deviation
  sqrt((1/C) Σ σ²_c) (`unit_var_mean`). Per run, the least-squares slope of log10 of each against
  the layer index (decades per layer). **Grow** = slope ≥ {GROW:g} (a factor ≥ 10 over the 20 layers,
  ≥ 12% per layer: the geometric growth the paper shows); **flat** = slope ≤ {FLAT:g} (a factor ≤ 5
  over the 20 layers). Not zero: the residual stream of a batch-normalized network still grows like
  the square root of depth (each block adds a unit-variance branch, so its variance grows linearly;
  De & Smith 2020), a factor sqrt(20) ≈ 4.5 here, which on the paper's log scale is "relatively
  constant"; a threshold below that would fail any residual network by construction. **B2a**: resmlp
  without BN, both slopes ≥ {GROW:g}; **B2b**: resmlp with BN, both slopes ≤ {FLAT:g}; **B2c**
  (contrast): the plain MLP without BN, both slopes < {GROW:g}. Each claim has two parts (mean, std): t-intervals over seeds at 1 − 0.05/2.
* **Largest stable lr (B3, Fig. 1)**: grid {listing(LR_GRID)} (decades up to 1e-4, half-decades
  above). Per seed and norm an lr is stable when its run did not diverge and its final test
  accuracy is ≥ {STABLE_FRACTION} × that seed's best over the grid and ≥ {LEARNED} (chance is 0.1; without
  the floor, a network that learns at no lr would call its largest non-diverging lr stable). The largest stable lr lies between it and the next grid
  lr, so each seed gives a bracket of ratios (no stable lr: [0, smallest lr)). PASS when the bracketed
  interval of BN / none lies at or above {LR_RATIO:g}.
* **Matched small lr (B4)**: for each seed, the lr is the largest grid lr at which the network
  without BN was stable on *every other* seed (leave one seed out: the lr is never chosen on the
  seed that tests it); final test accuracy BN − none at that lr, paired by seed (a diverged run
  counts at chance, {CHANCE}). Equivalence: PASS when the whole 95% interval lies within ±{MARGIN}
  (2 points, about 1.4 standard errors of one accuracy on 1,000 test images); FAIL when it lies
  wholly outside; INCONCLUSIVE otherwise.
* **Seeds**: five, paired by seed (same init stream, batch order, first batch and probe batch).

Quick mode (`--quick`): seeds {listing(QUICK['seeds'])}, {QUICK['steps']} steps, lr grid
{listing(QUICK['lrs'])}; the rest the same. Verdicts may be INCONCLUSIVE.
"""


# --------------------------------------------------------------------------- per-run quantities


def _num(series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def blowup(run) -> tuple[float, float, float]:
    """(point, lower, upper) of α*: the smallest α at step 0 whose relative loss exceeds BLOWUP or
    whose loss is not finite. Blown up at grid α_k: [α_(k-1), α_k] (lower 0 at the first α);
    never: point and lower the largest α, upper inf."""
    rel = run.table("relative_loss")
    if rel is None or not len(rel):
        raise MissingData(f"no relative_loss.csv in {run.path.name}")
    rel = rel[_num(rel["step"]) == 0]
    alpha = _num(rel["alpha"]).to_numpy(float)
    order = np.argsort(alpha)
    alpha = alpha[order]
    r = _num(rel["rel_loss"]).to_numpy(float)[order]
    loss = _num(rel["loss"]).to_numpy(float)[order]
    blown = ~(r <= BLOWUP) | ~np.isfinite(loss)     # NaN compares False: a blank ratio blew up
    if not blown.any():
        return float(alpha[-1]), float(alpha[-1]), math.inf
    k = int(np.argmax(blown))
    return float(alpha[k]), float(alpha[k - 1]) if k else 0.0, float(alpha[k])


def _log(x: float) -> float:
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def _blowups(ctx: Context, model: str, norm: str) -> dict[int, tuple[float, float, float]]:
    return {s: blowup(r) for s, r in ctx.by_seed(INIT[model], norm=norm).items()}


def slopes(run) -> tuple[float, float]:
    """(mean slope, std slope): least-squares slope over the hidden layers of log10 unit_mean_abs and
    of log10 sqrt(unit_var_mean) against the layer index, at step 0, site SITE (decades per layer)."""
    lay = run.table("layers")
    lay = lay[(_num(lay["step"]) == 0) & (lay["site"].astype(str) == SITE)
              & lay["layer"].astype(str).str.fullmatch(r"hidden\d+")]
    if len(lay) < 2:
        raise MissingData(f"fewer than two hidden layers at step 0 in {run.path.name}")
    depth = lay["layer"].astype(str).str[6:].astype(int).to_numpy(float)
    out = []
    for values in (_num(lay["unit_mean_abs"]), np.sqrt(_num(lay["unit_var_mean"]))):
        v = values.to_numpy(float)
        ok = np.isfinite(v) & (v > 0)
        out.append(float(np.polyfit(depth[ok], np.log10(v[ok]), 1)[0]) if ok.sum() >= 2 else math.nan)
    return out[0], out[1]


def _slopes(ctx: Context, model: str, norm: str) -> tuple[dict[int, float], dict[int, float]]:
    per_seed = {s: slopes(r) for s, r in ctx.by_seed(INIT[model], norm=norm).items()}
    return {s: v[0] for s, v in per_seed.items()}, {s: v[1] for s, v in per_seed.items()}


def _final_acc(run) -> float:
    """Final test accuracy; a diverged run counts at chance (its weights are unusable)."""
    if run.status == "diverged":
        return CHANCE
    value = ((run.summary or {}).get("final") or {}).get("test_acc")
    if value is None:
        logged = _num(run.table("metrics")["test_acc"]).dropna()
        return float(logged.iloc[-1]) if len(logged) else math.nan
    return float(value)


def stable_lrs(runs: dict[float, object]) -> list[float]:
    """The stable lrs of one seed's runs by lr (see the protocol), ascending."""
    acc = {lr: (math.nan if r.status == "diverged" else _final_acc(r)) for lr, r in runs.items()}
    finite = [a for a in acc.values() if math.isfinite(a)]
    if not finite:
        return []
    best = max(finite)
    return [lr for lr in sorted(runs) if math.isfinite(acc[lr]) and acc[lr] >= STABLE_FRACTION * best
            and acc[lr] >= LEARNED]


def largest_stable(runs: dict[float, object]) -> tuple[float, float, float]:
    """(point, lower, upper) of one seed's largest stable lr: the largest stable grid lr and the next
    grid lr above it (inf beyond the grid); no stable lr: [0, smallest lr], point the smallest lr."""
    grid = sorted(runs)
    stable = stable_lrs(runs)
    if not stable:
        return grid[0], 0.0, grid[0]
    top = stable[-1]
    above = [lr for lr in grid if lr > top]
    return top, top, (above[0] if above else math.inf)


def _sweep(ctx: Context, norm: str) -> dict[int, dict[float, object]]:
    by_seed: dict[int, dict[float, object]] = {}
    for r in ctx.runs(SWEEP, norm=norm):
        cfg = run_config(r)
        by_seed.setdefault(int(cfg["seed"]), {})[float(cfg["lr"])] = r
    if not by_seed:
        raise MissingData(f"no finished {SWEEP} runs for {norm}")
    return by_seed


def _ratio_brackets(a: dict, b: dict) -> Interval:
    """Bracketed interval of a/b from per-seed (point, lower, upper) brackets, on logs, mapped back."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise MissingData("no seed with both networks")
    point = {s: _log(a[s][0]) - _log(b[s][0]) for s in seeds}
    lower = {s: _log(a[s][1]) - _log(b[s][2]) for s in seeds}
    upper = {s: _log(a[s][2]) - _log(b[s][1]) for s in seeds}
    iv = bracketed(point, lower, upper)
    f = lambda v: None if v is None else (0.0 if v == -math.inf else math.exp(v))    # noqa: E731
    return Interval(math.exp(iv.mean), f(iv.lo), f(iv.hi), iv.n)


def _gmean(brackets: dict) -> float:
    return float(np.exp(np.mean([math.log(v[0]) for v in brackets.values() if v[0] > 0])))


def _describe(brackets: dict) -> str:
    never = sum(math.isinf(v[2]) for v in brackets.values())
    text = f"{_gmean(brackets):.3g}"
    return text + (f" ({never}/{len(brackets)} seeds never, counted at the grid's end)" if never else "")


# --------------------------------------------------------------------------- claims


def measure_b1(ctx: Context) -> Measurement:
    bn, no = _blowups(ctx, "resmlp", "batch"), _blowups(ctx, "resmlp", "none")
    iv = _ratio_brackets(bn, no)
    seen = (f"At initialization on resmlp the relative loss first exceeds {BLOWUP:g} at α* = {_describe(no)} "
            f"without BN and {_describe(bn)} with BN (geometric means over seeds, quarter-decade grid); "
            f"α*(BN) / α*(none) = {fmt_ci(*iv[:3])} (bracketed interval).")
    return measurement(iv, directional(iv.lo, iv.hi, ">=", STEP_RATIO), seen)


def measure_b1c(ctx: Context) -> Measurement:
    no, bn = _blowups(ctx, "mlp", "none"), _blowups(ctx, "mlp", "batch")
    iv = exp_interval(bracketed({s: _log(v[0]) for s, v in no.items()},
                                {s: _log(v[1]) for s, v in no.items()},
                                {s: _log(v[2]) for s, v in no.items()}))
    seen = (f"On the plain MLP (no skip connections) the relative loss first exceeds {BLOWUP:g} at "
            f"α* = {_describe(no)} without BN (bracketed interval {fmt_ci(*iv[:3])}) and {_describe(bn)} "
            f"with BN; a blow-up only at α ≥ {CONTRAST_ALPHA:g} is no blow-up at tiny steps.")
    return measurement(iv, directional(iv.lo, iv.hi, ">=", CONTRAST_ALPHA), seen)


def _depth_claim(ctx: Context, model: str, norm: str, op: str, threshold: float, what: str) -> Measurement:
    level = family(2)
    means, stds = _slopes(ctx, model, norm)
    parts = {}
    for name, values in (("mean", means), ("std", stds)):
        iv = interval(values.values(), level)
        parts[name] = (iv, directional(iv.lo, iv.hi, op, threshold))
    verdict, part, iv = decide(parts)
    seen = (f"{what}: at initialization, at the `{SITE}` site, log10 of the channel means' size grows by "
            f"{fmt_ci(*parts['mean'][0][:3])} and of the channel standard deviation by "
            f"{fmt_ci(*parts['std'][0][:3])} decades per layer over the {COMMON.depth} hidden layers "
            f"({level:.3g} intervals; threshold {op} {threshold:g}); measured: the {part} part.")
    return measurement(iv, verdict, seen)


def measure_b2a(ctx: Context) -> Measurement:
    return _depth_claim(ctx, "resmlp", "none", ">=", GROW, "resmlp without BN")


def measure_b2b(ctx: Context) -> Measurement:
    return _depth_claim(ctx, "resmlp", "batch", "<=", FLAT, "resmlp with BN")


def measure_b2c(ctx: Context) -> Measurement:
    return _depth_claim(ctx, "mlp", "none", "<", GROW, "Plain MLP without BN")


def measure_b3(ctx: Context) -> Measurement:
    sweeps = {n: _sweep(ctx, n) for n in NORMS}
    top = {n: {s: largest_stable(runs) for s, runs in sweeps[n].items()} for n in NORMS}
    iv = _ratio_brackets(top["batch"], top["none"])
    seeds = sorted(set(top["batch"]) & set(top["none"]))
    per_seed = ", ".join(f"seed {s}: {top['batch'][s][1]:g} vs {top['none'][s][1]:g}" for s in seeds)
    diverged = {n: sum(r.status == "diverged" for runs in sweeps[n].values() for r in runs.values())
                for n in NORMS}
    seen = (f"Largest stable lr with BN vs without ({per_seed}; 0 = none stable; grid "
            f"{listing(sorted({lr for runs in sweeps['none'].values() for lr in runs}))}): a ratio of "
            f"{fmt_ci(*iv[:3])} (geometric mean; bracketed by the grid); diverged runs: "
            f"{diverged['none']} without BN, {diverged['batch']} with BN.")
    return measurement(iv, directional(iv.lo, iv.hi, ">=", LR_RATIO), seen)


def matched_lrs(none_sweep: dict[int, dict[float, object]]) -> dict[int, float]:
    """Per seed: the largest grid lr stable without BN on every other seed (NaN where none is)."""
    stable = {s: set(stable_lrs(runs)) for s, runs in none_sweep.items()}
    out = {}
    for s in none_sweep:
        others = [stable[t] for t in none_sweep if t != s]
        common = set.intersection(*others) if others else set()
        out[s] = max(common) if common else math.nan
    return out


def measure_b4(ctx: Context) -> Measurement:
    bn, no = _sweep(ctx, "batch"), _sweep(ctx, "none")
    lrs = matched_lrs(no)
    acc = {n: {s: _final_acc(sweep[s][lr]) for s, lr in lrs.items()
               if math.isfinite(lr) and s in sweep and lr in sweep[s]}
           for n, sweep in (("batch", bn), ("none", no))}
    if not acc["batch"] or not acc["none"]:
        raise MissingData("no lr stable without BN on the other seeds")
    d = paired(acc["batch"], acc["none"])
    verdict = combine(directional(d.lo, d.hi, ">", -MARGIN), directional(d.lo, d.hi, "<", MARGIN))
    per_seed = ", ".join(f"seed {s}: lr {lrs[s]:g}" for s in sorted(lrs))
    seen = (f"At the largest lr stable without BN on the other seeds ({per_seed}), final test accuracy is "
            f"{interval(acc['batch'].values()).mean:.3f} with BN vs {interval(acc['none'].values()).mean:.3f} "
            f"without; BN − none {fmt_ci(*d[:3])} (equivalence margin ±{MARGIN}).")
    return measurement(d, verdict, seen)


CLAIMS = [
    Claim("B1", "At initialization, without batch norm the loss along the gradient blows up (relative loss "
                "above 10³) at a step size at least 10× smaller than with batch norm (deep residual network).",
          f"{PAPER}, Sec. 3, Fig. 2",
          f"α* = smallest α with L(θ₀ − α∇L)/L(θ₀) > {BLOWUP:g} (quarter-decade grid 1e-6…10); "
          "α*(BN) / α*(none) per seed on resmlp, bracketed by the grid, geometric mean",
          f"ratio ≥ {STEP_RATIO:g}", "qualitative: without BN the loss explodes at step sizes orders of "
          "magnitude smaller than with BN (Fig. 2)", measure_b1),
    Claim("B1c", "Contrast: on a plain (non-residual) 20-layer ReLU MLP with Kaiming init, the loss without "
                 "batch norm does not blow up at tiny steps.", f"{ISSUE} (contrast to {PAPER}, Fig. 2)",
          "α* of the plain MLP without BN per seed, bracketed by the grid, geometric mean",
          f"α* ≥ {CONTRAST_ALPHA:g}", "relative loss above 10³ only at α = 1, in 1 of 3 seeds", measure_b1c),
    Claim("B2a", "Without batch norm, activation means and standard deviations grow with depth (deep residual "
                 "network, at initialization).", f"{PAPER}, Sec. 3, Fig. 3",
          f"slope of log10 unit_mean_abs and of log10 sqrt(unit_var_mean) vs layer index, site {SITE}, "
          "step 0, resmlp without BN; 1 − 0.05/2 intervals (measured: the deciding part)",
          f"both slopes ≥ {GROW:g} decades per layer", "almost exponential growth with depth (Fig. 3)",
          measure_b2a),
    Claim("B2b", "With batch norm, activation means and standard deviations stay flat with depth (deep "
                 "residual network, at initialization).", f"{PAPER}, Sec. 3, Fig. 3",
          "as B2a, resmlp with BN", f"both slopes ≤ {FLAT:g} decades per layer",
          "relatively constant with depth (Fig. 3)", measure_b2b),
    Claim("B2c", "Contrast: on a plain 20-layer ReLU MLP with Kaiming init, activations do not grow with "
                 "depth without batch norm.", f"{ISSUE} (contrast to {PAPER}, Fig. 3)",
          "as B2a, plain MLP without BN", f"both slopes < {GROW:g} decades per layer",
          "per-channel std shrinking about 7% per layer (−0.03 decades)", measure_b2c),
    Claim("B3", "Batch norm allows a much larger learning rate: the largest stable lr with batch norm is at "
                "least 5× that without (deep residual network).", f"{PAPER}, Sec. 2, Fig. 1",
          "largest stable lr (not diverged, final test acc ≥ 0.9 × the seed's best and ≥ 0.5), BN / none "
          "per seed on the lr grid; geometric mean, bracketed by the grid",
          f"ratio ≥ {LR_RATIO:g}",
          "as we read Fig. 1: with BN lr 0.1 trains; without BN only lr 1e-4 (1000× smaller)", measure_b3),
    Claim("B4", "At a small learning rate that the network without batch norm tolerates, both networks end "
                "about equally well (within 2 points of accuracy).", f"{PAPER}, Sec. 2, Fig. 1",
          "final test accuracy BN − none at the largest lr stable without BN on the other seeds, paired "
          "by seed (diverged = chance)", f"interval within ±{MARGIN}",
          "as we read Fig. 1: at lr 1e-4 the two networks train alike", measure_b4),
]


# --------------------------------------------------------------------------- figures

LABEL = {"none": "without BN", "batch": "with BN"}
MODEL_STYLE = {"resmlp": "-", "mlp": "--"}
MODEL_NAME = {"resmlp": "residual MLP", "mlp": "plain MLP (contrast)"}


def draw(ctx: Context, folder: Path, fmt: str = "png") -> list[tuple[Path, str]]:
    folder = Path(folder)
    out = []

    f = fig.figure(11, 4.4)
    axes = f.subplots(1, 2, sharey=True)
    for ax, (model, group) in zip(axes, INIT.items()):
        curves = ctx.tables(group).get("relative_loss_curves")
        if curves is None or curves.empty:
            raise MissingData(f"no relative_loss_curves table for {group}")
        curves = curves[_num(curves["step"]) == 0]
        for norm in NORMS:
            d = curves[curves["norm"].astype(str) == norm].sort_values("alpha")
            a = _num(d["alpha"]).to_numpy(float)
            mean = 10 ** _num(d["log10_rel_loss_mean"]).to_numpy(float)
            ax.plot(a, mean, color=fig.norm_color(norm), marker="o", ms=3, lw=1.8, label=LABEL[norm])
            lo = 10 ** _num(d["log10_rel_loss_ci_low"]).to_numpy(float)
            hi = 10 ** _num(d["log10_rel_loss_ci_high"]).to_numpy(float)
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                ax.fill_between(a, np.where(ok, lo, np.nan), np.where(ok, hi, np.nan),
                                color=fig.norm_color(norm), alpha=0.2, lw=0)
        ax.axhline(BLOWUP, color="0.4", lw=1, ls="--", label=f"blow-up ({BLOWUP:g})")
        ax.axhline(1.0, color="0.7", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="step size α (log scale)", title=MODEL_NAME[model])
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
    axes[0].set_ylabel("relative loss L(θ₀ − α∇L) / L(θ₀) (log scale)")
    f.suptitle(f"Relative loss of one gradient step at initialization (cf. {PAPER}, Fig. 2)\n"
               "lines: geometric mean over seeds; bands: 95% t-interval of log10; non-finite losses left out",
               fontsize="medium")
    out.append((fig.save(f, folder / f"fig2_relative_loss.{fmt}"),
                "Fig. 2 (B1, B1c): relative loss after one gradient step of size α at initialization; look at "
                f"the α where each curve crosses the dashed {BLOWUP:g} line, with and without BN, residual vs "
                "plain."))

    f = fig.figure(11, 4.4)
    mean_ax, std_ax = f.subplots(1, 2)
    for model, group in INIT.items():
        layers = ctx.tables(group)["layer_curves"]
        layers = layers[(_num(layers["step"]) == 0) & (layers["site"].astype(str) == SITE)
                        & layers["layer"].astype(str).str.fullmatch(r"hidden\d+")]
        for norm in NORMS:
            d = layers[layers["norm"].astype(str) == norm].copy()
            d["depth"] = d["layer"].astype(str).str[6:].astype(int)
            d = d.sort_values("depth")
            kw = dict(color=fig.norm_color(norm), ls=MODEL_STYLE[model], marker="o", ms=3, lw=1.6)
            mean_ax.plot(d["depth"], _num(d["unit_mean_abs_mean"]), label=f"{LABEL[norm]}, {MODEL_NAME[model]}", **kw)
            std_ax.plot(d["depth"], np.sqrt(_num(d["unit_var_mean_mean"])), **kw)
    mean_ax.set(yscale="log", xlabel="hidden layer (depth)", ylabel="mean |channel mean| (log scale)",
                title="Channel means")
    std_ax.set(yscale="log", xlabel="hidden layer (depth)",
               ylabel="sqrt(mean channel variance) (log scale)", title="Channel standard deviations")
    for ax in (mean_ax, std_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    mean_ax.legend(loc="best", fontsize="small")
    f.suptitle(f"Activations at the `{SITE}` site vs depth, at initialization (cf. {PAPER}, Fig. 3)\n"
               "mean over seeds", fontsize="medium")
    out.append((fig.save(f, folder / f"fig3_depth.{fmt}"),
                "Fig. 3 (B2a–c): size of the channel means and standard deviations at each hidden layer at "
                "initialization; look at the slope of each line on the log scale (solid: residual, dashed: plain)."))

    paths = draw_lr_tolerance(ctx.tables(SWEEP), folder, fmt=fmt)
    out += [(p, "Fig. 1 (B3, B4): final test accuracy vs learning rate on the residual MLP, with and without "
                "BN (× where a seed diverged); look at where each curve falls off.") for p in paths]
    return out


STUDY = Study(
    name="bjorck2018",
    title=f"{PAPER}, Fig. 1-3: batch norm on a deep residual MLP (MNIST)",
    description="Bjorck et al. 2018 Fig. 1-3: relative loss at init, activations vs depth, largest stable lr "
                "and matched-lr accuracy on a 20-block residual MLP, the plain MLP as contrast",
    protocol=PROTOCOL, run=run, claims=CLAIMS, figures=draw)
