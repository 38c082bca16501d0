"""Ioffe (2017), "Batch Renormalization", Sec. 4: small and non-i.i.d. mini-batches.

Batch norm trains on the statistics of its mini-batch and is evaluated with population statistics
(the moving averages). When the batch statistics are poor estimates of the population's, the two
disagree: with micro-batches of 4 and with non-i.i.d. batches of 2 images per class the network's
accuracy with population statistics drops against i.i.d. training, and batch renormalization, which
corrects the batch statistics towards the moving averages by r and d in training, recovers most of
it. Scaled down from Inception-v3 on ImageNet to the project's CNN on
mnist-5k.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..analyse.keys import match_rows
from ..config import RunConfig
from ..sweep.run import Sweep
from . import figures as fig
from .claims import Claim, Measurement, MissingData, Study, directional, fmt_ci, interval, measurement, paired
from .context import Context, Plan, listing, run_groups

PAPER = "Ioffe 2017"
NORMS = ("batch", "batch-renorm")

# --------------------------------------------------------------------------- protocol
# Every threshold below was fixed before the study's first full run and is the same for every norm.

DROP = 0.0          # R1, R3, R5: a drop = BN's accuracy i.i.d. minus non-i.i.d. above 0
RECOVER = 0.5       # R2, R4, R6: "most of the drop" = at least half of it
CHANCE = 0.1        # a diverged run's accuracy (its weights are unusable)
MICRO = 4           # the paper's micro-batches of 4
BATCH = 60          # the project's batch (the paper's was 32)
PAIRED_BATCHES = (20, 10)    # 2 images per class, as the paper's; on MNIST's 10 classes at most 20

# Every value spelled out, so a change of a project default cannot change the study.
COMMON = RunConfig(dataset="mnist-5k", binarize=False, model="cnn", depth=3, width=32, activation="relu",
                   init="xavier", eps=1e-5, bn_momentum=0.1, optimizer="sgd", lr=0.5, momentum=0.0,
                   weight_decay=0.0, batch_size=BATCH, probe="fixed", probe_size=512, track_units=1,
                   bn_eval="ema", renorm_rmax=3.0, renorm_dmax=5.0, eval_batchstats=False)
FULL = dict(seeds=[0, 1, 2, 3, 4], steps=300, log_every=25)
QUICK = dict(seeds=[0, 1], steps=40, log_every=20)

# Each setting: a group of runs with its i.i.d. baseline (BN) and its small or non-i.i.d. runs (BN, BR).
MICRO_GROUP = "micro"
SETTINGS = {MICRO_GROUP: f"micro-batches of {MICRO} in batches of {BATCH}",
            **{f"paired{b}": f"paired batches of {b} ({b // 2} classes × 2)" for b in PAIRED_BATCHES}}


def plan(quick: bool, seeds: list[int] | None = None) -> dict[str, Sweep]:
    p = QUICK if quick else FULL
    seeds = seeds or p["seeds"]
    common = replace(COMMON, steps=p["steps"], log_every=p["log_every"], eval_every=p["log_every"])

    def grid(norms, batch, **options) -> Sweep:
        return Sweep(common=replace(common, **options), norms=list(norms), lrs=[COMMON.lr], seeds=seeds,
                     batch_sizes=[batch])
    groups = {MICRO_GROUP: Plan(groups={"iid": grid(["batch"], BATCH),
                                        "small": grid(NORMS, BATCH, micro_batch=MICRO)})}
    for b in PAIRED_BATCHES:
        groups[f"paired{b}"] = Plan(groups={"iid": grid(["batch"], b),
                                            "small": grid(NORMS, b, batch_sampler="paired")})
    return groups     # the micro-batch group first: its runs are the longest


def run(out: Path, quick: bool = False, jobs: int | None = None, on_outcome=None,
        seeds: list[int] | None = None) -> Context:
    return run_groups(out, plan(quick, seeds), quick=quick, jobs=jobs, on_outcome=on_outcome)


PROTOCOL = f"""\
Every value, metric and threshold below was fixed before the study's first full run and is the same
for both norms: batch norm (`batch`) and batch renormalization (`batch-renorm`) train with the same
network, learning rate, batches and steps, and are both evaluated with their moving averages
(`--bn-eval ema`: the population statistics the paper uses at inference).

