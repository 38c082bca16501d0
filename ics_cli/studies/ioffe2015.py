"""Ioffe & Szegedy (2015), Sec. 4.1 and Fig. 1: batch norm on a 3x100 sigmoid MLP on MNIST.

Two networks, identical except for batch norm before each sigmoid, trained the same way; four claims
read off the paper's Fig. 1: BN is at least as accurate at every step (1a), reaches a given accuracy
much sooner (1a), keeps the last layer's sigmoid input steadier (1b, 1c) and drifts less.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..config import RunConfig
from ..sweep import Sweep
from . import figures as fig
from .claims import (Claim, Measurement, MissingData, Study, combine, decide, directional, fmt_ci, interval,
                     paired)
from .context import Context, run_groups

PAPER = "Ioffe & Szegedy 2015"
GROUP = "fig1"
NORMS = ("none", "batch")
EARLY_STEP = 3500          # the paper's "3-4k steps" where the gap is largest
AFTER = 1000               # I1 holds "after the first 1,000 steps"
TARGET_FRACTION = 0.95     # I2: 95% of the baseline's final accuracy
TRACKED = dict(site="norm", unit=0)   # I3: unit 0 of the last hidden layer, input to the sigmoid

# Every value spelled out, so a change of a project default cannot change the study.
COMMON = RunConfig(dataset="mnist-5k", binarize=True, model="mlp", depth=3, width=100,
                   activation="sigmoid", init="gaussian", init_std=0.01, eps=1e-5, bn_momentum=0.1,
                   optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.0, batch_size=60,
                   probe_size=512, track_units=4)
FULL = dict(steps=50_000, log_every=500, seeds=[0, 1, 2])
QUICK = dict(steps=2000, log_every=100, seeds=[0, 1])

PROTOCOL = f"""\
Both networks are trained with exactly the same settings; the only difference is batch norm.

