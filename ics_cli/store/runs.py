"""Run folders on disk: atomic writes, append-only CSV logs, completion markers, reading back.

A run folder is complete only once `summary.json` exists; every file that is written whole goes
through a temporary name and `os.replace`, so a kill at any moment leaves nothing that a reader
mistakes for finished. CSV logs are appended one log step at a time and flushed, so a crash keeps
every row already recorded; a reader drops a torn last line.

The per-unit table is too large for CSV written from Python (millions of rows with dense logging):
`UnitsLog` writes it in blocks, one atomically written part file per block under `units.parts/`
(Arrow IPC, cheap to write and read back), and joins them when the run finishes into one
`units.parquet` (pyarrow) or, without pyarrow, `units.csv.gz`; the same rows give the same bytes
however they were split into blocks.

Reading is safe on anyone's run folders: only CSV, JSON, Parquet and Arrow IPC are parsed (never
`model.pt` or any pickle), and nothing is read through a symbolic link (a linked file, or a linked
run folder that leads outside the folder searched). A run folder that cannot be read as the
run-folder contract says (a table that is not UTF-8 CSV with its columns, a truncated `units.csv.gz`,
`units.parquet` or part, an invalid `config.json` or `summary.json`, a linked file, or a log that
holds the same step twice, which would otherwise be aggregated twice) is *damaged*: `read_run` and
`Run.table` raise `DamagedRun` naming the folder and what is wrong, `check_run` returns that reason,
and `find_runs` skips the folder and reports it once (`on_damaged`; `ics compare` prints one warning
line each), so a comparison goes on with the rest.

An output set (the tables and figures of `ics compare`, the figures of `ics plot`) is written by
`staged`: into a staging folder beside its destination, marked by an `.incomplete` file, then moved
into place, so a kill leaves the previous complete set or a folder marked incomplete.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import re
import shutil
import stat
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import HASHED_UNLESS
from ..errors import IcsError
from ..quantities import KEYS as QUANTITY_KEYS, TABLES as QUANTITY_TABLES

METRICS_COLUMNS = ["step", "train_loss", "train_acc", "test_loss", "test_acc",
                   "test_loss_batchstats", "test_acc_batchstats", "lr", "elapsed_s"]
LAYERS_COLUMNS = ["step", "layer", "site", "mean", "var", "unit_mean_abs", "unit_var_mean",
                  "drift_mean", "drift_var", "drift_mean_init", "drift_var_init",
                  "drift_mean_scaled", "drift_mean_scaled_init", "dead_units"]
UNITS_COLUMNS = ["step", "layer", "site", "unit", "mean", "var", "p15", "p50", "p85"]
GRADS_COLUMNS = ["step", "layer", "grad_norm", "weight_norm", "update_ratio"]
CORE_TABLES = {"metrics": METRICS_COLUMNS, "layers": LAYERS_COLUMNS,
               "units": UNITS_COLUMNS, "grads": GRADS_COLUMNS}
# Every run has the core tables; the second view's (ics_cli/quantities) only when it was asked for.
TABLES = {**CORE_TABLES, **QUANTITY_TABLES}

FINISHED = ("completed", "diverged")


def fmt(value) -> str:
    """One CSV cell. Floats use 9 significant digits (float32 round-trips), NaN is blank."""
    if isinstance(value, float):
        return "" if value != value else format(value, ".9g")
    return str(value)


_NAN_CELL = re.compile(r",nan(?=[,\n])")


def csv_text(rows: list[tuple], kinds: str) -> str:
    """Rows as CSV text with the cells `fmt` writes, formatted a row at a time (fast for blocks);
    `kinds` has one letter per column: s (str), d (int), g (float: 9 digits, NaN blank)."""
    template = ",".join({"s": "%s", "d": "%d", "g": "%.9g"}[k] for k in kinds) + "\n"
    return _NAN_CELL.sub(",", "".join(template % row for row in rows))


def rows_text(rows: list[list]) -> str:
    """Rows as CSV text, each cell formatted by `fmt`."""
    return "".join(",".join(fmt(v) for v in row) + "\n" for row in rows)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a whole file under a temporary name, then rename it into place.

    The temporary name holds the pid, so two processes writing the same file (sweep.json of two
    sweeps) never share one; a failed write (a full disk) removes it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        with open(tmp, mode, opener=_no_follow) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def git_commit() -> str | None:
    """The commit of the ics checkout running (provenance of a run or a report), or None outside git."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def read_json(path: Path):
    with open(path) as f:
        return json.load(f)


