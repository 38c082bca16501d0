"""Findings in plain words: a few sentences a student understands, written from the verdicts.

Each sentence belongs to one claim, says what was measured whatever the verdict turned out to be
(one wording per verdict), and points to the claim and its figure. Nothing here computes a number:
every value is read from a study's verdicts.csv.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .claims import FAIL, INCONCLUSIVE, PASS
from ..store import files
from ..store.files import read_json

INTRO = ("This project started from a course note on batch normalization. Each of its claims, and "
         "those of the papers that tested it (Ioffe & Szegedy 2015, Santurkar et al. 2018, Bjorck et al. "
         "2018, and on what a batch is: Wu & He 2018, Ba et al. 2016, Ioffe 2017, Wu & Johnson 2021), "
         "became a test fixed before the runs, one that data can fail, with seeds sized by a pilot. Only "
         "verdicts that a red-team review left standing are findings here; most claims came out "
         "underpowered, design checks or undecided (each study's README says why).")

# (study, claim, figures (globs under the results folder), {verdict: sentence}); {m} is the claim's
# measured value, {ci} that value with its interval, {neg} −100·m rounded (points of accuracy).
SENTENCES = [
    ("note", "N4a", [], {
        FAIL: "The note's recipe for undoing batch norm is wrong: with γ = variance and β = mean the layer "
              "is not the identity (off by up to {m:.3g} on a real batch); it takes γ = sqrt(var + eps), "
              "as Ioffe & Szegedy write (N4b).",
        PASS: "The note's recipe for undoing batch norm (γ = variance, β = mean) reproduced the input "
              "(deviation {m:.2g}).",
        INCONCLUSIVE: "Whether the note's recipe γ = variance, β = mean undoes batch norm was not measured."}),
    ("ioffe2015", "I4", ["default/drift_mlp.*", "ioffe2015/figures/fig1bc_sigmoid_input.*"], {
        PASS: "Batch norm did make the inputs of its layers drift less, measured in units of each unit's "
              "own spread where the measurement is not true by construction (difference {ci} standard "
              "deviations, summed over training); but "
              "Santurkar et al. (2018) argue this is not why it helps: batch norm with injected noise "
              "drifts more and, in their VGG, still trains as well (S2 and S1 test that here).",
        FAIL: "Batch norm did not make the inputs of its layers drift less, measured in units of each "
              "unit's own spread where the measurement is not true by construction (difference {ci} "
              "standard deviations), "
              "in line with Santurkar et al. (2018), who find that batch norm's benefit is not a "
              "reduction of internal covariate shift.",
        INCONCLUSIVE: "Whether batch norm makes the inputs of its layers drift less could not be decided "
                      "(difference {ci}); Santurkar et al. (2018) argue that reduced internal covariate "
                      "shift is not why batch norm helps in any case."}),
    ("ioffe2015", "I2", ["ioffe2015/figures/fig1a_accuracy.*"], {
        PASS: "With batch norm the sigmoid MLP of Ioffe & Szegedy's Fig. 1 reached 95% of the baseline's "
              "final accuracy in {m:.2g}× the baseline's steps ({ci}): much faster, as the paper says.",
        FAIL: "With batch norm the sigmoid MLP of Ioffe & Szegedy's Fig. 1 did not reach 95% of the "
              "baseline's final accuracy in half the steps (ratio {ci}).",
        INCONCLUSIVE: "Whether batch norm halves the steps the sigmoid MLP of Fig. 1 needs could not be "
                      "decided (ratio {ci})."}),
    ("note", "N7", ["note/figures/lr_tolerance*.*"], {
        PASS: "Batch norm let the default MLP train at learning rates {m:.3g}× larger ({ci}) than without "
              "it, at least the half decade that \"much larger\" asks for; Bjorck et al. (2018) see this "
              "larger usable learning rate as batch norm's main gift.",
        FAIL: "Batch norm let the default MLP train at learning rates only {m:.3g}× larger ({ci}) than "
              "without it: less than the half decade that \"much larger\" asks for on this small network.",
        INCONCLUSIVE: "Batch norm let the default MLP train at learning rates {m:.3g}× larger ({ci}) than "
                      "without it; whether that is the half decade \"much larger\" asks for could not be "
                      "decided at the grid's resolution."}),
    ("note", "N10", ["note/figures/cnn_accuracy.*"], {
        PASS: "At one shared learning rate, every normalization made the CNN reach 90% test accuracy in "
              "fewer steps than no normalization.",
        FAIL: "At one shared learning rate, not every normalization made the CNN reach 90% test accuracy "
              "sooner than no normalization (the deciding variant: {ci} steps): \"normalization makes "
              "training faster\" is not true of every variant.",
        INCONCLUSIVE: "Whether every normalization makes the CNN reach 90% test accuracy sooner at a shared "
                      "learning rate could not be decided (the deciding variant: {ci} steps)."}),
    ("note", "N3", ["note/figures/nograd.*"], {
        PASS: "Treating the batch mean and variance as constants in the backward pass broke training: "
              "test accuracy fell by {neg} points against real batch norm.",
        FAIL: "Treating the batch mean and variance as constants in the backward pass cost {neg} points of "
              "test accuracy ({ci}): it hurts, but it does not break training, as the note says it would.",
        INCONCLUSIVE: "Treating the batch mean and variance as constants in the backward pass changed test "
                      "accuracy by {ci}; whether that breaks training could not be decided."}),
    ("note", "N8-mlp", ["default/grad_norms_mlp.*"], {
        PASS: "Gradients were steadier with batch norm on the MLP, once the normal decay of the gradient is "
              "taken out (jitter difference {ci}).",
        FAIL: "Gradients were not steadier with batch norm once the normal decay of the gradient is taken "
              "out (jitter difference {ci}).",
        INCONCLUSIVE: "Whether gradients are steadier with batch norm, once their normal decay is taken out, "
                      "could not be decided for the MLP and the CNN together (the undecided network's "
                      "jitter difference: {ci})."}),
    ("ba2016", "L1", ["ba2016/figures/fig6_test_error.*"], {
        PASS: "At a batch of 4 images, layer norm's test error was no worse than without normalization: "
              "{ci} in error (LN − none), as Ba et al. (2016) report.",
        FAIL: "At a batch of 4 images, layer norm's test error was worse than without normalization by more "
              "than a point ({ci}), unlike Ba et al. (2016)."}),
    ("ba2016", "L3", ["ba2016/figures/fig6_train_loss.*"], {
        PASS: "At a batch of 4 images, batch norm's training loss was the highest of the three networks "
              "({m:.3g}× the unnormalized network's, {ci}), whether the loss is scored in eval mode or with "
              "the update's own 4-sample statistics (L3t), as Ba et al.'s (2016) Fig. 6 shows.",
        FAIL: "At a batch of 4 images, batch norm's training loss was not the highest of the three ({ci})."}),
    ("wu2018", "G1", ["wu2018/figures/fig1_batch_size.*"], {
        PASS: "On CIFAR-10, batch norm's test error rose by {ci} in error when the batch shrank from 32 to 2 "
              "images, while group norm's did not rise under the same schedule, the direction Wu & He "
              "(2018) report.",
        FAIL: "On CIFAR-10, batch norm's test error did not rise by 2 points when the batch shrank from 32 to "
              "2 images ({ci}), unlike Wu & He (2018)."}),
    ("bjorck2018", "B1", ["bjorck2018/figures/fig2_relative_loss.*"], {
        PASS: "At initialization a 20-layer residual network without batch norm blew its loss up (more "
              "than 10³×) with one gradient step {m:.3g}× smaller ({ci}) than with batch norm, as "
              "Bjorck et al. (2018) found for ResNet-110; a plain 20-layer MLP did not (B1c).",
        FAIL: "At initialization a 20-layer residual network without batch norm did not blow its loss up at "
              "steps 10× smaller than with batch norm (ratio {ci}), unlike Bjorck et al.'s (2018) ResNet-110.",
        INCONCLUSIVE: "Whether a residual network without batch norm blows its loss up at much smaller steps "
                      "than with it could not be decided (ratio {ci})."}),
    ("santurkar2018", "S4-stable", ["santurkar2018/figures/fig3_grad_ics.*"], {
        PASS: "Gradient-based internal covariate shift (how much a layer's gradient changes, relative to its "
              "size, when the layers before it take their step) was not lower with batch norm on a ReLU MLP "
              "once both nets were below the edge of stability (ratio {ci}), as Santurkar et al. (2018) found.",
        FAIL: "Gradient-based internal covariate shift (how much a layer's gradient changes, relative to its "
              "size, when the layers before it take their step) was lower with batch norm on a ReLU MLP even "
              "where both nets were below the edge of stability ({ci}× the standard net's), unlike Santurkar "
              "et al.'s (2018) VGG.",
        INCONCLUSIVE: "Whether batch norm lowers gradient-based internal covariate shift on a ReLU MLP, where "
                      "both nets are below the edge of stability, could not be decided (ratio {ci})."}),
    ("wu2018", "G2", ["wu2018/figures/fig1_batch_size.*"], {
        PASS: "Batch norm's error rose from a batch of 8 to 2 (by {ci} in error) and stayed flat, within 2 "
              "points, from 32 to 8: the sharp rise below 8 that Wu & He (2018) report; whether it rose at "
              "all from 32 to 2, and whether group norm stayed flat, is in G1 and G3.",
        FAIL: "Batch norm's error did not show Wu & He's (2018) sharp rise below a batch of 8: either no rise "
              "of 2 points from 8 to 2, or a change of more than 2 points from 32 to 8 (the part that failed: "
              "{ci} in error; both parts in G2's row).",
        INCONCLUSIVE: "Whether batch norm's error rises sharply below a batch of 8 and stays flat above it, as "
                      "Wu & He (2018) report, could not be decided ({ci} in the deciding part)."}),
    ("wu2021", "P3", ["wu2021/figures/norm_batch.*"], {
        PASS: "Normalizing over 2 images in training, the network did worse at test time with population "
              "statistics than with the test batches' own ({ci} in error; the sign is the claim, its size "
              "depends on how long the network trains), as Wu & Johnson (2021) found.",
        FAIL: "Normalizing over 2 images in training, the network did better at test time with population "
              "statistics (PreciseBN) than with test batches of 2 normalized by their own statistics ({neg} "
              "points less error), the opposite of Wu & Johnson's (2021) finding on ImageNet.",
        INCONCLUSIVE: "Whether population statistics or the test batch's own are better at test time after "
                      "training with normalization batches of 2 could not be decided ({ci})."}),
]


# The caveat each finding carries (from its study's red-team review: docs/studies.md), and the findings
# that review left standing. A claim not in SURVIVED gets no sentence, whatever its verdict.
CAVEATS = {
    ("note", "N4a"): "an exact, algebraic claim: it holds on any batch",
    ("ba2016", "L1"): "one learning rate, the 4,000-digit subset and a quarter of the paper's width",
    ("ba2016", "L3"): "the eval-mode loss includes the error of running statistics averaged over 4-sample batches",
    ("wu2018", "G1"): "a small CNN trained for 0.4 epoch (errors 57–78%, the paper's 23–28%): early training, "
                      "not converged networks",
    ("bjorck2018", "B1"): "one mechanism with B2a: without batch norm the residual stream's scale grows with "
                          "depth at initialization; B1-cifar (ResNet-20) rests on two seeds",
    ("note", "N8-mlp"): "a 9% effect, from the deeper layers; the output layer's gradients reverse",
}
SURVIVED = set(CAVEATS)


def _num(x, fmt: str = ".3g") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def _ci(row) -> str:
    m, lo, hi = row["measured"], row["ci_low"], row["ci_high"]
    if pd.isna(lo) or pd.isna(hi):
        return f"{_num(m)}, no interval"
    return f"{_num(m)} [{_num(lo)}, {_num(hi)}]"


def sentences(root: Path) -> list[str]:
    """The findings, as markdown sentences with links relative to `root` (the results folder)."""
    root = Path(root)
    out = [INTRO]
    for study, claim, figures, words in SENTENCES:
        path = root / study / "verdicts.csv"
        if not path.is_file():
            continue
        v = files.read_csv(path, keep_default_na=False, na_values=[""])
        rows = v[v["claim_id"] == claim]
        if rows.empty:
            continue
        row = rows.iloc[0]
        # Only a decided verdict the review left standing is a finding (UNDERPOWERED, DESIGN CHECK and
        # INCONCLUSIVE decide nothing).
        if (study, claim) not in SURVIVED or row["verdict"] not in (PASS, FAIL) or row["verdict"] not in words:
            continue
        m = float(row["measured"]) if pd.notna(row["measured"]) else math.nan
        text = words[row["verdict"]].format(m=m, ci=_ci(row),
                                            neg=_num(-100 * m, ".0f") if math.isfinite(m) else "–")
        links = [f"[{claim}: {row['verdict']}]({study}/README.md)"]
        for pattern in figures:
            links += [f"[figure]({p.relative_to(root).as_posix()})"
                      for p in sorted(root.glob(pattern)) if p.suffix in (".png", ".svg")][:1]
        out.append(f"{text} Caveat: {CAVEATS[(study, claim)]}. ({', '.join(links)})")
    return out + predictors_paragraph(root)


# The predictors study's paragraph: its answer as the study README states it, with the caveat its
# red-team review left (studies/reviews.py); absent until the study has run.
def predictors_caveat(seeds: int) -> str:
    from . import predictors as protocol

    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
    return (f"one small grid (mnist-5k, {protocol.STEPS} plain SGD steps, {words.get(len(protocol.MODELS), len(protocol.MODELS))} "
            f"small models, {words.get(seeds, seeds)} seeds): a measure that does not predict here may on larger models, "
            "longer runs or other optimizers")


def predictors_paragraph(root: Path) -> list[str]:
    from .predictors_readme import finding, machinery_of

    path = Path(root) / "predictors" / "verdicts.csv"
    if not path.is_file():
        return []
    v = files.read_csv(path)
    study = Path(root) / "predictors" / "study.json"
    seeds = (read_json(study).get("seeds") if study.is_file() else None) or []
    figure = Path(root) / "predictors" / "forest_final_acc.png"
    links = ["[predictors](predictors/README.md)"] + (["[figure](predictors/forest_final_acc.png)"]
                                                      if figure.is_file() else [])
    return [f"**Which measure of internal covariate shift predicts training?** {finding(v, machinery_of(v))} "
            f"Caveat: {predictors_caveat(len(seeds))}. ({', '.join(links)})"]
