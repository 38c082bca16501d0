"""A run's torch files: checkpoint.pt, taken on a wall clock, and model.pt, its trained weights.

Both are written in one atomic step and read with weights_only=True. What a checkpoint holds is the
training loop's business (ics_cli/train.py); here is where it lives, the run's clock and when it is
due, and `Stop`: Ctrl-C or SIGTERM ends a run at a step boundary with a checkpoint of that step.
"""

from __future__ import annotations

import io
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from ..errors import IcsError
from . import lock
from .files import write_atomic


def write_torch(path: Path, obj) -> None:
    """torch.save(obj) to path, atomically."""
    # Serialized in memory, then one atomic write: a full disk is then an OSError naming the
    # file (torch.save to a file says `unexpected pos`) and leaves no temporary file.
    buf = io.BytesIO()
    torch.save(obj, buf)
    with lock.writing(path):
        write_atomic(path, buf.getvalue())


class Checkpoint:
    """RUN/checkpoint.pt and the run's wall clock, which goes on from a resumed checkpoint's.

    Checkpoints are taken every `every` seconds of that clock (0: after every step).
    """

    def __init__(self, run_dir: Path, every: float):
        self.path, self.every = Path(run_dir) / "checkpoint.pt", every
        self.elapsed0 = 0.0         # seconds the run had trained when its checkpoint was taken
        self.start = self.last = time.perf_counter()

    @contextmanager
    def restoring(self, device: torch.device):
        """The checkpoint's contents, to restore the loop from; whatever fails, reading it or
        restoring from it, is one IcsError."""
        # weights_only: a checkpoint holds tensors, numbers and dicts only, so loading one can never
        # run code (a planted pickle fails here instead of executing).
        try:
            ck = torch.load(self.path, map_location=device, weights_only=True)
            yield ck
            self.elapsed0 = ck["elapsed"]
        except Exception as e:  # noqa: BLE001 - whatever is wrong with it, it is not resumed from
            why = (str(e) if isinstance(e, ValueError) and str(e) else
                   f"{type(e).__name__}: damaged, or more than tensors and numbers")
            raise IcsError(f"{self.path} is not a checkpoint ics can load safely ({why}); remove the run "
                           f"folder {self.path.parent} to start the run afresh") from None

    def start_clock(self) -> None:
        """The clock runs from here, on from the resumed checkpoint's elapsed time."""
        self.start = time.perf_counter() - self.elapsed0
        self.last = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def due(self) -> bool:
        return time.perf_counter() - self.last >= self.every

    def save(self, state: dict) -> None:
        """Write `state`, with the clock's `elapsed`, as the checkpoint."""
        write_torch(self.path, {**state, "elapsed": self.elapsed()})
        self.last = time.perf_counter()


class Stop:
    """Ctrl-C and SIGTERM stop a run at the next step boundary, with a checkpoint of that step.

    Inside the `with`, the first SIGINT or SIGTERM only sets `requested`; the loop calls `boundary`
    after each whole update (where the state is a consistent step), which raises KeyboardInterrupt when
    a stop was asked for. A second Ctrl-C raises at once, as Python's default would. `keep` (in the
    loop's `except KeyboardInterrupt`) saves a checkpoint when the loop stopped at a boundary, so a
    rerun resumes at that step instead of the last timed checkpoint. Handlers are installed only in
    the main thread (elsewhere signals cannot be caught) and restored on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.safe: int | None = None      # the step at which the loop last stood at a boundary
        self._old: dict = {}

    def __enter__(self) -> "Stop":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def boundary(self, step: int, on_step=None) -> None:
        """After a whole update: report it (`on_step`, which may itself raise KeyboardInterrupt: a
        sweep stopping), then stop here if a signal asked for it."""
        self.safe = step
        if on_step:
            on_step(step)
        if self.requested:
            raise KeyboardInterrupt

    def keep(self, step: int, ckpt: Checkpoint, flush, state) -> None:
        """Checkpoint `step` when the loop stopped at a boundary (flush(): the logs first; state(): the
        checkpoint's content); elsewhere the last timed checkpoint stands."""
        if self.safe == step:
            flush()
            ckpt.save(state())