def _no_follow(path, flags):
    """os.open that refuses a symbolic link (a planted link must not redirect a log's writes)."""
    return os.open(path, flags | os.O_NOFOLLOW, 0o644)


class CsvLog:
    """An append-only CSV table: header once, then blocks of whole rows, each one write."""

    def __init__(self, path: Path, columns: list[str], fresh: bool = True):
        self.path, self.columns = Path(path), columns
        if fresh or not self.path.exists():
            with open(self.path, "w", newline="", opener=_no_follow) as f:
                f.write(",".join(columns) + "\n")

    def append(self, rows: list[list]) -> None:
        """Rows of values, each cell formatted by `fmt`."""
        self.append_text(rows_text(rows))

    def append_text(self, text: str) -> None:
        """Rows already formatted as CSV text (whole lines)."""
        if not text:
            return
        with open(self.path, "a", newline="", opener=_no_follow) as f:
            f.write(text)
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

# Per table: the columns it must have to be read at all (older folders may lack the others), and the
# columns that name one observation: a log that holds the same key twice is inconsistent.
REQUIRED = {"metrics": ("step", "test_acc"), "layers": ("step", "layer", "site"),
            "units": ("step", "layer", "site", "unit"), "grads": ("step", "layer")}
ROW_KEYS = {"metrics": ("step",), "layers": ("step", "layer", "site"),
            "units": ("step", "layer", "site", "unit"), "grads": ("step", "layer"), **QUANTITY_KEYS}
REQUIRED.update(QUANTITY_KEYS)


class DamagedFile(IcsError):
    """A file that cannot be read as what it should be; `reason` starts with the file's name."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{Path(path).parent}: {reason}")


class DamagedRun(IcsError):
    """A run folder that cannot be read (see the module doc); `reason` says which file and what is wrong."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"run folder '{path}' cannot be read: {reason}")


class DamagedRunWarning(UserWarning):
    """A damaged run folder that `find_runs` skipped (its default `on_damaged`)."""


