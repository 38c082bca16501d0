"""Ioffe & Szegedy (2015), Sec. 4.1 and Fig. 1: batch norm on a 3x100 sigmoid MLP on MNIST.

Two networks, identical except for batch norm before each sigmoid, trained the same way; four claims
read off the paper's Fig. 1: BN is at least as accurate after the first steps (1a, a non-inferiority
test), reaches a given accuracy much sooner (1a), keeps the last layer's sigmoid input steadier
(1b, 1c) and lets the inputs of its layers drift less (Sec. 1-2, measured scale-free where the
measurement is not true by construction).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..store.runs import run_config
from ..sweep.run import Sweep
from . import figures as fig
from .claims import (Change, Claim, Measurement, MissingData, Study, bracketed, combine, decide,
                     directional, exp_interval, family, fmt_ci, interval, measurement, paired)
from .context import Context, eval_every, run_groups, shows_pilot, steps_to

PAPER = "Ioffe & Szegedy 2015"
GROUP = "fig1"
NORMS = ("none", "batch")
CHECK_FRACTIONS = (0.1, 0.2, 0.4, 1.0)   # I1: the steps tested, as fractions of the run (5k..50k)
MARGIN = 0.01              # I1: non-inferiority margin, in accuracy
TARGET_FRACTION = 0.95     # I2: 95% of the baseline's final accuracy
RATIO = 0.5                # I2: "far fewer" = at most half the steps
TRACKED = dict(site="norm", unit=0)   # I3: unit 0 of the last hidden layer, input to the sigmoid
DRIFT_SITES = ("linear", "norm_eval")  # I4: what the norm receives, and what it hands on at test time

# Every value spelled out, so a change of a project default cannot change the study.
COMMON = RunConfig(dataset="mnist", split="official", binarize=True, model="mlp", depth=3, width=100,
                   activation="sigmoid", init="gaussian", init_std=0.01, eps=1e-5, bn_momentum=0.1,
                   optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.0, batch_size=60,
                   probe="fixed", probe_size=512, track_units=4)
FULL = dict(steps=50_000, log_every=500, seeds=[0, 1, 2, 3, 4])
QUICK = dict(steps=2000, log_every=100, seeds=[0, 1])


def check_steps(steps: int, log_every: int) -> list[int]:
    """I1's pre-chosen steps: CHECK_FRACTIONS of the run, rounded down to a logged step."""
    return sorted({max(log_every, int(f * steps) // log_every * log_every) for f in CHECK_FRACTIONS})


PROTOCOL = f"""\
Both networks are trained with exactly the same settings; the only difference is batch norm. Every
value, metric and threshold below was fixed before the runs whose verdicts are reported.

| setting | value | why |
|---|---|---|
| data | full MNIST (`--dataset mnist`, official split: 60,000 training and 10,000 test digits, read from `$ICS_DATA_DIR`), binarized (pixels thresholded at 0.5 to {{0, 1}}) | paper: "28x28 binary image as input", MNIST's 60,000 digits |
| network | 3 fully connected hidden layers of 100 sigmoid units, 10-way softmax, cross-entropy | paper |
| batch norm | before each sigmoid, the Linear's bias dropped (`--norm batch`); baseline `--norm none` | paper |
| init | weights N(0, 0.01²), biases 0 (`--init gaussian --init-std 0.01`) | paper: "small random Gaussian values"; 0.01 is the small Gaussian of the era (Caffe's gaussian filler, AlexNet) |
| optimizer | plain SGD, no momentum, no weight decay | not in the paper for this experiment; plain SGD is the simplest reading of "steps" |
| learning rate | 0.5 for both | not in the paper; the project's default, chosen beforehand so the demo MLP trains with and without BN; not tuned for this study |
| eps | 1e-5 | not in the paper; PyTorch's default |
| mini-batch | 60 | paper |
| steps | {FULL['steps']:,} | paper |
| seeds | {', '.join(map(str, FULL['seeds']))} | five: with three, t(0.99, 2) = 9.9 makes I1's Bonferroni intervals too wide to decide anything |
| log every | {FULL['log_every']} steps: activation statistics on the probe, and test accuracy in eval mode, with running statistics (`eval_every` = `log_every`) | resolution of the curves and of I2's step counts |
| probe | 512 fixed training images; unit 0 of `hidden3` for Fig. 1b,c | the paper tracks "a typical activation" of the last hidden layer |

The runs read the official MNIST files (60,000 training and 10,000 test digits), as the paper did;
{FULL['steps']:,} steps × 60 images is {FULL['steps'] * 60 // 60000} epochs (the paper: 50,000 steps of 60 too).
The previous release ran on the 4,000 training digits of the embedded subset (750 epochs), where both
networks overfit far more than in the paper. Test accuracy is on all 10,000 test digits, every
{FULL['log_every']} steps.

**Margins and seeds.** Each claim's margin (the smallest distance from its threshold that matters) is
fixed here, before the deciding runs: I1 {MARGIN} of accuracy (its non-inferiority margin), I2 a factor
of 1.5 beyond the ratio 0.5, I3 0.5 activation units of total variation (a tenth of what the baseline
moved in the previous release), I4 10 scaled-drift units. A pilot on seeds 100–102 gives each metric's
seed SD; a claim whose MDE at 5 seeds exceeds its margin is UNDERPOWERED and is not read, and the
deciding seeds make the runs only if some claim is powered (every claim reads the same `{GROUP}` runs);
otherwise the study shows the pilot's runs, which decide nothing. Budget: the whole study (pilot
included) within 12 minutes on 2 cores.

**I1 (non-inferiority).** Fig. 1a shows BN at or above the baseline once training is under way. The
test: at the pre-chosen steps {', '.join(f'{s:,}' for s in check_steps(FULL['steps'], FULL['log_every']))}
(10%, 20%, 40% and 100% of the run), the paired gap test_acc(BN) − test_acc(none) has a Bonferroni
interval (confidence 1 − 0.05/4 each) whose lower end is above −{MARGIN}: BN is not worse by more than
one point of accuracy (chosen when the test set was the embedded 1,000 images, where one accuracy's
standard error is sqrt(0.95 · 0.05 / 1000) = 0.007; on the 10,000 official test digits it is 0.0022). FAIL when some step's upper end is below −{MARGIN}. A test of
equality at every one of ~100 logged steps (the previous version) can never pass once the curves meet.

**I2.** Steps to 95% of the baseline's final accuracy, BN ÷ baseline, per seed; each count is known
to within one log interval, so each seed gives a bracket of ratios and the interval spans the t bounds
of the brackets' ends (claims.py). "Far fewer": ratio ≤ {RATIO}.

**I3.** Total variation over the logged steps of the 50th percentile and of the 15–85 spread of unit 0
of `hidden3`'s sigmoid input (the `norm` site, as in Fig. 1b,c), BN − none paired by seed, two parts
at confidence 1 − 0.05/2 each; both must be below 0.

**I4.** Batch norm's `norm` site in training mode has each unit's mean equal to β by construction
(the probe normalizes with its own statistics), so its drift proves nothing. The drift is measured
instead at `linear` (the pre-activation each norm receives) and at `norm_eval` (the sigmoid's input in
eval mode, running statistics), scale-free: each unit's mean change between log steps in units of
its own standard deviation (`drift_mean_scaled`), summed over log steps and averaged over the hidden
layers. BN − none, paired by seed, two parts at 1 − 0.05/2; both must be below 0.

Quick mode (`--quick`): {QUICK['steps']:,} steps, log every {QUICK['log_every']}, seeds
{', '.join(map(str, QUICK['seeds']))}, on the embedded 4,000-digit subset (offline); everything else the same
(I1's steps scale with the run).
Verdicts may be INCONCLUSIVE.
"""


def plan(quick: bool, seeds: list[int] | None = None) -> dict[str, Sweep]:
    p = QUICK if quick else FULL
    common = replace(COMMON, steps=p["steps"], log_every=p["log_every"], eval_every=p["log_every"])
    if quick:        # offline and fast: the embedded subset
        common = replace(common, dataset="mnist-5k")
    return {GROUP: Sweep(common=common, norms=list(NORMS), lrs=[COMMON.lr], seeds=seeds or p["seeds"],
                         batch_sizes=[COMMON.batch_size])}


def run(out: Path, quick: bool = False, jobs: int | None = None, on_outcome=None,
        seeds: list[int] | None = None) -> Context:
    return run_groups(out, plan(quick, seeds), quick=quick, jobs=jobs, on_outcome=on_outcome)


# --------------------------------------------------------------------------- per-run quantities


def _acc(ctx: Context, norm: str) -> dict[int, pd.Series]:
    """Per seed: test accuracy (eval mode) indexed by step."""
    return {s: r.table("metrics").set_index("step")["test_acc"].astype(float)
            for s, r in ctx.by_seed(GROUP, norm=norm).items()}


def _at(acc: dict, step: int) -> dict[int, float]:
    return {s: float(a.get(step, math.nan)) for s, a in acc.items()}


def _seed_mean(acc: dict, step: int) -> float:
    return interval(_at(acc, step).values()).mean


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


def _drift(ctx: Context, norm: str, site: str) -> dict[int, float]:
    """Per seed: compare's drift_mean_scaled_total at `site`, mean over the hidden layers."""
    out = {}
    for seed, r in ctx.by_seed(GROUP, norm=norm).items():
        d = ctx.run_tables(r)["drift"]
        d = d[(d["site"] == site) & d["layer"].astype(str).str.startswith("hidden")]
        out[seed] = float(pd.to_numeric(d["drift_mean_scaled_total_mean"], errors="coerce").mean())
    return out


def _config(ctx: Context) -> dict:
    """The resolved config of the study's first finished run (steps and cadence are shared)."""
    runs = ctx.runs(GROUP)
    if not runs:
        raise MissingData(f"no finished runs in {GROUP}")
    return run_config(runs[0])


# --------------------------------------------------------------------------- claims


def measure_i1(ctx: Context) -> Measurement:
    bn, base = _acc(ctx, "batch"), _acc(ctx, "none")
    cfg = _config(ctx)
    steps = check_steps(int(cfg["steps"]), eval_every(cfg))
    level = family(len(steps))
    gaps = {s: paired(_at(bn, s), _at(base, s), level) for s in steps}
    verdicts = {s: directional(g.lo, g.hi, ">", -MARGIN) for s, g in gaps.items()}
    verdict = combine(*verdicts.values())
    # Measured: among the steps whose verdict is the claim's, the weakest evidence for the claim
    # (lowest lower bound, or lowest mean without intervals): the number the verdict rests on.
    decider = min((s for s in steps if verdicts[s] == verdict),
                  key=lambda s: (gaps[s].lo if gaps[s].lo is not None else gaps[s].mean))
    parts = "; ".join(f"step {s:,}: {fmt_ci(*gaps[s][:3])} (BN {_seed_mean(bn, s):.3f} vs "
                      f"{_seed_mean(base, s):.3f})" for s in steps)
    seen = (f"Paired gap test_acc(BN) − test_acc(none), {level:.4g} intervals at the pre-chosen steps — "
            f"{parts}; non-inferiority margin −{MARGIN}; decided at step {decider:,}.")
    return measurement(gaps[decider], verdict, seen)


def measure_i2(ctx: Context) -> Measurement:
    summary = ctx.tables(GROUP)["summary"]
    base_final = float(summary.loc[summary["norm"] == "none", "final_test_acc_mean"].iloc[0])
    if not math.isfinite(base_final):
        raise MissingData("no baseline final accuracy")
    target = TARGET_FRACTION * base_final
    log_every = eval_every(_config(ctx))
    steps = {norm: {seed: steps_to(r, target) for seed, r in ctx.by_seed(GROUP, norm=norm).items()}
             for norm in NORMS}
    seeds = sorted(set(steps["batch"]) & set(steps["none"]))
    if not seeds:
        raise MissingData("no seed with both networks")
    bn, no = steps["batch"], steps["none"]
    point = {s: math.log(bn[s][0] / no[s][0]) if bn[s][0] > 0 and no[s][0] > 0 else math.nan for s in seeds}
    lower = {s: math.log(bn[s][1]) - math.log(no[s][2]) for s in seeds}
    upper = {s: math.log(bn[s][2]) - math.log(no[s][1]) for s in seeds}
    iv = exp_interval(bracketed(point, lower, upper))
    censored = sum(math.isinf(v[2]) for n in NORMS for v in steps[n].values())
    seen = (f"To reach {target:.3f} (95% of the baseline's final {base_final:.3f}) BN needs "
            f"{np.mean([bn[s][0] for s in seeds]):,.0f} steps and the baseline "
            f"{np.mean([no[s][0] for s in seeds]):,.0f} (seed means; each known to within {log_every} "
            f"steps): a ratio of {fmt_ci(*iv[:3])} (geometric mean, bracketed interval)"
            f"{f'; {censored} runs never reached it and count as at least their last step' if censored else ''}.")
    return measurement(iv, directional(iv.lo, iv.hi, "<=", RATIO), seen)


def measure_i3(ctx: Context) -> Measurement:
    bn50, bnspread = _total_variation(ctx, "batch")
    base50, basespread = _total_variation(ctx, "none")
    level = family(2)
    parts = {name: (d, directional(d.lo, d.hi, "<", 0.0)) for name, d in (
        ("p50", paired(bn50, base50, level)), ("spread", paired(bnspread, basespread, level)))}
    verdict, part, iv = decide(parts)
    seen = (f"Over training the median of the last layer's sigmoid input moves by a total of "
            f"{interval(bn50.values()).mean:.3g} with BN vs {interval(base50.values()).mean:.3g} without "
            f"(difference {fmt_ci(*parts['p50'][0][:3])}), its 15–85% spread by "
            f"{interval(bnspread.values()).mean:.3g} vs {interval(basespread.values()).mean:.3g} "
            f"(difference {fmt_ci(*parts['spread'][0][:3])}; {level:.3g} intervals); measured: the {part} part.")
    return measurement(iv, verdict, seen)


def measure_i4(ctx: Context) -> Measurement:
    level = family(len(DRIFT_SITES))
    drifts = {site: (_drift(ctx, "batch", site), _drift(ctx, "none", site)) for site in DRIFT_SITES}
    parts = {}
    for site, (bn, base) in drifts.items():
        d = paired(bn, base, level)
        parts[site] = (d, directional(d.lo, d.hi, "<", 0.0))
    verdict, part, iv = decide(parts)
    seen = ("Scale-free drift of the unit means (each unit's change between log steps in its own standard "
            "deviations, summed over log steps, mean over hidden layers): "
            + "; ".join(f"at `{site}` {interval(bn.values()).mean:.3g} with BN vs "
                        f"{interval(base.values()).mean:.3g} without (difference {fmt_ci(*parts[site][0][:3])})"
                        for site, (bn, base) in drifts.items())
            + f"; {level:.3g} intervals; measured: the `{part}` part.")
    return measurement(iv, verdict, seen)


CLAIMS = [
    Claim("I1", "With batch norm, test accuracy is not lower than the baseline's once training is under way "
                "(Fig. 1a).", f"{PAPER}, Sec. 4.1, Fig. 1a",
          "paired gap test_acc(BN) − test_acc(none) at the pre-chosen steps (10%, 20%, 40%, 100% of the "
          "run), Bonferroni intervals (1 − 0.05/4); measured: the deciding step",
          f"every step's interval above −{MARGIN} (non-inferiority margin)",
          "≈ 0.955 vs 0.70 at 3–4k steps; ≈ 0.98 vs 0.975 at 50k (read off Fig. 1a)", measure_i1, margin=MARGIN, runs=(GROUP,),
          revised="was: a t-interval ≥ 0 at each of ~98 logged steps with no margin and no multiplicity "
                  "control, which cannot pass once the curves meet; now a non-inferiority test at four "
                  "pre-chosen steps with a Bonferroni correction"),
    Claim("I2", "Batch norm reaches a given accuracy in far fewer steps.", f"{PAPER}, Sec. 4.1, Fig. 1a",
          "steps(BN) / steps(none) to the first logged test_acc ≥ 0.95 × the baseline's final accuracy, "
          "per seed; geometric mean, interval from per-seed brackets (one log interval)",
          f"ratio ≤ {RATIO}", None, measure_i2, margin=1.5, runs=(GROUP,),
          revised="was: a t-interval of raw ratios; now a geometric mean whose interval carries the "
                  "log-step quantization (the ratio is a quotient of quantized counts)"),
    Claim("I3", "With batch norm the last hidden layer's sigmoid input is much more stable during "
                "training.", f"{PAPER}, Sec. 4.1, Fig. 1b,c",
          "total variation over the logged steps of p50, and of p85 − p15, of unit 0 of the last hidden "
          "layer at the norm site (input to the sigmoid); BN − none, paired by seed, 1 − 0.05/2 intervals "
          "(measured: the deciding part)",
          "both differences < 0", "qualitative: BN's percentiles stay put, the baseline's shift (Fig. 1b,c)",
          measure_i3, margin=0.5, runs=(GROUP,), revised="same metric; now Bonferroni intervals for its two parts and five seeds"),
    Claim("I4", "Batch norm reduces the drift of its layers' inputs (internal covariate shift).",
          f"{PAPER}, Sec. 1–2, 4.1",
          "drift_mean_scaled_total (scale-free) at the linear site (the norm's input) and at norm_eval "
          "(the sigmoid's input in eval mode), mean over hidden layers; BN − none, paired by seed, "
          "1 − 0.05/2 intervals (measured: the deciding part)", "both differences < 0", None, measure_i4, margin=10.0, runs=(GROUP,),
          revised="was: raw drift at the norm site, where batch norm's unit means equal β by "
                  "construction (PASS for any network); now scale-free drift where it can fail"),
]

# Verdicts of the previous release (results of commit 00aaf02), for the README's "what changed".
PREVIOUS = {"I1": "PASS", "I2": "PASS", "I3": "PASS", "I4": "PASS"}

HISTORY = [
    Change("I1", "00aaf02", "redesigned after an INCONCLUSIVE: from a t-interval ≥ 0 at each of ~98 logged steps "
           "to non-inferiority (margin 0.01) at four pre-chosen steps", "the old test could not pass once the "
           "curves meet (issue 7)"),
    Change("I3", "00aaf02", "seeds 3 → 5 after an INCONCLUSIVE", "t(0.99, 2) = 9.9 made the Bonferroni "
           "intervals too wide (issue 7); optional stopping, told here"),
    Change("I1, I2, I3, I4", "343910b", "data: the 4,000-digit embedded subset → full MNIST (60,000 / 10,000)",
           "the paper's data (issue 24); the previous verdicts (all PASS) were seen"),
    Change("I1, I2, I3, I4", "343910b", "margins stated (0.01, ×1.5, 0.5, 10) and a pilot on seeds 100–102 "
           "added; a claim whose MDE exceeds its margin is UNDERPOWERED", "seeds sized before the runs "
           "(issue 24); the margins were chosen with the previous release's effects in view"),
    Change("I4", "this release's runs", "the margin 10 the protocol states applied in the code (it had been left "
           "out, so the first measurement showed no power check)", "a bug fix restoring the registered value, "
           "made after the verdicts were seen: I4 becomes UNDERPOWERED (MDE 31.7). In hindsight the absolute "
           "margins of I3 and I4 are small against their seed SD; a relative margin (e.g. 10% of the baseline's "
           "drift) is the next release's to fix before its runs"),
    Change("I1, I2, I3, I4", "db344f8", "an UNDERPOWERED claim is not read (value and interval blank), and the "
           "deciding seeds make only runs a powered claim reads: here none (all four are underpowered at 5 "
           "seeds, as in the previous run), so the study makes the pilot's 6 runs only and shows them",
           "a claim that cannot reach its margin is not run and read (issue 24, item 2); the study took 12.2 "
           "minutes against its 12, and `make reproduce` over its 75. The pilot's SDs and the margins are "
           "unchanged; the previous run's values (every interval on the claim's side) are in its release"),
]


# --------------------------------------------------------------------------- figures


def draw(ctx: Context, folder: Path, fmt: str = "png") -> list[tuple[Path, str]]:
    tables = ctx.tables(GROUP)
    label = {"none": "without BN", "batch": "with BN"}
    pilot = "\nthe pilot: seeds 100–102, which decide nothing" if shows_pilot(ctx) else ""
    runs_of = (" Drawn from the pilot's runs (seeds 100–102): no claim was powered, so no deciding run was made."
               if pilot else "")

    f = fig.figure(6.4, 4.4)
    ax = f.subplots()
    curves = tables["curves"]
    for norm in NORMS:
        fig.band(ax, curves[curves["norm"] == norm].sort_values("step"), "step", "test_acc",
                 color=fig.norm_color(norm), label=label[norm])
    ax.set(xlabel="step (updates)", ylabel="test accuracy (fraction correct)",
           title=f"Test accuracy (cf. {PAPER}, Fig. 1a){pilot}\n{fig.BAND_NOTE}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    acc_path = fig.save(f, Path(folder) / f"fig1a_accuracy.{fmt}")

    pct = tables["percentiles"]
    layer = _last_layer(pct) if len(pct) else "hidden3"
    seed = int(pct["seed"].min()) if "seed" in pct and len(pct) else None
    f = fig.figure(10, 4.2)
    axes = f.subplots(1, 2, sharey=True)
    for ax, norm in zip(axes, NORMS):
        d = pct[(pct["norm"] == norm) & (pct["layer"] == layer) & (pct["site"] == TRACKED["site"])
                & (pct["unit"] == TRACKED["unit"])]
        if seed is not None:
            d = d[d["seed"] == seed]
        d = d.sort_values("step")
        color = fig.norm_color(norm)
        for q, style in (("p85", "--"), ("p50", "-"), ("p15", ":")):
            col = q if q in d else f"{q}_mean"
            ax.plot(d["step"], d[col], color=color, ls=style, lw=1.6, label=q)
        ax.set(title=label[norm], xlabel="step (updates)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[0].set_ylabel("input to the sigmoid (activation units)")
    f.suptitle(f"{layer}, unit 0: 15th, 50th and 85th percentile over the probe batch (cf. Fig. 1b,c){pilot}\n"
               f"seed {seed} only: a unit of one network is not the same unit in another",
               fontsize="medium")
    pct_path = fig.save(f, Path(folder) / f"fig1bc_sigmoid_input.{fmt}")
    return [(acc_path, "Fig. 1a (I1, I2): test accuracy with and without batch norm; look at how soon "
                       "the BN curve rises and whether the curves stay together at the end." + runs_of),
            (pct_path, "Fig. 1b,c (I3): the last hidden layer's sigmoid input over training; look at "
                       "how much the three percentile lines move in each panel (shared y-axis)." + runs_of)]


REVIEW = """\
**This release.** All four claims are underpowered at 5 seeds by the pilot, as before, so under the
rule "not run and read" no deciding run was made and the figures show the pilot. So that nothing is
hidden: the previous run of seeds 0–4 (results of db344f8) read I1 +0.0141 [+0.0085, +0.0197] (BN
ahead at every pre-chosen step), I2 0.203 [0.106, 0.267], I3 −7.43 [−17.9, +3.06], I4 −140
[−155, −125]; the red team of this release noted that the pilot alone lies farther from each
threshold than its MDE for I1–I4, and that the margins (chosen with the release before's effects in
view, threshold history) are what makes them underpowered. An MDE governs how a null reads; here,
by the project's rule, it also withholds a decision. Not fixed, for the reasons below, which a new
protocol (relative and per-step margins, a floored SD, a finer log near I2's target, fresh seeds)
must settle before its runs.

The review of the previous run (seeds 0–4 made), still standing:

None of the four verdicts is evidence yet, for reasons of design the next release must fix before its runs:

* **I1**: the pilot's SD (0.015) comes from its weakest step, 10,000, where one pilot seed stands out;
  the main runs decide at step 20,000, where the pilot's SD is 0.0028 (MDE about 0.007, within the
  margin). Every step's interval lies above +0.0085, so BN is not worse, and even ahead; the MDE should
  be computed per pre-chosen step. The paper's claim is "higher", the test "not lower" (issue 7).
* **I2**: MDE 1.55 against a margin of 1.5 is a knife edge set mostly by the 500-step log grid (BN
  reaches the target at 1,500 or 2,000). Confounded: at the shared lr 0.5 the baseline sits at chance
  for about 1,000 steps with vanishing gradients from its N(0, 0.01²) init (hidden1 gradient norm
  0.0024 vs BN's 0.57 at step 500), so the speed-up is not separable from gradient scale.
* **I3**: a margin of 0.5 against a pilot SD of 2.6 needed about 250 seeds, so UNDERPOWERED was certain
  before the runs. The metric (total variation) measures jitter, not drift, and at `norm_eval` BN's
  total variation is no lower than the baseline's.
* **I4**: the baseline's large drift is one interval (steps 0–500 of hidden3, 337 of its 353), where its
  units' standard deviation is about 5e-5 (the 0.01 init): a scale artifact of dividing by a near-zero
  SD. After step 5,000 the baseline drifts 4.4 and BN 4.9 scaled units. The next release should floor
  the SD or leave out the first steps, and state relative margins.
* **Budget**: 43 minutes from empty under load, 731 s (12.2 min) idle with the deciding runs, against
  12; the pilot alone is what this release runs (its time is in the header).
"""


STUDY = Study(
    name="ioffe2015",
    title="Ioffe & Szegedy 2015, Fig. 1: batch norm on a sigmoid MLP (MNIST)",
    description="Ioffe & Szegedy 2015 Fig. 1: 3x100 sigmoid MLP on binary full MNIST with and without batch norm",
    protocol=PROTOCOL, run=run, plan=plan, claims=CLAIMS, figures=draw, previous=PREVIOUS,
    previous_commit="343910b", history=HISTORY, review=REVIEW, dataset="full MNIST, official split (60,000 training / 10,000 test digits), binarized",
    budget="≤ 12 minutes on 2 cores from empty run folders, pilot included")
