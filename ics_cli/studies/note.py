"""The course note's claims about normalization, each measured on this project's networks.

Exact claims (N2, N4a, N4b, N5, N9) build modules directly and run on real mnist-5k batches in
seconds. The others read four groups of runs: an lr sweep of the default MLP with and without batch
norm (N7), the default MLP at one shared lr with none / batch / batch-nograd (N1, N3, N8, N6), batch
norm at a tiny batch (N6), and the CNN with every variant over a small lr grid (N10).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..plots import lr_tolerance as draw_lr_tolerance
from ..sweep import Sweep
from . import exact
from . import figures as fig
from .claims import (FAIL, INCONCLUSIVE, PASS, Claim, Measurement, MissingData, Study, combine, decide,
                     directional, either, fmt_ci, interval, paired, within)
from .context import Context, run_groups

NOTE = "course note"
IOFFE = "Ioffe & Szegedy 2015"

# --------------------------------------------------------------------------- protocol

MLP = RunConfig(dataset="mnist-5k", binarize=False, model="mlp", depth=3, width=100,
                activation="sigmoid", init="xavier", eps=1e-5, bn_momentum=0.1, groups=4,
                optimizer="sgd", momentum=0.0, weight_decay=0.0, batch_size=60, log_every=50,
                probe_size=512, track_units=4)
CNN = replace(MLP, model="cnn", width=32, activation="relu")
LR_GRID = [float(f"{10 ** (k / 2):.3g}") for k in range(-4, 5)]        # 0.01 ... 100, half-decades
CNN_LRS = [0.1, 0.316, 1.0]                                           # half-decades around 0.5
SHARED_LR = 0.5
TINY_BATCH = 4
TARGET = 0.9
CNN_NORMS = ["none", "batch", "layer", "instance", "group"]
EXACT_TOL = {"N2": 1e-4, "N4": 1e-5, "N5": 1e-5, "N9": 1e-4}
STABLE_RATIO = 5.0
FULL = dict(seeds=[0, 1, 2], mlp_steps=1000, cnn_steps=500, lrs=LR_GRID, cnn_lrs=CNN_LRS)
QUICK = dict(seeds=[0], mlp_steps=200, cnn_steps=100, lrs=[0.01, 0.1, 1.0, 10.0, 100.0],
             cnn_lrs=[0.316])


def plan(quick: bool) -> dict[str, Sweep]:
    p = QUICK if quick else FULL
    mlp = replace(MLP, steps=p["mlp_steps"])
    return {   # longest runs first: the short ones fill the pool's tail
        "cnn": Sweep(common=replace(CNN, steps=p["cnn_steps"]), norms=CNN_NORMS, lrs=p["cnn_lrs"],
                     seeds=p["seeds"], batch_sizes=[CNN.batch_size]),
        "lr_sweep": Sweep(common=mlp, norms=["none", "batch"], lrs=p["lrs"], seeds=p["seeds"],
                          batch_sizes=[MLP.batch_size]),
        "shared_lr": Sweep(common=mlp, norms=["none", "batch", "batch-nograd"], lrs=[SHARED_LR],
                           seeds=p["seeds"], batch_sizes=[MLP.batch_size]),
        "tiny_batch": Sweep(common=mlp, norms=["batch"], lrs=[SHARED_LR], seeds=p["seeds"],
                            batch_sizes=[TINY_BATCH]),
    }


def run(out: Path, quick: bool = False, jobs: int | None = None, on_outcome=None) -> Context:
    return run_groups(out, plan(quick), quick=quick, jobs=jobs, on_outcome=on_outcome)


def _grid(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


PROTOCOL = f"""\
Chosen once, before the study's verdicts were seen (only timing pilots were run), and the same for every norm.

| group | network | what varies | steps | seeds | used by |
|---|---|---|---|---|---|
| `lr_sweep` | default MLP | norm none / batch × lr {_grid(LR_GRID)} | {FULL['mlp_steps']} | {_grid(FULL['seeds'])} | N7 |
| `shared_lr` | default MLP | norm none / batch / batch-nograd at lr {SHARED_LR} | {FULL['mlp_steps']} | {_grid(FULL['seeds'])} | N1, N3, N6, N8 |
| `tiny_batch` | default MLP | batch norm at lr {SHARED_LR}, batch {TINY_BATCH} | {FULL['mlp_steps']} | {_grid(FULL['seeds'])} | N6 |
| `cnn` | CNN | norm {' / '.join(CNN_NORMS)} × lr {_grid(CNN_LRS)} | {FULL['cnn_steps']} | {_grid(FULL['seeds'])} | N10 |

