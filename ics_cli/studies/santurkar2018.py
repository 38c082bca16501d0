"""Santurkar, Tsipras, Ilyas & Madry (2018), "How Does Batch Normalization Help Optimization?"

Groups of runs, scaled down from the paper's VGG on CIFAR-10 to a ReLU MLP on MNIST, and the paper's
25-layer deep linear network (DLN) at its own two learning rates under both regression-loss conventions
(santurkar2018_dln.py): noisy batch norm (Algorithm 1) trains as well as batch norm while its layers'
inputs move more (Sec. 2.1, Fig. 2); gradient-based ICS (Def. 2.1) is not lower with batch norm (Fig. 3);
the loss landscape along the gradient is smoother with batch norm (Sec. 3.1, Fig. 4). Every gradient-ICS
number is read beside sharpness × lr, since a net at the edge of stability (sharpness ≈ 2/lr) has
gradients that flip from step to step whatever its normalization.
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
from . import santurkar2018_dln as dln
from .claims import (Change, Claim, Measurement, MissingData, Study, decide, directional, family, fmt_ci,
                     interval, measurement, paired, ratio)
from .context import Context, run_groups
from .santurkar2018_dln import (COS_GAP, COS_ONE, DLN, DLN_GROUP, DLN_LRS, EDGE, LITERAL_GROUP, LITERAL_LRS,
                                MLP_GROUP, NOISY_GROUP, NORMS, PAPER, PREDICTIVE)
from .santurkar2018_figures import MOMENT_SITE, LeanContext, draw

__all__ = ["STUDY", "CLAIMS", "DLN_GROUP", "LITERAL_GROUP", "MLP_GROUP", "NOISY_GROUP", "DLN_LRS", "EDGE"]

# Thresholds (see PROTOCOL for the reason of each).
WINDOW = 0.2            # S1, S3: "early" = the first 20% of the updates, "end" = the last 20%
MARGIN = 0.02           # S1: "about as well": noisy BN at most 2 points of training accuracy below BN
BADLY = 0.10            # S3: noise without BN ends ≥ 10 points of training accuracy below the standard net
CHANCE = 0.1            # S1, S3: a diverged run's accuracy
NOT_LOWER = 0.8         # S4: BN's relative gradient ICS at least 0.8 × the standard net's
ACC_EVAL = "train_acc_eval"   # S1: eval mode (noise off, running statistics), fixed 1,000 training images

# Every value spelled out, so a change of a project default cannot change the study.
MLP = RunConfig(dataset="mnist-5k", model="mlp", depth=4, width=100, activation="relu", init="kaiming",
                eps=1e-5, bn_momentum=0.1, noise="none", optimizer="sgd", lr=0.1, momentum=0.0,
                weight_decay=0.0, batch_size=128, probe="fixed", probe_size=512, track_units=0,
                ics_every=10, landscape_every=10, landscape_etas="0.5,1,2,4", sharpness_every=25,
                sharpness_iters=20, sharpness_method="lanczos")
FULL = dict(mlp_steps=500, eval_every=25, dln_steps=2000, dln_log_every=100, mlp_seeds=list(range(5)),
            dln_seeds=list(range(10)))
QUICK = dict(mlp_steps=100, eval_every=10, dln_steps=300, dln_log_every=100, mlp_seeds=[0, 1],
             dln_seeds=[0, 1])


PROTOCOL = f"""\
Every value, metric, threshold, margin and seed count below is fixed in the study module before the
deciding runs and is the same for every norm; comparisons are at one matched learning rate per network.
What changed after earlier data was seen is in the threshold history.

**Scaled down.** The paper trains VGG on CIFAR-10 for tens of thousands of steps. Its noisy-BN,
gradient-ICS and landscape claims are tested here on a ReLU MLP on the embedded MNIST subset (4,000
training images): VGG on CIFAR-10 with the second view (gradient ICS every 10 steps, the landscape,
Lanczos sharpness) on 5 + 3 pilot seeds × 4 variants does not fit the study's 12 minutes on 2 cores
beside the DLN's 13 seeds × 6 settings; the claims are about training (accuracy on the training set,
gradients, the loss along the gradient), which the subset shows. The DLN claims run on the paper's
own DLN at its own size and learning rates.

