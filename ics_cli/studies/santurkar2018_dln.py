"""Santurkar et al. 2018 on the deep linear network (DLN), under both regression-loss conventions, and
the helpers the study's MLP part shares (groups, per-run readers, the landscape claims).

The DLN's verdicts depend on the regression loss's scale (net/tasks.py): the project's convention
(`--regress-loss mean`, the squared error averaged over the 10 outputs) and the literal objective
(`--regress-loss sum`, ‖f(x) − y‖², 10× larger) give the paper's nominal learning rates two meanings.
Each DLN claim is one row per convention; lr η under the literal convention takes exactly the steps of
10η under the project's (the same run, its losses × 10), so the literal convention at 1e-7 reads the
project's runs at 1e-6 rather than running them twice.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..analyse.quantities import EARLY_FRACTION, run_landscape
from ..config import RunConfig
from ..store.runs import run_config
from .claims import (Interval, Measurement, MissingData, decide, directional, family, fmt_ci, interval,
                     measurement, paired, ratio)
from .context import Context

PAPER = "Santurkar et al. 2018"
MLP_GROUP, NOISY_GROUP, DLN_GROUP, LITERAL_GROUP = "mlp", "noisy", "dln", "dln-literal"
NORMS = ("none", "batch")
DLN_LRS = (1e-6, 1e-7)          # the paper's two learning rates for the DLN (Fig. 3, Fig. 5)
OUTPUTS = 10                    # the DLN's outputs: the literal loss is OUTPUTS × the project's
CONVENTIONS = {"project": "mean", "literal": "sum"}    # convention -> --regress-loss
EDGE = 2.0                      # sharpness × lr at the edge of stability (gradient descent on a quadratic)

COS_ONE = 0.99          # S5a/b: "cos ≈ 1 without BN": its mean over steps and layers above 0.99
COS_GAP = 0.5           # S5a/b: "far lower with BN": cos(standard) − cos(BN) above 0.5
PREDICTIVE = 0.2        # S7: gradient predictiveness with BN ≤ 1/5 of the standard net's

# Every value spelled out, so a change of a project default cannot change the study.
DLN = RunConfig(dataset="gaussian-linear", model="dln", depth=25, width=10, activation="identity",
                init="xavier", eps=1e-5, bn_momentum=0.1, noise="none", optimizer="sgd", lr=1e-6,
                momentum=0.0, weight_decay=0.0, batch_size=1000, probe="fixed", probe_size=512,
                track_units=0, ics_every=100, landscape_every=100, landscape_etas="0.01,0.1,1,10,30",
                sharpness_every=200, sharpness_iters=20, sharpness_method="lanczos", regress_loss="mean")
# The literal convention's own runs: the paper's lrs whose 10× is not already a project run.
LITERAL_LRS = tuple(lr for lr in DLN_LRS if not any(math.isclose(OUTPUTS * lr, p) for p in DLN_LRS))


def setting(convention: str, lr: float) -> tuple[str, float, float]:
    """(group, the runs' lr, loss factor) that compute the DLN at nominal `lr` under `convention`."""
    if convention == "project":
        return DLN_GROUP, lr, 1.0
    if lr in LITERAL_LRS:
        return LITERAL_GROUP, lr, 1.0
    return DLN_GROUP, OUTPUTS * lr, float(OUTPUTS)     # the same steps: the project's runs at 10×


def other(convention: str) -> str:
    return "literal" if convention == "project" else "project"


# --------------------------------------------------------------------------- per-run readers


def runs(ctx: Context, group: str, norm: str, lr: float | None = None) -> dict:
    where = {"norm": norm} if lr is None else {"norm": norm, "lr": float(lr)}
    return ctx.by_seed(group, **where)


def ics(run, column: str, steps=None) -> pd.Series:
    """Per hidden layer after the first: the mean of `column` of grad_ics.csv over the probed steps
    (only those in `steps`, when given). hidden1 has G′ = G and is left out."""
    g = run.table("grad_ics")
    g = g[g["layer"].astype(str).str.fullmatch(r"hidden\d+") & (g["layer"] != "hidden1")]
    if steps is not None:
        g = g[g["step"].isin(list(steps))]
    if g.empty:
        raise MissingData(f"no gradient ICS recorded in {run.path.name}")
    values = pd.to_numeric(g[column], errors="coerce")
    return values.groupby(g["layer"].astype(str)).mean()


def sharpness_lr(run) -> pd.DataFrame:
    """The run's sharpness table: step and sharpness × lr (largest eigenvalue × lr)."""
    t = run.table("sharpness")
    if t.empty:
        raise MissingData(f"no sharpness recorded in {run.path.name}")
    return pd.DataFrame({"step": pd.to_numeric(t["step"]), "sharpness_lr": pd.to_numeric(
        t["sharpness_lr"], errors="coerce")}).sort_values("step")


def late_sharpness_lr(ctx: Context, group: str, norm: str, lr: float) -> float:
    """Seed mean of sharpness × lr averaged over the probed steps of the second half of the run."""
    values = []
    for r in runs(ctx, group, norm, lr).values():
        t = sharpness_lr(r)
        v = t[t["step"] >= int(run_config(r)["steps"]) / 2]["sharpness_lr"].dropna()
        if len(v):
            values.append(float(v.mean()))
    return float(np.mean(values)) if values else math.nan


def landscape(run) -> tuple[pd.DataFrame, float]:
    t = run.table("landscape")
    if t.empty:
        raise MissingData(f"no landscape recorded in {run.path.name}")
    return run_landscape(t), float(run_config(run)["steps"])


def early_mean(run, column: str) -> float:
    per_step, steps = landscape(run)
    early = per_step[per_step["step"] <= EARLY_FRACTION * steps]
    return float(pd.to_numeric(early[column], errors="coerce").replace([np.inf, -np.inf], np.nan).mean())


def beta_cv(run) -> float:
    per_step, _ = landscape(run)
    beta = pd.to_numeric(per_step["beta_eff"], errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
    return float(beta.std(ddof=0) / beta.mean()) if len(beta) >= 2 and beta.mean() != 0 else math.nan


def band(run) -> float:
    return early_mean(run, "loss_band_width")


def predictiveness(run) -> float:
    return early_mean(run, "grad_pred")


def landscape_claim(ctx: Context, parts, stat, op: str, threshold: float, what: str) -> Measurement:
    """BN ÷ standard of a per-run `stat` on every part (name, group, lr), `op` `threshold`, Bonferroni
    over the parts; every part must hold."""
    level = family(len(parts))
    decided, words = {}, []
    for name, group, lr in parts:
        try:
            bn = {s: stat(r) for s, r in runs(ctx, group, "batch", lr).items()}
            base = {s: stat(r) for s, r in runs(ctx, group, "none", lr).items()}
            iv = ratio(bn, base, level)
        except MissingData as e:
            decided[name] = (Interval(math.nan, None, None, 0), "INCONCLUSIVE")
            words.append(f"{name}: not measured ({e})")
            continue
        decided[name] = (iv, directional(iv.lo, iv.hi, op, threshold))
        words.append(f"{name}: {interval(bn.values()).mean:.3g} with BN vs {interval(base.values()).mean:.3g} "
                     f"without, ratio {fmt_ci(*iv[:3])}")
    verdict, part, iv = decide(decided)
    seen = f"{what} — " + "; ".join(words) + f" ({level:.4g} intervals); measured: the {part} part."
    return measurement(iv, verdict, seen)


# --------------------------------------------------------------------------- the DLN claims


def cos(ctx: Context, convention: str, lr: float, norm: str) -> dict[int, float]:
    """Per seed: cos(G, G′) averaged over the probed steps and hidden layers 2–24."""
    group, run_lr, _ = setting(convention, lr)
    return {s: float(ics(r, "ics_cos").mean()) for s, r in runs(ctx, group, norm, run_lr).items()}


def final_loss(ctx: Context, convention: str, lr: float, norm: str) -> dict[int, float]:
    """Per seed: the per-sample training loss under `convention` of the last metrics row with a finite
    one (a diverged run's last loss is the one that ended it, far above its start)."""
    group, run_lr, factor = setting(convention, lr)
    out = {}
    for s, r in runs(ctx, group, norm, run_lr).items():
        m = r.table("metrics").sort_values("step")
        loss = pd.to_numeric(m["train_loss"], errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
        out[s] = factor * float(loss.iloc[-1]) if len(loss) else math.nan
    return out


def edge(ctx: Context, convention: str, lr: float) -> str:
    group, run_lr, _ = setting(convention, lr)
    sharp = {n: late_sharpness_lr(ctx, group, n, run_lr) for n in NORMS}
    return (f"sharpness × lr over the second half {sharp['none']:.3g} without BN and {sharp['batch']:.3g} with "
            f"BN ({EDGE:g} = edge of stability)")


def where(convention: str, lr: float) -> str:
    group, run_lr, _ = setting(convention, lr)
    if group == DLN_GROUP and convention == "literal":
        return f"lr {lr:g} under the literal convention (the project's runs at {run_lr:g}: the same steps)"
    return f"lr {lr:g} under the {convention} convention"


def measure_cos(ctx: Context, convention: str, lr: float) -> Measurement:
    """S5a/S5b: cos(G, G′) ≈ 1 without BN (> COS_ONE) and far lower with it (gap > COS_GAP)."""
    level = family(2)
    std, bn = cos(ctx, convention, lr, "none"), cos(ctx, convention, lr, "batch")
    one, gap = interval(std.values(), level), paired(std, bn, level)
    verdict, part, iv = decide({"cos without BN": (one, directional(one.lo, one.hi, ">", COS_ONE)),
                                "cos gap": (gap, directional(gap.lo, gap.hi, ">", COS_GAP))})
    seen = (f"DLN at {where(convention, lr)}: mean cos(G, G′) over probed steps and layers 2–24 "
            f"{fmt_ci(*one[:3], digits=4)} without BN (needs > {COS_ONE}) and {interval(bn.values()).mean:.3g} "
            f"with BN, gap {fmt_ci(*gap[:3])} (needs > {COS_GAP}); {edge(ctx, convention, lr)} "
            f"({level:.4g} intervals); measured: the {part} part.")
    return measurement(iv, verdict, seen)


def measure_loss(ctx: Context, convention: str) -> Measurement:
    """S5c: batch norm ends at the lower training loss, at both of the paper's lrs."""
    level = family(len(DLN_LRS))
    parts, words = {}, []
    for lr in DLN_LRS:
        bn, std = final_loss(ctx, convention, lr, "batch"), final_loss(ctx, convention, lr, "none")
        iv = ratio(bn, std, level)
        parts[f"lr {lr:g}"] = (iv, directional(iv.lo, iv.hi, "<", 1.0))
        words.append(f"at {where(convention, lr)}: {interval(bn.values()).mean:.3g} with BN vs "
                     f"{interval(std.values()).mean:.3g} without, ratio {fmt_ci(*iv[:3])}; {edge(ctx, convention, lr)}")
    verdict, part, iv = decide(parts)
    seen = (f"DLN final training loss per sample (× 1000 for the summed objective) " + "; ".join(words)
            + f" (needs < 1; {level:.4g} intervals); measured: the {part} part.")
    return measurement(iv, verdict, seen)


def dln_parts(convention: str) -> list[tuple[str, str, float]]:
    return [(f"DLN {where(convention, lr)}", *setting(convention, lr)[:2]) for lr in DLN_LRS]


def with_other(ctx: Context, measure, convention: str) -> Measurement:
    """`measure(ctx, convention)`, its sentence ending with what the other convention's runs read:
    a verdict that flips with the convention is reported as convention-dependent."""
    m = measure(ctx, convention)
    try:
        o = measure(ctx, other(convention))
    except MissingData:
        return m
    if {m.verdict, o.verdict} == {"PASS", "FAIL"}:
        note = (f" Convention-dependent: the data read {m.verdict} here and {o.verdict} ({o.value:.3g}) under the "
                f"{other(convention)} convention; neither convention is the paper's beyond doubt (protocol).")
    else:
        same = "the same, " if o.verdict == m.verdict else ""
        note = f" The {other(convention)} convention's data read {same}{o.verdict} ({o.value:.3g})."
    m.seen += note
    return m
