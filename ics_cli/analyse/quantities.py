"""Tables across runs and seeds for the second view of ICS: one small family per measurement.

The quantities of ics_cli/quantities write one table each to a run folder (grad_ics, landscape,
relative_loss, sharpness); this module turns them, with the activation statistics of layers.csv, into
the compare tables that plots draw (figures/quantities.py) and the studies read. The rules are compare.py's:
key columns first, only finished runs, `<x>_mean, <x>_ci_low, <x>_ci_high` the mean over seeds and
its 95% t interval (aggregate), non-finite values left out of the column they are in.

A table is built only when some finished run recorded the quantity behind it, and `depth_profile`
(from layers.csv, for every finished run) only when some run recorded any of them: a comparison of runs without the second view gets no new
file, so its output set stays byte for byte what it was. Every column is defined in
docs/metrics.md, "Tables of the second view".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import quantities as measured
from .base import GENERIC, SECOND_VIEW_NAMES, Tables
from .keys import CONFIG_FIELDS, RUN_COLUMNS, long_key, run_identity
from .keys import sort_key, table_key
from .stats import aggregate, finite
from .keys import columns, concat, with_key
from ..store.schema import FINISHED
from ..store.runs import Run, run_config

TABLE_NAMES = SECOND_VIEW_NAMES
# The quantity tables of a run folder (ics_cli/quantities): recording any one of them asks for the view.
QUANTITIES = tuple(measured.REGISTRY)

BLOWUP = 1e3            # relative loss above this counts as blown up (Bjorck et al. 2018, Fig. 2)
EARLY_FRACTION = 0.25   # "early": the recorded steps t with t <= EARLY_FRACTION x the run's steps

GRAD_ICS_VALUES = ("grad_norm", "ics_l2", "ics_cos", "ics_rel")
LANDSCAPE_VALUES = ("loss0", "loss_band_min", "loss_band_max", "loss_band_width",
                    "grad_pred", "grad_pred_min", "beta_eff")
STABILITY_VALUES = ("beta_eff_cv", "loss_band_width_early", "grad_pred_early")
REL_LOSS_VALUES = ("rel_loss", "log10_rel_loss")
SHARPNESS_VALUES = ("sharpness", "sharpness_lr")
DEPTH_VALUES = ("mean", "std")
THRESHOLD_VALUES = ("alpha_blowup", "blown", "alpha_max", "log10_alpha_blowup")   # run_threshold's

# The per-seed (long) table of each wide table: (index columns, value columns).
LONG = {
    "grad_ics_curves": (("layer", "step"), GRAD_ICS_VALUES),
    "landscape_curves": (("step",), LANDSCAPE_VALUES),
    "landscape_stability": ((), STABILITY_VALUES),
    "relative_loss_curves": (("step", "alpha"), REL_LOSS_VALUES),
    "relative_loss_threshold": (("step",), THRESHOLD_VALUES),
    "sharpness_curves": (("step",), SHARPNESS_VALUES),
    "depth_profile": (("step", "site", "layer_index"), DEPTH_VALUES),
    **{table: (tuple(k for k in measured.KEYS[name] if k != "step") + ("step",),
               # a column named like a config field (sharpness' own lr) would meet the key's: left out
               tuple(c for c in measured.TABLES[name] if c not in measured.KEYS[name] and c not in CONFIG_FIELDS))
       for table, name in GENERIC.items()},
}
# Per-step tables that are the data of a figure (the report folds them).
FIGURE_DATA = ("grad_ics_curves", "landscape_curves", "relative_loss_curves", "sharpness_curves", "depth_profile",
               *GENERIC)


# --------------------------------------------------------------------------- one run


def grad_ics_table(table: pd.DataFrame) -> pd.DataFrame:
    """grad_ics.csv with `ics_rel` = ics_l2 / grad_norm, derived where a run recorded before the column
    existed lacks it (the same quotient the recorder writes; NaN where ‖G‖ = 0)."""
    if "ics_rel" in table.columns or not len(table):
        return table
    table = table.copy()
    norm = pd.to_numeric(table["grad_norm"], errors="coerce")
    table["ics_rel"] = pd.to_numeric(table["ics_l2"], errors="coerce") / norm.where(norm > 0)
    return table


def run_landscape(table: pd.DataFrame) -> pd.DataFrame:
    """Per recorded step of one run's landscape.csv: the loss band, gradient predictiveness and β_eff.

    Over the η grid of the step (finite values only): loss_band_min/max = min/max of L(θ − ηg),
    loss_band_width = max − min, grad_pred = max of ‖∇L(θ) − ∇L(θ − ηg)‖₂ (grad_pred_min its min),
    beta_eff = max of that difference over ‖ηg‖₂ (the table's `beta`); loss0 = L(θ).
    """
    # The columns made numeric once (not per step: most of a study's landscape analysis), then read per step.
    values = {c: finite(table[c]).to_numpy(float) for c in ("loss", "grad_diff", "beta", "loss0")}
    rows = []
    for step, pos in sorted(table.reset_index(drop=True).groupby("step", sort=True).indices.items()):
        loss, diff, beta, loss0 = (values[c][pos] for c in ("loss", "grad_diff", "beta", "loss0"))
        loss, diff, beta, loss0 = (x[~np.isnan(x)] for x in (loss, diff, beta, loss0))
        low, high = (float(loss.min()), float(loss.max())) if loss.size else (math.nan, math.nan)
        rows.append({"step": int(step), "loss0": float(loss0[0]) if loss0.size else math.nan,
                     "loss_band_min": low, "loss_band_max": high, "loss_band_width": high - low,
                     "grad_pred": float(diff.max()) if diff.size else math.nan,
                     "grad_pred_min": float(diff.min()) if diff.size else math.nan,
                     "beta_eff": float(beta.max()) if beta.size else math.nan})
    return pd.DataFrame(rows, columns=["step", *LANDSCAPE_VALUES])


def run_stability(per_step: pd.DataFrame, steps: float) -> dict:
    """One run's landscape over its recorded steps (`per_step` from run_landscape; `steps` the run's
    configured step count): beta_eff_cv = std (ddof 0) / mean of beta_eff over the steps (blank with
    fewer than 2 finite values or mean 0); loss_band_width_early and grad_pred_early = their means over
    the recorded steps t with t <= EARLY_FRACTION x steps."""
    beta = finite(per_step["beta_eff"]).dropna().to_numpy()
    mean = float(beta.mean()) if beta.size else math.nan
    cv = float(beta.std(ddof=0)) / mean if beta.size >= 2 and mean != 0 else math.nan
    early = per_step[per_step["step"] <= EARLY_FRACTION * steps]
    return {"beta_eff_cv": cv,
            "loss_band_width_early": float(finite(early["loss_band_width"]).mean()),
            "grad_pred_early": float(finite(early["grad_pred"]).mean())}


def log10(values) -> pd.Series:
    """log10 of the finite positive values; blank elsewhere (0, negative, inf, blank)."""
    x = finite(pd.Series(values, dtype=float) if not isinstance(values, pd.Series) else values)
    return np.log10(x.where(x > 0))


def run_threshold(table: pd.DataFrame) -> pd.DataFrame:
    """Per recorded step of one run's relative_loss.csv: alpha_blowup, the smallest α whose relative
    loss L(θ − α∇L)/L(θ) exceeds BLOWUP or whose loss is not finite (blank if none does); `blown`
    1 if some α did, else 0; alpha_max the largest α tried."""
    rows = []
    for step, d in table.groupby("step", sort=True):
        alpha = pd.to_numeric(d["alpha"], errors="coerce")
        rel, loss = finite(d["rel_loss"]), finite(d["loss"])
        blown = ~(rel <= BLOWUP) | loss.isna()       # NaN compares False: a blank or inf loss blew up
        first = float(alpha[blown].min()) if blown.any() else math.nan
        rows.append({"step": int(step), "alpha_blowup": first, "blown": int(blown.any()),
                     "alpha_max": float(alpha.max())})
    out = pd.DataFrame(rows, columns=["step", "alpha_blowup", "blown", "alpha_max"])
    out["log10_alpha_blowup"] = log10(out["alpha_blowup"])
    return out


def run_depth(layers: pd.DataFrame) -> pd.DataFrame:
    """layers.csv rows of hidden layers at step 0 and at the run's last logged step, with layer_index k
    of hidden<k> (the layer's depth; `depth` is the config field of the network's) and std = sqrt(var)."""
    if layers.empty:
        return pd.DataFrame(columns=["step", "site", "layer_index", *DEPTH_VALUES])
    steps = pd.to_numeric(layers["step"])
    hidden = layers["layer"].astype(str).str.fullmatch(r"hidden\d+")
    d = layers[hidden & steps.isin([0, steps.max()])]
    var = finite(d["var"])
    return pd.DataFrame({"step": pd.to_numeric(d["step"]).astype(int),
                         "site": d["site"].astype(str),
                         "layer_index": d["layer"].astype(str).str[6:].astype(int),
                         "mean": finite(d["mean"]), "std": np.sqrt(var.where(var >= 0))})


# --------------------------------------------------------------------------- all runs


def _order(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Rows in reading order: key columns (norms in NORM_ORDER), then `by` (layers hidden1,
    hidden2, ..., hidden10, output; sites in SITE_ORDER; numbers in numeric order)."""
    cols = table_key(table) + by
    return table.sort_values(by=cols, key=sort_key, kind="stable",
                             na_position="last").reset_index(drop=True)