def _why(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def read_bytes(path: Path) -> bytes:
    """The bytes of a regular file, never read through a symbolic link; a DamagedFile otherwise."""
    path = Path(path)
    if path.is_symlink():
        raise DamagedFile(path, f"{path.name} is a symbolic link (not followed: only a folder's own "
                                "files are read)")
    try:
        # O_NOFOLLOW: a link swapped in after the check is refused too; O_NONBLOCK: a FIFO never blocks.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        what = "is a symbolic link" if e.errno == errno.ELOOP else f"cannot be opened ({e.strerror})"
        raise DamagedFile(path, f"{path.name} {what}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DamagedFile(path, f"{path.name} is not a regular file")
        return f.read()


def read_text(path: Path, kind: str = "CSV") -> str:
    """A regular file's UTF-8 text, gunzipped when its name ends in `.gz`; a DamagedFile otherwise."""
    path = Path(path)
    data = read_bytes(path)
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        # EOFError (a file cut short) must not escape: click turns it into Abort, which reads as Ctrl-C.
        except (EOFError, OSError, zlib.error) as e:
            raise DamagedFile(path, f"{path.name} is truncated or not gzip ({_why(e)})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\0" in text:
        raise DamagedFile(path, f"{path.name} is not a {kind} (binary data, not UTF-8 text)")
    return text


def parse_csv(path: Path, text: str, **read_csv) -> pd.DataFrame:
    """`text` (the contents of `path`) parsed by pandas; a DamagedFile when it is not a CSV."""
    try:
        return pd.read_csv(io.StringIO(text), **read_csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise DamagedFile(path, f"{Path(path).name} is not a CSV ({_why(e)})") from None


def _json(path: Path):
    try:
        return json.loads(read_text(path, kind="JSON file"))
    except json.JSONDecodeError as e:
        raise DamagedFile(path, f"{path.name} is not valid JSON ({e.msg} at line {e.lineno} "
                                f"column {e.colno})") from None


def _check_table(path: Path, name: str, table: pd.DataFrame) -> None:
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


def read_table(run_dir: Path, name: str) -> pd.DataFrame:
    """One of a run's tables (`metrics`, `layers`, `units`, `grads`) as a DataFrame.

    Reads `name.csv` or `name.csv.gz` (units: see `_read_units`; step and unit int64, layer and site
    str, values float64 whatever the file); a torn last line left by a kill is dropped. A DamagedRun
    when the file is a symbolic link, not UTF-8 CSV (or Parquet) with the table's columns, a
    truncated gzip or Parquet file, or holds the same step (metrics), (step, layer, site) (layers),
    (step, layer, site, unit) (units) or (step, layer) (grads) twice.
    """
    run_dir = Path(run_dir)
    try:
        if name == "units":
            return _read_units(run_dir)
        for path in (run_dir / f"{name}.csv", run_dir / f"{name}.csv.gz"):
            if os.path.lexists(path):
                break
        else:
            return pd.DataFrame(columns=TABLES.get(name, []))
        table = _csv_table(path, TABLES.get(name, []))
        _check_table(path, name, table)
    except DamagedFile as e:
        raise DamagedRun(run_dir, e.reason) from None
    return table


# --------------------------------------------------------------------------- the units table

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
        raise DamagedFile(path, f"{_label(path)} is truncated or not {kind} ({_why(e)})") from None


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


def _csv_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV table read back: a torn last line (a kill mid-append) is dropped; empty: no rows."""
    text = read_text(path)
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return parse_csv(path, text) if text else pd.DataFrame(columns=columns)


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
    return _csv_table(path, UNITS_COLUMNS)


def _read_units(run_dir: Path) -> pd.DataFrame:
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
    _check_table(path, "units", table)
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
        _check_table(legacy, "units", table)
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


def export_table(run_dir: Path, name: str, dest: Path | None = None) -> Path | None:
    """One table of a run as CSV (floats to 9 significant digits, NaN blank): into `dest`, written
    atomically, or to stdout when `dest` is None. Returns `dest`."""
    run_dir = Path(run_dir)
    if name not in TABLES:
        raise IcsError(f"unknown table '{name}'; give one of {', '.join(TABLES)}")
    if not is_run_dir(run_dir):
        raise IcsError(f"'{run_dir}' is not a run folder (it has no config.json)")
    text = read_table(run_dir, name).to_csv(index=False, float_format="%.9g", na_rep="",
                                            lineterminator="\n")
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
    if path.exists():
        summary = read_json(path)
        if summary["status"] in FINISHED:
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
        meta = _json(path / "config.json")
        summary_path = path / "summary.json"
        summary = _json(summary_path) if os.path.lexists(summary_path) else None
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


# --------------------------------------------------------------------------- output sets

INCOMPLETE = ".incomplete"
INCOMPLETE_NOTE = ("This folder is incomplete: `ics` was writing it and stopped before it finished. "
                   "Rerun the command that writes it.\n")


def staging_folder(dest: Path) -> Path:
    """Where an output set for `dest` is written before it moves into place: `.<name>.incomplete` beside it."""
    dest = Path(dest)
    return dest.parent / f".{dest.name}{INCOMPLETE}"


def is_incomplete(folder: Path) -> bool:
    """Whether `folder` holds an output set that was never finished (it holds the INCOMPLETE marker)."""
    return os.path.lexists(Path(folder) / INCOMPLETE)


@contextmanager
def staging(dest: Path) -> Iterator[Path]:
    """A fresh staging folder for `dest` (`staging_folder(dest)`, marked by an INCOMPLETE file): one a
    killed writer left is replaced; when the block raises (an error, Ctrl-C) it is removed. Moving
    what it holds into `dest` is the caller's (`staged`: file by file; TensorBoard's export: a folder
    per run)."""
    stage = staging_folder(dest)
    if stage.is_symlink() or (stage.exists() and not is_incomplete(stage)):
        raise IcsError(f"'{stage}' is in the way: it is where the outputs for '{dest}' are staged, "
                       "and it is not a staging folder; move it away")
    if stage.exists():
        shutil.rmtree(stage)        # left by a killed run: never a complete set
    stage.mkdir(parents=True)
    (stage / INCOMPLETE).write_text(INCOMPLETE_NOTE)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


@contextmanager
def staged(dest: Path, owned: Callable[[str], bool]) -> Iterator[Path]:
    """Write an output set into a staging folder next to `dest`, then move it into `dest`.

    Yields the staging folder (`staging_folder(dest)`, marked by an INCOMPLETE file). When the block
    ends, every file in it moves into `dest` (created if missing), and every other file of `dest` that
    `owned(name)` claims (a file of the previous set that the new one lacks) is removed; for those few
    renames `dest` holds the marker too. A subfolder of the set moves in file by file by the same rule
    (`_move_in`: `owned` hears its files as `<folder>/<name>`, the folder itself as `<folder>/`); a file
    where a subfolder goes stops it before anything moves. When the block raises (an error, Ctrl-C),
    the staging folder is removed and `dest` keeps its previous set; a hard kill leaves the marked
    staging folder, which the next call replaces. A `dest` that is itself a staging folder is written
    straight into.
    """
    dest = Path(dest)
    if dest.name.startswith(".") and dest.name.endswith(INCOMPLETE) and is_incomplete(dest):
        yield dest
        return
    with staging(dest) as stage:
        yield stage
    dest.mkdir(parents=True, exist_ok=True)
    blocked = _in_the_way(stage, dest)
    if blocked:                     # before anything moves: `dest` keeps its previous set
        shutil.rmtree(stage)
        raise IcsError(f"'{blocked}' is in the way: the outputs put a folder there, and it is not a "
                       "folder; move it away")
    (dest / INCOMPLETE).write_text(INCOMPLETE_NOTE)
    _move_in(stage, dest, owned)
    (dest / INCOMPLETE).unlink()
    shutil.rmtree(stage)


def _move_in(stage: Path, dest: Path, owned: Callable[[str], bool], prefix: str = "") -> None:
    """Move the files of `stage` into `dest`, each subfolder's into `dest`'s subfolder of that name (file
    by file: a user's own files in it stay); then remove what of `dest` the new set lacks and `owned`
    claims: a file `owned(prefix + name)` claims, and of a folder `owned(prefix + name + "/")` claims,
    the files it claims (and the folder, if that empties it)."""
    names = {p.name for p in stage.iterdir() if p.name != INCOMPLETE}
    for name in sorted(names):
        src, dst = stage / name, dest / name
        if not src.is_dir():
            os.replace(src, dst)
            continue
        dst.mkdir(exist_ok=True)
        _move_in(src, dst, owned, f"{prefix}{name}/")
    for old in sorted(dest.iterdir()):
        if old.name in names or old.name == INCOMPLETE:
            continue
        if not old.is_dir():
            if owned(prefix + old.name):
                old.unlink()
        elif not old.is_symlink() and owned(f"{prefix}{old.name}/"):
            _remove_owned(old, owned, f"{prefix}{old.name}/")


def _in_the_way(stage: Path, dest: Path) -> Path | None:
    """The first path of `dest` where a subfolder of `stage` goes and something other than a folder is."""
    for src in sorted(p for p in stage.iterdir() if p.is_dir()):
        dst = dest / src.name
        if os.path.lexists(dst) and (dst.is_symlink() or not dst.is_dir()):
            return dst
        found = _in_the_way(src, dst) if dst.is_dir() else None
        if found:
            return found
    return None


def _remove_owned(folder: Path, owned: Callable[[str], bool], prefix: str) -> None:
    """Remove the files of `folder` that `owned(prefix + name)` claims; then `folder` itself if empty."""
    for old in sorted(folder.iterdir()):
        if not old.is_dir() and owned(prefix + old.name):
            old.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()


def run_config(run: Run) -> dict:
    """The resolved training config of a run (the `config` block of config.json).

    A field added after the run was recorded, absent from its config.json, reads as the value that
    computes what the run did (config.HASHED_UNLESS), so older and newer runs compare on equal terms.
    """
    return {**HASHED_UNLESS, **run.config["config"]}
