"""A run's torch files: checkpoint.pt, taken on a wall clock, and model.pt, its trained weights.

Both are written in one atomic step and read with weights_only=True. What a checkpoint holds is the
training loop's business (ics_cli/train.py); here is where it lives, the run's clock and when it is
due.
"""

from __future__ import annotations

import io
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
