"""The course note's claims about normalization, each measured on this project's networks.

Exact claims (N2, N4a, N4b, N5, N9) build modules directly and run on real mnist-5k batches in
seconds. The others read groups of runs: an lr sweep of the default MLP with and without batch norm,
bisected per seed (N7, note_lr.py), the default MLP at one shared lr with none / batch / batch-nograd
(N1a, N1b, N3, N6, N8-mlp), and the CNN with every variant at the same lr (N8-cnn, N10). Every
comparison across norms is at a matched learning rate, fixed in the protocol before the runs, and
reports each network's sharpness × lr.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..figures.plots import lr_tolerance as draw_lr_tolerance
from ..sweep.run import Sweep
from . import exact, sharp
from . import figures as fig
from .claims import (Change, Claim, Interval, Measurement, MissingData, Study, bracketed, decide, directional,
                     exp_interval, family, fmt_ci, interval, measurement, paired, within)
from .context import Context, listing, run_groups, steps_to
from .note_lr import (BISECT_GROUP, LR_GRID, RESOLUTION, STABLE_RATIO, TOLERANCE, largest_stable, measure_n7,
                      run_bisection)

__all__ = ["STUDY", "CLAIMS", "MLP", "CNN", "CNN_NORMS", "LR_GRID", "SHARED_LR", "TARGET", "plan", "run",
           "largest_stable", "measure_n7", "test_accuracy"]

NOTE = "course note"
IOFFE = "Ioffe & Szegedy 2015"

# --------------------------------------------------------------------------- protocol

MLP = RunConfig(dataset="mnist-5k", binarize=False, model="mlp", depth=3, width=100,
                activation="sigmoid", init="xavier", eps=1e-5, bn_momentum=0.1, groups=4,
                optimizer="sgd", momentum=0.0, weight_decay=0.0, batch_size=60, log_every=50,
                eval_every=50, probe="fixed", probe_size=512, track_units=4)
CNN = replace(MLP, model="cnn", width=32, activation="relu")
SHARED_LR = 0.5
TARGET = 0.9
CNN_NORMS = ["none", "batch", "layer", "instance", "group"]
EXACT_TOL = {"N2": 1e-4, "N4": 1e-5, "N5": 1e-5, "N9": 1e-4}
LAYER_RATIO = 2.0          # N1: layer variances "differ" when the largest is ≥ 2x the smallest
SHIFT = 0.2                # N1: a shift of 0.2 standard deviations is Cohen's "small" effect
BROKEN = 0.10              # N3: "breaks" = at least 10 points of test accuracy lost
TEST_BATCHES = (4, 60)     # N6: test batch sizes, the same trained model
# The networks compared at one lr (N3, N8, N10) record sharpness (Lanczos, both ends of the spectrum).
SHARP = dict(sharpness_every=250, sharpness_iters=10, sharpness_method="lanczos")
FULL = dict(seeds=list(range(8)), mlp_steps=1000, cnn_steps=500, lrs=LR_GRID, sweep_log_every=250, rounds=4,
            sweep_seeds=5)
QUICK = dict(seeds=[0], mlp_steps=200, cnn_steps=100, lrs=[0.1, 1.0, 10.0, 100.0], sweep_log_every=100, rounds=1,
             sweep_seeds=1)


def plan(quick: bool, seeds: list[int] | None = None) -> dict[str, Sweep]:
    p = QUICK if quick else FULL
    seeds = seeds or p["seeds"]
    mlp = replace(MLP, steps=p["mlp_steps"])
    return {   # longest runs first: the short ones fill the pool's tail
        "cnn": Sweep(common=replace(CNN, steps=p["cnn_steps"], **SHARP), norms=CNN_NORMS, lrs=[SHARED_LR],
                     seeds=seeds, batch_sizes=[CNN.batch_size]),
        "shared_lr": Sweep(common=replace(mlp, **SHARP), norms=["none", "batch", "batch-nograd"], lrs=[SHARED_LR],
                           seeds=seeds, batch_sizes=[MLP.batch_size]),
        "lr_sweep": Sweep(common=sweep_config(quick), norms=["none", "batch"],
                          lrs=p["lrs"], seeds=seeds[:p["sweep_seeds"]], batch_sizes=[MLP.batch_size]),
    }


def sweep_config(quick: bool) -> RunConfig:
    """The lr sweep's runs (and its bisection's): the default MLP, final numbers only."""
    p = QUICK if quick else FULL
    return replace(MLP, steps=p["mlp_steps"], log_every=p["sweep_log_every"], eval_every=p["sweep_log_every"])


def run(out: Path, quick: bool = False, jobs: int | None = None, on_outcome=None,
        seeds: list[int] | None = None) -> Context:
    """The three groups as one sweep, then N7's bisection rounds (note_lr.py)."""
    groups = plan(quick, seeds)
    ctx = run_groups(out, groups, quick=quick, jobs=jobs, on_outcome=on_outcome)
    rounds = (QUICK if quick else FULL)["rounds"]
    return run_bisection(out, ctx, sweep_config(quick), groups, rounds=rounds, jobs=jobs, on_outcome=on_outcome)


