"""Wu & He (2018), "Group Normalization", Fig. 1 and Table 3.

Batch norm's error rises as the batch shrinks (its statistics come from fewer samples, in training
and in the running averages used at test time), group norm's does not (its statistics are per
sample); group norm is robust to its group count, while one group (layer norm) and one channel per
group (instance norm) are worse. Scaled down from ResNet-50 on ImageNet to the 3-layer CNN on
mnist-5k, with the paper's training rule: a fixed number of epochs at every batch size, so a small
batch takes more steps, and a learning rate proportional to the batch (Goyal et al. 2017).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..net import data
from ..config import RunConfig
from ..sweep.run import Sweep
from . import figures as fig
from .claims import (Claim, Interval, Measurement, MissingData, Study, combine, decide, directional,
                     family, fmt_ci, measurement, paired)
from .context import Context, Plan, listing, run_groups

PAPER = "Wu & He 2018"
BATCH, GROUPS = "batch_size", "group_count"       # the two groups of runs
NORMS = ("batch", "group")

# --------------------------------------------------------------------------- protocol
# Every threshold below was fixed before the study's first full run and is the same for every norm.

BATCH_SIZES = (2, 4, 8, 16, 32)   # the paper's Fig. 1 (images per worker); longest runs first
REFERENCE = 32                    # the paper's reference batch: lr 0.1 at 32, scaled linearly
GROUP_COUNTS = (1, 2, 4, 8, 16, 32)    # of the 32 channels: 1 = layer norm, 32 = instance norm
DEFAULT_GROUPS = 8                # GN in the batch-size runs: 4 channels per group, mid-range
MIDDLE = (2, 4, 16)               # G5: the other group counts that are neither LN nor IN
SHARP = 8                         # G2: "sharply below 8"
EQUIV = 0.01                      # G3, G4, G5: differences of test error under 1 point are "no difference"
RISE = 0.02                       # G1: "rises" = at least 2 points (twice the no-difference margin)
CHANCE_ERROR = 0.9                # a diverged run's weights are unusable: it counts at chance
EVALS = 10                        # metrics rows per run after step 0 (log_every = eval_every = steps / 10)
LATE = 0.2                        # error = mean over the evaluations in the last 20% of the updates

# Every value spelled out, so a change of a project default cannot change the study.
COMMON = RunConfig(dataset="mnist-5k", binarize=False, model="cnn", depth=3, width=32, activation="relu",
                   init="kaiming", groups=DEFAULT_GROUPS, eps=1e-5, bn_momentum=0.1, bn_eval="ema",
                   optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, batch_size=REFERENCE,
                   lr_scaling="linear", lr_base_batch=REFERENCE, probe="fixed", probe_size=128, track_units=1,
                   eval_batchstats=False)
FULL = dict(seeds=[0, 1, 2, 3, 4], group_seeds=[0, 1, 2, 3, 4, 5, 6, 7], epochs=3)
QUICK = dict(seeds=[0, 1], group_seeds=[0, 1], epochs=0.5)


def steps_for(batch_size: int, epochs: float, train_size: int) -> int:
    """Updates in `epochs` passes over the training set at `batch_size` (config.resolved's rule)."""
    return max(1, math.ceil(epochs * train_size / batch_size))


def plan(quick: bool, seeds: list[int] | None = None) -> dict[str, Sweep]:
    p = QUICK if quick else FULL
    train_size = data.sizes(COMMON.dataset, data_dir=COMMON.data_dir)[0]

    def at(batch_size: int, **values) -> RunConfig:
        steps = steps_for(batch_size, p["epochs"], train_size)
        every = max(1, steps // EVALS)
        return replace(COMMON, steps=steps, log_every=every, eval_every=every, **values)

    # One sweep per batch size (and per group count): each has its own step count and cadence.
    return {
        BATCH: Plan(groups={f"bs{b}": Sweep(common=at(b), norms=list(NORMS), lrs=[COMMON.lr],
                                            seeds=seeds or p["seeds"], batch_sizes=[b])
                            for b in BATCH_SIZES}),
        GROUPS: Plan(groups={f"g{g}": Sweep(common=at(REFERENCE, groups=g), norms=["group"], lrs=[COMMON.lr],
                                            seeds=seeds or p["group_seeds"], batch_sizes=[REFERENCE])
                             for g in GROUP_COUNTS}),
    }


def run(out: Path, quick: bool = False, jobs: int | None = None, on_outcome=None,
        seeds: list[int] | None = None) -> Context:
    return run_groups(out, plan(quick, seeds), quick=quick, jobs=jobs, on_outcome=on_outcome)


PROTOCOL = f"""\
Every value, metric and threshold below was fixed in the study module before its first full run
and is the same for every norm; both norms train at one learning rate rule, nothing is tuned per
norm. Pilots sized the run length, the evaluation cadence and the seed counts to the budget, and
nothing else: single runs of 1 epoch at each batch size (BN and GN), two seeds of BN and GN for 8
epochs at batch 32 (test accuracy 0.87 to 0.94 after 3 epochs, moving by up to 4 points from one
epoch's evaluation to the next; hence the error metric below) and one `--quick` run, each timed with
one thread per run.

**Scaled down.** The paper trains ResNet-50 on ImageNet for 100 epochs on 8 GPUs, batch 32 per GPU
down to 2, lr 0.1 × N/32, SGD with momentum 0.9, GN with G = 32. A 2-core CPU has about five minutes
for the whole study, so the network is `--model cnn`: three 3×3 convolutions of {COMMON.width} channels
with stride 2 (28 → 14 → 7 → 4), each followed by its norm and a ReLU, global average pooling and a
linear head (Kaiming init), trained on `mnist-5k` (4,000 standardized training images, 1,000 test
images). What carries over is the mechanism the paper names: batch norm's statistics (in training,
and the running averages used at test time) come from the batch, so they get noisier as the batch
shrinks; group norm's are per sample and do not depend on the batch.

| group | norms | what varies | seeds | used by |
|---|---|---|---|---|
| `{BATCH}` | batch, group (G = {DEFAULT_GROUPS}) | batch {listing(sorted(BATCH_SIZES, reverse=True))} | {listing(FULL['seeds'])} | G1–G4, Fig. 1 |
| `{GROUPS}` | group | G = {listing(GROUP_COUNTS)} at batch {REFERENCE} | {listing(FULL['group_seeds'])} | G5–G7, Table 3 figure |

* **Training**: {FULL['epochs']} epochs at every batch size (the paper's rule: the same epochs, so a batch of 2
  takes 16× the steps of a batch of 32: {steps_for(2, FULL['epochs'], 4000):,} vs {steps_for(32, FULL['epochs'], 4000):,} updates);
  SGD with momentum {COMMON.momentum}, no weight decay (negligible over {FULL['epochs']} epochs), lr
  {COMMON.lr} × batch / {REFERENCE} (`--lr-scaling linear --lr-base-batch {REFERENCE}`, Goyal et al.'s
  rule as the paper uses it: lr 0.00625 at batch 2), the same for both norms. Batch norm: eps
  {COMMON.eps:g}, running-average momentum {COMMON.bn_momentum}, test error with the running statistics
  (`--bn-eval ema`, the paper's BN). Group norm: G = {DEFAULT_GROUPS} groups of 4 channels (the
  paper's default G = 32 is for 64 to 2,048 channels; with 32 channels, 8 groups sits mid-range,
  chosen before any run, not tuned). Test accuracy {EVALS} times per run (every {100 // EVALS}% of the
  updates) and activation statistics with it (probe: 128 fixed training images; no claim reads them).
  A run that diverges (train.py's rule) counts at chance (error {CHANCE_ERROR}).
* **Error**: the mean test error (1 − accuracy on the 1,000 test images) over the evaluations in the
  last {LATE:.0%} of the updates (the last {round(LATE * EVALS) + 1}). Not the last evaluation alone: at a constant lr (the
  paper decays its lr; `ics` has no schedule) the timing pilots showed the test accuracy of one
  run moving by several points from one evaluation to the next, so one evaluation says more about
  where the last step landed than about the network. Differences are paired by seed
  (same init stream, batch order and probe batch), with scipy's paired t-interval; a claim of k parts
  uses 1 − 0.05/k intervals (claims.py).
* **G1** (BN rises): error(BN, 2) − error(BN, 32) ≥ {RISE:g} (2 points: twice the no-difference margin
  below; the paper's rise is 11.1 points, 23.6% → 34.7%).
* **G2** (sharply below {SHARP}): the rise over the two halvings below {SHARP}, error(2) − error({SHARP}), minus the
  rise over the two halvings above it, error({SHARP}) − error(32), for BN, > 0 (paper: 9.9 vs 1.2 points).
* **G3** (GN flat): error(GN, b) − error(GN, 32) within ±{EQUIV:g} for every b in
  {listing(sorted((b for b in BATCH_SIZES if b != REFERENCE), reverse=True))} (4 parts; an equivalence: PASS when the whole interval lies inside,
  FAIL when it lies wholly outside). {EQUIV:g} = 1 point: the standard error of one accuracy on 1,000
  test images at 5% error is 0.7 points, so smaller differences are within one test set's noise.
* **G4** (BN ≤ GN at {REFERENCE}): error(BN, 32) − error(GN, 32) < {EQUIV:g}, a non-inferiority margin of one
  point (paper: BN 23.6% vs GN 24.1%).
* **G5** (robust to G): error(G) − error(G = {DEFAULT_GROUPS}) within ±{EQUIV:g} for G = {listing(MIDDLE)}
  (3 parts), at batch {REFERENCE} (paper, Table 3: 24.1% to 24.7% for G = 2 … 64 of its wider layers).
* **G6** (G = 1, layer norm, worse): error(G = 1) − error(G = {DEFAULT_GROUPS}) > 0 (paper: 25.3% vs 24.1%).
* **G7** (one channel per group, instance norm, worse): error(G = 32) − error(G = {DEFAULT_GROUPS}) > 0
  (paper: 28.4% vs 24.1%).
* **Seeds**: {len(FULL['seeds'])} for the batch-size runs; {len(FULL['group_seeds'])} for the group-count runs
  at batch {REFERENCE} (cheap: {steps_for(32, FULL['epochs'], 4000)} updates each), since the
  three-part equivalence of G5 needs the narrower intervals.

Quick mode (`--quick`): {QUICK['epochs']} epoch, seeds {listing(QUICK['seeds'])}; the rest the same.
Verdicts may be INCONCLUSIVE.
"""


# --------------------------------------------------------------------------- per-run quantities


def error(run, late: float = LATE) -> float:
    """Mean test error (1 − test_acc) over the run's evaluations at steps ≥ (1 − late) × its steps;
    a diverged run counts at chance (its weights are unusable); NaN if no evaluation is that late."""
    if run.status == "diverged":
        return CHANCE_ERROR
    m = run.table("metrics")
    step = pd.to_numeric(m["step"], errors="coerce")
    done = float((run.summary or {}).get("steps_done") or step.max())
    acc = pd.to_numeric(m["test_acc"], errors="coerce")[step >= (1 - late) * done].dropna()
    return float(1.0 - acc.mean()) if len(acc) else math.nan


def errors(ctx: Context, group: str, **where) -> dict[int, float]:
    """Per seed, the error of the group's run with these config values."""
    return {s: error(r) for s, r in ctx.by_seed(group, **where).items()}


def _bn(ctx: Context, batch_size: int) -> dict[int, float]:
    return errors(ctx, BATCH, norm="batch", batch_size=batch_size)


def _gn(ctx: Context, batch_size: int) -> dict[int, float]:
    return errors(ctx, BATCH, norm="group", batch_size=batch_size)


def _g(ctx: Context, groups: int) -> dict[int, float]:
    return errors(ctx, GROUPS, norm="group", groups=groups)


def _pct(values: dict[int, float]) -> str:
    x = [v for v in values.values() if math.isfinite(v)]
    return f"{100 * float(np.mean(x)):.2f}%" if x else "–"


def _equivalent(iv: Interval, margin: float) -> str:
    """Within ±margin: PASS inside, FAIL wholly outside, INCONCLUSIVE across a bound."""
    return combine(directional(iv.lo, iv.hi, ">", -margin), directional(iv.lo, iv.hi, "<", margin))


def _points(iv: Interval) -> str:
    """An interval of error differences in points of error."""
    scale = lambda v: None if v is None else 100 * v    # noqa: E731
    return fmt_ci(100 * iv.mean, scale(iv.lo), scale(iv.hi))


# --------------------------------------------------------------------------- claims


def measure_g1(ctx: Context) -> Measurement:
    small, ref = _bn(ctx, 2), _bn(ctx, REFERENCE)
    d = paired(small, ref)
    seen = (f"BN's test error is {_pct(ref)} at batch {REFERENCE} and {_pct(small)} at batch 2 (means over "
            f"seeds); the rise, paired by seed, is {_points(d)} points (threshold ≥ {100 * RISE:g}).")
    return measurement(d, directional(d.lo, d.hi, ">=", RISE), seen)


def measure_g2(ctx: Context) -> Measurement:
    e2, e8, e32 = _bn(ctx, 2), _bn(ctx, SHARP), _bn(ctx, REFERENCE)
    seeds = sorted(set(e2) & set(e8) & set(e32))
    if not seeds:
        raise MissingData(f"no seed with BN at batch 2, {SHARP} and {REFERENCE}")
    below = {s: e2[s] - e8[s] for s in seeds}
    above = {s: e8[s] - e32[s] for s in seeds}
    d = paired(below, above)
    seen = (f"BN's error rises by {100 * np.mean(list(below.values())):.2f} points from batch {SHARP} to 2 "
            f"and by {100 * np.mean(list(above.values())):.2f} from {REFERENCE} to {SHARP} (two halvings "
            f"each); the difference is {_points(d)} points (threshold > 0).")
    return measurement(d, directional(d.lo, d.hi, ">", 0.0), seen)


def _band(ref: dict[int, float], others: dict[str, dict[int, float]]):
    """Each of `others` minus `ref`, paired by seed, tested for equivalence within ±EQUIV with
    Bonferroni intervals: (confidence level, verdict, deciding part, its interval, the parts listed)."""
    level = family(len(others))
    parts = {}
    for name, errors in others.items():
        iv = paired(errors, ref, level)
        parts[name] = (iv, _equivalent(iv, EQUIV))
    verdict, part, iv = decide(parts)
    listed = "; ".join(f"{name}: {_points(v[0])}" for name, v in parts.items())
    return level, verdict, part, iv, listed


def measure_g3(ctx: Context) -> Measurement:
    sizes = [b for b in sorted(BATCH_SIZES, reverse=True) if b != REFERENCE]
    ref = _gn(ctx, REFERENCE)
    level, verdict, part, iv, listed = _band(ref, {f"batch {b}": _gn(ctx, b) for b in sizes})
    seen = (f"GN's test error is {_pct(ref)} at batch {REFERENCE}; its difference from that, in points "
            f"({level:.4g} intervals): {listed} (margin ±{100 * EQUIV:g}); measured: {part}.")
    return measurement(iv, verdict, seen)


def measure_g4(ctx: Context) -> Measurement:
    bn, gn = _bn(ctx, REFERENCE), _gn(ctx, REFERENCE)
    d = paired(bn, gn)
    seen = (f"At batch {REFERENCE} BN's test error is {_pct(bn)} and GN's {_pct(gn)}; BN − GN = {_points(d)} "
            f"points (non-inferiority margin < {100 * EQUIV:g}).")
    return measurement(d, directional(d.lo, d.hi, "<", EQUIV), seen)


def measure_g5(ctx: Context) -> Measurement:
    ref = _g(ctx, DEFAULT_GROUPS)
    level, verdict, part, iv, listed = _band(ref, {f"G = {g}": _g(ctx, g) for g in MIDDLE})
    seen = (f"At batch {REFERENCE}, GN with G = {DEFAULT_GROUPS} has test error {_pct(ref)}; the difference "
            f"of other group counts from it, in points ({level:.4g} intervals): {listed} (margin "
            f"±{100 * EQUIV:g}); measured: {part}.")
    return measurement(iv, verdict, seen)


def _worse(ctx: Context, groups: int, name: str) -> Measurement:
    other, ref = _g(ctx, groups), _g(ctx, DEFAULT_GROUPS)
    d = paired(other, ref)
    seen = (f"At batch {REFERENCE}, G = {groups} ({name}) has test error {_pct(other)} against {_pct(ref)} "
            f"for G = {DEFAULT_GROUPS}; the difference is {_points(d)} points (threshold > 0).")
    return measurement(d, directional(d.lo, d.hi, ">", 0.0), seen)


def measure_g6(ctx: Context) -> Measurement:
    return _worse(ctx, 1, "layer norm")


def measure_g7(ctx: Context) -> Measurement:
    return _worse(ctx, COMMON.width, "instance norm")


CLAIMS = [
    Claim("G1", "Batch norm's error rises as the batch shrinks from 32 to 2.",
          f"{PAPER}, Sec. 5.1, Fig. 1, Table 2",
          f"test error (1 − test acc, mean over the evaluations in the last {LATE:.0%} of the updates), BN at "
          "batch 2 − BN at batch 32, paired by seed",
          f"difference ≥ {RISE:g}", "+11.1 points (23.6% → 34.7%)", measure_g1),
    Claim("G2", "Batch norm's rise is sharp below a batch of 8: most of it comes from the two halvings "
                "below 8.", f"{PAPER}, Sec. 5.1, Fig. 1, Table 2",
          f"BN: [error(2) − error({SHARP})] − [error({SHARP}) − error(32)], paired by seed",
          "difference > 0", "9.9 points below 8 vs 1.2 above (Fig. 1)", measure_g2),
    Claim("G3", "Group norm's error stays within a small band as the batch shrinks from 32 to 2.",
          f"{PAPER}, Sec. 5.1, Fig. 1, Table 2",
          "GN (G = 8): error(b) − error(32) for b = 16, 8, 4, 2, paired by seed; 1 − 0.05/4 intervals "
          "(measured: the deciding part)", f"every interval within ±{EQUIV:g}",
          "24.1% at every batch size (within 0.2 points)", measure_g3),
    Claim("G4", "At the reference batch of 32, batch norm is no worse than group norm.",
          f"{PAPER}, Sec. 5.1, Table 1",
          "test error BN − GN at batch 32, paired by seed", f"difference < {EQUIV:g} (non-inferiority)",
          "BN 23.6% vs GN 24.1% (−0.5 points)", measure_g4),
    Claim("G5", "Group norm is robust to its group count (between one group and one channel per group).",
          f"{PAPER}, Sec. 5.1, Table 3",
          f"GN at batch 32: error(G) − error(G = {DEFAULT_GROUPS}) for G = {listing(MIDDLE)}, paired by seed; "
          "1 − 0.05/3 intervals", f"every interval within ±{EQUIV:g}",
          "24.1% to 24.7% for G = 2 … 64 (Table 3, top)", measure_g5),
    Claim("G6", "One group (G = 1, layer norm) is worse than a mid-range group count.",
          f"{PAPER}, Sec. 5.1, Table 3",
          f"GN at batch 32: error(G = 1) − error(G = {DEFAULT_GROUPS}), paired by seed", "difference > 0",
          "G = 1 (LN) 25.3% vs 24.1% at G = 32 (+1.2 points)", measure_g6),
    Claim("G7", "One channel per group (instance norm) is worse than a mid-range group count.",
          f"{PAPER}, Sec. 5.1, Table 3",
          f"GN at batch 32: error(G = {COMMON.width}, one channel per group) − error(G = {DEFAULT_GROUPS}), "
          "paired by seed", "difference > 0", "one channel per group (IN) 28.4% vs 24.1% (+4.3 points)", measure_g7),
]


# --------------------------------------------------------------------------- figures

LABEL = {"batch": "BN", "group": f"GN (G = {DEFAULT_GROUPS})"}
BANDS = "lines: mean over seeds; bands: per-evaluation 95% t-intervals over seeds, averaged"


def late_errors(curves: pd.DataFrame, by: list[str], late: float = LATE) -> pd.DataFrame:
    """Per value of `by`, the test error in percent averaged over the evaluations in the last `late`
    of the updates, from a compare `curves` table: `error` (the mean over seeds of the claims'
    per-run error), `error_low`, `error_high` (the per-evaluation 95% t-bounds, averaged: a band
    for the eye, not the claims' interval)."""
    rows = []
    for key, d in curves.groupby(by, sort=True):
        step = pd.to_numeric(d["step"], errors="coerce")
        d = d[step >= (1 - late) * step.max()]
        acc = {c: pd.to_numeric(d[f"test_acc_{c}"], errors="coerce").mean()
               for c in ("mean", "ci_low", "ci_high")}
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                     "error": 100 * (1 - acc["mean"]), "error_low": 100 * (1 - acc["ci_high"]),
                     "error_high": 100 * (1 - acc["ci_low"])})
    return pd.DataFrame(rows, columns=[*by, "error", "error_low", "error_high"])


