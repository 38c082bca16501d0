"""Issue 25: which measure of internal covariate shift, if any, predicts how well a normalization variant
trains? The PROTOCOL and the plan of its runs only, fixed before any of them: the analysis is
analyse/predictors.py (`ics meta`), whose thresholds are imported here so there is one source. Not yet
in the study registry (`ics reproduce predictors` once it is registered there).
"""

from __future__ import annotations

from dataclasses import replace

from ..analyse import predictors as rules
from ..analyse import ranks
from ..config import RunConfig
from ..net import norms
from ..sweep.run import Sweep
from .claims import PILOT_SEEDS

NAME = "predictors"
DECIDING_SEEDS = (0, 1, 2)          # rules.MIN_SEEDS: the fewest a verdict's interval may rest on
REPLICATION_SEEDS = (10, 11, 12)    # the same grid again: a verdict must come out the same on them
LRS = tuple(round(10 ** (k / 2), 6) for k in range(-6, 4))   # half decades, 0.001 … 31.6
PILOT_LRS = (0.001, 0.01, 0.1, 1.0, 10.0)                   # whole decades
STEPS, LOG_EVERY, EVAL_EVERY = 2000, 20, 40
SECOND_VIEW = dict(ics_every=10, landscape_every=10, sharpness_every=20, sharpness_iters=20,
                   sharpness_method="lanczos", second_view_until=max(rules.SENSITIVITY_WINDOWS))

BASE = RunConfig(dataset="mnist-5k", optimizer="sgd", momentum=0.0, weight_decay=0.0, batch_size=60,
                 steps=STEPS, log_every=LOG_EVERY, eval_every=EVAL_EVERY, probe="fixed", probe_size=512,
                 **SECOND_VIEW)
MODELS = {
    "sigmoid-mlp": replace(BASE, model="mlp", depth=3, width=100, activation="sigmoid"),
    "deep-relu-mlp": replace(BASE, model="mlp", depth=20, width=100, activation="relu", init="kaiming"),
    "cnn": replace(BASE, model="cnn", depth=3, width=32, activation="relu", init="kaiming"),
    "resmlp": replace(BASE, model="resmlp", depth=20, width=100, activation="relu", init="kaiming"),
}


def norms_of(model: str) -> list[str]:
    """Every norm of the registry that the model admits (instance norm: CNN only)."""
    return [n for n in norms.ORDER if (norms.REGISTRY[n].cnn if model == "cnn" else norms.REGISTRY[n].mlp)]


def plan(quick: bool = False, seeds: list[int] | None = None, pilot: bool = False) -> dict[str, Sweep]:
    """One group per model, and one per model for noisy batch norm (batch norm with Santurkar's noise,
    a norm variant the registry's axis cannot name). `pilot`: PILOT_SEEDS on whole-decade lrs.
    `quick`: the sigmoid MLP and the CNN, 500 steps, seeds 0 and 1 (decides nothing)."""
    chosen = list(PILOT_SEEDS if pilot else seeds or DECIDING_SEEDS)
    lrs = list(PILOT_LRS if pilot or quick else LRS)
    models = {k: MODELS[k] for k in (("sigmoid-mlp", "cnn") if quick else MODELS)}
    if quick:
        chosen = list(seeds or (0, 1))
    groups = {}
    for name, common in models.items():
        if quick:
            common = replace(common, steps=500, log_every=10, eval_every=10)
        groups[name] = Sweep(common=common, norms=norms_of(common.model), lrs=lrs, seeds=chosen,
                             batch_sizes=[common.batch_size])
        groups[f"{name}-noisy-batch"] = Sweep(common=replace(common, noise="santurkar"), norms=["batch"], lrs=lrs,
                                              seeds=chosen, batch_sizes=[common.batch_size])
    return groups


def runs_in(groups: dict[str, Sweep]) -> int:
    return sum(len(g.norms) * len(g.lrs) * len(g.seeds) for g in groups.values())