PROTOCOL = f"""\
Chosen before the deciding runs and the same for every norm: every comparison across norms is at one
matched learning rate, never at each norm's own best. What changed after the committed results
(343910b) were seen, and the earlier changes made after data, are in the threshold history below.

| group | network | what varies | steps | seeds | used by |
|---|---|---|---|---|---|
| `lr_sweep` | default MLP | norm none / batch × lr {listing(LR_GRID)} | {FULL['mlp_steps']} | {listing(FULL['seeds'][:FULL['sweep_seeds']])} | N7 |
| `{BISECT_GROUP}` | default MLP | per seed and norm, the midpoints of its bracket, round by round | {FULL['mlp_steps']} | {listing(FULL['seeds'][:FULL['sweep_seeds']])} | N7 |
| `shared_lr` | default MLP | norm none / batch / batch-nograd at lr {SHARED_LR} | {FULL['mlp_steps']} | {listing(FULL['seeds'])} | N1a, N1b, N3, N6, N8-mlp |
| `cnn` | CNN | norm {' / '.join(CNN_NORMS)} at lr {SHARED_LR} | {FULL['cnn_steps']} | {listing(FULL['seeds'])} | N8-cnn, N10 |

* **Default MLP**: the project's defaults: mnist-5k (standardized pixels), 3 hidden layers of 100
  sigmoid units, Glorot-uniform init, plain SGD (no momentum), batch 60, eps 1e-5, activation
  statistics and test accuracy every {MLP.log_every} steps ({FULL['sweep_log_every']} in the lr sweep, which only needs final numbers).
  {FULL['mlp_steps']} steps (15 epochs of the 4,000 training images). The `shared_lr` and `cnn` runs record
  sharpness (Lanczos, {SHARP['sharpness_iters']} Hessian-vector products, largest and smallest eigenvalue) every
  {SHARP['sharpness_every']} steps; each comparison at lr {SHARED_LR} reports every network's sharpness × lr over
  the second half of its run (≈ 2: the edge of stability, where the step size's own dynamics, not the
  norm, set the loss).
* **Seeds**: {len(FULL['seeds'])}, sized from the seed SDs of the committed results (343910b) against each claim's
  margin: N3's SD of 0.04 gives an MDE of 0.067 at five seeds and 0.046 at eight (margin 0.05), N10's
  bracketed SD of about 50 steps an MDE of about 80 steps at eight (margin 100). N7 keeps five (the first
  five of the study's seeds): its per-seed ratios agreed to a grid step at 343910b, and each seed costs
  {2 * len(LR_GRID)} grid runs and about 4 bisection runs. A pilot on seeds
  100–102 then gives each claim's MDE at the protocol's seeds; above its margin a claim is UNDERPOWERED.
* **Shared lr {SHARED_LR}**: the project's default, chosen beforehand so the MLP trains with and
  without batch norm (also the lr of the Ioffe & Szegedy study), and used for the CNN too: the
  matched lr of N3, N8 and N10.
* **N1a**: at init, the largest over the smallest hidden layer's variance at the `linear` site
  (per seed; geometric mean, t-interval of the logs) must be ≥ {LAYER_RATIO:g}: a factor of 2 in
  variance is the smallest difference that a layer-by-layer normalization would visibly change
  (Glorot init aims at 1); margin ×1.5. **N1b**: during training, the scale-free shift of the unit
  means from init to the end at `linear` (`drift_mean_scaled_init`, mean over hidden layers) must be
  ≥ {SHIFT}: Cohen's "small" standardized effect; margin 0.1.
* **N3**: "breaks training" means batch-nograd loses at least {BROKEN * 100:.0f} points of test accuracy against
  batch norm at the same lr (paired by seed; a diverged run counts at chance, 0.1): on this data
  that is the gap between a working and a broken classifier; a smaller loss is "hurts", not "breaks";
  margin 0.05 (5 points).
* **N6**: the *same* trained batch-norm model (each seed's `shared_lr` run, `model.pt`) is evaluated
  on the test set with batch statistics over consecutive test batches of {TEST_BATCHES[0]} and of
  {TEST_BATCHES[1]}; accuracy(60) − accuracy(4) must be > 0; margin 0.01 (1 point).
* **N7**: quarter-decade lr grid {listing(LR_GRID)} (a bracket of ×1.78), then bisection: per seed and
  norm, rounds of one run at the bracket's geometric midpoint (three significant digits) until the
  bracket is at most ×{RESOLUTION:g} wide (two rounds: 10^(1/16) ≈ ×1.155). An lr is stable when its run did
  not diverge and its final test accuracy is ≥ {TOLERANCE} × that seed's best over the *grid* (so a
  bisection run never moves the bar); a midpoint's run says which half holds the largest stable lr.
  Each seed gives a bracket of ratios (claims.py's bracketed interval). "Much larger learning rates" =
  a ratio ≥ {STABLE_RATIO:g}, Ioffe & Szegedy's smallest factor (for Inception on ImageNet; here the default
  sigmoid MLP); margin ×1.5.
* **N8-mlp, N8-cnn**: gradient stability as `grad_norm_jitter` (compare's gradient_stability: the spread of
  ln(gradient norm) around its running median over 5 consecutive updates, so the normal decay of
  the gradient is not counted as instability), mean over layers, at lr {SHARED_LR}; batch − none paired by
  seed, < 0; one row per network; margin 0.02. Computed over every update.
* **N10**: steps to test accuracy {TARGET} on the CNN, every variant at lr {SHARED_LR}; each count is
  known to within one log interval and a run that never reaches it counts as at least its last
  step, so each seed gives a bracket of differences variant − none; four parts at 1 − 0.05/4; margin
  100 steps (a fifth of the run). Each norm at its own best lr is a different question, answered
  (leave-one-seed-out, so the lr is never chosen on the seed it is scored on) by the default
  comparison's `best_lr.csv`.
* **Exact claims** (N2, N4a, N4b, N5, N9): the default MLP and the CNN at init, with random γ and β,
  on {exact.BATCHES} real training batches of {exact.BATCH_SIZE}; N4a, N4b and N5 in float64 so that
  rounding stays far below their tolerance of 1e-5; N2 and N9 in float32 as in training, tolerance 1e-4.

Paired comparisons are by seed (same init stream, batch order and probe batch).

Quick mode (`--quick`): seed {listing(QUICK['seeds'])} only, {QUICK['mlp_steps']} MLP steps, lr grid
{listing(QUICK['lrs'])} and {QUICK['rounds']} bisection round, the CNN for {QUICK['cnn_steps']} steps. With one
seed there are no intervals, so every trained claim is INCONCLUSIVE; the exact claims are the same as
in the full study.
"""


