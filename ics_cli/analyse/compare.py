"""Tables across runs and seeds: one configuration per row, every number a mean over seeds with a 95% CI.

This module owns the step from many run folders (see store/) to a handful of tidy tables that a
person reads and that plots.py draws. Everything here is a pure function of the runs it is given;
nothing prints and nothing trains. Every column is defined, with its formula, in docs/metrics.md,
Part 2 ("tables across runs and seeds").

Rules shared by every table:

* A *configuration* is the value of the key columns: ``model, norm, lr, batch_size`` always, plus every
  other hashed config field (not in ``config.NOT_HASHED``, not ``seed``) whose value differs between
  the runs given. Runs with equal keys and different seeds are aggregated. A field that an older run's
  config.json lacks reads as the value that computed what that run did (store.run_config), so an old
  run and a new one at that value are seeds of one configuration.
* Only finished runs (status ``completed`` or ``diverged``) are aggregated. ``interrupted`` and
  ``incomplete`` runs are counted (``n_interrupted``, ``n_incomplete``) but contribute no number: they
  stopped before their configured step count, so their last values are not comparable.
* ``<x>_mean, <x>_ci_low, <x>_ci_high``: mean over seeds and the 95% t interval
  mean ± t(0.975, n-1) · s/√n (s with ddof=1, t from ``scipy.stats.t``). Blank bounds when n = 1.
  Non-finite values (blank, inf) are left out of the column they are in, so n may be smaller than
  ``n_seeds`` for that column.
* Run folders written before a column existed are read with that column blank (NaN), never refused.
* A run is *scored* (``scored_by``) by its final test accuracy, or, when its accuracy is blank at every
  step (regression: ics_cli/net/tasks.py), by its final loss drop 1 − test_loss / test_loss at step 0.
  lr tolerance, best lr, the matched lr and steps-to-target read the score, so they work for both.
* A damaged run folder (store/runs.py) is skipped by `runs_under`, which reports each one; `save` writes
  the tables and figures as one output set, staged beside the destination and moved into place, and
  `load` refuses a set that was never finished or whose tables are damaged.
* `save` also writes, in `long/`, the per-seed rows each wide table aggregates (analyse/long.py), which
  `load` never reads; they start with a fixed key (keys.LONG_KEY), whatever the runs vary.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import IcsError
from ..store.schema import FINISHED
from ..store.runs import Run, run_config
from .keys import (columns, concat, key_columns, layer_rank, match_rows, run_identity, same_value, sort_rows,
                   table_key, with_key)
from . import batch as batch_view, long as long_tables, quantities as second_view  # families of their own
from .base import (ALL_TABLE_NAMES, CURVE_VALUES, DRIFT_VALUES, DRIFTS, GRAD_STAB_VALUES, GRAD_VALUES,
                   LAYER_VALUES, PERCENTILE_VALUES, Tables, final_value, loss_drop, scored_by)
from .stats import aggregate, finite, mean_ci


SPIKE_FACTOR = 3.0
JITTER_WINDOW = 5
DEFAULT_TARGET_FRACTION = 0.9
DEFAULT_TOLERANCE = 0.9


LR_RULE_ONLY = "only lr"
LR_RULE_MATCHED = "matched: best mean over norms"
LR_RULE_GIVEN = "given"
ONE_SEED_NOTE = "one seed: no other seeds to choose the lr on"


# --------------------------------------------------------------------------- statistics


# --------------------------------------------------------------------------- keys and order


# --------------------------------------------------------------------------- one run


def _steps_to(metrics: pd.DataFrame, target: float, scored_by: str = "final_test_acc") -> float:
    """The first logged step whose test accuracy (or, for a run scored by loss drop, loss drop) >= target."""
    value = finite(metrics["test_acc"]) if scored_by == "final_test_acc" else loss_drop(metrics)
    reached = metrics["step"][value >= target]
    return float(reached.iloc[0]) if len(reached) else math.nan


def _score(frame: pd.DataFrame, suffix: str = "") -> pd.Series:
    """Per row, the value of the column its `scored_by` names (+ suffix): final_test_acc, or, for a
    regression, final_loss_drop. Higher is better either way."""
    acc = finite(frame[f"final_test_acc{suffix}"])
    if "scored_by" not in frame or f"final_loss_drop{suffix}" not in frame:
        return acc
    return acc.where(frame["scored_by"] != "final_loss_drop", finite(frame[f"final_loss_drop{suffix}"]))


def _spike_frac(norms: np.ndarray) -> float:
    """Fraction of values g_k > SPIKE_FACTOR · median(g_1..g_k) (the running median includes g_k)."""
    if norms.size == 0:
        return math.nan
    running = pd.Series(norms).expanding().median().to_numpy()      # O(K log K): K is every update
    return float(np.count_nonzero(norms > SPIKE_FACTOR * running)) / norms.size


def _run_drift(layers: pd.DataFrame) -> pd.DataFrame:
    """Per layer and site: total, mean per log interval, and final-from-init of each recorded drift.

    The drift columns are made numeric once for the whole table (not per layer and site: that was a
    quarter of a study's analysis); each group then sums the same values in the same order.
    """
    d = layers.sort_values("step")
    later = (pd.to_numeric(d["step"], errors="coerce") > 0).to_numpy()
    values = {c: finite(d[c]).to_numpy(float) for stat in DRIFTS for c in (f"drift_{stat}", f"drift_{stat}_init")}
    rows = []
    groups = d.reset_index(drop=True).groupby(["layer", "site"], sort=False).indices
    for (layer, site), pos in sorted(groups.items(), key=lambda kv: kv[1][0]):     # in order of appearance
        row = {"layer": layer, "site": site}
        for stat in DRIFTS:
            step = values[f"drift_{stat}"][pos[later[pos]]]
            step = step[~np.isnan(step)]
            init = values[f"drift_{stat}_init"][pos]
            init = init[~np.isnan(init)]
            row[f"drift_{stat}_total"] = float(step.sum()) if step.size else math.nan
            row[f"drift_{stat}_step"] = float(step.mean()) if step.size else math.nan
            row[f"drift_{stat}_init_final"] = float(init[-1]) if init.size else math.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["layer", "site", *DRIFT_VALUES])


def _jitter(norms: np.ndarray) -> float:
    """std (ddof 0) of ln g minus its running median over a centred window of JITTER_WINDOW recorded steps
    (every update: gradient norms are recorded on every step).

    The median follows the smooth trend (a gradient that decays over training), so what is left is the
    step-to-step jitter around it, in log units: scale-free. g <= 0 is left out; blank with < 2 values.
    """
    norms = norms[norms > 0]
    if norms.size < 2:
        return math.nan
    logs = pd.Series(np.log(norms))
    trend = logs.rolling(JITTER_WINDOW, center=True, min_periods=1).median()
    return float((logs - trend).std(ddof=0))


def _run_grads(grads: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for layer, d in grads.sort_values("step").groupby("layer", sort=False):
        g = finite(d["grad_norm"]).dropna().to_numpy()
        mean = float(g.mean()) if g.size else math.nan
        cv = float(g.std(ddof=0)) / mean if g.size and mean != 0 else math.nan
        rows.append({"layer": layer, "grad_norm_mean": mean, "grad_norm_cv": cv,
                     "grad_norm_jitter": _jitter(g), "spike_frac": _spike_frac(g)})
    table = pd.DataFrame(rows, columns=["layer", *GRAD_STAB_VALUES])
    hidden = table[table["layer"].astype(str).str.fullmatch(r"hidden\d+")]
    if hidden.empty:
        ratio = math.nan
    else:
        ranks = layer_rank(hidden["layer"])
        first = hidden.loc[ranks.idxmin(), "grad_norm_mean"]
        last = hidden.loc[ranks.idxmax(), "grad_norm_mean"]
        ratio = first / last if last and math.isfinite(last) else math.nan
    table["grad_ratio_first_last"] = ratio
    return table


# --------------------------------------------------------------------------- all runs


def build(runs: list[Run], *, target: float | None = None,
          tolerance: float = DEFAULT_TOLERANCE) -> dict[str, pd.DataFrame]:
    """Every table: those of TABLE_NAMES, then the companions of STEP_TABLE_NAMES (ALL_TABLE_NAMES order),
    then those of SECOND_VIEW_NAMES that the runs have data for (second_view.build), then those of
    BATCH_VIEW_NAMES that the runs call for (batch_view.build); in `.long` (a Tables), the per-seed rows
    each of them that averages over seeds was aggregated from (long_tables.NAMES).

    `target`: test accuracy for `steps_to_target`; None means DEFAULT_TARGET_FRACTION × the best mean
    best_test_acc of any configuration. `tolerance`: fraction of the best accuracy that still counts as
    good in lr_tolerance.
    """
    if not runs:
        raise IcsError("no run folders given; run `ics train` or `ics sweep` first")
    if target is not None and not 0 < target <= 1:
        raise IcsError(f"--target must be an accuracy in (0, 1], got {target}")
    if not 0 < tolerance <= 1:
        raise IcsError(f"--tolerance must be a fraction in (0, 1], got {tolerance}")
    key_cols = key_columns(runs)
    per_run, curves, layers, pcts, grads, drifts, stabs = [], [], [], [], [], [], []
    metrics_by_run = []
    for run in runs:
        cfg = run_config(run)
        key = {c: cfg.get(c) for c in key_cols}
        aggregated = run.status in FINISHED
        # A per-run frame carries the run's long key, seed, hash and status: the long tables keep them.
        ident = run_identity(run, key_cols)
        metrics = run.table("metrics").sort_values("step") if aggregated else pd.DataFrame()
        metrics_by_run.append(metrics)
        row = {**key, "seed": cfg.get("seed"), "status": run.status, "hash": run.hash,
               "dataset": cfg.get("dataset"), "path": str(run.path), "aggregated": aggregated,
               "steps_done": (run.summary or {}).get("steps_done"),
               "diverged_at_step": (run.summary or {}).get("diverged_at_step")}
        if aggregated:
            row["final_test_acc"] = final_value(run, metrics, "test_acc")
            row["final_test_loss"] = final_value(run, metrics, "test_loss")
            row["final_train_loss"] = final_value(run, metrics, "train_loss")
            acc = finite(metrics["test_acc"]).dropna()
            row["best_test_acc"] = float(acc.max()) if len(acc) else math.nan
            drop = loss_drop(metrics)
            first = finite(metrics["test_loss"]).iloc[0] if len(metrics) else math.nan
            row["final_loss_drop"] = 1.0 - row["final_test_loss"] / first if first > 0 else math.nan
            row["best_loss_drop"] = float(drop.max()) if drop.notna().any() else math.nan
            row["scored_by"] = scored_by(metrics)
            curves.append(with_key(columns(metrics, ["step", *CURVE_VALUES]), ident))
            lay = columns(run.table("layers"), ["layer", "site", "step", *LAYER_VALUES])
            layers.append(with_key(lay, ident))
            drifts.append(with_key(_run_drift(lay), ident))
            units = columns(run.table("units"), ["layer", "site", "unit", "step", *PERCENTILE_VALUES])
            tracked = units[finite(units["p50"]).notna()]
            # Per seed, never averaged: unit 0 of one seed and unit 0 of another are different units.
            pcts.append(with_key(tracked, {**key, "seed": cfg.get("seed")}))
            gr = columns(run.table("grads"), ["layer", "step", *GRAD_VALUES])
            # Curves at the log steps (where weight norms are measured); stability over every update.
            grads.append(with_key(gr[gr["weight_norm"].notna()], ident))
            stabs.append(with_key(_run_grads(gr), ident))
        per_run.append(row)

    runs_table = pd.DataFrame(per_run)
    for col in ("steps_done", "diverged_at_step"):
        runs_table[col] = pd.to_numeric(runs_table[col]).astype(float)
    for col in ("final_test_acc", "final_test_loss", "final_train_loss", "best_test_acc",
                "final_loss_drop", "best_loss_drop"):
        if col not in runs_table:
            runs_table[col] = math.nan
    if "scored_by" not in runs_table:
        runs_table["scored_by"] = "final_test_acc"
    runs_table["scored_by"] = runs_table["scored_by"].fillna("final_test_acc")
    # One target per score: accuracy for classification runs, loss drop for regression runs.
    targets = {}
    for by, best_col in (("final_test_acc", "best_test_acc"), ("final_loss_drop", "best_loss_drop")):
        scored = runs_table[runs_table["aggregated"] & (runs_table["scored_by"] == by)]
        best = aggregate(scored, key_cols, [best_col], ci=False)
        top = finite(best[f"{best_col}_mean"]).max() if len(best) else math.nan
        targets[by] = target if target is not None else (
            DEFAULT_TARGET_FRACTION * top if top == top else math.nan)
    runs_table["target"] = runs_table["scored_by"].map(targets)
    runs_table["steps_to_target"] = [
        _steps_to(m, t, by) if len(m) and t == t else math.nan
        for m, t, by in zip(metrics_by_run, runs_table["target"], runs_table["scored_by"])]

    summary = _summary(runs_table, key_cols)
    lr_curve = _lr_curve(summary, key_cols)
    runs_out = sort_rows(runs_table.drop(columns="aggregated")[
        key_cols + ["seed", "status", "hash", "steps_done", "diverged_at_step", "final_test_acc",
                    "final_test_loss", "final_train_loss", "best_test_acc", "final_loss_drop",
                    "best_loss_drop", "scored_by", "steps_to_target"]
        + ["dataset"] * ("dataset" not in key_cols) + ["path"]])    # a key column already where runs differ in it
    # The per-seed rows behind each wide table below: its long table (analyse/long.py), same name.
    long = {"drift": concat(drifts, key_cols, ["layer", "site", *DRIFT_VALUES]),
            "gradient_stability": concat(stabs, key_cols,
                                          ["layer", *GRAD_STAB_VALUES, "grad_ratio_first_last"]),
            "curves": concat(curves, key_cols, ["step", *CURVE_VALUES]),
            "layer_curves": concat(layers, key_cols, ["layer", "site", "step", *LAYER_VALUES]),
            "grad_curves": concat(grads, key_cols, ["layer", "step", *GRAD_VALUES])}
    tables = {
        "summary": summary,
        "drift": sort_rows(aggregate(long["drift"], key_cols + ["layer", "site"], DRIFT_VALUES)),
        "gradient_stability": _gradient_stability(long["gradient_stability"], key_cols),
        "lr_tolerance": _lr_tolerance(lr_curve, key_cols, tolerance),
        "best_lr": best_lr(runs_out),
        "lr_curve": lr_curve,
        "curves": sort_rows(aggregate(long["curves"], key_cols + ["step"], CURVE_VALUES)),
        "layer_curves": sort_rows(aggregate(long["layer_curves"], key_cols + ["layer", "site", "step"],
                                         LAYER_VALUES)),
        "percentiles": sort_rows(concat(pcts, key_cols,
                                     ["seed", "layer", "site", "unit", "step", *PERCENTILE_VALUES])),
        "grad_curves": sort_rows(aggregate(long["grad_curves"], key_cols + ["layer", "step"], GRAD_VALUES)),
        "runs": runs_out,
    }
    views = [second_view.build(runs, key_cols), batch_view.build(runs, key_cols)]
    for view in views:
        long.update(view.long)
    out = Tables({name: tables[name] for name in ALL_TABLE_NAMES})
    for view in views:
        out.update(view)
    out.long = {name: long_tables.tidy(name, long[name], key_cols) for name in long_tables.NAMES
                if name in out}
    return out


def _summary(runs_table: pd.DataFrame, key_cols: list[str]) -> pd.DataFrame:
    values = ["final_test_acc", "final_test_loss", "final_train_loss", "best_test_acc", "final_loss_drop",
              "best_loss_drop", "steps_to_target"]
    masked = runs_table.copy()
    masked.loc[~masked["aggregated"], values] = math.nan
    masked["seed_aggregated"] = masked["seed"].where(masked["aggregated"])
    agg = aggregate(masked, key_cols, values).drop(columns="n_seeds")
    g = masked.groupby(key_cols, dropna=False, sort=False)
    counts = pd.DataFrame({
        "n_seeds": g["aggregated"].sum().astype(int),
        **{f"n_{s}": g["status"].apply(lambda x, s=s: int((x == s).sum()))
           for s in ("completed", "diverged", "interrupted", "incomplete")},
        "seeds": g["seed_aggregated"].agg(lambda x: " ".join(str(int(v)) for v in sorted(x.dropna()))),
        "scored_by": g["scored_by"].first(),
        "target": g["target"].first(),
    }).reset_index()
    out = counts.merge(agg, on=key_cols, how="left", sort=False)
    out.insert(out.columns.get_loc("steps_to_target_mean"), "target", out.pop("target"))
    reached = g["steps_to_target"].count().rename("n_reached_target").reset_index()
    out = out.merge(reached, on=key_cols, how="left", sort=False)
    return sort_rows(out)


def _gradient_stability(long: pd.DataFrame, key_cols: list[str]) -> pd.DataFrame:
    per_layer = aggregate(long, key_cols + ["layer"], GRAD_STAB_VALUES)
    # The ratio is one number per run, repeated on its layer rows: aggregate one row per run.
    ratio_rows = long[long["layer"] == "hidden1"] if len(long) else long
    ratio = aggregate(ratio_rows, key_cols, ["grad_ratio_first_last"]).drop(columns="n_seeds")
    return sort_rows(per_layer.merge(ratio, on=key_cols, how="left", sort=False))


def _lr_curve(summary: pd.DataFrame, key_cols: list[str]) -> pd.DataFrame:
    cols = key_cols + ["n_seeds", "n_completed", "n_diverged", "n_interrupted", "n_incomplete", "scored_by",
                       "final_test_acc_mean", "final_test_acc_ci_low", "final_test_acc_ci_high",
                       "final_loss_drop_mean", "final_loss_drop_ci_low", "final_loss_drop_ci_high"]
    return sort_rows(summary[cols].copy())


def _lr_tolerance(lr_curve: pd.DataFrame, key_cols: list[str], tolerance: float) -> pd.DataFrame:
    others = [c for c in key_cols if c != "lr"]
    cols = others + ["scored_by", "n_lrs", "acc_by_lr", "best_acc", "best_lr", "threshold", "n_good_lrs",
                     "max_stable_lr", "min_good_lr", "good_range_decades", "stable_lr_vs_none"]
    rows = []
    judged = lr_curve[lr_curve["n_seeds"] > 0]
    for key, d in judged.groupby(others, dropna=False, sort=False):
        d = d.sort_values("lr")
        acc = _score(d, "_mean")      # accuracy, or for a regression the loss drop
        best = float(acc.max()) if acc.notna().any() else math.nan
        threshold = tolerance * best
        good = d[(acc >= threshold) & (d["n_diverged"] == 0)]["lr"].astype(float)
        # One lr swept says nothing about tolerance: its "largest stable lr" is the grid, not the norm.
        ranged = len(d) >= 2 and len(good) > 0
        row = dict(zip(others, key if isinstance(key, tuple) else (key,)))
        row.update({
            "scored_by": d["scored_by"].iloc[0] if "scored_by" in d else "final_test_acc",
            "n_lrs": len(d),
            "acc_by_lr": " ".join(f"{lr:g}={a:.4f}" + (f"(div{nd}/{n})" if nd else "")
                                  for lr, a, nd, n in zip(d["lr"], acc, d["n_diverged"], d["n_seeds"])),
            "best_acc": best,
            "best_lr": float(d.loc[acc.idxmax(), "lr"]) if best == best else math.nan,
            "threshold": threshold,
            "n_good_lrs": len(good),
            "max_stable_lr": float(good.max()) if ranged else math.nan,
            "min_good_lr": float(good.min()) if ranged else math.nan,
            "good_range_decades": math.log10(good.max() / good.min()) if ranged else math.nan,
        })
        rows.append(row)
    table = pd.DataFrame(rows, columns=cols)
    rest = [c for c in others if c != "norm"]
    baseline = table[table["norm"] == "none"][rest + ["max_stable_lr"]].rename(
        columns={"max_stable_lr": "_none_lr"})
    if rest:
        table = table.merge(baseline, on=rest, how="left", sort=False)
    else:
        table["_none_lr"] = baseline["_none_lr"].iloc[0] if len(baseline) else math.nan
    table["stable_lr_vs_none"] = table["max_stable_lr"] / table["_none_lr"]
    return sort_rows(table.drop(columns="_none_lr")[cols])


# --------------------------------------------------------------------------- best lr, held out


def _choose_lr(runs: pd.DataFrame) -> float:
    """The lr with the highest mean final_test_acc over `runs` among lrs none of whose runs diverged
    (among all lrs if every one has a diverged run); ties go to the smaller lr. NaN if no lr has a
    finite accuracy."""
    acc = _score(runs)
    per_lr = pd.DataFrame({"lr": runs["lr"].astype(float), "acc": acc,
                           "diverged": runs["status"] == "diverged"})
    by_lr = per_lr.groupby("lr", sort=True).agg(acc=("acc", "mean"), diverged=("diverged", "any"))
    by_lr = by_lr[by_lr["acc"].notna()]
    if by_lr.empty:
        return math.nan
    stable = by_lr[~by_lr["diverged"]]
    pool = stable if len(stable) else by_lr
    return float(pool["acc"].idxmax())  # idxmax: the first, i.e. smallest, lr of a tie


def best_lr(runs: pd.DataFrame) -> pd.DataFrame:
    """Each norm at its own best lr, scored on seeds that did not choose it (leave one seed out).

    `runs`: the `runs` table. Per key without lr (model × norm × other key values) and each seed s of
    its finished runs: the lr is chosen on the other seeds only (`_choose_lr`), and seed s's
    final_test_acc at that lr is its held-out score. The row gives the lr chosen for each held-out
    seed (`lrs_chosen`, in seed order) and the mean / t-interval of the held-out scores. With one
    seed there is nothing to choose on: blank numbers and a `note` that says so.
    """
    key_cols = table_key(runs)
    others = [c for c in key_cols if c != "lr"]
    cols = others + ["n_seeds", "seeds", "n_lrs", "lrs_chosen", "final_test_acc_mean",
                     "final_test_acc_ci_low", "final_test_acc_ci_high", "final_loss_drop_mean",
                     "final_loss_drop_ci_low", "final_loss_drop_ci_high", "note"]
    done = runs[runs["status"].isin(FINISHED)] if len(runs) else runs
    rows = []
    for key, d in (done.groupby(others, dropna=False, sort=False) if len(done) else []):
        seeds = sorted(int(s) for s in d["seed"].dropna().unique())
        row = dict(zip(others, key if isinstance(key, tuple) else (key,)))
        row.update({"n_seeds": len(seeds), "seeds": " ".join(map(str, seeds)),
                    "n_lrs": int(d["lr"].nunique()), "lrs_chosen": math.nan, "note": math.nan})
        if len(seeds) < 2:
            row["note"] = ONE_SEED_NOTE
        else:
            chosen, scores = [], {c: [] for c in ("final_test_acc", "final_loss_drop")}
            for s in seeds:
                lr = _choose_lr(d[d["seed"] != s])
                held = d[(d["seed"] == s) & (d["lr"].astype(float) == lr)]
                chosen.append(lr)
                for c, values in scores.items():
                    v = finite(held[c]) if c in held else pd.Series(dtype=float)
                    values.append(float(v.iloc[0]) if len(v) else math.nan)
            for c, values in scores.items():
                mean, low, high, _ = mean_ci(values)
                row.update({f"{c}_mean": mean, f"{c}_ci_low": low, f"{c}_ci_high": high})
            row["lrs_chosen"] = " ".join(f"{lr:g}" for lr in chosen)
        rows.append(row)
    return sort_rows(pd.DataFrame(rows, columns=cols))


# --------------------------------------------------------------------------- headline


def _matched_lr(configs: pd.DataFrame) -> tuple[float, str]:
    """(lr, rule) at which the norms in `configs` (the live configurations of one key without lr and
    norm) are compared: the only lr; else, among lrs that every norm has, the one with the highest
    mean over norms of final_test_acc_mean, among lrs where no norm has a diverged seed (among all of
    them if none qualifies); ties go to the smaller lr."""
    lrs = configs["lr"].astype(float)
    if lrs.nunique() == 1:
        return float(lrs.iloc[0]), LR_RULE_ONLY
    per_lr = pd.DataFrame({"lr": lrs, "norm": configs["norm"].astype(str),
                           "acc": _score(configs, "_mean"),
                           "diverged": configs["n_diverged"] > 0})
    by_lr = per_lr.groupby("lr", sort=True).agg(
        n_norms=("norm", "nunique"), diverged=("diverged", "any"),
        acc=("acc", lambda a: a.mean(skipna=False)))
    rule = LR_RULE_MATCHED
    shared = by_lr[by_lr["n_norms"] == per_lr["norm"].nunique()]
    if shared.empty:
        shared = by_lr[by_lr["n_norms"] == by_lr["n_norms"].max()]
        rule += " (no lr common to all norms: the lr most norms have)"
    stable = shared[~shared["diverged"]]
    pool = stable if len(stable) else shared
    return float(pool["acc"].fillna(-math.inf).idxmax()), rule


def headline_lrs(summary: pd.DataFrame, lr: float | None = None) -> pd.DataFrame:
    """The one lr at which norms are compared, per key without lr and norm (per model, usually).

    Columns: those key columns, `lr`, `lr_rule`. `lr` given: that lr everywhere (rule "given"; an
    IcsError if no configuration has it); None: `_matched_lr`. The headline and every figure that puts
    norms side by side use this lr, so no norm is shown at an lr picked for it alone.
    """
    key_cols = table_key(summary)
    group_cols = [c for c in key_cols if c not in ("lr", "norm")]
    live = summary[summary["n_seeds"] > 0]
    if lr is not None and not any(same_value(v, lr) for v in live["lr"]):
        swept = ", ".join(f"{v:g}" for v in sorted(set(live["lr"].astype(float))))
        raise IcsError(f"lr {lr:g} has no finished runs; the lrs with runs are: {swept}")
    rows = []
    for key, d in (live.groupby(group_cols, dropna=False, sort=False) if len(live) else []):
        chosen, rule = (float(lr), LR_RULE_GIVEN) if lr is not None else _matched_lr(d)
        rows.append({**dict(zip(group_cols, key if isinstance(key, tuple) else (key,))),
                     "lr": chosen, "lr_rule": rule})
    return pd.DataFrame(rows, columns=group_cols + ["lr", "lr_rule"])


HEADLINE_VALUES = ("max_stable_lr", "drift_linear_scaled", "drift_norm_eval_scaled",
                   "grad_norm_cv", "grad_norm_jitter")


def _mean_of(table: pd.DataFrame, column: str, *, site: str | None = None) -> float:
    """Mean of the finite values of `column` over the rows of `table`, or, with `site`, over its hidden
    layers at that site; NaN if the column is absent (tables from older runs) or blank."""
    if table.empty or column not in table.columns:
        return math.nan
    if site is not None:
        table = table[(table["site"].astype(str) == site)
                      & table["layer"].astype(str).str.fullmatch(r"hidden\d+")]
    return float(finite(table[column]).mean()) if len(table) else math.nan


def headline(tables: dict[str, pd.DataFrame], lr: float | None = None) -> pd.DataFrame:
    """One row per model × norm (× other key values but lr), all norms at one matched lr.

    The lr is `headline_lrs(summary, lr)`, recorded in `lr` with the rule in `lr_rule`. Columns: the
    key, lr_rule, n_seeds, n_diverged, final test accuracy mean/CI at that lr, max_stable_lr (the
    lr_tolerance row with the same key except lr), drift_linear_scaled and drift_norm_eval_scaled
    (mean over hidden layers of drift_mean_scaled_total_mean at the `linear` / `norm_eval` site),
    grad_norm_cv and grad_norm_jitter (mean over layers of their `_mean`). A norm without runs at
    the matched lr keeps its row, with blank numbers.
    """
    summary = tables["summary"]
    key_cols = table_key(summary)
    group_cols = [c for c in key_cols if c not in ("lr", "norm")]
    cols = key_cols + ["lr_rule", "n_seeds", "n_diverged", "final_test_acc_mean",
                       "final_test_acc_ci_low", "final_test_acc_ci_high", "final_loss_drop_mean",
                       *HEADLINE_VALUES]
    live = summary[summary["n_seeds"] > 0]
    rows = []
    for _, chosen in headline_lrs(summary, lr).iterrows():
        group = {c: chosen[c] for c in group_cols}
        norms = dict.fromkeys(match_rows(live, group)["norm"])
        for norm in norms:
            key = {c: group.get(c) for c in key_cols}
            key.update(norm=norm, lr=chosen["lr"])
            conf = match_rows(live, key)
            no_lr = {c: v for c, v in key.items() if c != "lr"}
            tol = match_rows(tables.get("lr_tolerance", pd.DataFrame()), no_lr)
            drift = match_rows(tables.get("drift", pd.DataFrame()), key)
            stab = match_rows(tables.get("gradient_stability", pd.DataFrame()), key)
            first = conf.iloc[0] if len(conf) else {}
            rows.append({
                **key, "lr_rule": chosen["lr_rule"],
                "n_seeds": int(first["n_seeds"]) if len(conf) else 0,
                "n_diverged": int(first["n_diverged"]) if len(conf) else 0,
                **{c: float(first[c]) if len(conf) else math.nan
                   for c in ("final_test_acc_mean", "final_test_acc_ci_low", "final_test_acc_ci_high",
                             "final_loss_drop_mean")},
                "max_stable_lr": _mean_of(tol, "max_stable_lr"),
                "drift_linear_scaled": _mean_of(drift, "drift_mean_scaled_total_mean", site="linear"),
                "drift_norm_eval_scaled": _mean_of(drift, "drift_mean_scaled_total_mean",
                                                      site="norm_eval"),
                "grad_norm_cv": _mean_of(stab, "grad_norm_cv_mean"),
                "grad_norm_jitter": _mean_of(stab, "grad_norm_jitter_mean"),
            })
    return sort_rows(pd.DataFrame(rows, columns=cols))


# --------------------------------------------------------------------------- files


