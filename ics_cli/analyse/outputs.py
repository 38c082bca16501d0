"""A compare folder on disk: its tables written as CSV (9 significant digits, NaN blank) and read back.

`save` writes the wide tables and, in `long/`, the per-seed tables (long.py) as one output set, staged
beside the destination and moved into place (store/staging.py); the figure half of an output set is
ics_cli/figures/save.py, which writes the same tables and draws the figures in the same set. `load`
refuses a set that was never finished or whose tables are damaged, and never reads `long/`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import IcsError
from ..store import files, staging
from ..store.files import DamagedFile
from .base import TEXT_COLUMNS, ALL_TABLE_NAMES, BATCH_VIEW_NAMES, SECOND_VIEW_NAMES
from . import long as long_tables
from .keys import ALWAYS_KEY


def load_long(out_dir: Path, name: str) -> pd.DataFrame:
    """Long table `name` (one row per run × layer × site × step, ...: analyse/long.py) of a compare
    folder, e.g. `load_long("runs/compare", "drift")`; `load` never reads these."""
    return long_tables.load(out_dir, name)


# Tables that `build` never leaves empty, and the columns they cannot lack.
_NOT_EMPTY = {"summary": (*ALWAYS_KEY, "n_seeds"), "runs": (*ALWAYS_KEY, "seed", "status")}


def load(out_dir: Path) -> dict[str, pd.DataFrame]:
    """Read back every table that `write` put in `out_dir` (known names first, in their order).

    An IcsError, one line, when `out_dir` holds an output set that was never finished (staging.staged)
    or a table that is not a whole CSV (empty, binary, cut short, or a header with no rows where
    `build` always writes rows).
    """
    out_dir = Path(out_dir)
    if staging.is_incomplete(out_dir):
        raise IcsError(f"'{out_dir}' holds an incomplete set of compare outputs (the command writing it "
                       "was stopped before it finished); rerun `ics compare`")
    return read(out_dir)


# The per-step tables, the large ones: a study's saved tables/ keep them gzipped (`<name>.csv.gz`).
PER_STEP_TABLES = ("layer_curves", "percentiles", "grad_curves")


def read(out_dir: Path) -> dict[str, pd.DataFrame]:
    """Every table in `out_dir`, from `<name>.csv` or, failing that, `<name>.csv.gz`."""
    found = {}
    for n in ALL_TABLE_NAMES + SECOND_VIEW_NAMES + BATCH_VIEW_NAMES:
        for path in (out_dir / f"{n}.csv", out_dir / f"{n}.csv.gz"):
            if os.path.lexists(path):
                found[n] = path
                break
    if not found:
        raise IcsError(f"no compare tables in {out_dir}; run `ics compare` first")
    return {n: _read_table(path, n) for n, path in found.items()}


def _read_table(path: Path, name: str) -> pd.DataFrame:
    try:
        text = files.read_text(path)
        if not text:
            raise DamagedFile(path, f"{path.name} is empty")
        if not text.endswith("\n"):       # `write` ends every table with a newline
            raise DamagedFile(path, f"{path.name} is truncated (its last line is cut)")
        # Only a blank cell is missing: a norm called "none" or a value "NA" stays a string.
        table = files.parse_csv(path, text, keep_default_na=False, na_values=[""], dtype=TEXT_COLUMNS)
        missing = [c for c in _NOT_EMPTY.get(name, ()) if c not in table.columns]
        if missing:
            raise DamagedFile(path, f"{path.name} is not a compare table (no column "
                                          f"{', '.join(missing)})")
        if name in _NOT_EMPTY and table.empty:
            raise DamagedFile(path, f"{path.name} is truncated (a header and no rows; "
                                          "`ics compare` writes a row per configuration)")
    except DamagedFile as e:
        raise IcsError(f"{path.parent}: {e.reason}; its figures are not from these tables: rerun "
                       "`ics compare` to rewrite both") from None
    return table


def owns(name: str) -> bool:
    """Whether a file called `name` in a compare folder belongs to its tables' output set: a table, the
    folder of long tables (`long/`, staging.staged's name for a folder) and `long/<name>` when
    long_tables.owns(name), or a temporary file that a killed `ics` left (hidden, `.tmp` in its name).
    The figures of a set are figures/draw.py's."""
    folder, _, name = name.rpartition("/")
    if folder:
        return folder == long_tables.FOLDER and (name == "" or long_tables.owns(name))
    stem, _, ext = name.rpartition(".")
    if name.startswith(".") and ".tmp" in name:
        return True
    return ext == "csv" and stem in ALL_TABLE_NAMES + SECOND_VIEW_NAMES + BATCH_VIEW_NAMES


def write_set(tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
    """The wide tables, then the long ones in `long/` (a `compare.Tables`' `.long`; a plain dict has none)."""
    return files.write_tables(tables, out_dir) + long_tables.write(getattr(tables, "long", {}), out_dir)


def save(tables: dict[str, pd.DataFrame], dest: Path) -> list[Path]:
    """The tables (no figures: figures/draw.save writes both), written into `dest` as one output set,
    staged beside it (staging.staged); tables of an earlier set that this one lacks are removed, its
    figures are left as they are. Returns the paths in `dest`."""
    with staging.staged(dest, owns) as stage:
        names = [p.relative_to(stage) for p in write_set(tables, stage)]
    return [Path(dest) / name for name in names]
