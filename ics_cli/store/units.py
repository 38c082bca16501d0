"""The per-unit table of a run: written in blocks, joined at the end, read back with fixed dtypes.

The table is too large for CSV written from Python (millions of rows with dense logging):
`UnitsLog` writes it in blocks, one atomically written part file per block under `units.parts/`
(Arrow IPC, cheap to write and read back), and joins them when the run finishes into one
`units.parquet` (pyarrow) or, without pyarrow, `units.csv.gz`; the same rows give the same bytes
however they were split into blocks. `read_units` reads whichever the folder holds.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import IcsError
from .files import DamagedFile, csv_table, read_bytes, read_text, truncate_log, why, write_atomic
from .schema import UNITS_COLUMNS, check_table


PARTS = "units.parts"                   # the parts of a run's units table while the run goes


# <last step>-<sequence number>; .parquet: a part written by an earlier version of ics
_PART_NAME = re.compile(r"(\d{12,})-(\d{6,})\.(arrow|parquet|csv)")

UNITS_VALUES = UNITS_COLUMNS[4:]        # mean, var, p15, p50, p85: float32 on disk, float64 read back

ROW_GROUP_ROWS = 1 << 20                # rows per Parquet row group of units.parquet


# Fixed, so that the same rows give the same bytes (the writer's version is in the file too).
# Statistics (min, max per row group) only where a reader filters: the values' cost a sixth of the write.
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "version": "2.6",
                   "use_dictionary": ["step", "layer", "site", "unit"],
                   "write_statistics": ["step", "layer", "site", "unit"]}


def parquet_available() -> bool:
    """Whether pyarrow can be imported: units tables are then Parquet, else gzipped CSV."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _arrow():
    import pyarrow as pa
    import pyarrow.parquet as pq
    return pa, pq


def _units_schema(pa):
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


def _block(frame) -> dict:
    """Columns of a units table (a block, or a DataFrame read back) in the types written to disk:
    step, unit int64; layer, site Categorical; values float32."""
    n = len(frame["step"])
    col = {c: frame[c] if c in frame else np.full(n, np.nan) for c in UNITS_COLUMNS}
    return {"step": np.asarray(col["step"], dtype=np.int64), "unit": np.asarray(col["unit"], dtype=np.int64),
            "layer": _names(col["layer"]), "site": _names(col["site"]),
            **{c: np.asarray(col[c], dtype=np.float32) for c in UNITS_VALUES}}


def _arrow_table(block: dict):
    """A block made by `_block` as a part's Arrow table (no copy of its numeric columns)."""
    pa, _ = _arrow()
    schema = _units_schema(pa)

    def column(c):
        if c in ("layer", "site"):
            names = block[c]
            return pa.DictionaryArray.from_arrays(names.codes.astype(np.int32),
                                                  pa.array(list(names.categories), pa.string()))
        return pa.array(block[c], type=schema.field(c).type)
    return pa.table([column(c) for c in UNITS_COLUMNS], schema=schema)


def _csv_rows(block: dict, header: bool) -> str:
    """Rows formatted as `fmt` formats each cell: floats to 9 significant digits, NaN blank."""
    frame = pd.DataFrame({c: block[c] for c in UNITS_COLUMNS})
    return frame.to_csv(index=False, header=header, float_format="%.9g", na_rep="", lineterminator="\n")


