"""Files as the store reads and writes them: whole files written atomically, append-only CSV logs,
the one CSV cell rule, and readers that never follow a link, read only regular files and turn
anything unreadable into one `DamagedFile` naming the file.

A file written whole goes through a temporary name (holding the pid) and `os.replace`, so a kill at
any moment leaves nothing that a reader mistakes for finished. CSV logs are appended one block at a
time and flushed, so a crash keeps every row already recorded; a reader drops a torn last line.
The cell rule: floats to 9 significant digits (float32 round-trips), NaN blank.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import re
import stat
import csv
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import IcsError

# The one CSV cell rule, for every table ics writes: floats to 9 significant digits (float32 values
# round-trip), NaN blank. `cell` formats one value, `fmt` a value of a run's log, `csv_text` rows of a
# block, `to_csv` a frame cell by cell, `frame_text` a frame through pandas; all write the same cells.
FLOAT_FORMAT = "%.9g"


def fmt(value) -> str:
    """One cell of a run's log: a float by the cell rule, anything else as str()."""
    if isinstance(value, float):
        return cell(value)
    return str(value)


_NAN_CELL = re.compile(r",nan(?=[,\n])")


def csv_text(rows: list[tuple], kinds: str) -> str:
    """Rows as CSV text with the cells `fmt` writes, formatted a row at a time (fast for blocks);
    `kinds` has one letter per column: s (str), d (int), g (float: 9 digits, NaN blank)."""
    template = ",".join({"s": "%s", "d": "%d", "g": FLOAT_FORMAT}[k] for k in kinds) + "\n"
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
        with open(tmp, mode, opener=no_follow) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def no_follow(path, flags):
    """os.open that refuses a symbolic link (a planted link must not redirect a log's writes)."""
    return os.open(path, flags | os.O_NOFOLLOW, 0o644)


class CsvLog:
    """An append-only CSV table: header once, then blocks of whole rows, each one write."""

    def __init__(self, path: Path, columns: list[str], fresh: bool = True):
        self.path, self.columns = Path(path), columns
        if fresh or not self.path.exists():
            with open(self.path, "w", newline="", opener=no_follow) as f:
                f.write(",".join(columns) + "\n")
        else:
            self.upgrade()

    def upgrade(self) -> None:
        """A log begun by an older ics, with fewer columns, resumed: its rows under today's header, each
        column it lacks empty (a cell never holds a comma: numbers and layer names only)."""
        with open(self.path, newline="", opener=no_follow) as f:
            old = f.readline().rstrip("\n").split(",")
        if old == self.columns or not set(old) <= set(self.columns):
            return      # the same header, or not one this log can take over (the reader says what is wrong)
        lines = read_text(self.path).split("\n")
        at = [old.index(c) if c in old else None for c in self.columns]
        rows = [ln.split(",") for ln in lines[1:-1]]      # a last line without its newline was cut by a kill
        body = "".join(",".join(r[i] if i is not None and i < len(r) else "" for i in at) + "\n" for r in rows)
        write_atomic(self.path, ",".join(self.columns) + "\n" + body)

    def append(self, rows: list[list]) -> None:
        """Rows of values, each cell formatted by `fmt`."""
        self.append_text(rows_text(rows))

    def append_text(self, text: str) -> None:
        """Rows already formatted as CSV text (whole lines)."""
        if not text:
            return
        with open(self.path, "a", newline="", opener=no_follow) as f:
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


class DamagedFile(IcsError):
    """A file that cannot be read as what it should be; `reason` starts with the file's name."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{Path(path).parent}: {reason}")


def why(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# The most a reader takes in: no table of a run comes near FILE_LIMIT, no JSON file ics writes near JSON_LIMIT.
FILE_LIMIT = 16 << 30
JSON_LIMIT = 64 << 20


def read_bytes(path: Path, limit: int = FILE_LIMIT) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, never read through a symbolic link; a
    DamagedFile otherwise."""
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
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DamagedFile(path, f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise DamagedFile(path, f"{path.name} is {info.st_size:,} bytes, more than a file of its kind holds "
                                    f"({limit:,} at most)")
        return f.read(limit + 1)


def read_text(path: Path, kind: str = "CSV", limit: int = FILE_LIMIT) -> str:
    """A regular file's UTF-8 text, gunzipped when its name ends in `.gz`; a DamagedFile otherwise."""
    path = Path(path)
    data = read_bytes(path, limit)
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        # EOFError (a file cut short) must not escape: click turns it into Abort, which reads as Ctrl-C.
        except (EOFError, OSError, zlib.error) as e:
            raise DamagedFile(path, f"{path.name} is truncated or not gzip ({why(e)})") from None
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
        raise DamagedFile(path, f"{Path(path).name} is not a CSV ({why(e)})") from None


def read_csv(path: Path, **options) -> pd.DataFrame:
    """A CSV file read by `read_text` and parsed by pandas with `options`; a DamagedFile otherwise."""
    return parse_csv(path, read_text(path), **options)


def read_json(path: Path, limit: int | None = None):
    """A JSON file read by `read_text` (no link followed, a regular file, at most `limit` bytes: JSON_LIMIT
    by default); a DamagedFile, one line naming the file, when it is not valid JSON."""
    try:
        return json.loads(read_text(path, kind="JSON file", limit=JSON_LIMIT if limit is None else limit))
    except json.JSONDecodeError as e:
        raise DamagedFile(path, f"{path.name} is not valid JSON ({e.msg} at line {e.lineno} "
                                f"column {e.colno})") from None


def csv_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV table read back: a torn last line (a kill mid-append) is dropped; empty: no rows."""
    text = read_text(path)
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return parse_csv(path, text) if text else pd.DataFrame(columns=columns)


def cell(value) -> str:
    """One cell of a compare table (any pandas or numpy value): missing blank, a float by the rule."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return "" if value != value else FLOAT_FORMAT % value
    return str(value)


def frame_text(frame: pd.DataFrame, header: bool = True) -> str:
    """A frame as CSV text through pandas, by the cell rule (the fast path for large tables)."""
    return frame.to_csv(index=False, header=header, float_format=FLOAT_FORMAT, na_rep="", lineterminator="\n")


def to_csv(table: pd.DataFrame) -> str:
    """CSV text with deterministic cells: floats to 9 significant digits, NaN blank."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(table.columns))
    for row in table.itertuples(index=False, name=None):
        writer.writerow([cell(v) for v in row])
    return buf.getvalue()


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path, gzipped: tuple[str, ...] = ()) -> list[Path]:
    """Write each table to `out_dir/<name>.csv` atomically; return the paths in table order. A table
    named in `gzipped` goes to `<name>.csv.gz` instead (the same CSV text, gzip with no timestamp, so
    the same bytes every time), and the other spelling of its file is removed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in tables.items():
        text = to_csv(table)
        plain, packed = out_dir / f"{name}.csv", out_dir / f"{name}.csv.gz"
        path, other = (packed, plain) if name in gzipped else (plain, packed)
        write_atomic(path, gzip.compress(text.encode(), mtime=0) if name in gzipped else text)
        if os.path.lexists(other):
            other.unlink()
        paths.append(path)
    return paths