# --------------------------------------------------------------------------- per-run quantities


def _final(run, column: str) -> float:
    value = ((run.summary or {}).get("final") or {}).get(column)
    if value is None:     # diverged: the last finite value it recorded (compare's rule)
        logged = pd.to_numeric(run.table("metrics")[column], errors="coerce")
        logged = logged[np.isfinite(logged)]
        return float(logged.iloc[-1]) if len(logged) else math.nan
    return float(value)


def _usable_acc(run) -> float:
    """Final test accuracy; a diverged run's weights are unusable, so it counts at chance (0.1)."""
    return 0.1 if run.status == "diverged" else _final(run, "test_acc")


def _hidden(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["layer"].astype(str).str.startswith("hidden")]


def _num(series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def _layer_ratio(run) -> float:
    """At step 0, site linear: largest / smallest hidden-layer variance."""
    lay = _hidden(run.table("layers"))
    v = _num(lay[(lay["step"] == 0) & (lay["site"] == "linear")]["var"])
    return float(v.max() / v.min()) if len(v) and v.min() > 0 else math.nan


def _shift(run) -> float:
    """At the last logged step, site linear: drift_mean_scaled_init, mean over hidden layers."""
    lay = _hidden(run.table("layers"))
    lay = lay[lay["site"] == "linear"]
    if "drift_mean_scaled_init" not in lay or lay.empty:
        return math.nan
    last = lay[lay["step"] == lay["step"].max()]
    return float(_num(last["drift_mean_scaled_init"]).mean())


def _jitter(ctx: Context, run) -> float:
    """Mean over layers (hidden and output) of compare's grad_norm_jitter."""
    return float(_num(ctx.run_tables(run)["gradient_stability"]["grad_norm_jitter_mean"]).mean())


def _weight_growth(run) -> float:
    """Mean over hidden layers of weight norm at the last logged step / at the first logged step."""
    g = _hidden(run.table("grads")).sort_values("step")
    by_layer = g.groupby("layer")["weight_norm"]
    return float((by_layer.last() / by_layer.first()).mean())


def _per_seed(ctx: Context, group: str, f, **where) -> dict[int, float]:
    return {s: f(r) for s, r in ctx.by_seed(group, **where).items()}


def _mean(values: dict) -> float:
    return interval(values.values()).mean


def _log_interval(values: dict, confidence: float) -> Interval:
    """Geometric mean and exp of the t-interval of the logs of positive values."""
    logs = [math.log(v) for v in values.values() if math.isfinite(v) and v > 0]
    return exp_interval(interval(logs, confidence))


# --------------------------------------------------------------------------- trained claims


def measure_n1a(ctx: Context) -> Measurement:
    ratio = _log_interval(_per_seed(ctx, "shared_lr", _layer_ratio, norm="none"), 0.95)
    seen = (f"Without normalization, at init the largest hidden layer's pre-activation variance is "
            f"{fmt_ci(*ratio[:3])}× the smallest's (geometric mean over seeds; threshold {LAYER_RATIO:g}×).")
    return measurement(ratio, directional(ratio.lo, ratio.hi, ">=", LAYER_RATIO), seen)


def measure_n1b(ctx: Context) -> Measurement:
    shift = interval(_per_seed(ctx, "shared_lr", _shift, norm="none").values())
    seen = (f"Without normalization, from init to the end of training each unit's mean at the `linear` site "
            f"moves by {fmt_ci(*shift[:3])} of its standard deviation (mean over hidden layers; threshold "
            f"{SHIFT}).")
    return measurement(shift, directional(shift.lo, shift.hi, ">=", SHIFT), seen)


def _sharpness(ctx: Context, group: str, norms) -> str:
    """'none 0.52, batch 0.31': each network's sharpness × lr (seed mean, second half of its runs)."""
    return ", ".join(f"{n} {sharp.mean_text(ctx.runs(group, norm=n))}" for n in norms)


def measure_n3(ctx: Context) -> Measurement:
    acc = {n: _per_seed(ctx, "shared_lr", _usable_acc, norm=n) for n in ("batch", "batch-nograd")}
    loss = {n: _per_seed(ctx, "shared_lr", lambda r: _final(r, "train_loss"), norm=n)
            for n in ("batch", "batch-nograd")}
    growth = {n: _per_seed(ctx, "shared_lr", _weight_growth, norm=n) for n in ("batch", "batch-nograd")}
    d = paired(acc["batch-nograd"], acc["batch"])
    diverged = sum(r.status == "diverged" for r in ctx.runs("shared_lr", norm="batch-nograd"))
    seen = (f"At lr {SHARED_LR}, batch-nograd ends at test accuracy {_mean(acc['batch-nograd']):.3f} vs "
            f"{_mean(acc['batch']):.3f} with batch norm (difference {fmt_ci(*d[:3])}; breaking means "
            f"≤ −{BROKEN}); training loss {_mean(loss['batch-nograd']):.3g} vs {_mean(loss['batch']):.3g}; "
            f"hidden weight norms grow {_mean(growth['batch-nograd']):.3g}× vs {_mean(growth['batch']):.3g}×"
            f"{f'; {diverged} of its runs diverged (counted at chance)' if diverged else ''}; sharpness × lr "
            f"{_sharpness(ctx, 'shared_lr', ('batch', 'batch-nograd'))} (2 = edge of stability).")
    return measurement(d, directional(d.lo, d.hi, "<=", -BROKEN), seen)


def test_accuracy(run, batch_size: int) -> float:
    """Test accuracy of a run's saved model with batch statistics over test batches of `batch_size`."""
    from ..train import evaluate
    from ..train import load_model

    try:
        _, model, ds = load_model(run.path)
    except Exception as e:            # no model.pt (an older run), unreadable weights
        raise MissingData(f"no usable model.pt in {run.path.name} ({e})") from None
    return float(evaluate(model, ds.x_test, ds.y_test, chunk=batch_size, batch_stats=True)[1])


def measure_n6(ctx: Context, norm: str = "batch") -> Measurement:
    small, big = TEST_BATCHES
    acc = {b: _per_seed(ctx, "shared_lr", lambda r, b=b: test_accuracy(r, b), norm=norm)
           for b in TEST_BATCHES}
    running = _per_seed(ctx, "shared_lr", lambda r: _final(r, "test_acc"), norm=norm)
    d = paired(acc[big], acc[small])
    seen = (f"The same trained {norm}-norm models score {_mean(acc[big]):.3f} on the test set with batch "
            f"statistics over test batches of {big}, {_mean(acc[small]):.3f} over test batches of {small} "
            f"(difference {fmt_ci(*d[:3])}), and {_mean(running):.3f} with running statistics.")
    return measurement(d, directional(d.lo, d.hi, ">", 0.0), seen)


def measure_n8(ctx: Context, model: str = "MLP") -> Measurement:
    group = {"MLP": "shared_lr", "CNN": "cnn"}[model]
    jit = {n: _per_seed(ctx, group, lambda r: _jitter(ctx, r), norm=n) for n in ("none", "batch")}
    d = paired(jit["batch"], jit["none"])
    seen = (f"At lr {SHARED_LR} on the {model}, the detrended gradient-norm jitter (mean over layers) is "
            f"{_mean(jit['batch']):.3g} with batch norm vs {_mean(jit['none']):.3g} without (difference "
            f"{fmt_ci(*d[:3])}); sharpness × lr {_sharpness(ctx, group, ('none', 'batch'))} (2 = edge of stability).")
    return measurement(d, directional(d.lo, d.hi, "<", 0.0), seen)


def measure_n8_mlp(ctx: Context) -> Measurement:
    return measure_n8(ctx, "MLP")


def measure_n8_cnn(ctx: Context) -> Measurement:
    return measure_n8(ctx, "CNN")


def measure_n10(ctx: Context) -> Measurement:
    steps = {n: {s: steps_to(r, TARGET) for s, r in ctx.by_seed("cnn", norm=n).items()} for n in CNN_NORMS}
    variants = [n for n in CNN_NORMS if n != "none"]
    level = family(len(variants))
    parts = {}
    for n in variants:
        seeds = sorted(set(steps[n]) & set(steps["none"]))
        v, b = steps[n], steps["none"]
        iv = bracketed({s: v[s][0] - b[s][0] for s in seeds}, {s: v[s][1] - b[s][2] for s in seeds},
                       {s: v[s][2] - b[s][1] for s in seeds}, level)
        parts[n] = (iv, directional(iv.lo, iv.hi, "<", 0.0))
    verdict, part, iv = decide(parts)

    def describe(n):
        reached = sum(math.isfinite(v[2]) for v in steps[n].values())
        return f"{n} {np.mean([v[0] for v in steps[n].values()]):.0f} ({reached}/{len(steps[n])} reached)"
    seen = (f"Mean steps to test accuracy {TARGET} on the CNN, every norm at lr {SHARED_LR}: "
            + ", ".join(describe(n) for n in CNN_NORMS) + "; variant − none: "
            + ", ".join(f"{n} {fmt_ci(*parts[n][0][:3])}" for n in variants)
            + f" ({level:.3g} bracketed intervals); measured: {part}; sharpness × lr "
            + _sharpness(ctx, "cnn", CNN_NORMS) + " (2 = edge of stability).")
    return measurement(iv, verdict, seen)


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
    Claim("N1a", "Without normalization, the statistics of the layers' inputs differ from layer to layer.", NOTE,
          f"no-norm MLP at lr {SHARED_LR}, site linear: largest / smallest hidden-layer variance at init "
          "(geometric mean over seeds, t-interval of the logs)",
          f"ratio ≥ {LAYER_RATIO:g}", None, measure_n1a, margin=1.5,
          revised="split from N1 (PASS at 343910b, decided by this part): one row per statement"),
    Claim("N1b", "Without normalization, the statistics of the layers' inputs shift during training.", NOTE,
          f"no-norm MLP at lr {SHARED_LR}, site linear: drift_mean_scaled_init at the end (mean over hidden "
          "layers), t-interval over seeds", f"shift ≥ {SHIFT} standard deviations", None, measure_n1b,
          margin=0.1, revised="split from N1 (PASS at 343910b): one row per statement"),
    Claim("N2", "Batch norm makes every unit zero-mean and unit-variance over the mini-batch, before γ "
                "and β.", f"{NOTE}; {IOFFE}, Sec. 3",
          "max over units, layers and batches of |mean| and |var − v/(v+eps)| of (BN(x) − β)/γ",
          f"≤ {EXACT_TOL['N2']:g}", None, measure_n2),
    Claim("N3", "The normalization must be differentiable with respect to the batch statistics: "
                "treating them as constants breaks training.", f"{NOTE}; {IOFFE}, Sec. 2",
          f"final test accuracy batch-nograd − batch at lr {SHARED_LR}, paired by seed (a diverged run "
          "counts at chance)",
          f"difference ≤ −{BROKEN} (at least {BROKEN * 100:.0f} points of test accuracy lost)", None, measure_n3,
          margin=0.05,
          revised="was: PASS if the training loss was higher at all, or the weights grew more; the claim "
                  "says training breaks, so now a loss of at least 10 points of accuracy"),
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
          f"one trained batch-norm model per seed: test accuracy with batch statistics over test batches of "
          f"{TEST_BATCHES[1]} − over test batches of {TEST_BATCHES[0]}, paired by seed", "difference > 0", None,
          measure_n6, margin=0.01,
          revised="was: models trained with batch 4 and batch 60 compared (15× fewer examples seen); "
                  "now one model evaluated with both test batch sizes"),
    Claim("N7", "Normalization allows much larger learning rates.", f"{NOTE}; {IOFFE}, Sec. 3.3",
          f"largest stable lr (batch) / (none) per seed: a quarter-decade grid, then bisection to ×{RESOLUTION:g}; "
          "geometric mean, interval from per-seed brackets", f"ratio ≥ {STABLE_RATIO:g}",
          "5×–30× (Ioffe & Szegedy, on Inception)", measure_n7, margin=1.5,
          revised="was: ratio ≥ 3 on the quarter-decade grid, whose brackets ([1.78, 5.62] per seed) could not "
                  "decide around 3; now the paper's 5×, each seed's bracket bisected to ×1.16"),
    Claim("N8-mlp", "Normalization gives steadier gradients (default MLP).", NOTE,
          f"grad_norm_jitter (detrended: spread of ln gradient norm around its running median), mean over "
          f"layers; batch − none at lr {SHARED_LR} on the MLP, paired by seed; sharpness × lr reported",
          "difference < 0", None, measure_n8_mlp, margin=0.02,
          revised="split from N8 (PASS at 343910b, MLP and CNN in one row): one row per network"),
    Claim("N8-cnn", "Normalization gives steadier gradients (CNN).", NOTE,
          f"as N8-mlp, on the CNN at lr {SHARED_LR}", "difference < 0", None, measure_n8_cnn, margin=0.02,
          revised="split from N8 (PASS at 343910b, MLP and CNN in one row): one row per network"),
    Claim("N9", "Layer, instance and group norm normalize what they claim to: each of their sets of "
                "values has zero mean and unit variance.", f"{NOTE}; Ba et al. 2016; Ulyanov et al. 2016; "
                "Wu & He 2018",
          "max over sets, layers and batches of |mean| and |var − v/(v+eps)| of (y − β)/γ; layer and "
          "group on the MLP and the CNN, instance on the CNN", f"≤ {EXACT_TOL['N9']:g}", None, measure_n9),
    Claim("N10", "Normalization makes training faster.", NOTE,
          f"steps to test accuracy {TARGET} on the CNN, every norm at lr {SHARED_LR}; variant − none per "
          "seed, bracketed by the log interval, 1 − 0.05/4 intervals (measured: the deciding variant)",
          "every variant's difference < 0", None, measure_n10, margin=100.0,
          revised="was: each norm at its own best lr, chosen on the same seeds; now every norm at the "
                  "same lr, fixed beforehand"),
]

