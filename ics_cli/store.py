"""Run folders on disk: atomic writes, append-only CSV logs, completion markers, reading back.

A run folder is complete only once `summary.json` exists; every file that is written whole goes
through a temporary name and `os.replace`, so a kill at any moment leaves nothing that a reader
mistakes for finished. CSV logs are appended one log step at a time and flushed, so a crash keeps
every row already recorded; a reader drops a torn last line.

Reading is safe on anyone's run folders: only CSV and JSON are parsed (never `model.pt` or any
pickle), and nothing is read through a symbolic link (a linked file, or a linked run folder that
leads outside the folder searched). A run folder that cannot be read as the run-folder contract
says (a table that is not UTF-8 CSV with its columns, a truncated `units.csv.gz`, an invalid
`config.json` or `summary.json`, a linked file, or a log that holds the same step twice, which would
otherwise be aggregated twice) is *damaged*: `read_run` and `Run.table` raise `DamagedRun` naming the
folder and what is wrong, `check_run` returns that reason, and `find_runs` skips the folder and
reports it once (`on_damaged`; `ics compare` prints one warning line each), so a comparison goes on
with the rest.

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
import shutil
import stat
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import IcsError

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
    """Write a whole file under a temporary name, then rename it into place.

    The temporary name holds the pid, so two processes writing the same file (sweep.json of two
    sweeps) never share one; a failed write (a full disk) removes it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        with open(tmp, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path):
    with open(path) as f:
        return json.load(f)


def _no_follow(path, flags):
    """os.open that refuses a symbolic link (a planted link must not redirect a log's writes)."""
    return os.open(path, flags | os.O_NOFOLLOW, 0o644)


class CsvLog:
    """An append-only CSV table: header once, then rows flushed once per log step."""

    def __init__(self, path: Path, columns: list[str], fresh: bool = True):
        self.path, self.columns = Path(path), columns
        if fresh or not self.path.exists():
            with open(self.path, "w", newline="", opener=_no_follow) as f:
                f.write(",".join(columns) + "\n")

    def append(self, rows: list[list]) -> None:
        if not rows:
            return
        with open(self.path, "a", newline="", opener=_no_follow) as f:
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

# Per table: the columns it must have to be read at all (older folders may lack the others), and the
# columns that name one observation: a log that holds the same key twice is inconsistent.
REQUIRED = {"metrics": ("step", "test_acc"), "layers": ("step", "layer", "site"),
            "units": ("step", "layer", "site", "unit"), "grads": ("step", "layer")}
ROW_KEYS = {"metrics": ("step",), "layers": ("step", "layer", "site"),
            "units": ("step", "layer", "site", "unit"), "grads": ("step", "layer")}


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

    Reads `name.csv` or `name.csv.gz`; a torn last line left by a kill is dropped. A DamagedRun when
    the file is a symbolic link, not UTF-8 CSV with the table's columns, a truncated gzip, or holds the
    same step (metrics), (step, layer, site) (layers), (step, layer, site, unit) (units) or
    (step, layer) (grads) twice.
    """
    run_dir = Path(run_dir)
    empty = pd.DataFrame(columns=TABLES.get(name, []))
    for path in (run_dir / f"{name}.csv", run_dir / f"{name}.csv.gz"):
        if os.path.lexists(path):
            break
    else:
        return empty
    try:
        text = read_text(path)
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        if not text:
            return empty
        table = parse_csv(path, text)
        _check_table(path, name, table)
    except DamagedFile as e:
        raise DamagedRun(run_dir, e.reason) from None
    return table


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
def staged(dest: Path, owned: Callable[[str], bool]) -> Iterator[Path]:
    """Write an output set into a staging folder next to `dest`, then move it into `dest`.

    Yields the staging folder (`staging_folder(dest)`, marked by an INCOMPLETE file). When the block
    ends, every file in it moves into `dest` (created if missing), and every other file of `dest` that
    `owned(name)` claims (a file of the previous set that the new one lacks) is removed; for those few
    renames `dest` holds the marker too. When the block raises (an error, Ctrl-C), the staging folder
    is removed and `dest` keeps its previous set; a hard kill leaves the marked staging folder, which
    the next call replaces. A `dest` that is itself a staging folder is written straight into.
    """
    dest = Path(dest)
    if dest.name.startswith(".") and dest.name.endswith(INCOMPLETE) and is_incomplete(dest):
        yield dest
        return
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
    dest.mkdir(parents=True, exist_ok=True)
    (dest / INCOMPLETE).write_text(INCOMPLETE_NOTE)
    names = {p.name for p in stage.iterdir() if p.name != INCOMPLETE}
    for name in sorted(names):
        os.replace(stage / name, dest / name)
    for old in dest.iterdir():
        if old.name not in names and old.name != INCOMPLETE and not old.is_dir() and owned(old.name):
            old.unlink()
    (dest / INCOMPLETE).unlink()
    shutil.rmtree(stage)


def run_config(run: Run) -> dict:
    """The resolved training config of a run (the `config` block of config.json)."""
    return run.config["config"]
