"""Who may write a run folder, and how: one process at a time, never through a link, and a write
that fails ends in one line, with the run left resumable.

**One writer per run.** `hold(run_dir)` takes an exclusive, non-blocking `fcntl.flock` on the lock
file `<out>/.<run name>.lock`, a sibling of the run folder (not inside it, so that removing a stale
run folder to start it afresh cannot remove the lock with it). train.train holds it for the whole
run, from before it decides to skip, resume or start afresh until its summary is written, so that
decision is always made by the one process that then acts on it. The kernel releases the lock when
its process dies, however it dies (kill -9 included): a stale lock file is harmless and is reused.
The holder writes its pid into the file, for the message another process prints; it removes the file
when it ends normally, while it still holds the lock (a process that opened the old file meanwhile
sees that the path no longer names what it locked, and tries again). Another live holder raises
`Busy` (an IcsError: `ics train` prints one line and exits 2; a sweep reports the run as `busy`,
"running elsewhere", and neither trains it twice nor writes into it).

**No writes through links.** `refuse_links` refuses a run folder that is a symbolic link, and, before
a resume, any symbolic link inside it, naming it: appending to a planted `metrics.csv -> elsewhere`
would write outside `--out`.

**A planted checkpoint cannot run code**: train.train loads `checkpoint.pt` with weights_only=True;
one that is not plain tensors and numbers (a pickle that would run code, or a corrupt file) stops
the run with one line, exit 2, naming the file; remove the run folder to start that run afresh.

**A failed write is one line.** `writing(path)` turns a full disk, a quota or a read-only/permission
error (ENOSPC, EDQUOT, EACCES, EPERM, EROFS) into `WriteError`: `cannot write PATH: No space left on
device; free space and rerun to resume`. Files written whole go through a temporary name that
store.write_atomic removes on failure, so what is left is the last checkpoint and the CSV rows up to
it (a torn last row is dropped when the run resumes).
"""

from __future__ import annotations

import errno
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import IcsError

WRITE_ERRNOS = {errno.ENOSPC: "free space", errno.EDQUOT: "free space",
                errno.EACCES: "make it writable", errno.EPERM: "make it writable",
                errno.EROFS: "make it writable"}


class Busy(IcsError):
    """Another live process holds the run folder's lock."""

    def __init__(self, run_dir: Path, pid: int | None):
        self.run_dir, self.pid = Path(run_dir), pid
        who = f"pid {pid}" if pid else "pid unknown"
        super().__init__(f"run folder {run_dir} is being written by another process ({who}); "
                         f"wait for it to end (or stop it), then rerun")


class WriteError(IcsError):
    """A write into a run folder failed for a reason the user can fix (disk full, permissions)."""


def lock_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.with_name(f".{run_dir.name}.lock")


def _holder(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


@contextmanager
def hold(run_dir: Path):
    """Hold the run folder's lock for the body of the `with`; raise Busy if another process has it."""
    run_dir = Path(run_dir)
    path = lock_path(run_dir)
    with writing(path):
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise IcsError(f"lock file {path} is a symbolic link; remove it and rerun") from None
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _holder(fd)
                os.close(fd)
                raise Busy(run_dir, pid) from None
            # The last holder may have removed the file between our open and our lock: then we hold
            # a lock on a file nobody else will open; lock the one the path names now instead.
            try:
                st = os.stat(path, follow_symlinks=False)
                mine = os.fstat(fd)
                if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            os.close(fd)
            raise
    try:
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)    # still held: see the module docstring
        except OSError:
            pass
        os.close(fd)


def refuse_links(run_dir: Path, *, inside: bool) -> None:
    """Refuse a run folder that is a symbolic link and, with `inside`, any link within it."""
    run_dir = Path(run_dir)
    if run_dir.is_symlink():
        raise IcsError(f"run folder {run_dir} is a symbolic link; ics does not write through links: "
                       f"remove it and rerun")
    if not inside or not run_dir.is_dir():
        return
    for root, dirs, files in os.walk(run_dir):          # os.walk does not follow links to folders
        for name in sorted(dirs + files):
            p = Path(root) / name
            if p.is_symlink():
                raise IcsError(f"{p} is a symbolic link; ics does not write through links: remove it "
                               f"(or the run folder {run_dir}, to start the run afresh) and rerun")


@contextmanager
def writing(path: Path):
    """Turn a fixable write error (disk full, permissions, read-only) into one line naming the file."""
    try:
        yield
    except OSError as e:
        if e.errno not in WRITE_ERRNOS:
            raise
        name = e.filename if e.filename and not Path(e.filename).name.endswith(".tmp") else path
        raise WriteError(f"cannot write {name}: {e.strerror}; {WRITE_ERRNOS[e.errno]} and rerun "
                         f"to resume") from None