**Scaled down.** The paper trains Inception-v3 on ImageNet (batches of 32 on each of 50 synchronized workers).
Here: the project's CNN on `mnist-5k` (4,000 standardized training images, 1,000 test images):
{COMMON.depth} blocks of 3×3 convolutions with stride 2 and {COMMON.width} channels, each followed by
the norm and ReLU, global average pooling and a linear head; Glorot init; plain SGD at lr
{COMMON.lr:g} (the project's shared lr, the note study's) with no momentum; {FULL['steps']} steps;
the whole study in about 5 minutes on 2 CPU cores. A CNN rather than the MLP because on an MLP each
unit's statistics over 4 images are nearly degenerate (4 values forced to mean 0 and variance 1),
while a CNN's channel statistics also run over the spatial positions, as in the paper's network.

| group | i.i.d. baseline | small or non-i.i.d. runs | used by |
|---|---|---|---|
| `{MICRO_GROUP}` | BN, batch {BATCH} | BN and batch renorm, batch {BATCH} normalized over micro-batches of {MICRO} (`--micro-batch {MICRO}`: the gradient is accumulated over the whole batch, so only the statistics change) | R1, R2 |
| `paired20` | BN, batch 20, i.i.d. | BN and batch renorm, batch 20, `--batch-sampler paired`: 10 classes × 2 images | R3, R4 |
| `paired10` | BN, batch 10, i.i.d. | BN and batch renorm, batch 10, paired: 5 classes × 2 images | R5, R6 |

* **Non-i.i.d. batches.** The paper's batches of 32 hold 16 of ImageNet's 1,000 classes × 2 images.
  MNIST has 10 classes, so a paired batch holds at most 10 × 2 = 20 images, and it is compared with
  i.i.d. batches of the same size (the paper compares with its i.i.d. batches of 32). At 20 every
  batch holds every class twice: class-balanced, non-i.i.d. only through the pairing. At 10 each batch
  holds 5 of the 10 classes, a different subset each time: closer to the paper's (a batch sees a small
  subset of the classes), so both are run.
