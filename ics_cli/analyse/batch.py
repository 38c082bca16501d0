"""Tables across runs and seeds for the batch axis: error against batch size, and test-time statistics.

Two tables, each built from the finished runs by compare.py's rules (key columns first; the mean over
seeds with its 95% t interval, aggregate; non-finite values left out of the column they are
in), which figures/batch.py draws:

* `batch_size`: the final test error of every configuration, beside the normalization batch it was
  trained with (Wu & He 2018, Fig. 1), for each model whose finished runs span at least two batch
  sizes or two normalization batches (its batch axis); written only when some model has one.
* `test_stats`: for configurations of a batch-statistics norm, the final test error under the run's
  own test-time statistics (--bn-eval) and under the test batch's statistics, and their paired
  difference per seed (Wu & Johnson 2021): the models with a batch axis, or every model when some
  run sets an option of the batch view
  (a field of config.HASHED_UNLESS away from its default): a comparison an older ics could make
  gets no new file, so its output set stays byte for byte what it was.

Every column is defined in docs/metrics.md, "Tables of the batch view".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .base import BATCH_VIEW_NAMES, Tables, scored_by
from ..net import norms
from .stats import aggregate, finite
from .base import final_value
from .keys import RUN_COLUMNS, long_key, run_identity, sort_rows
from ..config import HASHED_UNLESS
from ..store.schema import FINISHED
from ..store.runs import Run, run_config

TABLE_NAMES = BATCH_VIEW_NAMES
ERRORS = ("final_test_error", "final_test_error_batchstats")
GAP = "error_own_minus_batchstats"

# The per-seed (long) table of each wide table: (index columns, value columns).
LONG = {
    "batch_size": (("norm_batch", "stats_batch"), ("diverged", "scored_by", *ERRORS)),
    # bn_eval: an index column unless it is a key column already.
    "test_stats": (("bn_eval", "norm_batch", "stats_batch"), ("diverged", "scored_by", *ERRORS, GAP)),
}


# --------------------------------------------------------------------------- one run


def uses_batch_stats(norm: str) -> bool:
    """Whether `norm` takes its statistics from the mini-batch (norms.REGISTRY; unknown names: no)."""
    entry = norms.REGISTRY.get(str(norm))
    return bool(entry and entry.batch_stats)


def norm_batch(cfg: dict) -> int:
    """Samples one set of batch statistics covers in training: micro_batch, else batch_size."""
    return int(cfg.get("micro_batch") or cfg["batch_size"])


def stats_batch(cfg: dict) -> float:
    """Samples behind one set of training batch statistics: ghost_size for ghost-batch, else the
    normalization batch; blank (NaN) for a norm whose statistics do not come from the batch."""
    if not uses_batch_stats(cfg["norm"]):
        return math.nan
    return float(cfg["ghost_size"]) if cfg["norm"] == "ghost-batch" else float(norm_batch(cfg))


def run_errors(run: Run, cfg: dict) -> dict:
    """One finished run's final test errors: 1 − final test_acc (under its own test-time statistics,
    --bn-eval) and 1 − final test_acc_batchstats (under the test batch's statistics), with the run's
    `scored_by` (compare's rule). A regression run (scored by loss drop) has both errors blank; so does
    the batch-statistics one of a batch-statistics run trained with --no-eval-batchstats (train.py then
    copies test_acc into that column)."""
    metrics = run.table("metrics").sort_values("step")
    by = scored_by(metrics)
    acc = final_value(run, metrics, "test_acc")
    acc_batch = final_value(run, metrics, "test_acc_batchstats")
    if by != "final_test_acc":
        acc = acc_batch = math.nan
    if uses_batch_stats(cfg["norm"]) and not cfg.get("eval_batchstats", True):
        acc_batch = math.nan
    return {"scored_by": by, "final_test_error": 1.0 - acc, "final_test_error_batchstats": 1.0 - acc_batch}


# --------------------------------------------------------------------------- all runs


def _per_run(runs: list[Run], key_cols: list[str]) -> pd.DataFrame:
    """One row per finished run: its long key, seed, hash, status (run_identity), bn_eval, norm_batch,
    stats_batch, diverged (0/1), scored_by, errors."""
    rows = []
    for run in runs:
        if run.status not in FINISHED:
            continue
        cfg = run_config(run)
        rows.append({**run_identity(run, key_cols), "_bn_eval": cfg.get("bn_eval"),
                     "norm_batch": norm_batch(cfg), "stats_batch": stats_batch(cfg),
                     "diverged": int(run.status == "diverged"), **run_errors(run, cfg)})
    return pd.DataFrame(rows, columns=[*long_key(key_cols), *RUN_COLUMNS, "_bn_eval", "norm_batch",
                                       "stats_batch", "diverged", "scored_by", *ERRORS])


def _on_batch_axis(long: pd.DataFrame) -> pd.DataFrame:
    """The rows of the models whose runs span at least two batch sizes or normalization batches."""
    return long.groupby("model", sort=False).filter(
        lambda g: g["batch_size"].nunique() >= 2 or g["norm_batch"].nunique() >= 2)


# The options of the batch view: what one update's statistics are taken over, and how they are used.
BATCH_OPTIONS = ("ghost_size", "renorm_rmax", "renorm_dmax", "renorm_warmup", "renorm_rmax_at", "renorm_dmax_at",
                 "bn_eval", "precise_samples", "freeze_bn_at", "micro_batch", "batch_sampler", "lr_scaling",
                 "lr_base_batch")


def _batch_options(runs: list[Run]) -> bool:
    """Whether some finished run sets a field of the batch view away from the value older runs had."""
    return any(run_config(r).get(k) != HASHED_UNLESS[k] for r in runs if r.status in FINISHED
               for k in BATCH_OPTIONS)


def build(runs: list[Run], key_cols: list[str]) -> Tables:
    """The tables of the batch view (in TABLE_NAMES order) that the finished `runs` call for, with the
    per-seed rows behind each in `.long` (Tables).

    `key_cols`: the configuration key of the whole comparison (key_columns).
    """
    long = _per_run(runs, key_cols)
    if long.empty:
        return Tables()
    axis = _on_batch_axis(long)
    per_seed = {}
    if len(axis):
        per_seed["batch_size"] = axis.drop(columns="_bn_eval")
    scope = long if _batch_options(runs) else axis
    batch_norms = scope[scope["norm"].map(uses_batch_stats)]
    if len(batch_norms):
        per_seed["test_stats"] = _with_gap(batch_norms, key_cols)
    out = {"batch_size": _batch_size, "test_stats": _test_stats}
    names = [name for name in TABLE_NAMES if name in per_seed]
    return Tables({name: out[name](per_seed[name], key_cols) for name in names},
                          long={name: per_seed[name] for name in names})


def _counts(long: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    g = long.groupby(by, dropna=False, sort=False)
    return pd.DataFrame({"n_diverged": g["diverged"].sum().astype(int),
                         "scored_by": g["scored_by"].first()}).reset_index()


def _batch_size(long: pd.DataFrame, key_cols: list[str]) -> pd.DataFrame:
    """Per configuration: norm_batch, stats_batch, n_seeds, n_diverged, scored_by, and the mean / CI over
    seeds of the final test error under the run's own statistics and under batch statistics."""
    by = key_cols + ["norm_batch", "stats_batch"]
    agg = aggregate(long, by, ERRORS)
    out = agg.merge(_counts(long, by), on=by, how="left", sort=False)
    cols = by + ["n_seeds", "n_diverged", "scored_by"] + [f"{e}_{s}" for e in ERRORS
                                                          for s in ("mean", "ci_low", "ci_high")]
    return sort_rows(out[cols])


def _with_gap(long: pd.DataFrame, key_cols: list[str]) -> pd.DataFrame:
    """The per-run rows of test_stats: `bn_eval` (the run's own test-time statistics) after the seed,
    hash and status unless it is a key column, and the paired difference GAP = own − batch-statistics error."""
    long = long.copy()
    bn_eval = long.pop("_bn_eval")
    if "bn_eval" not in key_cols:
        long.insert(long.columns.get_loc("status") + 1, "bn_eval", bn_eval)
    long[GAP] = finite(long["final_test_error"]) - finite(long["final_test_error_batchstats"])
    return long


def _test_stats(long: pd.DataFrame, key_cols: list[str]) -> pd.DataFrame:
    """Per configuration of a batch-statistics norm, from the per-run rows of `_with_gap`: bn_eval (the
    run's own test-time statistics), norm_batch, stats_batch, n_seeds, n_diverged, both errors (mean / CI
    over seeds), and the paired difference own − batch statistics per seed (mean / CI over the seeds
    with both, n_paired)."""
    own = [] if "bn_eval" in key_cols else ["bn_eval"]
    by = key_cols + own + ["norm_batch", "stats_batch"]
    agg = aggregate(long, by, [*ERRORS, GAP])
    paired = long.assign(_has=np.isfinite(long[GAP].astype(float)))
    n_paired = paired.groupby(by, dropna=False, sort=False)["_has"].sum().astype(int).rename("n_paired")
    out = agg.merge(_counts(long, by), on=by, how="left", sort=False)
    out = out.merge(n_paired.reset_index(), on=by, how="left", sort=False)
    cols = by + ["n_seeds", "n_diverged", "scored_by"] + [f"{e}_{s}" for e in ERRORS
                                                          for s in ("mean", "ci_low", "ci_high")]
    cols += ["n_paired", f"{GAP}_mean", f"{GAP}_ci_low", f"{GAP}_ci_high"]
    return sort_rows(out[cols])