def build(runs: list[Run], key_cols: list[str]) -> Tables:
    """The tables of the second view (in TABLE_NAMES order) that the finished `runs` have data for, with
    the per-seed rows behind each in `.long` (Tables).

    `key_cols`: the configuration key of the whole comparison (key_columns). A table no run
    has data for is left out, and every one of them when no run recorded a quantity of the view.
    """
    read = {name: [] for name in QUANTITIES}
    done, stability, thresholds = [], [], []
    recorded = False
    for run in runs:
        if run.status not in FINISHED:
            continue
        cfg = run_config(run)
        key = run_identity(run, key_cols)        # with the long tables' key and the run's seed, hash, status
        done.append((run, key))
        tables = {name: run.table(name) for name in QUANTITIES}
        recorded = recorded or any(len(t) for t in tables.values())
        # Only the columns aggregated: sharpness.csv's own `lr` must not meet the key's.
        read["grad_ics"].append(with_key(columns(grad_ics_table(tables["grad_ics"]),
                                                 ["layer", "step", *GRAD_ICS_VALUES]), key))
        read["sharpness"].append(with_key(columns(tables["sharpness"], ["step", *SHARPNESS_VALUES]), key))
        if len(tables["landscape"]):
            per_step = run_landscape(tables["landscape"])
            read["landscape"].append(with_key(per_step, key))
            steps = cfg.get("steps") or (run.summary or {}).get("steps_done") or per_step["step"].max()
            stability.append({**key, **run_stability(per_step, float(steps))})
        rel = tables["relative_loss"]
        if len(rel):
            curve = columns(rel, ["step", "alpha", "rel_loss"]).assign(log10_rel_loss=log10(rel["rel_loss"]))
            read["relative_loss"].append(with_key(curve, key))
            thresholds.append(with_key(run_threshold(rel), key))
        for table, name in GENERIC.items():
            index, values = LONG[table]
            read[name].append(with_key(columns(tables[name], [*index, *values]), key))
    if not recorded:     # no finished run recorded a quantity of the second view
        return Tables()
    # layers.csv is in every run: once the view is on, every finished run has a depth profile.
    layers = [with_key(run_depth(run.table("layers")), key) for run, key in done]

    # Per table: the per-seed rows, their index (beside the key) and the values averaged over seeds.
    per_seed = {
        "grad_ics_curves": (read["grad_ics"], ["layer", "step"], GRAD_ICS_VALUES),
        "landscape_curves": (read["landscape"], ["step"], LANDSCAPE_VALUES),
        "landscape_stability": ([pd.DataFrame(stability, columns=[*long_key(key_cols), *RUN_COLUMNS,
                                                                  *STABILITY_VALUES])], [], STABILITY_VALUES),
        "relative_loss_curves": (read["relative_loss"], ["step", "alpha"], REL_LOSS_VALUES),
        "relative_loss_threshold": (thresholds, ["step"], THRESHOLD_VALUES),
        "sharpness_curves": (read["sharpness"], ["step"], SHARPNESS_VALUES),
        "depth_profile": (layers, ["step", "site", "layer_index"], DEPTH_VALUES),
        **{table: (read[name], list(LONG[table][0]), LONG[table][1]) for table, name in GENERIC.items()},
    }
    long = {name: concat(frames, key_cols, [*by, *values]) for name, (frames, by, values) in per_seed.items()}
    out = {name: _threshold(long[name], key_cols) if name == "relative_loss_threshold"
           else _order(aggregate(long[name], key_cols + by, values), by)
           for name, (_, by, values) in per_seed.items()}
    names = [name for name in TABLE_NAMES if len(out[name])]
    return Tables({name: out[name] for name in names}, long={name: long[name] for name in names})


def _threshold(long: pd.DataFrame, key_cols: list[str]) -> pd.DataFrame:
    """Per configuration × step, from the per-seed rows of run_threshold: n_blowup (seeds where some α
    blew up), alpha_max, and the mean / CI over those seeds of log10 alpha_blowup, with
    alpha_blowup_gmean = 10 ** that mean."""
    by = key_cols + ["step"]
    agg = aggregate(long, by, ["log10_alpha_blowup"])
    if long.empty:
        return agg
    g = long.groupby(by, dropna=False, sort=False)
    extra = pd.DataFrame({"n_blowup": g["blown"].sum().astype(int),
                          "alpha_max": g["alpha_max"].max()}).reset_index()
    out = agg.merge(extra, on=by, how="left", sort=False)
    out["alpha_blowup_gmean"] = 10.0 ** out["log10_alpha_blowup_mean"]
    cols = by + ["n_seeds", "n_blowup", "alpha_max", "alpha_blowup_gmean", "log10_alpha_blowup_mean",
                 "log10_alpha_blowup_ci_low", "log10_alpha_blowup_ci_high"]
    return _order(out[cols], ["step"])