* **Batch renorm** (`--norm batch-renorm`, Alg. 1): r_max {COMMON.renorm_rmax:g} and d_max
  {COMMON.renorm_dmax:g}, the paper's, on the paper's schedule scaled to the run (`docs/metrics.md`):
  plain BN (r = 1, d = 0) for the first steps/16, then d_max ramps linearly from 0 to {COMMON.renorm_dmax:g}
  by 5·steps/16 and r_max from 1 to {COMMON.renorm_rmax:g} by steps/2 (the paper's 5k : 25k : 40k).
  Moving-average momentum {COMMON.bn_momentum:g} (torch's convention) for both norms.
* **Metric.** Final test accuracy with the moving averages, per run (a diverged run counts at chance,
  {CHANCE}). Test accuracy every {FULL['log_every']} steps for the curves.
* **Drop (R1, R3, R5).** BN i.i.d. − BN small/non-i.i.d., paired by seed (same init, same probe);
  PASS when the 95% interval lies above {DROP:g}.
* **Recovery (R2, R4, R6).** "Most of the drop" = at least {RECOVER:.0%} of it: per seed the contrast
  BR − BN − {RECOVER:g} × (BN i.i.d. − BN), i.e. batch renorm's accuracy minus the point
  {RECOVER:.0%} of the way from BN's small/non-i.i.d. accuracy to its i.i.d. one; PASS when the 95%
  t-interval of the contrast lies above 0, FAIL when below. Read beside the drop: where BN does not
  drop, there is nothing to recover and the contrast only says whether batch renorm beats BN's mean.
* **Seeds**: {len(FULL['seeds'])} ({listing(FULL['seeds'])}), paired by seed (same init stream and
  probe batch; the i.i.d. and paired samplers draw different batches).
* **Cost.** A micro-batched step runs {BATCH // MICRO} forward and backward passes of {MICRO} images (about
  4× a batch-60 step of this CNN, 5× with batch renorm), so {FULL['steps']} steps
  ({FULL['steps'] * BATCH / 4000:.1f} epochs at batch {BATCH}) keep the study near 5 minutes on 2 cores;
  the batch-statistics test pass is skipped (`--no-eval-batchstats`: no claim reads it).
* **Timing pilots** (before any full run; they set only the step count): single runs of the CNN with
  BN at batch 60 (200 steps), BN and batch renorm with micro-batches of 4 (100 steps), and paired
  batches of 20 and 10 (200 steps), timed on this machine's 2 shared cores.

Quick mode (`--quick`): seeds {listing(QUICK['seeds'])}, {QUICK['steps']} steps; everything else the
same. Verdicts may be INCONCLUSIVE.
"""


# --------------------------------------------------------------------------- per-run quantities


def final_acc(run) -> float:
    """Final test accuracy (with the run's --bn-eval statistics); a diverged run counts at chance."""
    if run.status == "diverged":
        return CHANCE
    value = ((run.summary or {}).get("final") or {}).get("test_acc")
    if value is None:
        logged = pd.to_numeric(run.table("metrics")["test_acc"], errors="coerce").dropna()
        return float(logged.iloc[-1]) if len(logged) else math.nan
    return float(value)


def _accs(ctx: Context, group: str, **where) -> dict[int, float]:
    return {s: final_acc(r) for s, r in ctx.by_seed(group, **where).items()}


def _settings(group: str) -> tuple[dict, dict]:
    """The config values of a group's i.i.d. baseline and of its small or non-i.i.d. runs."""
    if group == MICRO_GROUP:
        return {"micro_batch": None, "batch_size": BATCH}, {"micro_batch": MICRO, "batch_size": BATCH}
    b = int(group.removeprefix("paired"))
    return ({"batch_sampler": "iid", "batch_size": b}, {"batch_sampler": "paired", "batch_size": b})


def accuracies(ctx: Context, group: str) -> dict[str, dict[int, float]]:
    """Per seed, final test accuracy of BN i.i.d. (`iid`), BN and BR in the group's setting."""
    iid, small = _settings(group)
    return {"iid": _accs(ctx, group, norm="batch", **iid), "batch": _accs(ctx, group, norm="batch", **small),
            "batch-renorm": _accs(ctx, group, norm="batch-renorm", **small)}


# --------------------------------------------------------------------------- claims


def _mean(values: dict) -> float:
    return interval(values.values()).mean


def measure_drop(ctx: Context, group: str) -> Measurement:
    acc = accuracies(ctx, group)
    d = paired(acc["iid"], acc["batch"])
    seen = (f"With {SETTINGS[group]}, BN's final test accuracy with its moving averages is "
            f"{_mean(acc['batch']):.3f} against {_mean(acc['iid']):.3f} with i.i.d. batches of the same "
            f"size (batch renorm: {_mean(acc['batch-renorm']):.3f}); drop i.i.d. − non-i.i.d. "
            f"{fmt_ci(*d[:3])} (paired by seed).")
    return measurement(d, directional(d.lo, d.hi, ">", DROP), seen)


def measure_recovery(ctx: Context, group: str) -> Measurement:
    acc = accuracies(ctx, group)
    seeds = sorted(set(acc["iid"]) & set(acc["batch"]) & set(acc["batch-renorm"]))
    if not seeds:
        raise MissingData(f"no seed with all three runs in {group}")
    contrast = {s: acc["batch-renorm"][s] - acc["batch"][s] - RECOVER * (acc["iid"][s] - acc["batch"][s])
                for s in seeds}
    iv = interval(contrast.values())
    gap = sum(acc["iid"][s] - acc["batch"][s] for s in seeds) / len(seeds)
    gained = sum(acc["batch-renorm"][s] - acc["batch"][s] for s in seeds) / len(seeds)
    share = f"{gained / gap:.0%} of it" if gap > 0 else "no drop to recover"
    seen = (f"With {SETTINGS[group]}, batch renorm ends at {_mean(acc['batch-renorm']):.3f} against BN's "
            f"{_mean(acc['batch']):.3f} (i.i.d. BN {_mean(acc['iid']):.3f}): BN's drop {gap:+.3f}, batch "
            f"renorm's gain {gained:+.3f} ({share}); contrast BR − BN − {RECOVER:g} × drop "
            f"{fmt_ci(*iv[:3])} (t-interval over seeds).")
    return measurement(iv, directional(iv.lo, iv.hi, ">", 0.0), seen)


def _claims() -> list[Claim]:
    source = {MICRO_GROUP: f"{PAPER}, Sec. 4 (small minibatches)",
              "paired20": f"{PAPER}, Sec. 4 (non-i.i.d. minibatches)",
              "paired10": f"{PAPER}, Sec. 4 (non-i.i.d. minibatches)"}
    paper = {MICRO_GROUP: ("as we read Sec. 4: with micro-batches of 4 BN ends a few points below "
                           "i.i.d. batches of 32",
                           "as we read Sec. 4: batch renorm ends between the two, much of the drop "
                           "recovered"),
             "paired20": ("as we read Sec. 4: BN's accuracy with population statistics falls well below "
                          "i.i.d. training", "as we read Sec. 4: batch renorm comes close to i.i.d. training")}
    paper["paired10"] = paper["paired20"]
    words = {MICRO_GROUP: f"micro-batches of {MICRO} (in batches of {BATCH})",
             "paired20": "paired (non-i.i.d.) batches of 20: 10 classes × 2 images",
             "paired10": "paired (non-i.i.d.) batches of 10: 5 classes × 2 images"}
    base = {MICRO_GROUP: f"i.i.d. batches of {BATCH}", "paired20": "i.i.d. batches of 20",
            "paired10": "i.i.d. batches of 10"}
    out = []
    for k, group in enumerate(SETTINGS):
        drop_id, recover_id = f"R{2 * k + 1}", f"R{2 * k + 2}"
        out += [
            Claim(drop_id, f"With {words[group]}, batch norm's test accuracy with population statistics (moving "
                           f"averages) drops against {base[group]}.", source[group],
                  f"final test accuracy (bn-eval ema) of BN, {base[group]} − {words[group]}, paired by seed",
                  f"difference > {DROP:g}", paper[group][0],
                  lambda ctx, g=group: measure_drop(ctx, g)),
            Claim(recover_id, f"With {words[group]}, batch renormalization recovers most (≥ {RECOVER:.0%}) of "
                              f"batch norm's drop.", source[group],
                  f"per seed BR − BN − {RECOVER:g} × (BN {base[group]} − BN), final test accuracy with moving "
                  "averages; t-interval over seeds",
                  "contrast > 0", paper[group][1], lambda ctx, g=group: measure_recovery(ctx, g)),
        ]
    return out


CLAIMS = _claims()


# --------------------------------------------------------------------------- figures

STYLE = {"iid": ("batch", "--", "BN, i.i.d. baseline"), "batch": ("batch", "-", "BN"),
         "batch-renorm": ("batch-renorm", "-", "batch renorm")}


def draw(ctx: Context, folder: Path, fmt: str = "png") -> list[tuple[Path, str]]:
    f = fig.figure(4.2 * len(SETTINGS), 4.2)
    axes = f.subplots(1, len(SETTINGS), sharey=True)
    for ax, group in zip(axes, SETTINGS):
        curves = ctx.tables(group)["curves"]
        iid, small = _settings(group)
        for line, (norm, ls, label) in STYLE.items():
            d = match_rows(curves, {"norm": norm, **(iid if line == "iid" else small)}).sort_values("step")
            fig.band(ax, d, "step", "test_acc", color=fig.norm_color(norm), label=label, ls=ls)
        ax.set(xlabel="training step", title=SETTINGS[group])
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    axes[0].set_ylabel("test accuracy (moving-average statistics)")
    axes[0].set_ylim(0.5, 1.0)
    f.suptitle(f"Small and non-i.i.d. batches: BN vs batch renorm, evaluated with population statistics "
               f"(cf. {PAPER}, Sec. 4)\n{fig.BAND_NOTE}", fontsize="medium")
    path = fig.save(f, Path(folder) / f"accuracy.{fmt}")
    return [(path, "R1–R6: test accuracy with the moving averages per setting; look at how far BN's solid line "
                   "ends below its dashed i.i.d. baseline, and how much of that batch renorm recovers.")]


STUDY = Study(
    name="ioffe2017",
    title=f"{PAPER}, Sec. 4: batch renorm with micro-batches and non-i.i.d. batches (MNIST CNN)",
    description="Ioffe 2017 Sec. 4: BN's population-statistics accuracy with micro-batches of 4 and paired "
                "(non-i.i.d.) batches, and how much of the drop batch renorm recovers",
    protocol=PROTOCOL, run=run, claims=CLAIMS, figures=draw)
