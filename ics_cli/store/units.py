"""The per-unit table of a run: written in blocks, joined at the end, read back with fixed dtypes.

The table is too large for CSV written from Python (millions of rows with dense logging):
`UnitsLog` writes it in blocks, one atomically written part file per block under `units.parts/`
(Arrow IPC, cheap to write and read back), and joins them when the run finishes into one
`units.parquet`; the same rows give the same bytes however they were split into blocks. `read_units`
reads units.parquet, or the parts of an unfinished run.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import IcsError
from .files import DamagedFile, read_bytes, why, write_atomic
from .schema import UNITS_COLUMNS, check_table


PARTS = "units.parts"                   # the parts of a run's units table while the run goes


# <last step>-<sequence number>
_PART_NAME = re.compile(r"(\d{12,})-(\d{6,})\.arrow")

UNITS_VALUES = UNITS_COLUMNS[4:]        # mean, var, p15, p50, p85: float32 on disk, float64 read back

ROW_GROUP_ROWS = 1 << 20                # rows per Parquet row group of units.parquet


# Fixed, so that the same rows give the same bytes (the writer's version is in the file too).
# Statistics (min, max per row group) only where a reader filters: the values' cost a sixth of the write.
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "version": "2.6",
                   "use_dictionary": ["step", "layer", "site", "unit"],
                   "write_statistics": ["step", "layer", "site", "unit"]}


def _units_schema():
    """The columns of units.parquet and of its parts. Layer and site are dictionary-encoded (indices
    into the names): no string is made or hashed per row on the way from a block to the file."""
    names = pa.dictionary(pa.int32(), pa.string())
    return pa.schema([("step", pa.int64()), ("layer", names), ("site", names),
                      ("unit", pa.int64())] + [(c, pa.float32()) for c in UNITS_VALUES])


def _label(path: Path) -> str:
    """A units file's name as messages give it: `units.parquet`, `units.parts/…-000003.arrow`."""
    path = Path(path)
    return f"{PARTS}/{path.name}" if path.parent.name == PARTS else path.name


def _names(column) -> pd.Categorical:
    """A layer or site column as codes into names: a Categorical as it is, strings hashed (one
    hash per row: a tenth of a second per million rows, which a Categorical block spares)."""
    if isinstance(column, pd.Categorical):
        return column
    codes, names = pd.factorize(column)
    return pd.Categorical.from_codes(codes, np.asarray(names, dtype=object))


def _block(block: dict) -> dict:
    """The columns of a block in the types written to disk: step, unit int64; layer, site
    Categorical; values float32."""
    return {"step": np.asarray(block["step"], dtype=np.int64),
            "unit": np.asarray(block["unit"], dtype=np.int64),
            "layer": _names(block["layer"]), "site": _names(block["site"]),
            **{c: np.asarray(block[c], dtype=np.float32) for c in UNITS_VALUES}}


def _arrow_table(block: dict):
    """A block made by `_block` as a part's Arrow table (no copy of its numeric columns)."""
    schema = _units_schema()

    def column(c):
        if c in ("layer", "site"):
            names = block[c]
            return pa.DictionaryArray.from_arrays(names.codes.astype(np.int32),
                                                  pa.array(list(names.categories), pa.string()))
        return pa.array(block[c], type=schema.field(c).type)
    return pa.table([column(c) for c in UNITS_COLUMNS], schema=schema)