PROTOCOL = f"""\
**Question.** Does any measure of internal covariate shift, taken early in training, predict how well a
normalization variant trains, beyond what the learning rate and the plainest early signals (step size,
gradient norm, early loss and accuracy) already tell? Everything below is fixed before the runs whose
verdicts are reported; the rules and thresholds are those of `ics meta` (analyse/predictors.py, its
module docstring and docs/metrics.md, "Predictors of training").

| setting | value | why |
|---|---|---|
| models | sigmoid MLP 3×100 (Ioffe & Szegedy's), deep ReLU MLP 20×100 (He init), CNN 3×32 (ReLU, He init), residual MLP 20×100 (ReLU, He init) | a shallow saturating net, a deep plain one, a convolutional one and a residual one: a measure must hold across architectures, not in one |
| norms | every variant of the registry the model admits ({', '.join(norms.ORDER)}; instance norm on the CNN only), and noisy batch norm (`--norm batch --noise santurkar`) | noisy BN and batch-nograd dissociate drift from training in opposite directions: noisy BN adds drift and still trains (Santurkar et al. 2018), batch-nograd keeps BN's forward pass and loses its benefit; a measure that predicts must rank both right |
| learning rates | {', '.join(f'{lr:g}' for lr in LRS)} (half decades) | from too small to train in {STEPS} steps to divergent for every norm: the lr confounder must span its whole effect |
| steps, batch, data | {STEPS} plain SGD steps of 60 on mnist-5k (4,000 training, 1,000 test digits) | within a CPU budget; the question is about ranking, not about reaching the state of the art |
| cadences | activations every {LOG_EVERY} steps, test set every {EVAL_EVERY}; gradient ICS and landscape every 10 steps, sharpness (Lanczos, 20 products) every 20, all only in the first {SECOND_VIEW['second_view_until']:g} of the run (`--second-view-until`) | the windows {rules.WINDOW:g} (deciding) and {', '.join(f'{w:g}' for w in rules.SENSITIVITY_WINDOWS)} (sensitivity) each hold at least two log steps and one evaluation: {int(min(rules.SENSITIVITY_WINDOWS) * STEPS)} steps hold {int(min(rules.SENSITIVITY_WINDOWS) * STEPS) // LOG_EVERY} log steps |
| seeds | deciding {', '.join(map(str, DECIDING_SEEDS))}; replication {', '.join(map(str, REPLICATION_SEEDS))} (the same grid, run after the verdicts are written: a verdict that changes on them is reported as not replicated); pilot {', '.join(map(str, PILOT_SEEDS))} | three is the fewest a verdict's interval may rest on (MIN_SEEDS); the pilot decides nothing |

**Verdicts** (per measure and outcome; final test accuracy is the primary outcome, steps to target and
divergence are secondary): "predicts" when the {ranks.CONFIDENCE:.0%} seed-bootstrap interval of the
granulated Kendall τ across norms (at fixed model and lr) lies wholly beyond ±{rules.TAU_MIN}, the
measure beats every confounder's |τ| or keeps a conditional mutual information given the lr above its
permutation null (p < {rules.CMI_ALPHA}), and its worst norm environment's noise-filtered sign error is
below {rules.SIGN_ERROR_MAX}; "proxy of a confounder only", "does not predict", "inconclusive" and "not
recorded" as `ics meta` defines them; with fewer than {rules.MIN_SEEDS} seeds or {rules.MIN_PAIRS} pairs
of norms behind an interval, "inconclusive". Controls: early training loss must predict final accuracy,
initial sharpness × lr must predict divergence, a measure shuffled across runs (seed
{rules.SHUFFLE_SEED}) must not predict anything; otherwise every verdict is "machinery failed". Where
sharpness × lr is recorded, every statistic is also given below the edge of stability (< {rules.EDGE:g})
and at it (≥ {rules.EDGE:g}).

**Pilot, before anything decides.** The same models and norms on whole-decade lrs
({', '.join(f'{lr:g}' for lr in PILOT_LRS)}), seeds {', '.join(map(str, PILOT_SEEDS))}
({runs_in(plan(pilot=True))} runs). It gives each outcome's seed SD and each measure's bootstrap interval
width at three seeds; the deciding grid keeps three seeds if the τ intervals of the pilot are at most
{rules.TAU_MIN} wide on half of the measures, and otherwise takes the fewest seeds that would make them so
(the width shrinks as one over the square root of the seeds), within the budget below. The pilot also
checks that the lr grid reaches divergence for every norm and a failure to train at its low end, and
extends it by half decades if not. The pilot's numbers and the choice it led to are reported; its runs
are not part of any verdict.

**Cost.** {runs_in(plan())} deciding runs ({len(MODELS)} models × their norms + noisy BN × {len(LRS)} lrs ×
{len(DECIDING_SEEDS)} seeds), as many again to replicate. A run is {STEPS} steps plus about 25% for the
evaluations and, in the first 20%, about 900 step-equivalents of second-view measurements (per measured
step, in training steps of the default MLP: gradient ICS 2.6, landscape 5.6, sharpness 28; DEVELOPERS.md,
issue 10). On the 2-core machine: about 4 s per sigmoid-MLP run, 15 s per deep or residual MLP run and
30 s per CNN run, so about 5 hours for the deciding grid with 2 processes, as long again for
replication; diverging runs stop early and cost less. Not affordable in a session; `ics reproduce
predictors --backend ray --ray-address auto` spreads the runs over a cluster (one run per CPU), where
the same wall clock buys a larger grid: more seeds (narrower τ intervals, fewer "inconclusive"), a
quarter-decade lr grid, momentum and Adam as further environments (the edge of stability moves with
them), and CIFAR-10 with the VGG and ResNet models, so that "predicts" is tested where the measures were
proposed.

**Quick mode** (`--quick`): the sigmoid MLP and the CNN, whole-decade lrs, 500 steps, seeds 0 and 1: a
check that the pipeline runs; with two seeds every verdict is "inconclusive" or "machinery failed".
"""
