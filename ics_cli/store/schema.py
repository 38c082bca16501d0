"""The tables of a run folder: their columns, the columns a table must have to be read at all, the
columns that name one observation, and the check that a table read back keeps that contract.

Every run has the core tables (metrics, layers, units, grads, train); the second view's (ics_cli/quantities)
only when it was asked for. A run is finished when its status is one of FINISHED.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..quantities import KEYS as QUANTITY_KEYS, TABLES as QUANTITY_TABLES
from .files import DamagedFile


METRICS_COLUMNS = ["step", "train_loss", "train_acc", "test_loss", "test_acc",
                   "test_loss_batchstats", "test_acc_batchstats", "lr", "train_loss_eval", "train_acc_eval",
                   "elapsed_s"]

LAYERS_COLUMNS = ["step", "layer", "site", "mean", "var", "unit_mean_abs", "unit_var_mean",
                  "drift_mean", "drift_var", "drift_mean_init", "drift_var_init",
                  "drift_mean_scaled", "drift_mean_scaled_init", "dead_units"]

UNITS_COLUMNS = ["step", "layer", "site", "unit", "mean", "var", "p15", "p50", "p85"]

GRADS_COLUMNS = ["step", "layer", "grad_norm", "weight_norm", "update_ratio"]

TRAIN_COLUMNS = ["step", "batch_loss", "batch_acc"]

CORE_TABLES = {"metrics": METRICS_COLUMNS, "layers": LAYERS_COLUMNS,
               "units": UNITS_COLUMNS, "grads": GRADS_COLUMNS, "train": TRAIN_COLUMNS}


# Every run has the core tables; the second view's (ics_cli/quantities) only when it was asked for.
TABLES = {**CORE_TABLES, **QUANTITY_TABLES}

FINISHED = ("completed", "diverged")


# Per table: the columns it must have to be read at all (older folders may lack the others), and the
# columns that name one observation: a log that holds the same key twice is inconsistent.
REQUIRED = {"metrics": ("step", "test_acc"), "layers": ("step", "layer", "site"),
            "units": ("step", "layer", "site", "unit"), "grads": ("step", "layer"), "train": ("step",)}

ROW_KEYS = {"metrics": ("step",), "layers": ("step", "layer", "site"),
            "units": ("step", "layer", "site", "unit"), "grads": ("step", "layer"), "train": ("step",),
            **QUANTITY_KEYS}


def check_table(path: Path, name: str, table: pd.DataFrame) -> None:
    """A DamagedFile unless `table` has its table's columns, whole steps, and each key once."""
    missing = [c for c in REQUIRED.get(name, ()) if c not in table.columns]
    if missing:
        header = ",".join(map(str, table.columns))
        header = header if len(header) <= 60 else header[:57] + "..."
        raise DamagedFile(path, f"{path.name} is not a {name} log: no column {', '.join(missing)} "
                                f"(header: '{header}')")
    if "step" in table.columns:
        steps = pd.to_numeric(table["step"], errors="coerce")
        bad = table["step"][steps.isna() | (steps != steps.round())]
        if len(bad):
            raise DamagedFile(path, f"{path.name} has a step that is not a whole number ({bad.iloc[0]!r})")
    key = list(ROW_KEYS.get(name, ()))
    if key and len(table):
        repeated = table.duplicated(key, keep=False)
        if repeated.any():
            first = table.loc[repeated.idxmax(), key]
            times = int((table[key] == first).all(axis=1).sum())
            what = ", ".join(f"{c} {first[c]}" for c in key)
            raise DamagedFile(path, f"{path.name} holds {what} {'twice' if times == 2 else f'{times} times'} "
                                    "(an inconsistent log: each is recorded once, and its rows would be "
                                    "aggregated twice)")
REQUIRED.update(QUANTITY_KEYS)
