"""Tidy per-seed tables: the rows each wide compare table aggregates over seeds, one file per table.

A wide table (compare.py, analyse/quantities.py, analyse/batch.py) has one row per configuration and, for each
value x, the mean over seeds and its 95% t interval in `x_mean, x_ci_low, x_ci_high`. Its long table,
`long/<the same name>.csv` in the compare folder, holds the rows that were aggregated: one per run and
index (layer, site, step, ...), with the columns `columns(name, key_cols)`:

    LONG_KEY, the comparison's other key columns, seed, hash, status, INDEX (SCHEMA[name][0]),
    VALUES (SCHEMA[name][1])

The key is not the wide table's: it starts with the same fixed columns (keys.LONG_KEY: model, norm,
lr, batch_size, optimizer, depth, width, activation, dataset, steps) whatever the runs vary, so a script
written for one sweep's long tables reads another's; a hashed field that varies and is not among them
follows them (keys.long_key), so no configuration is merged with another. `status` is the run's
(completed or diverged: only finished runs have rows), so no one needs runs.csv to tell them apart.

A value keeps the name of its wide `x_mean` column without the suffix. Grouping a long table by the wide key
and the index and taking the mean and t interval of each value (aggregate) gives the wide
table's columns back, `n_seeds` being the rows of a group. Only finished runs have rows, as in the wide
tables. runs.csv and percentiles.csv are per run already: they have no long table.

`ics compare` writes these in the same output set as the wide tables (outputs.save, figures/draw.save); outputs.load and
`ics plot` never read them, so a compare folder written before they existed works as it did. Every
table is described in docs/metrics.md, "Long tables (per seed)".
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import batch as batch_view, quantities as second_view
from .base import LONG, TEXT_COLUMNS

from .keys import RUN_COLUMNS, long_key, sort_key
from ..store import runs as store
from ..store import files
from ..store import staging
from ..errors import IcsError

FOLDER = "long"

# Per long table, in the order the wide tables are written: (index columns, value columns), each family's
# declared beside its value columns (base.LONG, quantities.LONG, batch.LONG).
SCHEMA = {**LONG, **second_view.LONG, **batch_view.LONG}
NAMES = tuple(SCHEMA)


def columns(name: str, key_cols: list[str]) -> list[str]:
    """The columns of long table `name` in a comparison keyed by `key_cols` (the wide tables' key,
    keys.key_columns), in order: the long key (keys.long_key), RUN_COLUMNS, index, values."""
    index, values = SCHEMA[name]
    key = long_key(key_cols)
    return [*key, *RUN_COLUMNS, *(c for c in index if c not in key), *values]


def tidy(name: str, frame: pd.DataFrame, key_cols: list[str]) -> pd.DataFrame:
    """The per-run rows in `frame` as long table `name`: its columns (blank where `frame` lacks one),
    rows sorted by the long key (norms in NORM_ORDER), seed, hash, then index (sort_key)."""
    cols = columns(name, key_cols)
    table = frame.reindex(columns=cols)
    if table.empty:
        return table.reset_index(drop=True)
    by = [c for c in cols if c not in SCHEMA[name][1]]
    return table.sort_values(by=by, key=sort_key, kind="stable",
                             na_position="last").reset_index(drop=True)


def write(long: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
    """Write each table to `out_dir/long/<name>.csv` (files.write_tables: the one cell rule)."""
    return files.write_tables(long, Path(out_dir) / FOLDER) if long else []


def owns(name: str) -> bool:
    """Whether a file called `name` in the long folder belongs to the output set: a long table, or a
    temporary file that a killed `ics` left."""
    stem, _, ext = name.rpartition(".")
    return (name.startswith(".") and ".tmp" in name) or (ext == "csv" and stem in NAMES)


def load(folder: Path, name: str) -> pd.DataFrame:
    """Long table `name` of the compare folder `folder`, read back as it was written.

    An IcsError, one line, for an unknown name, an output set that was never finished, a folder without
    the table (written before long tables existed, or whose runs have no data for it), or a damaged file.
    """
    folder = Path(folder)
    if name not in SCHEMA:
        raise IcsError(f"no long table called '{name}'; the long tables are: {', '.join(NAMES)}")
    if staging.is_incomplete(folder):
        raise IcsError(f"'{folder}' holds an incomplete set of compare outputs (the command writing it "
                       "was stopped before it finished); rerun `ics compare`")
    path = folder / FOLDER / f"{name}.csv"
    if not path.is_file():
        why = (f"its runs have no data for {name}.csv either" if (folder / FOLDER).is_dir()
               else "an `ics compare` older than long tables wrote it; rerun `ics compare`")
        raise IcsError(f"'{folder}' has no {FOLDER}/{name}.csv: {why}")
    try:
        text = files.read_text(path)
        if not text.endswith("\n"):       # files.write_tables ends every table with a newline
            raise store.DamagedFile(path, f"{path.name} is truncated (its last line is cut)")
        # As outputs.load: only a blank cell is missing, so a norm called "none" stays a string.
        return files.parse_csv(path, text, keep_default_na=False, na_values=[""],
                               dtype=TEXT_COLUMNS)
    except store.DamagedFile as e:
        raise IcsError(f"{path.parent}: {e.reason}; rerun `ics compare` to rewrite it") from None