# Verdicts committed at 343910b (results/note/verdicts.csv), for the README's "what changed".
PREVIOUS = {"N1": "PASS", "N2": "PASS", "N3": "INCONCLUSIVE", "N4a": "FAIL", "N4b": "PASS", "N5": "PASS",
            "N6": "PASS", "N7": "INCONCLUSIVE", "N8": "PASS", "N9": "PASS", "N10": "INCONCLUSIVE"}
HISTORY = [
    Change("N1, N3, N6, N7, N8, N10", "00aaf02", "seeds 3 → 5", "after an INCONCLUSIVE (N1 and others, for lack "
           "of power at t(0.975, 2) = 4.3): more seeds added after the verdicts were seen, which is optional "
           "stopping; told here so a reader can discount it"),
    Change("N7", "00aaf02", "threshold 5× → 3× and the grid half-decades → quarter-decades", "a release measured "
           "3.16 against Ioffe & Szegedy's 5×; the lower bar was chosen after that value was seen"),
    Change("N7", "343910b", "threshold 3× → 5× (the paper's) and each seed's bracket bisected to ×1.16 (rounds of "
           "runs at the midpoints) instead of read from the grid", "the quarter-decade grid bracketed each "
           "seed's ratio in [1.78, 5.62], so it could not decide around 3 (INCONCLUSIVE; issue 24)"),
    Change("N1a, N1b", "343910b", "N1 split in two rows, each a 95% interval (was one claim of two parts at "
           "1 − 0.05/2)", "one claim, one row (issue 24); N1 was PASS"),
    Change("N8-mlp, N8-cnn", "343910b", "N8 split per network, each a 95% interval (was two parts at 1 − 0.05/2)",
           "one claim, one row, per model (issue 24); N8 was PASS"),
    Change("N1a, N1b, N3, N6, N7, N8-mlp, N8-cnn, N10", "343910b", "seeds 5 → 8 (N7's lr sweep stays at 5); margins stated (×1.5 for ratios, "
           "0.1 SD for N1b, 5 points for N3, 1 point for N6, 0.02 for N8, 100 steps for N10) and a pilot on seeds "
           "100–102; sharpness recorded in `shared_lr` and `cnn`", "seeds sized from the committed seed SDs "
           "against the margins (issue 24): N3 at five seeds had an MDE of 0.067 > 0.05"),
]


