"""Blocks of log steps, copied from the device once, turned into table rows in one go.

The recorders (probes.py) keep one flat row per log step (activations) or per step (gradients) in a
device buffer; `flush` copies a block of them to the host, and the functions here lay it out as the
rows of layers.csv, grads.csv and the units table, without a Python loop over units. CSV cells are
formatted by `files.csv_text` (as `files.fmt` does), a row at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import files, lock, schema
from .units import UnitsLog
from . import tensorboard as tb
from ..probes import SITES


def layer_rows(steps: list[int], stats: dict, layers: list[str]) -> list[tuple]:
    """layers.csv rows: step, layer, site, the 10 site statistics and drifts, dead units."""
    site = stats["site"]                                 # (n, L, S, PER_SITE)
    values = site[..., :-1].tolist()
    dead = site[..., -1].astype(np.int64).tolist()
    return [(step, layer, s, *values[k][li][si], dead[k][li][si])
            for k, step in enumerate(steps) for li, layer in enumerate(layers)
            for si, s in enumerate(SITES)]


LAYER_KINDS = "dss" + "g" * 10 + "d"


def unit_block(steps: list[int], stats: dict, layers: list[str]) -> dict[str, np.ndarray]:
    """The units table's columns for a block: one row per (step, layer, site, unit), in that order
    (layer and site as categoricals: codes, not a Python string per row).

    Percentiles are recorded for the first `track_units` units; the others' are NaN. A layer
    narrower than the widest (stats["width"], the resnet's stages) has rows for its own units only.
    """
    mean, var, pct = stats["mean"], stats["var"], stats["pct"]       # (n, L, S, C), (n, L, S, T, 3)
    n, L, S, C = mean.shape
    T = pct.shape[3]
    full = np.full((n, L, S, C, 3), np.nan, dtype=np.float32)
    full[:, :, :, :T] = pct
    count = n * L * S * C
    block = {"step": np.repeat(np.asarray(steps, dtype=np.int64), L * S * C),
             "layer": pd.Categorical.from_codes(np.tile(np.repeat(np.arange(L), S * C), n), layers),
             "site": pd.Categorical.from_codes(np.tile(np.repeat(np.arange(S), C), n * L), SITES),
             "unit": np.tile(np.arange(C, dtype=np.int64), n * L * S),
             "mean": mean.reshape(count).astype(np.float32), "var": var.reshape(count).astype(np.float32),
             "p15": full[..., 0].reshape(count), "p50": full[..., 1].reshape(count),
             "p85": full[..., 2].reshape(count)}
    width = stats.get("width")                                       # (n, L)
    if width is None or (width == C).all():
        return block
    has = (np.arange(C) < width[:, :, None, None]).repeat(S, 2).reshape(count)
    return {name: column[has] for name, column in block.items()}


def grad_rows(steps: list[int], host: np.ndarray, names: list[str]) -> list[tuple]:
    """grads.csv rows: step, layer, grad_norm, weight_norm, update_ratio (NaN blank where not measured)."""
    values = host.transpose(0, 2, 1).tolist()            # (n, layers, 3)
    return [(step, name, *values[k][li]) for k, step in enumerate(steps) for li, name in enumerate(names)]


GRAD_KINDS = "dsggg"


class RunLogs:
    """The core tables of one run being written: metrics, layers, grads and train as CSV, units in blocks.

    Each append is one write of whole rows (a kill leaves at most a torn last line, which readers
    drop); `truncate(step)` cuts every table back to a checkpoint's step when a run resumes, and
    `finish` turns the units blocks into the run's one units file (UnitsLog). With
    `tensorboard`, every append also becomes TensorBoard events of the same rows (tensorboard.Events,
    cut back with the tables); without it a `tensorboard/` folder left by an earlier start is removed.
    """

    def __init__(self, run_dir: Path, fresh: bool, extra: dict[str, tuple[str, ...]] | None = None,
                 tensorboard: bool = False):
        self.run_dir = Path(run_dir)
        self.csv = {name: files.CsvLog(self.run_dir / f"{name}.csv", cols, fresh=fresh)
                    for name, cols in schema.CORE_TABLES.items() if name != "units"}
        for name, cols in (extra or {}).items():    # the second view's tables this run records
            self.csv[name] = files.CsvLog(self.run_dir / f"{name}.csv", list(cols), fresh=fresh)
        self.unit_log = UnitsLog(self.run_dir, fresh=fresh)
        self.events = tb.Events(self.run_dir, fresh=fresh) if tensorboard else None
        if self.events is None:
            tb.remove(self.run_dir)

    def truncate(self, step: int, *, measured_after: tuple[str, ...] = ()) -> None:
        """Cut every table back to the checkpoint of `step`. The tables in `measured_after` hold
        rows of step s measured after that checkpoint (on the batch of update s + 1: the second
        view's, and layers/units under --probe train); a flush between checkpoints may have written
        them, and the resumed run measures them again, so those tables keep only steps < `step`."""
        last = {name: step - 1 if name in measured_after else step for name in [*self.csv, "units"]}
        for name, log in self.csv.items():
            files.truncate_log(log.path, last[name])
        self.unit_log.truncate(last["units"])
        if self.events:
            with lock.writing(self.events.folder):
                self.events.truncate(last)

    def metrics(self, rows: list[list]) -> None:
        self._append("metrics", files.rows_text(rows))

    def layers(self, rows: list[tuple]) -> None:
        self._append("layers", files.csv_text(rows, LAYER_KINDS))

    def grads(self, rows: list[tuple]) -> None:
        self._append("grads", files.csv_text(rows, GRAD_KINDS))

    def train(self, rows: list[list]) -> None:
        """train.csv rows: step, batch_loss, batch_acc (the training batch of the update at a log step)."""
        self._append("train", files.rows_text(rows))

    def quantity(self, name: str, rows: list[list]) -> None:
        self._append(name, files.rows_text(rows))

    def _append(self, name: str, text: str) -> None:
        log = self.csv[name]
        with lock.writing(log.path):
            log.append_text(text)
        if self.events:
            with lock.writing(self.events.folder):
                self.events.table(name, log.columns, text)

    def units(self, block: dict[str, np.ndarray]) -> None:
        with lock.writing(self.run_dir / "units"):
            self.unit_log.append(block)
        if self.events:
            with lock.writing(self.events.folder):
                self.events.units(block)

    def samples(self, steps: list[int], stats: dict, layers: list[str]) -> None:
        """TensorBoard's activation histograms of a block (the recorder's `sample`); nothing without it."""
        if self.events and "sample" in stats:
            with lock.writing(self.events.folder):
                self.events.activations(steps, stats["sample"], layers)

    def finish(self) -> None:
        self.unit_log.finish()

    def close(self) -> None:
        """Close the event file, if any (the tables need no closing: each append is whole)."""
        if self.events:
            self.events.close()
