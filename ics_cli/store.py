"""Run folders on disk: atomic writes, append-only CSV logs, completion markers, reading back.

A run folder is complete only once `summary.json` exists; every file that is written whole goes
through a temporary name and `os.replace`, so a kill at any moment leaves nothing that a reader
mistakes for finished. CSV logs are appended one log step at a time and flushed, so a crash keeps
every row already recorded; a reader drops a torn last line.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

METRICS_COLUMNS = ["step", "train_loss", "train_acc", "test_loss", "test_acc",
                   "test_loss_batchstats", "test_acc_batchstats", "lr", "elapsed_s"]
LAYERS_COLUMNS = ["step", "layer", "site", "mean", "var", "unit_mean_abs", "unit_var_mean",
                  "drift_mean", "drift_var", "drift_mean_init", "drift_var_init",
                  "drift_mean_scaled", "drift_mean_scaled_init", "dead_units"]
UNITS_COLUMNS = ["step", "layer", "site", "unit", "mean", "var", "p15", "p50", "p85"]
GRADS_COLUMNS = ["step", "layer", "grad_norm", "weight_norm", "update_ratio"]
TABLES = {"metrics": METRICS_COLUMNS, "layers": LAYERS_COLUMNS,
          "units": UNITS_COLUMNS, "grads": GRADS_COLUMNS}

FINISHED = ("completed", "diverged")


def fmt(value) -> str:
    """One CSV cell. Floats use 9 significant digits (float32 round-trips), NaN is blank."""
    if isinstance(value, float):
        return "" if value != value else format(value, ".9g")
    return str(value)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a whole file under a temporary name, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(tmp, mode) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_model(path: Path, model) -> None:
    """The model's state dict (tensors only, loadable with weights_only=True), written atomically."""
    import torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path):
    with open(path) as f:
        return json.load(f)


class CsvLog:
    """An append-only CSV table: header once, then rows flushed once per log step."""

    def __init__(self, path: Path, columns: list[str], fresh: bool = True):
        self.path, self.columns = Path(path), columns
        if fresh or not self.path.exists():
            with open(self.path, "w", newline="") as f:
                f.write(",".join(columns) + "\n")

    def append(self, rows: list[list]) -> None:
        if not rows:
            return
        with open(self.path, "a", newline="") as f:
            f.write("".join(",".join(fmt(v) for v in row) + "\n" for row in rows))
            f.flush()


def truncate_log(path: Path, last_step: int) -> None:
    """Keep the header and the complete rows with step <= last_step (resuming from a checkpoint)."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, newline="") as f:
        lines = f.read().split("\n")
    kept = [lines[0]] + [ln for ln in lines[1:-1] if int(ln.split(",", 1)[0]) <= last_step]
    write_atomic(path, "\n".join(kept) + "\n")


def gzip_file(path: Path) -> Path:
    """Compress `path` to `path.gz` reproducibly (no timestamp in the header) and remove it."""
    path = Path(path)
    out = path.with_name(path.name + ".gz")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz, open(path, "rb") as f:
        shutil.copyfileobj(f, gz)
    write_atomic(out, buf.getvalue())
    path.unlink()
    return out


# --------------------------------------------------------------------------- reading back


def read_table(run_dir: Path, name: str) -> pd.DataFrame:
    """One of a run's tables (`metrics`, `layers`, `units`, `grads`) as a DataFrame.

    Reads `name.csv` or `name.csv.gz`; a torn last line left by a kill is dropped.
    """
    run_dir = Path(run_dir)
    for candidate in (run_dir / f"{name}.csv", run_dir / f"{name}.csv.gz"):
        if candidate.exists():
            path = candidate
            break
    else:
        return pd.DataFrame(columns=TABLES.get(name, []))
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return pd.read_csv(io.StringIO(text)) if text else pd.DataFrame(columns=TABLES.get(name, []))


@dataclass
class Run:
    """A run folder read back: its config, its summary (None while unfinished) and its path."""

    path: Path
    config: dict
    summary: dict | None

    @property
    def status(self) -> str:
        return self.summary["status"] if self.summary else "incomplete"

    @property
    def hash(self) -> str:
        return self.config.get("hash", "")

    def table(self, name: str) -> pd.DataFrame:
        return read_table(self.path, name)


def finished(run_dir: Path) -> dict | None:
    """The summary of a run that needs no rerun (completed or diverged), else None."""
    path = Path(run_dir) / "summary.json"
    if path.exists():
        summary = read_json(path)
        if summary["status"] in FINISHED:
            return summary
    return None


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "config.json").is_file()


def read_run(path: Path) -> Run:
    path = Path(path)
    meta = read_json(path / "config.json")
    summary_path = path / "summary.json"
    summary = read_json(summary_path) if summary_path.exists() else None
    return Run(path=path, config=meta, summary=summary)


def find_runs(*paths: Path) -> list[Run]:
    """Every run folder at or below the given paths (sweep folders or run folders), sorted by path."""
    found: dict[Path, Run] = {}
    for root in map(Path, paths):
        candidates = [root] if is_run_dir(root) else sorted(p.parent for p in root.rglob("config.json"))
        for candidate in candidates:
            if is_run_dir(candidate):
                found[candidate.resolve()] = read_run(candidate)
    return [found[k] for k in sorted(found)]


def run_config(run: Run) -> dict:
    """The resolved training config of a run (the `config` block of config.json)."""
    return run.config["config"]
