"""Issue 25: which measure of internal covariate shift, if any, predicts how well a normalization variant
trains? The PROTOCOL and the plan of its runs, fixed before any of them: the analysis is
analyse/predictors.py (`ics meta`), whose thresholds are imported here so there is one source; the
runner (pilot, sizing, deciding grid, replication, README) is studies/predictors_run.py.
"""

from __future__ import annotations

from dataclasses import replace

from ..analyse import predictors as rules
from ..analyse import ranks
from ..analyse.predictor_table import TARGET_FRACTION
from ..config import RunConfig
from ..net import norms
from ..sweep.run import Sweep
from .claims import PILOT_SEEDS

NAME = "predictors"
# Fresh seeds for the third protocol: 0-2 and 10-12 decided and replicated the second, whose data were seen
# when this one was written (threshold history).
DECIDING_SEEDS = (20, 21, 22)       # rules.MIN_SEEDS: the fewest a verdict's interval may rest on
REPLICATION_SEEDS = (30, 31, 32)    # the same grid again: a verdict must come out the same on them
LRS = tuple(round(10 ** (k / 2), 6) for k in range(-3, 4))   # half decades, 0.0316 … 31.6
PILOT_LRS = (LRS[0], LRS[len(LRS) // 2 - 1], LRS[-1])        # both ends of the grid and its middle
STEPS, LOG_EVERY, EVAL_EVERY = 500, 10, 10
SECOND_VIEW = dict(ics_every=5, landscape_every=5, sharpness_every=10, sharpness_iters=10,
                   sharpness_method="lanczos", second_view_until=max(rules.SENSITIVITY_WINDOWS))
BUDGET_S = 3600          # the whole study (pilot, grids and analyses) on 2 cores, from empty folders
MAX_SEEDS = 10           # the most deciding seeds the pilot may ask for
QUICK_STEPS = 150
QUICK_SEEDS = (0, 1)

BASE = RunConfig(dataset="mnist-5k", optimizer="sgd", momentum=0.0, weight_decay=0.0, batch_size=60,
                 steps=STEPS, log_every=LOG_EVERY, eval_every=EVAL_EVERY, eval_batchstats=False, probe="fixed",
                 probe_size=512, **SECOND_VIEW)
MODELS = {
    "sigmoid-mlp": replace(BASE, model="mlp", depth=3, width=100, activation="sigmoid"),
    "cnn": replace(BASE, model="cnn", depth=3, width=8, activation="relu", init="kaiming"),
    "resmlp": replace(BASE, model="resmlp", depth=10, width=100, activation="relu", init="kaiming"),
}


def norms_of(model: str) -> list[str]:
    """Every norm of the registry that the model admits (instance norm: CNN only)."""
    return [n for n in norms.ORDER if (norms.REGISTRY[n].cnn if model == "cnn" else norms.REGISTRY[n].mlp)]


def plan(quick: bool = False, seeds: list[int] | None = None, pilot: bool = False) -> dict[str, Sweep]:
    """One group per model, and one per model for noisy batch norm (batch norm with Santurkar's noise,
    a norm variant the registry's axis cannot name). `pilot`: PILOT_SEEDS on PILOT_LRS.
    `quick`: the sigmoid MLP and the CNN, QUICK_STEPS steps, seeds 0 and 1 (decides nothing)."""
    chosen = list(PILOT_SEEDS if pilot else seeds or DECIDING_SEEDS)
    lrs = list(PILOT_LRS if pilot or quick else LRS)
    models = {k: MODELS[k] for k in (("sigmoid-mlp", "cnn") if quick else MODELS)}
    if quick:
        chosen = list(seeds or QUICK_SEEDS)
    groups = {}
    for name, common in models.items():
        if quick:
            common = replace(common, steps=QUICK_STEPS, log_every=3, eval_every=3, ics_every=3, landscape_every=3,
                             sharpness_every=3)
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
gradient norm, early loss and accuracy, the norm's family, the edge of stability) already tell? This is
the study's third protocol: the second ran to its replication and was red-teamed twice (reviews below);
this one answers the second review and the 60-minute budget, and is fixed, with fresh seeds, before any of
its runs (threshold history). The rules and thresholds are those of `ics meta` (analyse/predictors.py, its
module docstring and docs/metrics.md, "Predictors of training").

| setting | value | why |
|---|---|---|
| models | sigmoid MLP 3×100 (Ioffe & Szegedy's), CNN 3×8 (ReLU, He init), residual MLP 10×100 (ReLU, He init) | a shallow saturating net, a convolutional one and a deep residual one: a measure must hold across architectures, not in one (the second protocol's deep plain ReLU MLP, a third of its cost, is left to a cluster run) |
| norms | every variant of the registry the model admits ({', '.join(norms.ORDER)}; instance norm on the CNN only), and noisy batch norm (`--norm batch --noise santurkar`) | noisy BN and batch-nograd dissociate drift from training in opposite directions: noisy BN adds drift and still trains (Santurkar et al. 2018), batch-nograd keeps BN's forward pass and loses its benefit; a measure that predicts must rank both right |
| learning rates | {', '.join(f'{lr:g}' for lr in LRS)} (half decades) | from too small to train in {STEPS} steps to divergent for every norm: the lr confounder must span its whole effect |
| steps, batch, data | {STEPS} plain SGD steps of 60 on mnist-5k (4,000 training, 1,000 test digits) | 7.5 epochs, within the CPU budget below; the question is about ranking, not about reaching the state of the art |
| cadences | activations every {LOG_EVERY} steps, test set every {EVAL_EVERY} (running statistics only: no batch-statistics pass, which no candidate reads); gradient ICS and landscape every {SECOND_VIEW['ics_every']} steps, sharpness (Lanczos, {SECOND_VIEW['sharpness_iters']} products) every {SECOND_VIEW['sharpness_every']}, all only in the first {SECOND_VIEW['second_view_until']:g} of the run (`--second-view-until`) | the windows {rules.WINDOW:g} (deciding) and {', '.join(f'{w:g}' for w in rules.SENSITIVITY_WINDOWS)} (sensitivity) each hold at least two log steps and one evaluation: {int(min(rules.SENSITIVITY_WINDOWS) * STEPS)} steps hold {int(min(rules.SENSITIVITY_WINDOWS) * STEPS) // LOG_EVERY} log steps |
| seeds | deciding {DECIDING_SEEDS[0]}, {DECIDING_SEEDS[1]}, … (at least {len(DECIDING_SEEDS)}, as many as the pilot asks for within the budget, at most {MAX_SEEDS}); replication {REPLICATION_SEEDS[0]}, {REPLICATION_SEEDS[1]}, … (as many: the same grid, run after the verdicts are written: a verdict that changes on them is reported as not replicated); pilot {', '.join(map(str, PILOT_SEEDS))} | three is the fewest a verdict's interval may rest on (MIN_SEEDS); the pilot decides nothing |

**Verdicts** (per measure and outcome; final test accuracy is the primary outcome, steps to target and
divergence are secondary; the rules as revised after the second protocol's review, frozen before any run
of this one: threshold history). Accuracy and steps to target are decided on the configurations with no
seed diverged, at every lr (the deciding regime is not chosen by sharpness); divergence on the
configurations whose every seed was still finite at the window's end (a blow-up inside the window is
read by the measures, not predicted by them); the verdict the same rules give on all runs is reported
beside. "predicts" when the {ranks.CONFIDENCE:.0%} seed-bootstrap interval of the granulated Kendall τ
across norms (at fixed model and lr) lies wholly beyond ±{rules.TAU_MIN} and its norm-label permutation
p-value is below {rules.LABEL_ALPHA}, the measure beats every confounder's |τ| (log lr, effective step,
early gradient norm, early test accuracy, early training loss, the norm family `batch_stats`, sharpness ×
lr `edge`) or its partial τ given early training loss, early test accuracy, the family and the edge has
its interval on τ's side of 0, no model's own τ across norms is {rules.TAU_MIN} or more the other way, and
the mean and upper quartile over norm environments (cells with at least {rules.MIN_PAIRS} pairs outside seed
noise) of the noise-filtered sign error are below {rules.SIGN_ERROR_MAX} ("predicts on average, not in every
environment" when only the mean is); "proxy of a confounder only", "does not predict", "inconclusive" and
"not recorded" as `ics meta` defines them; with fewer than {rules.MIN_SEEDS} seeds or {rules.MIN_PAIRS}
pairs of norms behind an interval, "inconclusive". Steps to target: the first evaluation reaching
{TARGET_FRACTION:g} × the best configuration mean of the same model. Controls: early training loss must rank
final accuracy, initial sharpness × lr must rank divergence (all runs), and neither a measure shuffled
across runs nor one value per configuration shuffled across configurations (seed {rules.SHUFFLE_SEED})
may rank anything; otherwise every verdict is "machinery failed". τ across norms and the sign errors are
also given on all runs, below the edge of stability (early sharpness × lr < {rules.EDGE:g}) and at it.

**Pilot, before anything decides.** The same models and norms at both ends of the lr grid and its
middle ({', '.join(f'{lr:g}' for lr in PILOT_LRS)}), seeds {', '.join(map(str, PILOT_SEEDS))}
({runs_in(plan(pilot=True))} runs), analysed by `ics meta` like the deciding grid. It sizes the seeds:
a verdict needs the τ interval either wholly beyond ±{rules.TAU_MIN} or wholly inside it, so an interval
wider than {2 * rules.TAU_MIN:g} can only say "inconclusive". With W the median width, over the candidate
measures (role `measure`) and the primary outcome, of the pilot's τ-across-norms intervals at three
seeds, the deciding grid takes n = ⌈3·(W/{2 * rules.TAU_MIN:g})²⌉ seeds (the width shrinks as 1/√n), at least
{len(DECIDING_SEEDS)}, at most {MAX_SEEDS}, and at most what the budget affords: the pilot's own wall time
and its analysis give the time per seed of the deciding grid and of its analysis (scaled by its
{len(LRS)} lrs against the pilot's {len(PILOT_LRS)}), and the pilot plus deciding and replication grids and
their analyses must fit {BUDGET_S // 60} minutes. When
the budget affords fewer seeds than the width asks for, the README says so and the verdicts whose
intervals stay too wide come out "inconclusive" (underpowered, not read). The pilot also checks, per model
and norm, that the grid's low end trains to less than the best lr and that its high end diverges or
trains worse; a norm for which it does not is listed in the README (the grid is not extended within
this budget). The pilot's numbers and the choice they led to are reported; its runs decide nothing.

**Cost.** {runs_in(plan())} deciding runs at three seeds ({len(MODELS)} models × their norms + noisy BN ×
{len(LRS)} lrs × 3 seeds), as many again to replicate. The second protocol (four models, eight lrs,
activations every 5 steps, a batch-statistics test pass) took about 12.7 minutes of the 2 cores per seed
of its grid, 132 minutes from empty folders in all; this one drops the deep plain MLP (a third of that
cost), the lr 0.01 (too small to train for most norms in {STEPS} steps), every second activation pass and
the batch-statistics pass. The whole study's wall time from empty folders is in its README. The budget is
why the grid is small (the first protocol, 2000 steps, depth 20, CNN width 32, ten lrs, about five hours
for the deciding grid, was shrunk before any run; threshold history). `ics reproduce predictors --backend ray --ray-address auto` spreads the
runs over a cluster (one run per CPU), where the same wall clock buys a larger grid: more seeds
(narrower τ intervals, fewer "inconclusive"), a quarter-decade lr grid, the deeper and wider models,
momentum and Adam as further environments (the edge of stability moves with them), and CIFAR-10 with
the VGG and ResNet models, so that "predicts" is tested where the measures were proposed.

**Quick mode** (`--quick`): the sigmoid MLP and the CNN, the pilot's three lrs, {QUICK_STEPS} steps,
seeds {QUICK_SEEDS[0]} and {QUICK_SEEDS[1]}: a check that the pipeline runs; with two seeds every verdict is "inconclusive" or
"machinery failed".
"""