def _encode(block: dict, arrow: bool) -> bytes | str:
    """One part file's contents: an Arrow IPC file (LZ4-compressed buffers, where pyarrow has
    LZ4: a tenth of Parquet's cost to write, and a few times smaller than uncompressed to fsync),
    or CSV text with its header."""
    if not arrow:
        return _csv_rows(block, header=True)
    pa, _ = _arrow()
    table = _arrow_table(block)
    options = pa.ipc.IpcWriteOptions(compression="lz4" if pa.Codec.is_available("lz4_frame") else None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _arrow_file(path: Path, kind: str, parse):
    """parse(pa, pq, data) of a pyarrow file's bytes, read in memory; a DamagedFile otherwise."""
    if not parquet_available():
        raise DamagedFile(path, f"{_label(path)} is {kind} and pyarrow is not installed (pip install pyarrow)")
    data = read_bytes(path)
    pa, pq = _arrow()
    try:
        return parse(pa, pq, data)
    except (pa.ArrowException, OSError, ValueError, EOFError) as e:
        raise DamagedFile(path, f"{_label(path)} is truncated or not {kind} ({why(e)})") from None


def _parquet(path: Path):
    """A Parquet file's table."""
    return _arrow_file(path, "Parquet", lambda pa, pq, data: pq.read_table(pa.BufferReader(data)))


def _ipc(path: Path):
    """A part written by `UnitsLog` (Arrow IPC), checked in full: an index past its dictionary,
    say, is found before anything reads it."""
    def parse(pa, pq, data):
        table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        table.validate(full=True)
        return table

    table = _arrow_file(path, "an Arrow file", parse)
    if not table.schema.equals(_units_schema(_arrow()[0])):
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
    Categorical into strings many times slower than Arrow does)."""
    pa, _ = _arrow()
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, table[i].cast(field.type.value_type))
    return table.to_pandas(ignore_metadata=True)


def _units_file(path: Path) -> pd.DataFrame:
    """units.parquet, units.csv.gz, units.csv or a part read back as it is (not yet checked)."""
    if path.suffix in (".arrow", ".parquet"):
        return _frame(_ipc(path) if path.suffix == ".arrow" else _parquet(path))
    return csv_table(path, UNITS_COLUMNS)


def read_units(run_dir: Path) -> pd.DataFrame:
    """The units table: units.parquet, units.csv.gz, units.csv (older versions), else the parts of
    an unfinished run, joined."""
    for path in (run_dir / "units.parquet", run_dir / "units.csv.gz", run_dir / "units.csv"):
        if os.path.lexists(path):
            table = _units_file(path)
            break
    else:
        path = _parts_folder(run_dir)
        if not os.path.lexists(path):
            return _units_empty()
        parts = [_units_file(p) for _, _, p in _part_files(path)]
        table = pd.concat(parts, ignore_index=True) if parts else _units_empty()
    check_table(path, "units", table)
    return _units_dtypes(path, table)


class UnitsLog:
    """The units table of one run folder, written in blocks (one part file each), joined at the end.

    Parts are `units.parts/<last step, 12 digits>-<sequence number>.arrow` (Arrow IPC; `.csv`
    without pyarrow), each written atomically, so a kill leaves whole parts; `finish` joins them into
    `units.parquet` (or `units.csv.gz`). A `units.csv` left by an older version is taken over, and
    so are `.parquet` parts.
    """

    def __init__(self, run_dir: Path, fresh: bool):
        self.run_dir = Path(run_dir)
        self.parts = self.run_dir / PARTS
        self.parquet = parquet_available()
        if fresh:
            for name in ("units.parquet", "units.csv.gz", "units.csv"):
                (self.run_dir / name).unlink(missing_ok=True)
            if self.parts.is_symlink():
                self.parts.unlink()
            elif self.parts.exists():
                shutil.rmtree(self.parts)
        self._seq, self._last = 1, None     # sequence 0: the rows of an older version's units.csv
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

    def _write(self, block: dict, seq: int) -> Path:
        ext = "arrow" if self.parquet else "csv"
        path = self._folder() / f"{int(block['step'][-1]):012d}-{seq:06d}.{ext}"
        write_atomic(path, _encode(block, self.parquet))
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
        self._write(block, self._seq)
        self._seq, self._last = self._seq + 1, int(steps[-1])

    def _adopt_legacy(self) -> None:
        """Move the rows of a `units.csv` written by an older version into part 0 (idempotent)."""
        legacy = self.run_dir / "units.csv"
        if not os.path.lexists(legacy):
            return
        table = _units_file(legacy)
        check_table(legacy, "units", table)
        table = _units_dtypes(legacy, table)
        if len(table):
            self._write(_block(table), 0)
        legacy.unlink()
        self._recount()

    def truncate(self, last_step: int) -> None:
        """Drop every row with step > last_step (resuming from the checkpoint of that step)."""
        truncate_log(self.run_dir / "units.csv", last_step)
        self._adopt_legacy()
        if not self.parts.is_dir() or self.parts.is_symlink():
            return
        parts = _part_files(self.parts)
        beyond = [(seq, path) for seq, last, path in parts if last > last_step]
        if beyond:      # only the first of them can hold rows at or before last_step
            seq, path = beyond[0]
            table = _units_dtypes(path, _units_file(path))
            kept = table[table["step"] <= last_step]
            if len(kept):
                self._write(_block(kept), seq)
        # Every part past last_step, and the original of a part rewritten by a killed truncate.
        for m in map(_PART_NAME.fullmatch, os.listdir(self.parts)):
            if m and int(m[1]) > last_step:
                (self.parts / m[0]).unlink()
        self._recount()

    def finish(self) -> Path:
        """Join the parts in order into units.parquet (units.csv.gz without pyarrow); remove them."""
        self._adopt_legacy()
        final = self.run_dir / ("units.parquet" if self.parquet else "units.csv.gz")
        if not os.path.lexists(self.parts) and os.path.lexists(final):
            return final        # finished already
        parts = [p for _, _, p in _part_files(self._folder())]
        write_atomic(final, _join_parquet(parts) if self.parquet else _join_csv(parts))
        for name in ("units.parquet", "units.csv.gz"):
            if name != final.name:
                (self.run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(self.parts)
        return final


def _join_parquet(parts: list[Path]) -> bytes:
    """The parts as one Parquet file, in row groups of ROW_GROUP_ROWS rows whatever the parts were."""
    pa, pq = _arrow()
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, _units_schema(pa), **PARQUET_OPTIONS) as writer:
        pending, rows = [], 0
        for path in parts:
            if path.suffix == ".arrow":         # written by append
                pending.append(_ipc(path))
            else:       # a CSV part of a run resumed where pyarrow was missing, or an older version's
                pending.append(_arrow_table(_block(_units_dtypes(path, _units_file(path)))))
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
    pa, _ = _arrow()
    table = table.unify_dictionaries().combine_chunks()
    for c in ("layer", "site"):
        names = table[c].chunk(0)
        codes, seen = pd.factorize(names.indices.to_numpy())
        table = table.set_column(table.schema.get_field_index(c), c, pa.DictionaryArray.from_arrays(
            codes.astype(np.int32), names.dictionary.take(seen)))
    return table


def _join_csv(parts: list[Path]) -> bytes:
    """The parts as one gzipped CSV (no timestamp in the gzip header, as `gzip_file`)."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write((",".join(UNITS_COLUMNS) + "\n").encode())
        for path in parts:
            if path.suffix == ".csv":
                text = read_text(path)
                gz.write(text[text.find("\n") + 1:].encode())
            else:
                gz.write(_csv_rows(_block(_units_dtypes(path, _units_file(path))), header=False).encode())
    return buf.getvalue()