def _encode(table) -> bytes:
    """One part file's contents: an Arrow IPC file (LZ4-compressed buffers, where pyarrow has
    LZ4: a tenth of Parquet's cost to write, and a few times smaller than uncompressed to fsync)."""
    options = pa.ipc.IpcWriteOptions(compression="lz4" if pa.Codec.is_available("lz4_frame") else None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _arrow_file(path: Path, kind: str, parse):
    """parse(data) of a pyarrow file's bytes, read in memory; a DamagedFile otherwise."""
    data = read_bytes(path)
    try:
        return parse(data)
    except (pa.ArrowException, OSError, ValueError, EOFError) as e:
        raise DamagedFile(path, f"{_label(path)} is truncated or not {kind} ({why(e)})") from None


def _parquet(path: Path):
    """A Parquet file's table."""
    return _arrow_file(path, "Parquet", lambda data: pq.read_table(pa.BufferReader(data)))


def _ipc(path: Path):
    """A part written by `UnitsLog` (Arrow IPC), checked in full: an index past its dictionary,
    say, is found before anything reads it."""
    def parse(data):
        table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        table.validate(full=True)
        return table

    table = _arrow_file(path, "an Arrow file", parse)
    if not table.schema.equals(_units_schema()):
        raise DamagedFile(path, f"{_label(path)} is not a part of a units table (its columns: "
                                f"{', '.join(f'{f.name} {f.type}' for f in table.schema)})")
    return table


def _units_dtypes(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    """The same dtypes whatever the file: step, unit int64; layer, site str; values float64 (`table`,
    just read, is converted in place)."""
    for c in ("step", "unit"):
        if c not in table.columns or table[c].dtype == np.int64:
            continue
        values = pd.to_numeric(table[c], errors="coerce")
        bad = table[c][values.isna() | (values != values.round())]
        if len(bad):
            raise DamagedFile(path, f"{_label(path)} has a {c} that is not a whole number ({bad.iloc[0]!r})")
        table[c] = values.astype(np.int64)
    for c in ("layer", "site"):
        if c in table.columns:
            table[c] = table[c].astype(str)
    for c in UNITS_VALUES:
        if c in table.columns:
            table[c] = pd.to_numeric(table[c], errors="coerce").astype(np.float64)
    return table


def _units_empty() -> pd.DataFrame:
    return _units_dtypes(Path("units"), pd.DataFrame({c: pd.Series([], dtype=object) for c in UNITS_COLUMNS}))


def _part_files(folder: Path) -> list[tuple[int, int, Path]]:
    """(sequence number, last step, path) of each part, in the order written. A part rewritten by
    `UnitsLog.truncate` whose longer original a kill left behind counts once, as the rewritten one."""
    found: dict[int, tuple[int, int, Path]] = {}
    for entry in os.scandir(folder):
        m = _PART_NAME.fullmatch(entry.name)
        if m:
            last, seq = int(m[1]), int(m[2])
            if seq not in found or last < found[seq][1]:
                found[seq] = (seq, last, Path(entry.path))
    return [found[k] for k in sorted(found)]


def _parts_folder(run_dir: Path) -> Path:
    folder = Path(run_dir) / PARTS
    if folder.is_symlink():
        raise DamagedFile(folder, f"{PARTS} is a symbolic link (not followed: only a folder's own "
                                  "files are read)")
    if folder.exists() and not folder.is_dir():
        raise DamagedFile(folder, f"{PARTS} is not a folder")
    return folder


def _frame(table) -> pd.DataFrame:
    """An Arrow table as a DataFrame, dictionary-encoded columns as strings (pandas turns a
    Categorical into strings many times slower than Arrow does). The file's metadata is not read: ics
    writes none that matters, and a foreign one (pandas' JSON, undecodable) must not stop a reader."""
    table = table.replace_schema_metadata(None)
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table[i].cast(field.type.value_type))
    return table.to_pandas(ignore_metadata=True)


def read_units(run_dir: Path) -> pd.DataFrame:
    """The units table: units.parquet, else the parts of an unfinished run, joined."""
    path = Path(run_dir) / "units.parquet"
    if os.path.lexists(path):
        table = _parquet(path)
    else:
        path = _parts_folder(run_dir)
        parts = [_ipc(p) for _, _, p in _part_files(path)] if os.path.lexists(path) else []
        if not parts:
            return _units_empty()
        table = pa.concat_tables(parts)
    table = _frame(table)
    check_table(path, "units", table)
    return _units_dtypes(path, table)


class UnitsLog:
    """The units table of one run folder, written in blocks (one part file each), joined at the end.

    Parts are `units.parts/<last step, 12 digits>-<sequence number>.arrow` (Arrow IPC), each
    written atomically, so a kill leaves whole parts; `finish` joins them into `units.parquet`.
    """

    def __init__(self, run_dir: Path, fresh: bool):
        self.run_dir = Path(run_dir)
        self.parts = self.run_dir / PARTS
        if fresh:
            (self.run_dir / "units.parquet").unlink(missing_ok=True)
            if self.parts.is_symlink():
                self.parts.unlink()
            elif self.parts.exists():
                shutil.rmtree(self.parts)
        self._seq, self._last = 1, None
        if self.parts.is_dir() and not self.parts.is_symlink():
            for tmp in self.parts.glob(".*.tmp"):      # left by a kill mid-write; we are the only writer
                tmp.unlink()
            self._recount()

    def _recount(self) -> None:
        parts = _part_files(self.parts) if self.parts.is_dir() else []
        self._seq = max([1] + [seq + 1 for seq, _, _ in parts])
        self._last = parts[-1][1] if parts else None

    def _folder(self) -> Path:
        if self.parts.is_symlink():
            raise IcsError(f"{self.parts} is a symbolic link; ics does not write through links: remove "
                           f"it (or the run folder {self.run_dir}, to start the run afresh) and rerun")
        self.parts.mkdir(exist_ok=True)
        return self.parts

    def _write(self, table, seq: int) -> Path:
        """`table` (Arrow, the parts' schema) as the part of sequence number `seq`."""
        path = self._folder() / f"{table['step'][-1].as_py():012d}-{seq:06d}.arrow"
        write_atomic(path, _encode(table))
        return path

    def append(self, block: dict) -> None:
        """Write one block of rows (columns UNITS_COLUMNS, ordered by step) as one part file.

        Columns are numpy arrays; layer and site may be pandas Categoricals too (codes into the
        layer or site names), which spares hashing a string per row.
        """
        if set(block) != set(UNITS_COLUMNS):
            raise ValueError(f"a units block has the columns {UNITS_COLUMNS}, not {sorted(block)}")
        if len(block["step"]) == 0:
            return
        block = _block(block)
        steps = block["step"]
        if (self._last is not None and steps[0] < self._last) or (np.diff(steps) < 0).any():
            raise ValueError("units rows must arrive ordered by step")
        self._write(_arrow_table(block), self._seq)
        self._seq, self._last = self._seq + 1, int(steps[-1])

    def truncate(self, last_step: int) -> None:
        """Drop every row with step > last_step (resuming from the checkpoint of that step)."""
        if not self.parts.is_dir() or self.parts.is_symlink():
            return
        parts = _part_files(self.parts)
        beyond = [(seq, path) for seq, last, path in parts if last > last_step]
        if beyond:      # only the first of them can hold rows at or before last_step
            seq, path = beyond[0]
            table = _ipc(path)
            kept = table.filter(pc.less_equal(table["step"], last_step))
            if kept.num_rows:
                self._write(kept, seq)
        # Every part past last_step, and the original of a part rewritten by a killed truncate.
        for m in map(_PART_NAME.fullmatch, os.listdir(self.parts)):
            if m and int(m[1]) > last_step:
                (self.parts / m[0]).unlink()
        self._recount()

    def finish(self) -> Path:
        """Join the parts in order into units.parquet; remove them."""
        final = self.run_dir / "units.parquet"
        if not os.path.lexists(self.parts) and os.path.lexists(final):
            return final        # finished already
        parts = [p for _, _, p in _part_files(self._folder())]
        write_atomic(final, _join_parquet(parts))
        shutil.rmtree(self.parts)
        return final


def _join_parquet(parts: list[Path]) -> bytes:
    """The parts as one Parquet file, in row groups of ROW_GROUP_ROWS rows whatever the parts were."""
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, _units_schema(), **PARQUET_OPTIONS) as writer:
        pending, rows = [], 0
        for path in parts:
            pending.append(_ipc(path))
            rows += pending[-1].num_rows
            while rows >= ROW_GROUP_ROWS:
                joined = pa.concat_tables(pending)
                writer.write_table(_row_group(joined.slice(0, ROW_GROUP_ROWS)), row_group_size=ROW_GROUP_ROWS)
                pending, rows = [joined.slice(ROW_GROUP_ROWS)], rows - ROW_GROUP_ROWS
        if rows:
            writer.write_table(_row_group(pa.concat_tables(pending)), row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue()


def _row_group(table):
    """Rows as one row group whose bytes depend on its rows alone, not on how the parts were cut:
    contiguous columns (the writer's pages follow the chunks it is given), and layer and site
    names in the order they first appear (the writer stores a dictionary as it is given)."""
    table = table.unify_dictionaries().combine_chunks()
    for c in ("layer", "site"):
        names = table[c].chunk(0)
        codes, seen = pd.factorize(names.indices.to_numpy())
        table = table.set_column(table.schema.get_field_index(c), c, pa.DictionaryArray.from_arrays(
            codes.astype(np.int32), names.dictionary.take(seen)))
    return table