# --------------------------------------------------------------------------- figures


LAYER_STYLES = {"hidden1": "-", "hidden2": "--", "hidden3": ":"}


def draw(ctx: Context, folder: Path, fmt: str = "png") -> list[tuple[Path, str]]:
    folder = Path(folder)
    out = []
    paths = draw_lr_tolerance(ctx.tables("lr_sweep"), folder, fmt=fmt)
    out += [(p, "N7: final test accuracy vs learning rate with and without batch norm (default MLP); "
                "look at where each curve falls off: the largest stable lr.") for p in paths]

    tables = ctx.tables("shared_lr")
    f = fig.figure(11, 4.4)
    loss_ax, w_ax = f.subplots(1, 2)
    curves, grads = tables["curves"], tables["grad_curves"]
    for norm in ("none", "batch", "batch-nograd"):
        color = fig.norm_color(norm)
        fig.band(loss_ax, curves[curves["norm"] == norm].sort_values("step"), "step", "test_acc",
                 color=color, label=norm)
        for layer, style in LAYER_STYLES.items():
            d = grads[(grads["norm"] == norm) & (grads["layer"] == layer)].sort_values("step")
            fig.band(w_ax, d, "step", "weight_norm", color=color, label=None, ls=style)
    for layer, style in LAYER_STYLES.items():     # colour says the norm (left legend), style the layer
        w_ax.plot([], [], color="0.3", ls=style, label=layer)
    loss_ax.set(xlabel="step (updates)", ylabel="test accuracy (fraction correct)", title="Test accuracy")
    w_ax.set(xlabel="step (updates)", ylabel="weight norm ‖W‖₂", title="Hidden-layer weight norms")
    for ax in (loss_ax, w_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    f.suptitle(f"N3: batch norm with and without gradients through the batch statistics, lr {SHARED_LR}\n"
               f"{fig.BAND_NOTE}", fontsize="medium")
    out.append((fig.save(f, folder / f"nograd.{fmt}"),
                "N3: test accuracy and hidden weight norms for none, batch and batch-nograd; look at how "
                "far the batch-nograd accuracy falls below batch norm's."))

    curves = ctx.tables("cnn")["curves"]
    f = fig.figure(7, 4.2)
    ax = f.subplots()
    for norm in CNN_NORMS:
        fig.band(ax, curves[curves["norm"] == norm].sort_values("step"), "step", "test_acc",
                 color=fig.norm_color(norm), label=norm)
    ax.axhline(TARGET, color="0.4", lw=1, ls="--", label=f"target {TARGET}")
    ax.set(xlabel="step (updates)", ylabel="test accuracy (fraction correct)",
           title=f"N10: CNN, every norm at lr {SHARED_LR}\n{fig.BAND_NOTE}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    out.append((fig.save(f, folder / f"cnn_accuracy.{fmt}"),
                f"N10: test accuracy of the CNN with every norm at the same lr; look at which curves "
                f"cross the dashed target {TARGET} first."))
    return out


STUDY = Study(
    name="note",
    title="The course note's claims about normalization layers",
    description="the course note's claims (N1-N10): exact checks of the layers, lr tolerance, "
                "gradient stability, batch-nograd ablation, speed of every variant on a CNN",
    protocol=PROTOCOL, run=run, claims=CLAIMS, figures=draw, previous=PREVIOUS, previous_commit="343910b",
    history=HISTORY,
    dataset="`mnist-5k`: the embedded 4,000 training / 1,000 test digits (standardized), for the MLP and the "
            "CNN; the exact claims read its training batches",
    budget="≤ 12 minutes on 2 cores from empty run folders, pilot included")