* **Default MLP**: the project's defaults: mnist-5k (standardized pixels), 3 hidden layers of 100
  sigmoid units, Glorot-uniform init, plain SGD (no momentum), batch 60, eps 1e-5, log every
  {MLP.log_every} steps. {FULL['mlp_steps']} steps (15 epochs of the 4,000 training images) instead of
  the default 2,000, so the whole study fits its 8-minute budget on two CPU cores.
* **lr grid**: half-decades from 0.01 to 100 (rounded to 3 digits): from far below the default 0.5
  to far above any lr a sigmoid MLP is expected to survive, so the largest stable lr of both
  networks lies inside the grid; the resolution of the ratio is one half-decade (×3.16). `max_stable_lr` is compare's definition:
  the largest lr whose seed-mean final accuracy is ≥ 0.9 × the best lr's and no seed diverged.
* **Shared lr {SHARED_LR}**: the project's default, chosen beforehand so the MLP trains with and
  without batch norm (also the lr of the Ioffe & Szegedy study).
* **Tiny batch {TINY_BATCH}**: small enough that batch statistics are noisy, large enough that they
  are defined; one of the small batches in Wu & He's (2018) batch-size comparison. Same lr and steps
  as at batch 60. The batch-statistics test accuracy is measured on test batches of the training
  batch size (ics train's `test_acc_batchstats`).
* **CNN**: 3 conv layers (3x3, stride 2, 32 channels), global average pooling, a linear classifier;
  ReLU, because every variant compared was introduced on ReLU conv nets (batch, layer, instance and
  group norm papers; also, in a timing pilot a sigmoid CNN without normalization stayed at chance
  for hundreds of steps); groups = 4; {FULL['cnn_steps']} steps, log every {CNN.log_every}. lr grid
  {_grid(CNN_LRS)} (half-decades around the default 0.5). Each norm is judged at its own best lr: the
  one whose seeds all reach the target in the fewest steps on average.
* **Target accuracy {TARGET}** for N10: a level at which a network on this data is trained, not merely
  started (the default MLP reaches it within about 1,000 steps). A run that never reaches it counts
  at its last step, a lower bound, which favours the baseline when it is the one that fails.
* **Exact claims** (N2, N4a, N4b, N5, N9): the default MLP and the CNN at init, with random γ and β,
  on {exact.BATCHES} real training batches of {exact.BATCH_SIZE}; N4a, N4b and N5 in float64 so that
  rounding stays far below their tolerance of 1e-5; N2 and N9 in float32 as in training, tolerance 1e-4.

Paired comparisons are by seed (same batch order, same probe batch); intervals are 95% t-intervals
over seeds.

Quick mode (`--quick`): seed {_grid(QUICK['seeds'])} only, {QUICK['mlp_steps']} MLP steps, lr grid
{_grid(QUICK['lrs'])}, the CNN at lr {_grid(QUICK['cnn_lrs'])} for {QUICK['cnn_steps']} steps. With
one seed there are no intervals, so every trained claim is INCONCLUSIVE; the exact claims are the same
as in the full study.
"""


# --------------------------------------------------------------------------- per-run quantities


def _final(run, column: str) -> float:
    value = ((run.summary or {}).get("final") or {}).get(column)
    if value is None:     # diverged: the last finite value it recorded (compare's rule)
        logged = pd.to_numeric(run.table("metrics")[column], errors="coerce")
        logged = logged[np.isfinite(logged)]
        return float(logged.iloc[-1]) if len(logged) else math.nan
    return float(value)


def _hidden(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["layer"].astype(str).str.startswith("hidden")]


def _drift(ctx: Context, run) -> float:
    d = _hidden(ctx.run_tables(run)["drift"])
    return float(d.loc[d["site"] == "norm", "drift_mean_total_mean"].mean())


def _grad_cv(ctx: Context, run) -> float:
    """Mean over layers (hidden and output) of compare's grad_norm_cv, as in compare.headline."""
    return float(ctx.run_tables(run)["gradient_stability"]["grad_norm_cv_mean"].mean())


def _weight_growth(run) -> float:
    """Mean over hidden layers of weight norm at the last logged step / at the first logged step."""
    g = _hidden(run.table("grads")).sort_values("step")
    by_layer = g.groupby("layer")["weight_norm"]
    return float((by_layer.last() / by_layer.first()).mean())


def _layer_spread(run) -> tuple[float, float]:
    """At step 0, site norm: std over hidden layers of the layer mean and of the layer variance."""
    lay = _hidden(run.table("layers"))
    lay = lay[(lay["step"] == 0) & (lay["site"] == "norm")]
    return float(lay["mean"].std(ddof=0)), float(lay["var"].std(ddof=0))


def _per_seed(ctx: Context, group: str, f, **where) -> dict[int, float]:
    return {s: f(r) for s, r in ctx.by_seed(group, **where).items()}


def _mean(values: dict) -> float:
    return interval(values.values())[0]


# --------------------------------------------------------------------------- trained claims


def measure_n1(ctx: Context) -> Measurement:
    spread = _per_seed(ctx, "shared_lr", _layer_spread, norm="none")
    drift = _per_seed(ctx, "shared_lr", lambda r: _drift(ctx, r), norm="none")
    parts = {name: (d, directional(d[1], d[2], ">", 0.0)) for name, d in (
        ("variance spread", interval(v[1] for v in spread.values())),
        ("mean spread", interval(v[0] for v in spread.values())),
        ("drift", interval(drift.values())))}
    verdict, part, (mean, lo, hi, _) = decide(parts)
    seen = (f"Without normalization, at init the per-layer variance of the sigmoid inputs differs across "
            f"layers by a std of {fmt_ci(*parts['variance spread'][0][:3])} and the per-layer mean by "
            f"{fmt_ci(*parts['mean spread'][0][:3])}; during training the unit means drift by a total of "
            f"{fmt_ci(*parts['drift'][0][:3])} per layer; measured: the {part}.")
    return Measurement(mean, lo, hi, verdict, seen)


def measure_n3(ctx: Context) -> Measurement:
    loss = {n: _per_seed(ctx, "shared_lr", lambda r: _final(r, "train_loss"), norm=n)
            for n in ("batch", "batch-nograd")}
    acc = {n: _per_seed(ctx, "shared_lr", lambda r: _final(r, "test_acc"), norm=n)
           for n in ("batch", "batch-nograd")}
    growth = {n: _per_seed(ctx, "shared_lr", _weight_growth, norm=n) for n in ("batch", "batch-nograd")}
    dloss = paired(loss["batch-nograd"], loss["batch"])
    dgrowth = paired(growth["batch-nograd"], growth["batch"])
    parts = {"loss": (dloss, directional(dloss[1], dloss[2], ">", 0.0)),
             "weight growth": (dgrowth, directional(dgrowth[1], dgrowth[2], ">", 0.0))}
    verdict, part, (mean, lo, hi, _) = decide(parts, either)
    diverged = sum(r.status == "diverged" for r in ctx.runs("shared_lr", norm="batch-nograd"))
    seen = (f"At lr {SHARED_LR}, batch-nograd ends with training loss {_mean(loss['batch-nograd']):.3g} vs "
            f"{_mean(loss['batch']):.3g} for batch norm (difference {fmt_ci(*dloss[:3])}), test accuracy "
            f"{_mean(acc['batch-nograd']):.3f} vs {_mean(acc['batch']):.3f}, and its hidden weight norms "
            f"grow {_mean(growth['batch-nograd']):.3g}× vs {_mean(growth['batch']):.3g}× "
            f"(difference {fmt_ci(*dgrowth[:3])})"
            f"{f'; {diverged} of its runs diverged' if diverged else ''}; measured: the {part} difference.")
    return Measurement(mean, lo, hi, verdict, seen)


def _batchstats_gap(run) -> float:
    """Final test accuracy with running statistics minus with batch statistics (test batches of the training size)."""
    return _final(run, "test_acc") - _final(run, "test_acc_batchstats")


def measure_n6(ctx: Context) -> Measurement:
    big = _per_seed(ctx, "shared_lr", _batchstats_gap, norm="batch")
    tiny = _per_seed(ctx, "tiny_batch", _batchstats_gap, norm="batch")
    mean, lo, hi, _ = paired(tiny, big)
    accs = {name: (_mean(_per_seed(ctx, g, lambda r: _final(r, "test_acc"), norm="batch")),
                   _mean(_per_seed(ctx, g, lambda r: _final(r, "test_acc_batchstats"), norm="batch")))
            for name, g in (("big", "shared_lr"), ("tiny", "tiny_batch"))}
    seen = (f"Test accuracy with running statistics vs batch statistics: {accs['big'][0]:.3f} vs "
            f"{accs['big'][1]:.3f} at batch {MLP.batch_size} (gap {_mean(big):+.3f}), {accs['tiny'][0]:.3f} "
            f"vs {accs['tiny'][1]:.3f} at batch {TINY_BATCH} (gap {_mean(tiny):+.3f}); the gap grows by "
            f"{fmt_ci(mean, lo, hi)}.")
    return Measurement(mean, lo, hi, directional(lo, hi, ">", 0.0), seen)


def measure_n7(ctx: Context) -> Measurement:
    tol = ctx.tables("lr_sweep")["lr_tolerance"]
    curve = ctx.tables("lr_sweep")["lr_curve"]
    rows = {n: tol[tol["norm"] == n].iloc[0] for n in ("none", "batch") if (tol["norm"] == n).any()}
    if len(rows) < 2:
        raise MissingData("lr sweep lacks a norm")
    ratio = float(rows["batch"]["stable_lr_vs_none"])
    seen = (f"Largest stable lr: {rows['batch']['max_stable_lr']:g} with batch norm, "
            f"{rows['none']['max_stable_lr']:g} without (ratio {ratio:.3g}; grid "
            f"{_grid(sorted(curve['lr'].unique()))}); seed-mean final accuracy by lr — batch: "
            f"{rows['batch']['acc_by_lr']}; none: {rows['none']['acc_by_lr']}.")
    if not math.isfinite(ratio) or curve["n_seeds"].min() < 2:
        return Measurement(ratio, None, None, INCONCLUSIVE, seen)
    at_top = float(rows["batch"]["max_stable_lr"]) >= float(curve["lr"].max())
    if ratio >= STABLE_RATIO:
        verdict = PASS
    else:     # a ratio whose numerator sits at the top of the grid is only a lower bound
        verdict = INCONCLUSIVE if at_top else FAIL
    return Measurement(ratio, None, None, verdict, seen)


def measure_n8(ctx: Context) -> Measurement:
    cv = {n: _per_seed(ctx, "shared_lr", lambda r: _grad_cv(ctx, r), norm=n) for n in ("none", "batch")}
    mean, lo, hi, _ = paired(cv["batch"], cv["none"])
    seen = (f"At lr {SHARED_LR} the gradient-norm coefficient of variation (mean over layers) is "
            f"{_mean(cv['batch']):.3g} with batch norm vs {_mean(cv['none']):.3g} without "
            f"(difference {fmt_ci(mean, lo, hi)}).")
    return Measurement(mean, lo, hi, directional(lo, hi, "<", 0.0), seen)


def _best(summary: pd.DataFrame, norm: str) -> pd.Series:
    """A norm's best lr for speed: most seeds reaching the target, then fewest mean steps."""
    d = summary[(summary["norm"] == norm) & (summary["n_seeds"] > 0)]
    if d.empty:
        raise MissingData(f"no CNN runs for {norm}")
    d = d.assign(_steps=d["steps_to_target_mean"].fillna(math.inf), _miss=d["n_seeds"] - d["n_reached_target"])
    return d.sort_values(["_miss", "_steps", "lr"]).iloc[0]


def measure_n10(ctx: Context) -> Measurement:
    tables = ctx.tables("cnn", target=TARGET)
    summary, runs = tables["summary"], tables["runs"]
    steps, best = {}, {}
    for norm in CNN_NORMS:
        best[norm] = float(_best(summary, norm)["lr"])
        rows = runs[(runs["norm"] == norm) & np.isclose(runs["lr"], best[norm])
                    & runs["status"].isin(["completed", "diverged"])]
        # Never reached: the run's last step, a lower bound of its true count.
        steps[norm] = {int(r["seed"]): (r["steps_to_target"] if math.isfinite(r["steps_to_target"])
                                        else float(r["steps_done"])) for _, r in rows.iterrows()}
    diffs = {n: paired(steps[n], steps["none"]) for n in CNN_NORMS if n != "none"}
    verdict = combine(*(directional(d[1], d[2], "<", 0.0) for d in diffs.values()))
    worst = max(diffs, key=lambda n: diffs[n][0])
    reached = {n: int(_best(summary, n)["n_reached_target"]) for n in CNN_NORMS}
    order = sorted(CNN_NORMS, key=lambda n: (_mean(steps[n]), n))
    ranking = " < ".join(f"{n} {_mean(steps[n]):.0f} (lr {best[n]:g}"
                         f"{'' if reached[n] == len(steps[n]) else f', {reached[n]}/{len(steps[n])} reached'})"
                         for n in order)
    seen = (f"Mean steps to test accuracy {TARGET} on the CNN, each norm at its own best lr: {ranking}; "
            f"the slowest variant relative to none is {worst} ({fmt_ci(*diffs[worst][:3])} steps).")
    return Measurement(*diffs[worst][:3], verdict, seen)


# --------------------------------------------------------------------------- exact claims


def measure_n2(ctx: Context) -> Measurement:
    xs = exact.batches()
    dev = {m: exact.standardization(replace(cfg, norm="batch"), xs) for m, cfg in (("mlp", MLP), ("cnn", CNN))}
    worst = max(max(d["mean"], d["var"]) for d in dev.values())
    raw = max(d["var_raw"] for d in dev.values())
    seen = (f"On {len(xs)} training batches of {exact.BATCH_SIZE} (MLP and CNN, every layer), the "
            f"normalized values before γ and β have max |mean| {max(d['mean'] for d in dev.values()):.2g} "
            f"and max |var − v/(v+eps)| {max(d['var'] for d in dev.values()):.2g}; the raw max |var − 1| "
            f"is {raw:.2g}, which is eps's doing.")
    return Measurement(worst, None, None, within(worst, EXACT_TOL["N2"]), seen)


def _preacts() -> list:
    return exact.preactivations(replace(MLP, norm="batch"), exact.batches(1)[0])


def measure_n4a(ctx: Context) -> Measurement:
    zs = _preacts()
    errs = [exact.identity_error(z, MLP, "var") for z in zs]
    err, ok = max(e for e, _ in errs), sum(k for _, k in errs)
    var = np.concatenate([z.var(0, unbiased=False).numpy() for z in zs])
    seen = (f"With γ = var and β = mean, BN(x) differs from x by up to {err:.3g} on a training batch; "
            f"the identity holds for {ok} of {len(var)} units, since it needs var = sqrt(var + eps) "
            f"(var ≈ 1) and the unit variances range from {var.min():.3g} to {var.max():.3g}.")
    return Measurement(err, None, None, within(err, EXACT_TOL["N4"]), seen)


def measure_n4b(ctx: Context) -> Measurement:
    zs = _preacts()
    err = max(exact.identity_error(z, MLP, "sqrt")[0] for z in zs)
    seen = (f"With γ = sqrt(var + eps) and β = mean, BN(x) equals x to within {err:.2g} (float64) in "
            f"every unit of every layer.")
    return Measurement(err, None, None, within(err, EXACT_TOL["N4"]), seen)


def measure_n5(ctx: Context) -> Measurement:
    err = max(exact.bias_effect(z, MLP) for z in _preacts())
    seen = (f"Adding a constant bias ~ N(0, 5²) per unit to the Linear output before batch norm changes "
            f"the output by at most {err:.2g} (float64, training mode): the batch mean absorbs it and "
            f"β takes over its role.")
    return Measurement(err, None, None, within(err, EXACT_TOL["N5"]), seen)


N9_CASES = [("mlp", "layer"), ("mlp", "group"), ("cnn", "layer"), ("cnn", "instance"), ("cnn", "group")]


def measure_n9(ctx: Context) -> Measurement:
    xs = exact.batches()
    parts = []
    for model, norm in N9_CASES:
        d = exact.standardization(replace(MLP if model == "mlp" else CNN, norm=norm), xs)
        parts.append((f"{norm} ({model})", max(d["mean"], d["var"])))
    worst = max(v for _, v in parts)
    seen = ("Worst deviation from zero mean and variance v/(v+eps) over each variant's own sets: "
            + ", ".join(f"{name} {v:.2g}" for name, v in parts) + ".")
    return Measurement(worst, None, None, within(worst, EXACT_TOL["N9"]), seen)


# --------------------------------------------------------------------------- claims as data

CLAIMS = [
    Claim("N1", "Without normalization, the statistics of the layers' inputs differ from layer to layer "
                "and shift during training.", NOTE,
          "no-norm MLP at lr 0.5, site norm (input to the sigmoid): std over hidden layers of the layer "
          "variance and of the layer mean at init; total drift of the unit means (drift_mean_total, mean "
          "over layers); measured: the deciding part",
          "all three > 0 (interval excludes 0)", None, measure_n1),
    Claim("N2", "Batch norm makes every unit zero-mean and unit-variance over the mini-batch, before γ "
                "and β.", f"{NOTE}; {IOFFE}, Sec. 3",
          "max over units, layers and batches of |mean| and |var − v/(v+eps)| of (BN(x) − β)/γ",
          f"≤ {EXACT_TOL['N2']:g}", None, measure_n2),
    Claim("N3", "The normalization must be differentiable with respect to the batch statistics: "
                "treating them as constants breaks training.", f"{NOTE}; {IOFFE}, Sec. 2",
          "batch-nograd − batch at lr 0.5, paired by seed: final training loss, and growth of the hidden "
          "weight norms (last / first logged); measured: the deciding part",
          "loss difference > 0 or weight-growth difference > 0", None, measure_n3),
    Claim("N4a", "Setting γ equal to the variance and β equal to the mean makes batch norm the identity "
                 "(the note's literal statement).", NOTE,
          "max |BN(x) − x| on a training batch with γ = var_B, β = mean_B (float64)",
          f"≤ {EXACT_TOL['N4']:g}", None, measure_n4a),
    Claim("N4b", "Setting γ = sqrt(var + eps) and β = mean makes batch norm the identity (the correct "
                 "form).", f"{IOFFE}, Sec. 3",
          "max |BN(x) − x| on a training batch with γ = sqrt(var_B + eps), β = mean_B (float64)",
          f"≤ {EXACT_TOL['N4']:g}", "γ = sqrt(Var[x]), β = E[x] (Sec. 3)", measure_n4b),
    Claim("N5", "β makes the bias before batch norm redundant.", f"{NOTE}; {IOFFE}, Sec. 3.2",
          "max |BN(Wx + b) − BN(Wx)| for a random constant bias b per unit, training mode (float64)",
          f"≤ {EXACT_TOL['N5']:g}", "the bias \"can be ignored\" (Sec. 3.2)", measure_n5),
    Claim("N6", "At test time, aggregated (running) statistics replace the batch statistics; batch "
                "statistics at test time make predictions depend on the batch, the more so the smaller it is.",
          f"{NOTE}; {IOFFE}, Sec. 3.1",
          f"gap = final test_acc (running stats) − test_acc_batchstats; gap at batch {TINY_BATCH} − gap at "
          f"batch 60, paired by seed", "difference > 0", None, measure_n6),
    Claim("N7", "Normalization allows much larger learning rates.", f"{NOTE}; {IOFFE}, Sec. 3.3",
          "max_stable_lr(batch) / max_stable_lr(none) from compare's lr_tolerance (tolerance 0.9) "
          "over the lr grid", f"≥ {STABLE_RATIO:g}", "5×–30× (Ioffe & Szegedy use 5× and 30× the "
          "baseline's lr on Inception)", measure_n7),
    Claim("N8", "Normalization gives steadier gradients.", NOTE,
          "grad_norm_cv (compare's gradient_stability), mean over layers; batch − none at lr 0.5, "
          "paired by seed", "difference < 0", None, measure_n8),
    Claim("N9", "Layer, instance and group norm normalize what they claim to: each of their sets of "
                "values has zero mean and unit variance.", f"{NOTE}; Ba et al. 2016; Ulyanov et al. 2016; "
                "Wu & He 2018",
          "max over sets, layers and batches of |mean| and |var − v/(v+eps)| of (y − β)/γ; layer and "
          "group on the MLP and the CNN, instance on the CNN", f"≤ {EXACT_TOL['N9']:g}", None, measure_n9),
    Claim("N10", "Normalization makes training faster.", NOTE,
          f"steps to test accuracy {TARGET} (compare's steps_to_target) on the CNN, each norm at its own "
          "best lr; variant − none paired by seed (measured: the slowest variant)",
          "every variant's difference < 0", None, measure_n10),
]


# --------------------------------------------------------------------------- figures


LAYER_STYLES = {"hidden1": "-", "hidden2": "--", "hidden3": ":"}


def draw(ctx: Context, folder: Path) -> list[tuple[Path, str]]:
    folder = Path(folder)
    out = []
    lr_tables = ctx.tables("lr_sweep")
    [path] = draw_lr_tolerance(lr_tables, folder)
    out.append((path, "N7: final test accuracy vs learning rate with and without batch norm (default MLP)."))

    tables = ctx.tables("shared_lr")
    f = fig.figure(11, 4.4)
    loss_ax, w_ax = f.subplots(1, 2)
    curves, grads = tables["curves"], tables["grad_curves"]
    for norm in ("none", "batch", "batch-nograd"):
        color = fig.norm_color(norm)
        fig.band(loss_ax, curves[curves["norm"] == norm].sort_values("step"), "step", "train_loss",
                 color=color, label=norm)
        for layer, style in LAYER_STYLES.items():
            d = grads[(grads["norm"] == norm) & (grads["layer"] == layer)].sort_values("step")
            fig.band(w_ax, d, "step", "weight_norm", color=color, label=None, ls=style)
    for layer, style in LAYER_STYLES.items():     # colour says the norm (left legend), style the layer
        w_ax.plot([], [], color="0.3", ls=style, label=layer)
    loss_ax.set(xlabel="step (updates)", ylabel="training loss (cross-entropy, nats)",
                title="Training loss")
    w_ax.set(xlabel="step (updates)", ylabel="weight norm ‖W‖₂", title="Hidden-layer weight norms")
    for ax in (loss_ax, w_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    f.suptitle(f"N3: batch norm with and without gradients through the batch statistics, lr {SHARED_LR}\n"
               f"{fig.BAND_NOTE}", fontsize="medium")
    out.append((fig.save(f, folder / "nograd.png"),
                "N3: training loss and hidden weight norms for none, batch and batch-nograd."))

    cnn = ctx.tables("cnn", target=TARGET)["summary"]
    f = fig.figure(7, 4.2)
    ax = f.subplots()
    for i, norm in enumerate(CNN_NORMS):
        try:
            row = _best(cnn, norm)
        except MissingData:
            continue
        mean = row["steps_to_target_mean"]
        lo, hi = row["steps_to_target_ci_low"], row["steps_to_target_ci_high"]
        err = [[mean - lo], [hi - mean]] if np.isfinite([lo, hi]).all() else None
        ax.bar(i, mean if np.isfinite(mean) else 0, color=fig.norm_color(norm), yerr=err, capsize=4)
        ax.text(i, 0, f"lr {row['lr']:g}\n{int(row['n_reached_target'])}/{int(row['n_seeds'])} reached",
                ha="center", va="bottom", fontsize="small", color="white")
    ax.set_xticks(range(len(CNN_NORMS)), CNN_NORMS)
    ax.set(ylabel=f"steps to test accuracy {TARGET}", title="N10: CNN, each norm at its own best lr\n"
           "bars: mean over the seeds that reached it; error bars: 95% t-interval")
    ax.grid(alpha=0.3, axis="y")
    out.append((fig.save(f, folder / "cnn_steps_to_target.png"),
                f"N10: steps to {TARGET} test accuracy on the CNN per norm."))
    return out


STUDY = Study(
    name="note",
    title="The course note's claims about normalization layers",
    description="the course note's claims (N1-N10): exact checks of the layers, lr tolerance, "
                "gradient stability, batch-nograd ablation, speed of every variant on a CNN",
    protocol=PROTOCOL, run=run, claims=CLAIMS, figures=draw)