| setting | MLP groups (`{MLP_GROUP}`, `{NOISY_GROUP}`) | DLN groups (`{DLN_GROUP}`, `{LITERAL_GROUP}`) |
|---|---|---|
| data | `mnist-5k` (4,000 train images), standardized | `gaussian-linear`: y = A x, A a fixed 10×10 N(0, 1) matrix, 1000 x ~ N(0, I) (the same in every run) |
| network | 4 hidden layers × 100 ReLU, Kaiming init, softmax + cross-entropy | k = 25 bias-free 10×10 linear layers, Glorot init, no nonlinearity |
| norms | `none` and `batch` (after each Linear, bias dropped); `{NOISY_GROUP}`: the same two with `--noise santurkar` | `none` and `batch` after each of the 24 hidden layers |
| optimizer | SGD, lr {MLP.lr} for all four variants (the paper's VGG lr), batch {MLP.batch_size}, no momentum | full-batch gradient descent, batch 1000; `{DLN_GROUP}`: lr {DLN_LRS[0]:g} and {DLN_LRS[1]:g} under the project's loss; `{LITERAL_GROUP}`: lr {', '.join(f'{lr:g}' for lr in LITERAL_LRS)} under the literal loss |
| steps | {FULL['mlp_steps']} (16 epochs of the subset) | {FULL['dln_steps']:,} (the paper's Fig. 5) |
| seeds | {', '.join(map(str, FULL['mlp_seeds']))}; pilot 100–102 | {', '.join(map(str, FULL['dln_seeds']))}; pilot 100–102 (seeds change the init only: the data is fixed) |
| activation statistics | every step (`--log-every 1`, probe: 512 fixed training images, noise of the same law under `--noise santurkar`) | every {FULL['dln_log_every']} steps |
| training accuracy / loss | per {FULL['eval_every']}-step window: the training pass's mean (noise on) and `{ACC_EVAL}` (eval mode: noise off, running statistics, fixed 1,000 training images) | every {FULL['dln_log_every']} steps |
| gradient ICS (`grad_ics.csv`) | every {MLP.ics_every} steps (`{MLP_GROUP}` only) | every {DLN.ics_every} steps |
| landscape (`landscape.csv`) | every {MLP.landscape_every} steps, η = {{{MLP.landscape_etas}}} × lr | every {DLN.landscape_every} steps, η = {{{DLN.landscape_etas}}} × lr (the paper's [0.01, 30]) |
| sharpness (`sharpness.csv`) | every {MLP.sharpness_every} steps, {MLP.sharpness_iters} Lanczos steps (`{MLP_GROUP}` only) | every {DLN.sharpness_every} steps, {DLN.sharpness_iters} Lanczos steps |

**DLN loss convention: both, one row each.** The paper minimizes a squared error summed over the 1000
samples; whether its per-sample term is the mean over the 10 outputs (the **project** convention,
`--regress-loss mean`, chosen in an earlier release after seeing that it puts the standard net's loss in
the paper's decade) or ‖f(x) − y‖² (the **literal** one, `--regress-loss sum`, 10× larger) is not settled
by the paper: its Fig. 3 fits the project's scale, its Fig. 10 the literal one. The convention fixes
what the nominal lr means: lr η under the literal loss takes exactly the steps of 10η under the
project's (the same run, losses × 10). So each DLN claim is one row per convention at the paper's
nominal lrs ({DLN_LRS[0]:g}, {DLN_LRS[1]:g}); the literal convention's {DLN_LRS[1]:g} reads the project's runs
at {DLN_LRS[0]:g} (run once, not twice), its {', '.join(f'{lr:g}' for lr in LITERAL_LRS)} has runs of its own
(`{LITERAL_GROUP}`). A verdict that differs between the two rows is convention-dependent, and its
sentence says so; neither row overrides the other. `train_loss` in metrics.csv is the per-sample mean
under the run's convention; the summed objective is 1000 × it.

**Claims and thresholds.** "Early" is the first {WINDOW:.0%} of the updates for training accuracy and
the probed steps t ≤ 0.25 × steps for the landscape. Paired by seed throughout; a claim of k parts uses
Bonferroni intervals (1 − 0.05/k) and must hold in every part. The edge of stability is sharpness × lr =
{EDGE:g} (gradient descent on a quadratic of that curvature stops decreasing monotonically).

- **S1** noisy BN vs BN and the standard net: `{ACC_EVAL}`, the eval-mode accuracy with the noise off
  (the training pass's accuracy scores noisy BN with its noise on, a handicap of the measurement, not
  of the network; it is reported beside). Three parts: noisy BN − BN early > −{MARGIN} and at the end >
  −{MARGIN} (non-inferiority), noisy BN − standard early > 0. Margin {MARGIN}: the non-inferiority margin.
- **S2** per-step moment changes at the `{MOMENT_SITE}` site: `drift_mean`, `drift_var`, mean over steps and
  hidden layers; noisy BN ÷ standard, both > 1. A DESIGN CHECK: the noise is drawn afresh every step.
- **S3** noise without BN vs the standard net: training accuracy over the last {WINDOW:.0%} of the
  updates (training pass; a diverged run counts at chance, {CHANCE}); difference ≤ −{BADLY}. Margin 0.03.
- **S4-stable / S4-edge** gradient ICS on the MLP, scale-free: ‖G − G′‖₂ / ‖G‖₂ (`ics_rel`; the raw
  ℓ2 shrinks with the gradient). Per seed and probed step, the phase: *stable* where both nets' latest
  sharpness × lr is below {EDGE:g}, *edge* otherwise. Per seed, the geometric mean over hidden layers 2–4 of
  each layer's mean over the phase's steps; BN ÷ standard > {NOT_LOWER} ("not lower": at most 20% lower),
  margin × 1.25. S4-stable decides; S4-edge is reported (a DESIGN CHECK: there the lr is above one
  net's edge and its gradient flips whatever the norm).
- **S5a / S5b** (each `-project`, `-literal`) the DLN at lr {DLN_LRS[0]:g} / {DLN_LRS[1]:g}: cos(G, G′) averaged over
  the probed steps and hidden layers 2–24, per seed. Two parts: the standard net's cos > {COS_ONE}; cos(standard)
  − cos(BN) > {COS_GAP}. Margin 0.1 of cosine (a tenth of the paper's contrast, ≈ 1 vs ≈ 0). Reported with
  the mean sharpness × lr over the second half of the run.
- **S5c** (`-project`, `-literal`) the DLN's final training loss, BN ÷ standard < 1 at both lrs (two parts),
  margin × 1.5 (the paper's BN ends 3.4× lower; a third of that on the log scale, 3.4^(1/3) ≈ 1.5, is the
  smallest that would matter).
- **S6** loss band (max − min of L(θ − ηg) over the η grid, mean over the early probed steps), BN ÷
  standard < 1. **S7** gradient predictiveness (the largest ‖∇L(θ) − ∇L(θ − ηg)‖₂ over the η grid, early
  steps), BN ÷ standard ≤ {PREDICTIVE} ("≥ 5× smaller"). **S8** the coefficient of variation over all probed
  steps of effective β-smoothness (max over η of ‖∇L(θ) − ∇L(θ − ηg)‖₂ / ‖ηg‖₂), BN ÷ standard < 1. Each
  one row per model: `-mlp`, and `-dln-project`, `-dln-literal` with the two lrs as parts. Margins: S6
  × 1.25; S7 and S8 × 2 (claims of several-fold effects: several times on VGG, orders of magnitude on the
  DLN in the paper; their per-seed spread on the DLN was about × 1.7 in the previous release).

**Seeds and margins.** The pilot (seeds 100–102) gives each claim's seed SD; a claim whose MDE at the
protocol's seeds exceeds its margin is UNDERPOWERED. The DLN has {len(FULL['dln_seeds'])} seeds (3 in the previous
release: t(0.9917, 2) = 7.65 left S5 undecidable); the MLP {len(FULL['mlp_seeds'])}.

Quick mode (`--quick`): MLP {QUICK['mlp_steps']} steps, DLN {QUICK['dln_steps']} steps, seeds
{', '.join(map(str, QUICK['mlp_seeds']))}; everything else the same. Verdicts may be INCONCLUSIVE.
"""


def plan(quick: bool, seeds: list[int] | None = None) -> dict[str, Sweep]:
    p = QUICK if quick else FULL
    mlp = replace(MLP, steps=p["mlp_steps"], log_every=1, eval_every=p["eval_every"])
    noisy = replace(mlp, noise="santurkar", ics_every=0, landscape_every=0, sharpness_every=0)
    project = replace(DLN, steps=p["dln_steps"], log_every=p["dln_log_every"], eval_every=p["dln_log_every"])
    literal = replace(project, regress_loss="sum")
    dln_seeds, mlp_seeds = seeds or p["dln_seeds"], seeds or p["mlp_seeds"]
    return {DLN_GROUP: Sweep(common=project, norms=list(NORMS), lrs=list(DLN_LRS), seeds=dln_seeds,
                             batch_sizes=[DLN.batch_size]),
            LITERAL_GROUP: Sweep(common=literal, norms=list(NORMS), lrs=list(LITERAL_LRS), seeds=dln_seeds,
                                 batch_sizes=[DLN.batch_size]),
            MLP_GROUP: Sweep(common=mlp, norms=list(NORMS), lrs=[MLP.lr], seeds=mlp_seeds,
                             batch_sizes=[MLP.batch_size]),
            NOISY_GROUP: Sweep(common=noisy, norms=list(NORMS), lrs=[MLP.lr], seeds=mlp_seeds,
                               batch_sizes=[MLP.batch_size])}


def run(out: Path, quick: bool = False, jobs: int | None = None, on_outcome=None,
        seeds: list[int] | None = None) -> Context:
    ctx = run_groups(out, plan(quick, seeds), quick=quick, jobs=jobs, on_outcome=on_outcome)
    return LeanContext(out=ctx.out, quick=ctx.quick, groups=ctx.groups)


# --------------------------------------------------------------------------- the MLP claims


def _window(run, where: str, column: str) -> float:
    """Mean of `column` over the metrics rows of the first (`early`) or last (`end`) WINDOW of the
    updates; a diverged run counts at CHANCE."""
    if run.status == "diverged":
        return CHANCE
    steps = int(run_config(run)["steps"])
    m = run.table("metrics")
    m = m[m["step"] > 0]
    rows = m[m["step"] <= WINDOW * steps] if where == "early" else m[m["step"] > (1 - WINDOW) * steps]
    if column not in rows:
        raise MissingData(f"{run.path.name} has no {column} column (recorded before issue 22); rerun it")
    acc = pd.to_numeric(rows[column], errors="coerce").dropna()
    return float(acc.mean()) if len(acc) else math.nan


def _acc(ctx: Context, group: str, norm: str, where: str, column: str = "train_acc") -> dict[int, float]:
    return {s: _window(r, where, column) for s, r in dln.runs(ctx, group, norm).items()}


def _moments(ctx: Context, group: str, norm: str, column: str) -> dict[int, float]:
    """Per seed: `column` (drift_mean or drift_var) at MOMENT_SITE, mean over steps > 0 and hidden layers."""
    out = {}
    for seed, r in dln.runs(ctx, group, norm).items():
        lay = r.table("layers")
        lay = lay[(lay["site"] == MOMENT_SITE) & lay["layer"].astype(str).str.startswith("hidden")
                  & (lay["step"] > 0)]
        out[seed] = float(pd.to_numeric(lay[column], errors="coerce").mean())
    return out


def measure_s1(ctx: Context) -> Measurement:
    level = family(3)
    acc = {(g, n, w, c): _acc(ctx, g, n, w, c) for g, n in ((NOISY_GROUP, "batch"), (MLP_GROUP, "batch"),
                                                            (MLP_GROUP, "none"))
           for w in ("early", "end") for c in (ACC_EVAL, "train_acc")}
    noisy, bn, std = (NOISY_GROUP, "batch"), (MLP_GROUP, "batch"), (MLP_GROUP, "none")
    gaps = {"noisy BN − BN early": (acc[(*noisy, "early", ACC_EVAL)], acc[(*bn, "early", ACC_EVAL)], -MARGIN),
            "noisy BN − BN at the end": (acc[(*noisy, "end", ACC_EVAL)], acc[(*bn, "end", ACC_EVAL)], -MARGIN),
            "noisy BN − standard early": (acc[(*noisy, "early", ACC_EVAL)], acc[(*std, "early", ACC_EVAL)], 0.0)}
    parts = {n: (iv, directional(iv.lo, iv.hi, ">", t)) for n, (a, b, t) in gaps.items()
             for iv in [paired(a, b, level)]}
    verdict, part, iv = decide(parts)
    mean = lambda d: interval(d.values()).mean    # noqa: E731
    words = lambda c: ", ".join(f"{name} {mean(acc[(*key, w, c)]):.3f} ({w})"    # noqa: E731
                                for name, key in (("noisy BN", noisy), ("BN", bn), ("standard", std))
                                for w in ("early", "end"))
    seen = (f"Eval-mode training accuracy (`{ACC_EVAL}`: noise off, running statistics) over the first / last "
            f"{WINDOW:.0%} of the updates: {words(ACC_EVAL)}. "
            + "; ".join(f"{n}: {fmt_ci(*parts[n][0][:3])} (needs > {t:g})" for n, (_, _, t) in gaps.items())
            + f" ({level:.4g} intervals); measured: {part}. The training pass's accuracy (noise on), not decided "
            f"on: {words('train_acc')}.")
    return measurement(iv, verdict, seen)


def measure_s2(ctx: Context) -> Measurement:
    level = family(2)
    parts, words = {}, []
    for column in ("drift_mean", "drift_var"):
        noisy, std = _moments(ctx, NOISY_GROUP, "batch", column), _moments(ctx, MLP_GROUP, "none", column)
        iv = ratio(noisy, std, level)
        parts[column] = (iv, directional(iv.lo, iv.hi, ">", 1.0))
        words.append(f"`{column}` {interval(noisy.values()).mean:.3g} with noisy BN vs "
                     f"{interval(std.values()).mean:.3g} in the standard net (ratio {fmt_ci(*iv[:3])})")
    verdict, part, iv = decide(parts)
    seen = (f"Per-step change of the `{MOMENT_SITE}` site's unit moments, mean over steps and hidden layers: "
            + "; ".join(words) + f" ({level:.4g} intervals); measured: `{part}`.")
    return measurement(iv, verdict, seen)


def measure_s3(ctx: Context) -> Measurement:
    noisy, std = _acc(ctx, NOISY_GROUP, "none", "end"), _acc(ctx, MLP_GROUP, "none", "end")
    iv = paired(noisy, std)
    diverged = sum(r.status == "diverged" for r in ctx.runs(NOISY_GROUP, norm="none"))
    seen = (f"Training accuracy over the last {WINDOW:.0%} of the updates: {interval(noisy.values()).mean:.3f} "
            f"with the noise and no BN vs {interval(std.values()).mean:.3f} in the standard net, difference "
            f"{fmt_ci(*iv[:3])} (needs ≤ −{BADLY})"
            f"{f'; {diverged} noisy runs diverged (counted at chance)' if diverged else ''}.")
    return measurement(iv, directional(iv.lo, iv.hi, "<=", -BADLY), seen)


def phases(none_run, bn_run) -> dict[str, list[int]]:
    """The probed gradient-ICS steps of a seed's two runs by phase: `stable` where both nets' latest
    sharpness × lr (the last measurement at or before the step) is below EDGE, `edge` otherwise."""
    def steps(r):
        return set(pd.to_numeric(r.table("grad_ics")["step"]).astype(int))

    probed = sorted(steps(none_run) & steps(bn_run))
    tables = [dln.sharpness_lr(r) for r in (none_run, bn_run)]

    def latest(t, step):
        v = t[t["step"] <= step]["sharpness_lr"].dropna()
        return float(v.iloc[-1]) if len(v) else math.inf

    stable = [s for s in probed if all(latest(t, s) < EDGE for t in tables)]
    return {"stable": stable, "edge": [s for s in probed if s not in stable]}


def _ics_rel(run, steps) -> float:
    """Geometric mean over hidden layers 2.. of each layer's mean `ics_rel` over `steps`; NaN if none."""
    if not steps:
        return math.nan
    per_layer = dln.ics(run, "ics_rel", steps)
    per_layer = per_layer[per_layer > 0]
    return float(np.exp(np.log(per_layer).mean())) if len(per_layer) else math.nan


def measure_s4(ctx: Context, phase: str = "stable") -> Measurement:
    none, bn = dln.runs(ctx, MLP_GROUP, "none"), dln.runs(ctx, MLP_GROUP, "batch")
    std_v, bn_v, share = {}, {}, []
    for seed in sorted(set(none) & set(bn)):
        split = phases(none[seed], bn[seed])
        std_v[seed], bn_v[seed] = _ics_rel(none[seed], split[phase]), _ics_rel(bn[seed], split[phase])
        share.append(len(split[phase]) / max(1, len(split["stable"]) + len(split["edge"])))
    iv = ratio(bn_v, std_v)
    seen = (f"Relative gradient ICS ‖G − G′‖₂ / ‖G‖₂ on the MLP in the {phase} phase (sharpness × lr of both nets "
            f"{'below' if phase == 'stable' else 'not both below'} {EDGE:g}; {np.mean(share):.0%} of the probed steps), "
            f"geometric mean over hidden layers 2–4: {interval(bn_v.values()).mean:.3g} with BN vs "
            f"{interval(std_v.values()).mean:.3g} without, ratio {fmt_ci(*iv[:3])} over {iv.n} seeds with such "
            f"steps (needs > {NOT_LOWER}).")
    return measurement(iv, directional(iv.lo, iv.hi, ">", NOT_LOWER), seen)


def measure_s4_edge(ctx: Context) -> Measurement:
    return measure_s4(ctx, "edge")


def _mlp_landscape(stat, op, threshold, what):
    return lambda ctx: dln.landscape_claim(ctx, [("MLP", MLP_GROUP, None)], stat, op, threshold, what)


def _dln_landscape(stat, op, threshold, what, convention):
    def measure(ctx, conv):
        return dln.landscape_claim(ctx, dln.dln_parts(conv), stat, op, threshold, what)
    return lambda ctx: dln.with_other(ctx, measure, convention)


BAND = "Early loss band width (max − min of L(θ − ηg) over the η grid)"
PRED = "Early gradient predictiveness (largest ‖∇L(θ) − ∇L(θ − ηg)‖₂ over the η grid)"
BETA = "Variation over the probed steps of effective β-smoothness (std ÷ mean)"
# S6 × 1.25; S7, S8 × 2: claims of several-fold effects (the paper: several times on VGG, orders of
# magnitude on the DLN) whose per-seed spread on the DLN was about × 1.7 in the previous release.
LANDSCAPE_MARGIN = {"S6": 1.25, "S7": 2.0, "S8": 2.0}
LANDSCAPE = {"S6": (dln.band, "<", 1.0, BAND), "S7": (dln.predictiveness, "<=", PREDICTIVE, PRED),
             "S8": (dln.beta_cv, "<", 1.0, BETA)}
measure_s6_mlp, measure_s7_mlp, measure_s8_mlp = (_mlp_landscape(*LANDSCAPE[k]) for k in ("S6", "S7", "S8"))
MEASURE_DLN = {(k, c): _dln_landscape(*LANDSCAPE[k], c) for k in LANDSCAPE for c in ("project", "literal")}


def measure_s5(name: str, convention: str):
    if name == "S5c":
        return lambda ctx: dln.with_other(ctx, dln.measure_loss, convention)
    lr = DLN_LRS[0] if name == "S5a" else DLN_LRS[1]
    return lambda ctx: dln.with_other(ctx, lambda c, conv: dln.measure_cos(c, conv, lr), convention)


# --------------------------------------------------------------------------- claims


SEC = PAPER
ISSUE = "issue 24"
EOS = ("in this phase at least one net's sharpness × lr is at or above 2 (the standard MLP's early steps at lr "
       "0.1), where the gradient flips between steps whatever the normalization: the ratio reads the lr's "
       "mismatch with each net's curvature, not batch norm.")
LITERAL_B = (f"the literal convention at lr {DLN_LRS[1]:g} takes exactly the steps of the project's at "
             f"{DLN_LRS[0]:g} (losses × 10): the same runs as S5a-project, reported for the table's symmetry and "
             "not counted twice.")


def _s5(name: str, convention: str) -> Claim:
    lr = {"S5a": DLN_LRS[0], "S5b": DLN_LRS[1]}.get(name)
    cid = f"{name}-{convention}"
    both = f"under the {convention} loss convention"
    if name == "S5c":
        return Claim(cid, f"On the DLN, batch norm reaches the lower training loss ({both}).",
                     f"{SEC}, Fig. 5", f"final training loss per sample, BN ÷ standard per seed, at lr "
                     f"{DLN_LRS[0]:g} and {DLN_LRS[1]:g} (two parts, Bonferroni 1 − 0.05/2); reported with sharpness × lr",
                     "both ratios < 1", "5·10² (BN) vs 1.7·10³ (standard) after 2000 steps at 10⁻⁶ (Fig. 5)",
                     measure_s5(name, convention), margin=1.5,
                     revised="was the third part of S5a and S5b (previous: INCONCLUSIVE, 3 seeds); now its own "
                             "row per convention, 10 seeds")
    design = LITERAL_B if (name == "S5b" and convention == "literal") else None
    return Claim(cid, f"On the DLN at lr {lr:g} ({both}), cos(G, G′) ≈ 1 without batch norm and far lower with it.",
                 f"{SEC}, Sec. 2.2, Fig. 3", "cos(G, G′) mean over probed steps and layers 2–24 per seed; "
                 "reported with sharpness × lr; Bonferroni (1 − 0.05/2)",
                 f"cos(standard) > {COS_ONE}; cos(standard) − cos(BN) > {COS_GAP}",
                 "cos ≈ 1 without BN, ≈ 0 or below with BN (Fig. 3)", measure_s5(name, convention), margin=0.1,
                 design=design, revised=f"was {name} (previous: INCONCLUSIVE, one convention, 3 seeds, the loss as a "
                                         "third part); now one row per convention, 10 seeds")


def _landscape(key: str, model: str) -> Claim:
    stat, op, threshold, what = LANDSCAPE[key]
    statement = {"S6": "The loss changes less along the gradient with batch norm early in training (narrower "
                       "loss band)",
                 "S7": "Gradient predictiveness is better with batch norm: the gradient changes ≥ 5× less along "
                       "it early in training",
                 "S8": "Effective β-smoothness is steadier with batch norm"}[key]
    fig_ = {"S6": "Fig. 4a", "S7": "Fig. 4b", "S8": "Fig. 4c"}[key]
    paper = {"S6": "qualitative: BN's band is much narrower (Fig. 4a)",
             "S7": "several times smaller on VGG, orders of magnitude on the DLN (Fig. 4b)",
             "S8": "qualitative: BN's β is lower and varies less (Fig. 4c)"}[key]
    expected = f"ratio {op} {threshold:g}" if model == "mlp" else f"both ratios {op} {threshold:g}"
    if model == "mlp":
        measure, where = {"S6": measure_s6_mlp, "S7": measure_s7_mlp, "S8": measure_s8_mlp}[key], "on the MLP"
        metric = f"{what}; BN ÷ standard per seed, geometric mean"
    else:
        convention = model.split("-")[1]
        measure, where = MEASURE_DLN[(key, convention)], f"on the DLN (the {convention} loss convention)"
        metric = f"{what}; BN ÷ standard at lr {DLN_LRS[0]:g} and {DLN_LRS[1]:g} (two parts, 1 − 0.05/2)"
    return Claim(f"{key}-{model}", f"{statement}, {where}.", f"{SEC}, Sec. 3.1, {fig_}", metric, expected, paper,
                 measure, margin=LANDSCAPE_MARGIN[key], revised=f"was one row of three parts (MLP, DLN at each lr); previous {key}: "
                 f"{PREVIOUS[key]}; now one row per model and convention, DLN on 10 seeds")


PREVIOUS = {"S1": "FAIL", "S2": "PASS", "S3": "FAIL", "S4": "FAIL", "S5a": "INCONCLUSIVE", "S5b": "INCONCLUSIVE",
            "S6": "FAIL", "S7": "FAIL", "S8": "INCONCLUSIVE"}

CLAIMS = [
    Claim("S1", "Noisy batch norm trains about as well as batch norm, and better than the standard network "
                "early on.", f"{SEC}, Sec. 2.1, Fig. 2",
          f"`{ACC_EVAL}` (eval mode, noise off; window means), paired by seed: noisy BN − BN over the first and the "
          "last 20% of the updates, noisy BN − standard over the first 20%; Bonferroni (1 − 0.05/3)",
          f"noisy BN − BN > −{MARGIN} in both windows; noisy BN − standard > 0 early",
          "qualitative: noisy BN's curves overlap BN's, above the standard net's (Fig. 2)", measure_s1, margin=MARGIN,
          revised="was scored on the training pass, noisy BN with its noise on (previous: FAIL); now eval mode, "
                  "noise off (the noise-on value is reported beside)"),
    Claim("S2", "Noisy batch norm has larger per-step changes of its layers' input moments than the standard "
                "network.", f"{SEC}, Sec. 2.1, Fig. 2 and 8",
          f"drift_mean and drift_var at the `{MOMENT_SITE}` site at --log-every 1, mean over steps and hidden "
          "layers; noisy BN ÷ standard, geometric mean over seeds, Bonferroni (1 − 0.05/2)",
          "both ratios > 1", "qualitative: noisy BN's activation distributions move more (Fig. 2)", measure_s2,
          design="the noise is drawn afresh at every step, so noisy BN's moments move by construction.",
          revised="same metric (previous: PASS); now a DESIGN CHECK"),
    Claim("S3", "The same noise without batch norm hurts training badly.", f"{SEC}, Sec. 2.1",
          "training accuracy (training pass) over the last 20% of the updates, noise without BN − standard, paired "
          "by seed (a diverged run counts at chance)", f"≤ −{BADLY}", None, measure_s3, margin=0.03),
    Claim("S4-stable", "Gradient-based internal covariate shift is not lower with batch norm (MLP, where both "
                       "nets are below the edge of stability).", f"{SEC}, Sec. 2.2, Def. 2.1, Fig. 3",
          "‖G − G′‖₂ / ‖G‖₂ (`ics_rel`) over the probed steps where both nets' sharpness × lr < 2: per seed the "
          "geometric mean over hidden layers 2–4 of each layer's mean; BN ÷ standard", f"ratio > {NOT_LOWER}",
          "qualitative: BN's ICS is as large or larger (Fig. 3, VGG)", measure_s4, margin=1.25,
          revised="was S4 (previous: FAIL, ratio 0.29 on the raw ℓ2 and 1 − cos over all steps); now the "
                  "scale-free ratio, decided where both nets are below the edge of stability"),
    Claim("S4-edge", "Gradient-based internal covariate shift is not lower with batch norm (MLP, steps where a "
                     "net is at or above the edge of stability).", f"{SEC}, Sec. 2.2, Def. 2.1, Fig. 3",
          "as S4-stable, over the probed steps where either net's sharpness × lr ≥ 2", f"ratio > {NOT_LOWER}",
          None, measure_s4_edge, margin=1.25, design=EOS, revised="new: the early phase of the previous S4"),
    *[_s5(n, c) for n in ("S5a", "S5b", "S5c") for c in ("project", "literal")],
    *[_landscape(k, m) for k in ("S6", "S7", "S8") for m in ("mlp", "dln-project", "dln-literal")],
]

HISTORY = [
    Change("S5a, S5b, S6, S7, S8", "40e9d9d", "regression loss: (1/10) Σⱼ per sample, chosen among four "
           "conventions after seeing which put the standard DLN's loss in the paper's decade",
           "it set what the paper's lr means (issue 24 found it decides S5a, S6–S8); now both conventions, one "
           "row each (S5*-project / -literal, S6–S8-dln-project / -literal)"),
    Change("S1", "e3ffd9d", "training-pass accuracy (noise on) → eval-mode accuracy with the noise off "
           "(`train_acc_eval`)", "the training pass scored noisy BN with its noise on (issue 24); previous FAIL seen"),
    Change("S2", "e3ffd9d", "a test → DESIGN CHECK", "fresh noise every step makes the moments move (issue 24)"),
    Change("S4-stable, S4-edge", "e3ffd9d", "‖G − G′‖₂ and 1 − cos over all steps → ‖G − G′‖₂ / ‖G‖₂ split by "
           "phase at sharpness × lr = 2 (sharpness now recorded on the MLP, Lanczos every 25 steps); two parts → one",
           "the previous ratio 0.29 was the standard net above the edge of stability early and the gradient's "
           "scale (issue 24: 0.93–1.04 once both sit near 1.3)"),
    Change("S5a-project, S5a-literal, S5b-project, S5b-literal, S5c-project, S5c-literal", "e3ffd9d",
           "DLN seeds 3 → 10; the loss part split off as S5c (Bonferroni 1 − 0.05/3 → 1 − 0.05/2); both "
           "conventions; sharpness by Lanczos (was power iteration) every 200 steps; gradient ICS every 100 "
           "steps (was 50)", "undecidable at 3 seeds (t = 7.65); one row, one metric (issue 24)"),
    Change("S6-mlp, S6-dln-project, S6-dln-literal, S7-mlp, S7-dln-project, S7-dln-literal, S8-mlp, "
           "S8-dln-project, S8-dln-literal", "e3ffd9d", "one row per model and convention (was three parts in "
           "one row); DLN seeds 3 → 10; DLN landscape every 100 steps (was 50)",
           "a passing MLP part hid behind a failing DLN part (issue 24); the cadence to fit the budget"),
    Change(", ".join(c.id for c in CLAIMS if c.margin is not None), "e3ffd9d", "margins stated and a pilot on seeds "
           "100–102 added; a claim whose MDE exceeds its margin is UNDERPOWERED", f"seeds sized before the runs "
           f"({ISSUE}); the margins were chosen with the previous release's effects and spreads in view (S7, S8: "
           "× 2 where × 1.25 would need about 60 DLN seeds)"),
]


STUDY = Study(
    name="santurkar2018",
    title="Santurkar et al. 2018: noisy batch norm, gradient ICS and the loss landscape",
    description="Santurkar et al. 2018 Fig. 2-5: noisy BN, gradient-based ICS and landscape smoothness "
                "(ReLU MLP on MNIST, 25-layer deep linear net under both loss conventions)",
    protocol=PROTOCOL, run=run, claims=CLAIMS, figures=draw, previous=PREVIOUS, previous_commit="e3ffd9d",
    history=HISTORY,
    dataset="MLP: `mnist-5k`, the embedded 4,000 training / 1,000 test digits (the paper: VGG on CIFAR-10); "
            "DLN: `gaussian-linear`, 1000 fixed samples of y = A x (the paper's)",
    budget="≤ 12 minutes on 2 cores from empty run folders, pilot included (estimated from single-run timings; "
           "the DLN's 10 seeds are most of it)")
