"""Run folders read back: a run's config, summary and tables; finding the runs under folders.

A run folder is complete only once `summary.json` exists. Reading is safe on anyone's run folders:
only CSV, JSON, Parquet and Arrow IPC are parsed (never `model.pt` or any pickle), and nothing is read
through a symbolic link (a linked file, or a linked run folder that leads outside the folder
searched). A run folder that cannot be read as the run-folder contract says (a table that is not
UTF-8 CSV with its columns, a truncated `units.parquet` or part of it, an invalid
`config.json` or `summary.json`, a linked file, or a log that holds the same step twice, which would
otherwise be aggregated twice) is *damaged*: `read_run` and `Run.table` raise `DamagedRun` naming the
folder and what is wrong, `check_run` returns that reason, and `find_runs` skips the folder and
reports it once (`on_damaged`; `ics compare` prints one warning line each), so a comparison goes on
with the rest.
"""

from __future__ import annotations

import io

import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import HASHED_UNLESS
from ..errors import IcsError
from .files import DamagedFile, csv_table, frame_text, read_json, write_atomic
from .schema import FINISHED, TABLES, check_table
from .units import read_units


class DamagedRun(IcsError):
    """A run folder that cannot be read (see the module doc); `reason` says which file and what is wrong."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"run folder '{path}' cannot be read: {reason}")


class DamagedRunWarning(UserWarning):
    """A damaged run folder that `find_runs` skipped (its default `on_damaged`)."""


def read_table(run_dir: Path, name: str) -> pd.DataFrame:
    """One of a run's tables (`metrics`, `layers`, `units`, `grads`, `train`, the second view's) as a DataFrame.

    Reads `name.csv` or `name.csv.gz` (units: `units.parquet` or its parts, see `read_units`; step
    and unit int64, layer and site str, values float64); a torn last line left by a kill is dropped.
    A DamagedRun when the file is a symbolic link, not UTF-8 CSV (or Parquet) with the table's
    columns, a truncated gzip or Parquet file, or holds the same step (metrics, train), (step, layer, site)
    (layers), (step, layer, site, unit) (units) or (step, layer) (grads) twice.
    """
    run_dir = Path(run_dir)
    try:
        if name == "units":
            return read_units(run_dir)
        for path in (run_dir / f"{name}.csv", run_dir / f"{name}.csv.gz"):
            if os.path.lexists(path):
                break
        else:
            return pd.DataFrame(columns=TABLES.get(name, []))
        table = csv_table(path, TABLES.get(name, []))
        check_table(path, name, table)
    except DamagedFile as e:
        raise DamagedRun(run_dir, e.reason) from None
    return table



def export_table(run_dir: Path, name: str, dest: Path | None = None) -> Path | None:
    """One table of a run as CSV (floats to 9 significant digits, NaN blank): into `dest`, written
    atomically, or to stdout when `dest` is None; a `dest` ending in .parquet gets Parquet (the values
    as read, full precision). Returns `dest`."""
    run_dir = Path(run_dir)
    if name not in TABLES:
        raise IcsError(f"unknown table '{name}'; give one of {', '.join(TABLES)}")
    if not is_run_dir(run_dir):
        raise IcsError(f"'{run_dir}' is not a run folder (it has no config.json)")
    frame = read_table(run_dir, name)
    if dest is not None and Path(dest).suffix == ".parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        write_atomic(Path(dest), buffer.getvalue())
        return Path(dest)
    text = frame_text(frame)
    if dest is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    write_atomic(Path(dest), text)
    return Path(dest)


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
        """`read_table`: a DamagedRun when the table is damaged or inconsistent."""
        return read_table(self.path, name)


def finished(run_dir: Path) -> dict | None:
    """The summary of a run that needs no rerun (completed or diverged), else None."""
    path = Path(run_dir) / "summary.json"
    if not os.path.lexists(path):
        return None
    try:
        summary = read_json(path)
    except DamagedFile:         # cut short, planted, linked: the run is not finished, and is run again
        return None
    if isinstance(summary, dict) and summary.get("status") in FINISHED:
        return summary
    return None


def is_run_dir(path: Path) -> bool:
    """Whether `path` holds a config.json (a linked one too, so that it is reported, not ignored)."""
    config = Path(path) / "config.json"
    return config.is_symlink() or config.is_file()


# config.json fields that tables are keyed and sorted by: each must have its type.
_CONFIG_TYPES = {"model": (str,), "norm": (str,), "lr": (int, float), "batch_size": (int,), "seed": (int,)}


def _config_problem(meta) -> str | None:
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        return 'config.json is not a run config (a JSON object with a "config" object)'
    for name, types in _CONFIG_TYPES.items():
        value = meta["config"].get(name)
        if isinstance(value, bool) or not isinstance(value, types):
            return f"config.json has no valid {name} ({value!r})"
    return None


def _summary_problem(summary) -> str | None:
    if not isinstance(summary, dict) or not isinstance(summary.get("status"), str):
        return 'summary.json is not a run summary (a JSON object with a "status" string)'
    if not isinstance(summary.get("final") or {}, dict):
        return 'summary.json has a "final" that is not an object'
    for name in ("steps_done", "diverged_at_step"):
        value = summary.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f'summary.json has a "{name}" that is not a number ({value!r})'
    return None


def read_run(path: Path) -> Run:
    """A run folder's config and summary (tables are read by `Run.table`).

    A DamagedRun when config.json or summary.json is a symbolic link or not the JSON it should be.
    """
    path = Path(path)
    try:
        meta = read_json(path / "config.json")
        summary_path = path / "summary.json"
        summary = read_json(summary_path) if os.path.lexists(summary_path) else None
    except DamagedFile as e:
        raise DamagedRun(path, e.reason) from None
    problem = _config_problem(meta) or (_summary_problem(summary) if summary is not None else None)
    if problem:
        raise DamagedRun(path, problem)
    return Run(path=path, config=meta, summary=summary)


def check_run(path: Path) -> str | None:
    """What is wrong with the run folder at `path` (config, summary and every table read), or None."""
    try:
        run = read_run(path)
        for name in TABLES:
            run.table(name)
    except DamagedRun as e:
        return e.reason
    return None


def warn_damaged(path: Path, reason: str) -> None:
    """The default `on_damaged` of `find_runs`: a DamagedRunWarning `skipping PATH: REASON`."""
    warnings.warn(f"skipping {path}: {reason}", DamagedRunWarning, stacklevel=3)


def _run_folders(root: Path) -> list[tuple[Path, str | None]]:
    """(folder, None) for each run folder at or below `root`, and (link, why) for each linked run
    folder that leads outside `root` (never entered), in path order."""
    if is_run_dir(root):
        return [(root, None)]
    inside, found = root.resolve(), []
    for top, dirs, _ in os.walk(root):          # followlinks=False: a linked folder is not entered
        top = Path(top)
        if is_run_dir(top):
            found.append((top, None))
        for name in dirs:
            link = top / name
            if link.is_symlink() and is_run_dir(link):
                real = link.resolve()
                if real != inside and inside not in real.parents:   # inside: the walk reaches it
                    found.append((link, f"it is a symbolic link to '{real}', outside '{root}' "
                                        "(not followed)"))
    return sorted(found, key=lambda item: item[0].parts)


def find_runs(*paths: Path, check: bool = True,
              on_damaged: Callable[[Path, str], None] | None = None) -> list[Run]:
    """Every readable run folder at or below the given paths (sweep folders or run folders), sorted by path.

    A damaged folder (see the module doc; with `check`, every table is read to find out) is skipped
    and `on_damaged(path, reason)` hears of it, once: by default a DamagedRunWarning (`warn_damaged`).
    """
    report = on_damaged or warn_damaged
    found: dict[Path, Run] = {}
    seen: set[Path] = set()
    for root in map(Path, paths):
        for folder, problem in _run_folders(root):
            key = folder.resolve() if problem is None else folder.absolute()
            if key in seen:
                continue
            seen.add(key)
            if problem is None:
                try:
                    run = read_run(folder)
                    if check:
                        for name in TABLES:
                            run.table(name)
                except DamagedRun as e:
                    problem = e.reason
            if problem is not None:
                report(folder, problem)
                continue
            found[key] = run
    return [found[k] for k in sorted(found)]



def run_config(run: Run) -> dict:
    """The resolved training config of a run (the `config` block of config.json).

    A field added after the run was recorded, absent from its config.json, reads as the value that
    computes what the run did (config.HASHED_UNLESS), so older and newer runs compare on equal terms.
    """
    return {**HASHED_UNLESS, **run.config["config"]}


def runs_under(*paths: Path, on_damaged=None) -> list[Run]:
    """Every readable run folder at or below `paths`, every table checked (store.find_runs).

    A damaged folder is skipped and `on_damaged(path, reason)` hears of it (default: a warning); an
    IcsError when no readable folder is left.
    """
    skipped: list[tuple[Path, str]] = []

    def damaged(path: Path, reason: str) -> None:
        skipped.append((path, reason))
        (on_damaged or warn_damaged)(path, reason)

    runs = find_runs(*paths, on_damaged=damaged)
    if not runs:
        where = ", ".join(str(p) for p in paths) or "."
        if skipped:
            path, reason = skipped[0]
            raise IcsError(f"no readable run folders under {where}: all {len(skipped)} are damaged "
                           f"(the first, {path}: {reason})")
        raise IcsError(f"no run folders under {where}; run `ics train` or `ics sweep` first")
    return runs


def run_folder_at_or_below(folder: Path, depth: int = 3) -> Path | None:
    """The first run folder at or below `folder`, looking `depth` levels down without following a link;
    None when there is none (or no such folder)."""
    folder = Path(folder)
    if is_run_dir(folder):
        return folder
    if depth == 0 or folder.is_symlink() or not folder.is_dir():
        return None
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return None
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            found = run_folder_at_or_below(Path(entry.path), depth - 1)
            if found:
                return found
    return None


def refuse_over_runs(dest: Path, option: str, *, file: bool = False) -> None:
    """One line when an output would be written into, or replace, what a run recorded: a folder `dest`
    that is or holds a run folder, or (file=True) a file `dest` inside a run folder. Commands write only
    where they own what they replace (export, report, compare)."""
    dest = Path(dest)
    if file:
        if is_run_dir(dest.parent):
            raise IcsError(f"{option} '{dest}' is inside the run folder '{dest.parent}'; ics does not write "
                           "into a run's record: give a file elsewhere")
        return
    found = run_folder_at_or_below(dest)
    if found:
        where = "is a run folder" if found == dest else f"holds run folders ('{found}')"
        raise IcsError(f"{option} '{dest}' {where}; ics does not write into or replace a folder of runs: "
                       "give a folder of its own")
