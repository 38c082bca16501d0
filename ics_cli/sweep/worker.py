"""One run in a worker process: `run_one` (the local pool's and Ray's task), and the pool worker's life:
it dies with the sweep's process (kill -9 included) and stops when the sweep says so.

The local pool (run.py) and the Ray backend (ray.py) both import this module; neither imports the other
back.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import RunConfig
from ..errors import IcsError
from ..store import files, lock


@dataclass
class Outcome:
    name: str
    status: str          # completed, diverged, interrupted, skipped, failed, busy, cancelled
    summary: dict | None = None
    error: str | None = None
    attempts: int = 1    # > 1: a Ray worker died under the run and another one resumed it


def run_one(cfg_dict: dict, threads: int | None = None,
            on_step: Callable[[int], None] | None = None, slot: int | None = None) -> Outcome:
    """One run in this process; an unexpected error goes to the run folder's error.txt.

    In a pool worker a run does not start once the sweep is stopping (`cancelled`), and a running
    one stops at its next step (`interrupted`). A run another process is writing is `busy`: it is
    neither trained nor written into here. `on_step(step)`, if given, is called after each update
    (ray_backend's test hook). `slot`: in a pool worker, where this run writes its step for the sweep's
    progress line (the pool's shared array).
    """
    import torch

    from ..train import train

    if threads:
        torch.set_num_threads(threads)
    cfg = RunConfig.from_dict(cfg_dict)
    if _STOP is not None and _STOP.is_set():
        return Outcome(cfg.name(), "cancelled")
    try:
        if on_step is None and _STOP is not None:
            on_step = _stop_point if slot is None or _STEPS is None else _reporting(slot)
        result = train(cfg, on_step=on_step)
    except KeyboardInterrupt:
        return Outcome(cfg.name(), "interrupted")
    except lock.Busy as e:
        return Outcome(cfg.name(), "busy", error=f"running elsewhere (pid {e.pid or '?'})")
    except IcsError as e:   # one line for the user (a full disk, a planted link), nothing to add to the folder
        return Outcome(cfg.name(), "failed", error=str(e))
    except Exception as e:  # noqa: BLE001 - a failed run is reported, the sweep goes on
        record_error(Path(cfg.out) / cfg.name(), traceback.format_exc())
        return Outcome(cfg.name(), "failed", error=f"{type(e).__name__}: {e}")
    status = "skipped" if result.skipped else result.summary["status"]
    return Outcome(cfg.name(), status, result.summary)


def record_error(run_dir: Path, text: str) -> None:
    """error.txt in the run folder, under its lock: not if another process has taken the run since."""
    try:
        with lock.hold(run_dir):
            lock.refuse_links(run_dir, inside=False)
            run_dir.mkdir(parents=True, exist_ok=True)
            files.write_atomic(run_dir / "error.txt", text)
    except (IcsError, OSError):
        pass

PR_SET_PDEATHSIG = 1     # linux/prctl.h

_STOP = None             # in a pool worker: the sweep's stop event (None in the sweep's own process)
_STEPS = None            # in a pool worker: the shared array of each queued run's last step (progress)


def init(stop, steps=None) -> None:
    """A pool worker: dies with the sweep's process, and stops when the sweep says so.

    Ctrl-C is the sweep process's to handle: it sets `stop`, which a worker reads before each run
    and after each step (_stop_point), so no worker is caught by SIGINT between runs, and one whose
    SIGINT went only to the sweep's process stops as well.
    """
    global _STOP, _STEPS
    _STOP, _STEPS = stop, steps
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _die_with_sweep()


def _die_with_sweep() -> None:
    """Die with the sweep's process (kill -9 included), as if killed with it: the run resumes later.

    A daemon thread waits on multiprocessing's parent sentinel, a pipe only the sweep's process
    writes to (at EOF once it is gone, even before this thread started), and kills this process
    within milliseconds. Linux also has the kernel send SIGKILL when this worker's parent dies
    (prctl PR_SET_PDEATHSIG): the fork server, which exits once the sweep's process has (it waits
    for the last write end of its "alive" pipe to close, and a worker closes its own), a few
    seconds later as it unloads torch; or the sweep's process itself, where workers are spawned.
    """
    sweep_process = multiprocessing.parent_process()
    _close_server_pipe()
    threading.Thread(target=_watch, args=(sweep_process,), daemon=True).start()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):    # no prctl (not Linux): the thread alone
        pass


def _close_server_pipe() -> None:
    """Close a forked worker's copy of the fork server's "alive" pipe (a worker starts no process)."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:                  # None in a spawned worker
        os.close(fd)
        server._forkserver_alive_fd = None


def _watch(sweep_process) -> None:
    sweep_process.join()                # returns once the sweep's process has died
    os.kill(os.getpid(), signal.SIGKILL)


def _reporting(slot: int) -> Callable[[int], None]:
    """train's on_step in a pool worker that reports progress: the step into the shared array, then
    the stop point."""
    def on_step(step: int) -> None:
        _STEPS[slot] = step
        _stop_point(step)
    return on_step


def _stop_point(step: int) -> None:
    """train's on_step in a pool worker: the sweep is stopping, so this run is interrupted here."""
    if _STOP.is_set():
        raise KeyboardInterrupt