def _line(ax, d: pd.DataFrame, x: str, *, color: str, label: str, **style) -> None:
    d = d.assign(_x=pd.to_numeric(d[x])).sort_values("_x")
    x, mean, lo, hi = (d[c].to_numpy(float) for c in ("_x", "error", "error_low", "error_high"))
    ax.plot(x, mean, color=color, label=label, marker="o", ms=4, lw=1.8, **style)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(x, np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), color=color, alpha=0.2, lw=0)


def draw(ctx: Context, folder: Path, fmt: str = "png") -> list[tuple[Path, str]]:
    folder = Path(folder)
    out = []

    by_batch = late_errors(ctx.tables(BATCH)["curves"], ["norm", "batch_size"])
    f = fig.figure(6.4, 4.4)
    ax = f.subplots()
    for norm in NORMS:
        _line(ax, by_batch[by_batch["norm"].astype(str) == norm], "batch_size", color=fig.norm_color(norm),
              label=LABEL[norm])
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(BATCH_SIZES), [str(b) for b in sorted(BATCH_SIZES)])
    ax.invert_xaxis()
    ax.set(xlabel="batch size (images per batch, log scale)",
           ylabel=f"test error (%), mean of the last {LATE:.0%} of training")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    f.suptitle(f"Test error vs batch size, CNN on mnist-5k (cf. {PAPER}, Fig. 1)\n"
               f"lr ∝ batch, same epochs\n{BANDS}", fontsize="medium")
    out.append((fig.save(f, folder / f"fig1_batch_size.{fmt}"),
                "Fig. 1 (G1–G4): test error (mean over the last 20% of training) vs batch size, BN and GN; "
                "look at how BN's error grows to the right (smaller batches) while GN's stays level."))

    curves = ctx.tables(GROUPS)["curves"]
    if "groups" not in curves:
        raise MissingData(f"the {GROUPS} tables have no groups column (one group count only)")
    f = fig.figure(6.4, 4.4)
    ax = f.subplots()
    _line(ax, late_errors(curves, ["groups"]), "groups", color=fig.norm_color("group"),
          label=f"GN at batch {REFERENCE}")
    bn = by_batch[(by_batch["norm"].astype(str) == "batch")
                  & (pd.to_numeric(by_batch["batch_size"]) == REFERENCE)]
    if len(bn):
        ax.axhline(float(bn["error"].iloc[0]), color=fig.norm_color("batch"), ls="--", lw=1.2,
                   label=f"BN at batch {REFERENCE}")
    names = {1: "1\n(LN)", COMMON.width: f"{COMMON.width}\n(IN)"}
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(GROUP_COUNTS), [names.get(g, str(g)) for g in GROUP_COUNTS])
    ax.set(xlabel=f"groups G (of {COMMON.width} channels, log scale)",
           ylabel=f"test error (%), mean of the last {LATE:.0%} of training")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", fontsize="small")
    f.suptitle(f"Test error vs group count, CNN on mnist-5k (cf. {PAPER}, Table 3)\n{BANDS}",
               fontsize="medium")
    out.append((fig.save(f, folder / f"table3_groups.{fmt}"),
                "Table 3 (G5–G7): test error (mean over the last 20% of training) vs the number of groups at "
                "batch 32; look at the middle "
                "(flat?) against the ends, one group (LN) and one channel per group (IN)."))
    return out


STUDY = Study(
    name="wu2018",
    title=f"{PAPER}, Fig. 1 and Table 3: group norm vs batch norm at small batches (CNN, MNIST)",
    description="Wu & He 2018 Fig. 1, Table 3: BN's and GN's test error as the batch shrinks from 32 to 2 "
                "(lr ∝ batch, same epochs), and GN's error vs its group count, on the 3-layer CNN",
    protocol=PROTOCOL, run=run, claims=CLAIMS, figures=draw)