| setting | value | why |
|---|---|---|
| data | `mnist-5k`, binarized (pixels thresholded at 0.5 to {{0, 1}}) | paper: "28x28 binary image as input" |
| network | 3 fully connected hidden layers of 100 sigmoid units, 10-way softmax, cross-entropy | paper |
| batch norm | before each sigmoid, the Linear's bias dropped (`--norm batch`); baseline `--norm none` | paper |
| init | weights N(0, 0.01²), biases 0 (`--init gaussian --init-std 0.01`) | paper: "small random Gaussian values"; 0.01 is the small Gaussian of the era (Caffe's gaussian filler, AlexNet) |
| optimizer | plain SGD, no momentum, no weight decay | not in the paper for this experiment; plain SGD is the simplest reading of "steps" |
| learning rate | 0.5 for both | not in the paper; the project's default, chosen beforehand so the demo MLP trains with and without BN; not tuned for this study |
| eps | 1e-5 | not in the paper; PyTorch's default |
| mini-batch | 60 | paper |
| steps | {FULL['steps']:,} | paper |
| seeds | {', '.join(map(str, FULL['seeds']))} | three seeds give a 95% t-interval over seeds |
| log every | {FULL['log_every']} steps (test accuracy in eval mode, with running statistics) | resolution of the curves |
| probe | 512 fixed training images; unit 0 of `hidden3` for Fig. 1b,c | the paper tracks "a typical activation" of the last hidden layer |

The embedded subset has **4,000 training images** (1,000 test images); the paper used all 60,000.
{FULL['steps']:,} steps × 60 images is {FULL['steps'] * 60 // 4000} epochs of this subset (the paper:
50 epochs), so both networks overfit far more than in the paper and absolute accuracies differ from
Fig. 1a; the claims compare the two networks with each other.

Quick mode (`--quick`): {QUICK['steps']:,} steps, log every {QUICK['log_every']}, seeds
{', '.join(map(str, QUICK['seeds']))}; everything else the same. Claims about late steps then
refer to the last logged step; verdicts may be INCONCLUSIVE.
"""


def plan(quick: bool) -> dict[str, Sweep]:
    p = QUICK if quick else FULL
    common = replace(COMMON, steps=p["steps"], log_every=p["log_every"])
    return {GROUP: Sweep(common=common, norms=list(NORMS), lrs=[COMMON.lr], seeds=p["seeds"],
                         batch_sizes=[COMMON.batch_size])}


def run(out: Path, quick: bool = False, jobs: int | None = None, on_outcome=None) -> Context:
    return run_groups(out, plan(quick), quick=quick, jobs=jobs, on_outcome=on_outcome)


# --------------------------------------------------------------------------- per-run quantities


def _acc(ctx: Context, norm: str) -> dict[int, pd.Series]:
    """Per seed: test accuracy (eval mode) indexed by step."""
    return {s: r.table("metrics").set_index("step")["test_acc"].astype(float)
            for s, r in ctx.by_seed(GROUP, norm=norm).items()}


def _gap(bn: dict, base: dict, step: int):
    return paired({s: a.get(step, math.nan) for s, a in bn.items()},
                  {s: a.get(step, math.nan) for s, a in base.items()})


def _nearest(steps, step: int) -> int:
    return min(steps, key=lambda s: (abs(s - step), s))


def _seed_mean(acc: dict, step: int) -> float:
    return interval(a.get(step, math.nan) for a in acc.values())[0]


def _last_layer(units: pd.DataFrame) -> str:
    hidden = [x for x in units["layer"].unique() if str(x).startswith("hidden")]
    return max(hidden, key=lambda x: int(str(x)[6:]))


def _total_variation(ctx: Context, norm: str) -> tuple[dict, dict]:
    """Per seed: Σ|Δ p50| and Σ|Δ (p85 - p15)| over the logged steps, tracked unit at the norm site."""
    tv50, tvspread = {}, {}
    for seed, r in ctx.by_seed(GROUP, norm=norm).items():
        u = r.table("units")
        u = u[(u["layer"] == _last_layer(u)) & (u["site"] == TRACKED["site"])
              & (u["unit"] == TRACKED["unit"])].sort_values("step")
        tv50[seed] = float(u["p50"].diff().abs().sum())
        tvspread[seed] = float((u["p85"] - u["p15"]).diff().abs().sum())
    return tv50, tvspread


def _drift(ctx: Context, norm: str) -> dict[int, float]:
    """Per seed: total drift of the unit means at the norm site (compare's drift_mean_total), mean over layers."""
    out = {}
    for seed, r in ctx.by_seed(GROUP, norm=norm).items():
        d = ctx.run_tables(r)["drift"]
        d = d[(d["site"] == "norm") & d["layer"].astype(str).str.startswith("hidden")]
        out[seed] = float(d["drift_mean_total_mean"].mean())
    return out


# --------------------------------------------------------------------------- claims


def measure_i1(ctx: Context) -> Measurement:
    bn, base = _acc(ctx, "batch"), _acc(ctx, "none")
    steps = sorted(set.intersection(*(set(a.index) for a in [*bn.values(), *base.values()])))
    later = [s for s in steps if s > AFTER]
    if not later:
        raise MissingData(f"no logged step after {AFTER}")
    gaps = {s: _gap(bn, base, s) for s in later}
    verdict = combine(*(directional(g[1], g[2], ">=", 0.0) for g in gaps.values()))
    smallest = min(later, key=lambda s: gaps[s][0])
    # Measured: the step that is weakest evidence for the claim (lowest interval bound, or lowest
    # mean without intervals), so the number shown is the one that decides the verdict.
    weakest = min(later, key=lambda s: (gaps[s][1] if gaps[s][1] is not None else gaps[s][0]))
    mean, lo, hi, _ = gaps[weakest]
    early, last = _nearest(later, EARLY_STEP), later[-1]

    def at(step):
        return (f"{gaps[step][0]:+.3f} (BN {_seed_mean(bn, step):.3f} vs baseline "
                f"{_seed_mean(base, step):.3f})")
    straddle = sum(g[1] is not None and g[1] < 0 <= g[2] for g in gaps.values())
    below = sum(g[2] is not None and g[2] < 0 for g in gaps.values())
    seen = (f"The seed-mean accuracy gap BN − baseline is {at(early)} at step {early:,} and {at(last)} at "
            f"the end (step {last:,}); its smallest value after step {AFTER:,} is {gaps[smallest][0]:+.3f} "
            f"(step {smallest:,}); the interval at step {weakest:,} is {fmt_ci(mean, lo, hi)}, and "
            f"{straddle} of {len(later)} logged steps have an interval reaching below 0 "
            f"({below} wholly below).")
    return Measurement(mean, lo, hi, verdict, seen)


def measure_i2(ctx: Context) -> Measurement:
    summary = ctx.tables(GROUP)["summary"]
    base_final = float(summary.loc[summary["norm"] == "none", "final_test_acc_mean"].iloc[0])
    if not math.isfinite(base_final):
        raise MissingData("no baseline final accuracy")
    target = TARGET_FRACTION * base_final
    runs = ctx.tables(GROUP, target=target)["runs"]
    steps, censored = {}, 0
    for norm in NORMS:
        rows = runs[(runs["norm"] == norm) & runs["status"].isin(["completed", "diverged"])]
        steps[norm] = {}
        for _, r in rows.iterrows():
            value = r["steps_to_target"]
            if not math.isfinite(value):      # never reached: its last step is a lower bound
                value, censored = float(r["steps_done"]), censored + 1
            steps[norm][int(r["seed"])] = value
    ratio = {s: steps["batch"][s] / steps["none"][s] for s in steps["batch"] if s in steps["none"]}
    mean, lo, hi, _ = interval(ratio.values())
    seen = (f"To reach {target:.3f} (95% of the baseline's final {base_final:.3f}) BN needs "
            f"{interval(steps['batch'].values())[0]:,.0f} steps and the baseline "
            f"{interval(steps['none'].values())[0]:,.0f} (seed means, resolution one log interval), "
            f"a ratio of {fmt_ci(mean, lo, hi)}"
            f"{f'; {censored} runs never reached it and count at their last step' if censored else ''}.")
    return Measurement(mean, lo, hi, directional(lo, hi, "<=", 0.5), seen)


def measure_i3(ctx: Context) -> Measurement:
    bn50, bnspread = _total_variation(ctx, "batch")
    base50, basespread = _total_variation(ctx, "none")
    parts = {name: (d, directional(d[1], d[2], "<", 0.0)) for name, d in (
        ("p50", paired(bn50, base50)), ("spread", paired(bnspread, basespread)))}
    verdict, part, (mean, lo, hi, _) = decide(parts)
    seen = (f"Over training the median of the last layer's sigmoid input moves by a total of "
            f"{interval(bn50.values())[0]:.3g} with BN vs {interval(base50.values())[0]:.3g} without "
            f"(difference {fmt_ci(*parts['p50'][0][:3])}), its 15–85% spread by "
            f"{interval(bnspread.values())[0]:.3g} vs {interval(basespread.values())[0]:.3g} "
            f"(difference {fmt_ci(*parts['spread'][0][:3])}); measured: the {part} part.")
    return Measurement(mean, lo, hi, verdict, seen)


def measure_i4(ctx: Context) -> Measurement:
    bn, base = _drift(ctx, "batch"), _drift(ctx, "none")
    mean, lo, hi, _ = paired(bn, base)
    seen = (f"Total drift of the unit means at the norm site, averaged over the hidden layers, is "
            f"{interval(bn.values())[0]:.3g} with BN vs {interval(base.values())[0]:.3g} without "
            f"(difference {fmt_ci(mean, lo, hi)}).")
    return Measurement(mean, lo, hi, directional(lo, hi, "<", 0.0), seen)


CLAIMS = [
    Claim("I1", "With batch norm, test accuracy is at least the baseline's at every logged step after "
                "the first 1,000 (seed means).", f"{PAPER}, Sec. 4.1, Fig. 1a",
          "gap test_acc(BN) − test_acc(none) at each logged step > 1000, paired by seed; measured: the "
          "step whose 95% interval reaches lowest",
          "gap ≥ 0 at every logged step (PASS: every step's interval ≥ 0; FAIL: some step's interval < 0)",
          "≈ 0.955 vs 0.70 at 3–4k steps; ≈ 0.98 vs 0.975 at 50k (read off Fig. 1a)", measure_i1),
    Claim("I2", "Batch norm reaches a given accuracy in far fewer steps.", f"{PAPER}, Sec. 4.1, Fig. 1a",
          "steps(BN) / steps(none) to the first logged test_acc ≥ 0.95 × the baseline's final accuracy "
          "(compare's steps_to_target), per seed",
          "ratio ≤ 0.5", None, measure_i2),
    Claim("I3", "With batch norm the last hidden layer's sigmoid input is much more stable during "
                "training.", f"{PAPER}, Sec. 4.1, Fig. 1b,c",
          "total variation over the logged steps of p50, and of p85 − p15, of unit 0 of the last hidden "
          "layer at the norm site (input to the sigmoid); BN − none, paired by seed (measured: the deciding part)",
          "both differences < 0", "qualitative: BN's percentiles stay put, the baseline's shift (Fig. 1b,c)",
          measure_i3),
    Claim("I4", "Batch norm reduces the drift of the sigmoid inputs (internal covariate shift).",
          f"{PAPER}, Sec. 1–2, 4.1", "drift_mean_total at the norm site (compare's drift table, per run), "
          "mean over hidden layers; BN − none, paired by seed", "difference < 0", None, measure_i4),
]


# --------------------------------------------------------------------------- figures


def draw(ctx: Context, folder: Path) -> list[tuple[Path, str]]:
    tables = ctx.tables(GROUP)
    label = {"none": "without BN", "batch": "with BN"}

    f = fig.figure(6.4, 4.4)
    ax = f.subplots()
    curves = tables["curves"]
    for norm in NORMS:
        fig.band(ax, curves[curves["norm"] == norm].sort_values("step"), "step", "test_acc",
                 color=fig.norm_color(norm), label=label[norm])
    ax.set(xlabel="step (updates)", ylabel="test accuracy (fraction correct)",
           title=f"Test accuracy (cf. {PAPER}, Fig. 1a)\n{fig.BAND_NOTE}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    acc_path = fig.save(f, Path(folder) / "fig1a_accuracy.png")

    pct = tables["percentiles"]
    layer = _last_layer(pct) if len(pct) else "hidden3"
    f = fig.figure(10, 4.2)
    axes = f.subplots(1, 2)
    for ax, norm in zip(axes, NORMS):
        d = pct[(pct["norm"] == norm) & (pct["layer"] == layer) & (pct["site"] == TRACKED["site"])
                & (pct["unit"] == TRACKED["unit"])].sort_values("step")
        color = fig.norm_color(norm)
        for q, style in (("p85", "--"), ("p50", "-"), ("p15", ":")):
            ax.plot(d["step"], d[f"{q}_mean"], color=color, ls=style, lw=1.6, label=q)
        ax.set(title=label[norm], xlabel="step (updates)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[0].set_ylabel("input to the sigmoid (activation units)")
    f.suptitle(f"{layer}, unit 0: 15th, 50th and 85th percentile over the probe batch, mean over seeds "
               f"(cf. Fig. 1b,c)", fontsize="medium")
    pct_path = fig.save(f, Path(folder) / "fig1bc_sigmoid_input.png")
    return [(acc_path, "Fig. 1a: test accuracy with and without batch norm."),
            (pct_path, "Fig. 1b,c: the last hidden layer's sigmoid input over training.")]


STUDY = Study(
    name="ioffe2015",
    title="Ioffe & Szegedy 2015, Fig. 1: batch norm on a sigmoid MLP (MNIST)",
    description="Ioffe & Szegedy 2015 Fig. 1: 3x100 sigmoid MLP on binary MNIST with and without batch norm",
    protocol=PROTOCOL, run=run, claims=CLAIMS, figures=draw)
