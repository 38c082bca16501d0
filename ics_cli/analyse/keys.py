"""Configuration keys and reading order of the tables across runs.

A *configuration* is the value of the key columns: ``model, norm, lr, batch_size`` always, plus every
other hashed config field (not in ``config.NOT_HASHED``, not ``seed``) whose value differs between the
runs given. Rows sort in reading order: norms in NORM_ORDER, sites in SITE_ORDER, layers in depth order,
numbers as numbers. `match_rows` finds a configuration's rows (blank equals blank; 1 equals 1.0).

The long (per-seed) tables (long.py) have a key of their own that does not depend on what the runs
vary, so that a script written for one sweep's long tables reads another's: LONG_KEY always, then the
comparison's other key columns; each of their rows names its run by RUN_COLUMNS (`run_identity`).
"""

from __future__ import annotations

import json
import math
from dataclasses import fields

import numpy as np
import pandas as pd

from ..config import NOT_HASHED, RunConfig
from ..net import norms
from ..store.runs import Run, run_config


ALWAYS_KEY = ("model", "norm", "lr", "batch_size")

NORM_ORDER = norms.ORDER        # the registry's order (net/norms.py)

SITE_ORDER = ("linear", "norm", "act", "norm_eval")

# The key columns every long table starts with, whatever the runs vary: the fields that say which
# network, which data and which training a row is from (docs/metrics.md, "Long tables (per seed)").
LONG_KEY = ("model", "norm", "lr", "batch_size", "optimizer", "depth", "width", "activation", "dataset", "steps")
# Which run a long table's row is from: its seed, its config hash (runs.csv's) and its status.
RUN_COLUMNS = ("seed", "hash", "status")


def key_columns(runs: list[Run]) -> list[str]:
    """model, norm, lr, batch_size, then every other hashed field that varies across `runs`."""
    extra = []
    for f in fields(RunConfig):
        if f.name in ALWAYS_KEY or f.name in NOT_HASHED or f.name == "seed":
            continue
        seen = {json.dumps(run_config(r).get(f.name), sort_keys=True) for r in runs}
        if len(seen) > 1:
            extra.append(f.name)
    return list(ALWAYS_KEY) + extra


def long_key(key_cols: list[str]) -> list[str]:
    """The key of the long tables of a comparison keyed by `key_cols` (key_columns): LONG_KEY, then
    the key columns that are not in it, in their order (a field that varies is never left out)."""
    return [*LONG_KEY, *(c for c in key_cols if c not in LONG_KEY)]


def run_identity(run: Run, key_cols: list[str]) -> dict:
    """The cells a per-seed row of `run` starts with: its values of `long_key(key_cols)`, then
    RUN_COLUMNS. The wide tables group by `key_cols` alone, so the other cells ride along unused."""
    cfg = run_config(run)
    return {**{c: cfg.get(c) for c in long_key(key_cols)},
            "seed": cfg.get("seed"), "hash": run.hash, "status": run.status}


def table_key(table: pd.DataFrame) -> list[str]:
    """The configuration-key columns of a table written by `build`: its columns named after config fields,
    before `seed` where it has one (runs.csv's provenance columns after it, e.g. `dataset`, are no key)."""
    cols = list(table.columns)
    if "seed" in cols:
        cols = cols[:cols.index("seed")]
    return [c for c in cols if c in CONFIG_FIELDS]

CONFIG_FIELDS = {f.name for f in fields(RunConfig)}


def rank_by(values: pd.Series, order) -> pd.Series:
    """Known names in `order` first, in that order; unknown names after, alphabetically."""
    known = {name: i for i, name in enumerate(order)}
    others = sorted(set(values.dropna().astype(str)) - set(known))
    known.update({name: len(order) + i for i, name in enumerate(others)})
    return values.map(lambda v: known.get(str(v), math.nan))


def layer_rank(values: pd.Series) -> pd.Series:
    """hidden1, hidden2, ..., hidden10 in numeric order, then output, then anything else."""
    def rank(v):
        s = str(v)
        if s.startswith("hidden") and s[6:].isdigit():
            return int(s[6:])
        return 10**6 if s == "output" else 10**6 + 1
    return values.map(rank)


def sort_key(col: pd.Series) -> pd.Series:
    if col.name == "norm":
        return rank_by(col, NORM_ORDER)
    if col.name == "site":
        return rank_by(col, SITE_ORDER)
    if col.name == "layer":
        return layer_rank(col)
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.notna().sum() == col.notna().sum():
        return numeric
    return col.map(lambda v: "" if v is None or v != v else str(v))


def sort_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows in reading order: key columns (norms in NORM_ORDER), then seed (one run's rows together),
    layer, site, unit, step."""
    if table.empty:
        return table.reset_index(drop=True)
    by = table_key(table) + [c for c in ("seed", "layer", "site", "unit", "step") if c in table.columns]
    return table.sort_values(by=by, key=sort_key, kind="stable", na_position="last").reset_index(drop=True)


def columns(frame: pd.DataFrame, cols) -> pd.DataFrame:
    """`frame` with exactly these columns; a column that an older run folder lacks is blank (NaN)."""
    return frame.reindex(columns=list(cols))


def with_key(frame: pd.DataFrame, key: dict) -> pd.DataFrame:
    frame = frame.copy()
    for i, (name, value) in enumerate(key.items()):
        frame.insert(i, name, [value] * len(frame))
    return frame


def concat(frames: list[pd.DataFrame], key_cols: list[str], cols: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=key_cols + cols)


def same_value(a, b) -> bool:
    missing_a = a is None or (isinstance(a, float) and a != a)
    missing_b = b is None or (isinstance(b, float) and b != b)
    if missing_a or missing_b:
        return missing_a and missing_b
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def match_rows(table: pd.DataFrame, key: dict) -> pd.DataFrame:
    """Rows of `table` whose key columns equal `key` (blank equals blank; 1 equals 1.0)."""
    if table.empty:
        return table
    mask = np.ones(len(table), dtype=bool)
    for col, value in key.items():
        if col in table.columns:
            mask &= same_column(table[col], value)
    return table[mask]


def same_column(col: pd.Series, value) -> np.ndarray:
    """`same_value` of every cell of `col` with `value`, vectorized (per-step tables have 10⁵ rows)."""
    missing = col.isna().to_numpy()
    if value is None or (isinstance(value, float) and value != value):
        return missing
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ~missing & (col.astype(str).to_numpy() == str(value))
    cells = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    same = cells == number
    words = ~missing & np.isnan(cells)          # cells that are not numbers: compared as text
    if words.any():
        same[words] = col[words].astype(str).to_numpy() == str(value)
    return same & ~missing
