"""What every table family across runs shares: the table names in file order, the value columns of the
first view, the `Tables` container `compare.build` returns, and a run's final value and score.

The families (compare.py: the first view; quantities.py: the second view; batch.py: the batch axis;
long.py: the per-seed rows of each) import from here, never from each other's modules, so that
compare.py can assemble them all.
"""

from __future__ import annotations

import math

import pandas as pd

from .. import quantities as measured
from ..store.runs import Run
from .stats import finite

TABLE_NAMES = ("summary", "drift", "gradient_stability", "lr_tolerance", "best_lr")


# Companion tables: tidy per-lr and per-step tables (plots read these, never run folders), and
# one row per run so every aggregate can be traced back to the folders behind it.
STEP_TABLE_NAMES = ("lr_curve", "curves", "layer_curves", "percentiles", "grad_curves", "runs")

ALL_TABLE_NAMES = TABLE_NAMES + STEP_TABLE_NAMES


# The second view's tables (analyse/quantities.py), after those: each written only when a run recorded its data.
# A quantity without a family of its own in quantities.py (one registered later) gets a generic
# `<name>_curves` table: its values' mean and interval over seeds per configuration and row key.
OWN_FAMILY = ("grad_ics", "landscape", "relative_loss", "sharpness")
GENERIC = {f"{name}_curves": name for name in measured.REGISTRY if name not in OWN_FAMILY}
SECOND_VIEW_NAMES = ("grad_ics_curves", "landscape_curves", "landscape_stability", "relative_loss_curves",
                     "relative_loss_threshold", "sharpness_curves", "depth_profile", *GENERIC)


# The batch view's tables (analyse/batch.py), last: written only when the runs have a batch axis to show.
BATCH_VIEW_NAMES = ("batch_size", "test_stats")

CURVE_VALUES = ("test_acc", "test_loss", "train_acc", "train_loss")

LAYER_VALUES = ("mean", "var", "unit_mean_abs", "unit_var_mean",
                "drift_mean", "drift_var", "drift_mean_init", "drift_var_init",
                "drift_mean_scaled", "drift_mean_scaled_init", "dead_units")

PERCENTILE_VALUES = ("p15", "p50", "p85")

GRAD_VALUES = ("grad_norm", "weight_norm", "update_ratio")


# Per-run drift summaries, for each recorded drift d (mean, var, mean_scaled): total, final from init, step.
DRIFTS = ("mean", "var", "mean_scaled")

DRIFT_VALUES = ("drift_mean_total", "drift_var_total", "drift_mean_init_final",
                "drift_var_init_final", "drift_mean_step", "drift_var_step",
                "drift_mean_scaled_total", "drift_mean_scaled_step", "drift_mean_scaled_init_final")

GRAD_STAB_VALUES = ("grad_norm_mean", "grad_norm_cv", "grad_norm_jitter", "spike_frac")

# The per-seed (long) table of each wide table that aggregates over seeds: (index columns, value columns).
LONG = {
    "drift": (("layer", "site"), DRIFT_VALUES),
    # grad_ratio_first_last is one number per run, repeated on each of its layer rows.
    "gradient_stability": (("layer",), (*GRAD_STAB_VALUES, "grad_ratio_first_last")),
    "curves": (("step",), CURVE_VALUES),
    "layer_curves": (("layer", "site", "step"), LAYER_VALUES),
    "grad_curves": (("layer", "step"), GRAD_VALUES),
}
# Per-step tables that are the data of a figure (the report folds them).
FIGURE_DATA = ("curves", "layer_curves", "percentiles", "grad_curves")


def final_value(run: Run, metrics: pd.DataFrame, column: str) -> float:
    """The run's end value of `column`: summary.json `final` if finite, else the last finite logged value."""
    value = ((run.summary or {}).get("final") or {}).get(column)
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if math.isfinite(value):
        return value
    logged = finite(metrics[column]).dropna() if column in metrics else pd.Series(dtype=float)
    return float(logged.iloc[-1]) if len(logged) else math.nan


def scored_by(metrics: pd.DataFrame) -> str:
    """What a run is scored by: "final_test_acc", or "final_loss_drop" when its test accuracy is blank
    at every logged step (regression)."""
    acc = finite(metrics["test_acc"]).dropna() if "test_acc" in metrics else ()
    return "final_test_acc" if len(acc) or not len(metrics) else "final_loss_drop"


def loss_drop(metrics: pd.DataFrame) -> pd.Series:
    """1 − test_loss / the first row's test_loss (step 0), per metrics row: the fraction of the
    initial test loss removed (1: all of it; 0: none; negative: the loss grew)."""
    loss = finite(metrics["test_loss"])
    first = loss.iloc[0] if len(loss) else math.nan
    return 1.0 - loss / first if first == first and first > 0 else loss * math.nan


class Tables(dict):
    """What `build` returns: the wide tables by name, in file order (one row per configuration), and in
    `long` the per-seed tables they aggregate (analyse/long.py), by the name of the wide table each one
    aggregates into. `save` writes both; `write` and `load` only the wide ones."""

    def __init__(self, tables=(), long: dict[str, pd.DataFrame] | None = None):
        super().__init__(tables)
        self.long = dict(long or {})


# Columns that are text even when every cell looks like a number (a hash "12345678", seeds "0").
TEXT_COLUMNS = {"seeds": str, "acc_by_lr": str, "hash": str, "path": str, "status": str,
                 "lrs_chosen": str, "note": str}
