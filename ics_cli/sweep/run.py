"""Grids of runs: expansion, resumption by config hash, parallel execution in processes.

A sweep folder holds `sweep.json` (the grid and the resolved common config) and one run folder per
configuration, written by train.train. Rerunning a sweep skips runs whose summary.json says
completed or diverged, resumes interrupted ones from their checkpoint, restarts missing ones, and
never duplicates a run: a run's folder name ends in its config hash. Two sweeps on one folder never
train a run twice either: train holds the run folder's lock (lock.py), and a run another process is
writing is reported `busy` ("running elsewhere").

The runs to do go to a pool of local processes (backend `local`, the default) or to a Ray cluster,
one Ray task per run (backend `ray`, ray_backend.py); the skipping, sweep.json and progress are the
same for both. `with backend("ray", address):` makes Ray the default of every sweep.run inside it
(how `ics reproduce` runs a study's sweeps on a cluster without the studies knowing).

Pool workers are forked from a fork server that has imported torch and ics once, so a worker
starts in milliseconds instead of importing them again (seconds); the server only imports (no
tensor operation runs in it), so each worker starts its own thread pool, with its own size.
"""

from __future__ import annotations

import contextvars
import itertools
import multiprocessing
import os
import signal
import threading
import time
import tomllib
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..store import runs as store
from ..store import files
from ..config import RunConfig, check_writable, validate
from ..errors import ConfigError, IcsError
from ..net.shapes import CONV
from . import worker
from .worker import Outcome, run_one

AXES = {"norms": ("norm", str), "lrs": ("lr", float), "seeds": ("seed", int),
        "batch_sizes": ("batch_size", int)}


def default_jobs() -> int:
    """One process per CPU core, each with one thread: small nets gain little from more threads."""
    return max(1, os.cpu_count() or 1)


def parse_list(option: str, text: str, cast: type) -> list:
    """'0.1,1,10' -> [0.1, 1.0, 10.0], with a one-line error naming the option."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{option} is empty; give a comma-separated list, e.g. {option} 0.1,1")
    try:
        return [cast(t) for t in items]
    except ValueError:
        kind = {float: "numbers", int: "integers", str: "names"}[cast]
        raise ConfigError(f"{option} '{text}' must be comma-separated {kind}") from None


@dataclass
class Sweep:
    """A grid: each axis a list; `common` holds every other RunConfig value."""

    common: RunConfig = field(default_factory=RunConfig)
    norms: list[str] = field(default_factory=lambda: ["none", "batch"])
    lrs: list[float] = field(default_factory=lambda: [RunConfig.lr])
    seeds: list[int] = field(default_factory=lambda: [0])
    batch_sizes: list[int] = field(default_factory=lambda: [RunConfig.batch_size])

    def configs(self) -> list[RunConfig]:
        """Every configuration of the grid, validated, in a fixed order, without duplicates.

        Each is checked against its dataset's size and image shape too (data.sizes reads the files
        once), and has its steps resolved from --epochs, so its hash is its run folder's.
        """
        from ..net import data
        from ..config import check_data

        for axis in AXES:
            if not getattr(self, axis):
                raise ConfigError(f"--{axis.replace('_', '-')} is empty: the grid has no runs")
        out, seen = [], set()
        for norm, lr, bs, seed in itertools.product(self.norms, self.lrs, self.batch_sizes, self.seeds):
            cfg = validate(replace(self.common, norm=norm, lr=lr, batch_size=bs, seed=seed))
            train_size, test_size, shape = data.sizes(cfg.dataset, data_dir=cfg.data_dir, download=cfg.download,
                                                       split=cfg.split)
            cfg = check_data(cfg, train_size, test_size, shape)
            if cfg.hash() not in seen:
                seen.add(cfg.hash())
                out.append(cfg)
        return out

    def to_dict(self) -> dict:
        return {"grid": {axis: getattr(self, axis) for axis in AXES}, "common": self.common.to_dict()}


# RunConfig values a grid axis sets for every run: in [common] they would be silently overridden.
GRID_OWNED = {field_name: axis for axis, (field_name, _) in AXES.items()}
_KIND = {str: "strings", float: "numbers", int: "integers"}


def load_toml(path: Path) -> dict:
    """A grid file: `[grid]` with norms/lrs/seeds/batch_sizes lists, `[common]` with RunConfig values.

    Every key and type is checked here, so a mistake is one line naming the file and the key.
    """
    from dataclasses import fields

    from ..config import type_problem

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config '{path}' does not exist")
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config '{path}' is not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config '{path}' cannot be read: {e}") from None
    unknown = set(doc) - {"grid", "common"}
    if unknown:
        raise ConfigError(f"--config '{path}': unknown keys {sorted(unknown)}; "
                          f"allowed: [grid] {', '.join(AXES)} and [common] RunConfig options")
    for table in ("grid", "common"):
        if not isinstance(doc.get(table, {}), dict):
            raise ConfigError(f"--config '{path}': '{table}' must be a table ([{table}] with key = value "
                              f"lines), got {doc[table]!r}")
    grid, common = doc.get("grid", {}), doc.get("common", {})
    bad_axes = set(grid) - set(AXES)
    if bad_axes:
        raise ConfigError(f"--config '{path}': unknown keys {sorted(bad_axes)} in [grid]; "
                          f"allowed: {', '.join(AXES)}")
    for axis, value in grid.items():
        cast = AXES[axis][1]
        example = {str: '["none", "batch"]', float: "[0.1, 0.5]", int: "[0, 1]"}[cast]
        if not (isinstance(value, list) and value and all(_is(v, cast) for v in value)):
            raise ConfigError(f"--config '{path}': [grid] {axis} must be a non-empty list of "
                              f"{_KIND[cast]}, e.g. {axis} = {example}; got {value!r}")
    names = {f.name for f in fields(RunConfig)}
    for key, value in common.items():
        if key in GRID_OWNED:
            axis = GRID_OWNED[key]
            raise ConfigError(f"--config '{path}': [common] {key} would be overridden by the grid; "
                              f"put it in [grid] as {axis} = [{_toml(value)}]")
        if key not in names:
            raise ConfigError(f"--config '{path}': unknown key '{key}' in [common]; "
                              f"allowed: {', '.join(sorted(names - set(GRID_OWNED)))}")
        expected = type_problem(key, value)
        if expected:
            raise ConfigError(f"--config '{path}': [common] {key} must be {expected}, got {_toml(value)}")
    return doc


def _is(value, cast: type) -> bool:
    """Whether a TOML value is a `cast` (an integer is a number; true is not an integer)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, cast) or (cast is float and isinstance(value, int))


def _toml(value) -> str:
    """A value as TOML spells it, for messages."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def make_sweep(common: dict, grid: dict, toml: dict | None = None) -> Sweep:
    """Build a Sweep from option dicts; TOML values first, then explicitly given options on top."""
    toml = toml or {}
    owned = sorted(set(common) & set(GRID_OWNED))
    if owned:
        raise ConfigError(f"{', '.join(owned)} are set by the grid; give them as "
                          f"{', '.join(GRID_OWNED[k] for k in owned)} lists")
    base = {**toml.get("common", {}), **common}
    grid = {**toml.get("grid", {}), **{k: v for k, v in grid.items() if v is not None}}
    axes = {}
    for axis, value in grid.items():
        _, cast = AXES[axis]
        axes[axis] = parse_list(f"--{axis.replace('_', '-')}", ",".join(map(str, value))
                                if isinstance(value, list) else value, cast)
    return Sweep(common=RunConfig.from_dict(base), **axes)


BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Backend:
    """Where a sweep's runs go: `local` processes, or `ray` tasks (address None: a local Ray instance)."""

    name: str = "local"
    address: str | None = None
    retries: int = 3


_BACKEND = contextvars.ContextVar("sweep_backend", default=Backend())


@contextmanager
def backend(name: str = "local", address: str | None = None, retries: int = 3):
    """Make `name` the backend of every sweep.run inside the `with` that names none itself."""
    if name not in BACKENDS:
        raise ConfigError(f"--backend '{name}' is not one of {', '.join(BACKENDS)}")
    token = _BACKEND.set(Backend(name, address, retries))
    try:
        yield
    finally:
        _BACKEND.reset(token)


def run(sweep: Sweep, out: Path, *, jobs: int | None = None, backend: str | None = None,
        ray_address: str | None = None, ray_retries: int = 3,
        on_start: Callable[[int, int], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        on_running: Callable[[list[tuple[str, int, int]]], None] | None = None) -> list[Outcome]:
    """Run every configuration of the grid into `out`, skipping finished ones; return the outcomes.

    on_start(total, already_done) is called once; on_outcome(outcome) after each run ends;
    on_running([(run name, step, steps)]) about every PROGRESS_S seconds with the local pool's
    running runs and the step each has reached.
    `backend` (default: the one `with backend(...)` set, else local): `local` runs `jobs` processes
    here; `ray` one task per run on a Ray cluster (ray_backend.run) at `ray_address` (None: a local
    instance), each retried up to `ray_retries` times if its worker dies.
    Ctrl-C (KeyboardInterrupt) starts no further run: running ones record `interrupted` within a
    step, then it is re-raised. Pool workers die with this process, even by kill -9 (worker.init).
    """
    chosen = _BACKEND.get() if backend is None else Backend(backend, ray_address, ray_retries)
    if chosen.name not in BACKENDS:
        raise ConfigError(f"--backend '{chosen.name}' is not one of {', '.join(BACKENDS)}")
    out = Path(out)
    configs = sweep.configs()
    check_writable(out)
    if chosen.name == "ray":
        from . import ray as ray_backend

        # Connected, and --out seen by every node, before anything is written.
        with ray_backend.session(chosen.address, out):
            todo, outcomes = _start(sweep, out, configs, on_start, on_outcome)
            return outcomes + ray_backend.run(todo, retries=chosen.retries, on_outcome=on_outcome)
    todo, outcomes = _start(sweep, out, configs, on_start, on_outcome)
    jobs = min(jobs or default_jobs(), max(1, len(todo)))
    if jobs == 1:
        for cfg in todo:
            outcomes.append(_report(run_one(cfg.to_dict()), on_outcome))
            if outcomes[-1].status == "interrupted":
                raise KeyboardInterrupt       # the run has recorded it; no further run starts
        return outcomes
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # Longest first: a long run started last would leave the other workers idle at the end.
    todo = sorted(todo, key=cost, reverse=True)
    ctx = _context()
    stop = ctx.Event()
    steps = ctx.Array("q", len(todo), lock=False)      # each queued run's last step, written by its worker
    pending: set = set()
    with _sigterm_as_ctrl_c(), ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=worker.init,
                                                   initargs=(stop, steps)) as pool:
        try:
            # Workers (and the fork server, started by the first) start with SIGINT blocked: a Ctrl-C
            # now reaches only us.
            with _sigint_blocked():
                slot = {pool.submit(run_one, cfg.to_dict(), threads, None, i): i for i, cfg in enumerate(todo)}
            pending = set(slot)
            while pending:
                done, pending = wait(pending, timeout=PROGRESS_S if on_running else None,
                                     return_when=FIRST_COMPLETED)
                if on_running:
                    on_running([(todo[slot[f]].name(), steps[slot[f]], todo[slot[f]].steps)
                                for f in pending if f.running()])
                for fut in done:
                    outcomes.append(_report(fut.result(), on_outcome))
        except KeyboardInterrupt:
            _stop(pool, stop, pending)
            raise
    return outcomes


PROGRESS_S = 1.0        # how often a local pool reports its running runs' steps (on_running)


def cost(cfg: RunConfig) -> float:
    """A run's relative cost, to order a pool's queue: updates x examples per update x layers, x 10
    for a convolutional model (a rough ordering; the run folders do not depend on it)."""
    conv = 10 if cfg.model in CONV else 1
    return cfg.steps * cfg.batch_size * cfg.hidden_depth * conv


def _start(sweep: Sweep, out: Path, configs: list[RunConfig], on_start, on_outcome):
    """Write sweep.json, report the finished runs as skipped; return (configs to run, outcomes so far)."""
    out.mkdir(parents=True, exist_ok=True)
    files.write_json(out / "sweep.json", {**sweep.to_dict(), "runs": [c.name() for c in configs]})
    configs = [replace(c, out=str(out)) for c in configs]
    outcomes = []
    todo = []
    for cfg in configs:
        summary = store.finished(out / cfg.name())
        if summary:
            outcomes.append(Outcome(cfg.name(), "skipped", summary))
        else:
            todo.append(cfg)
    if on_start:
        on_start(len(configs), len(outcomes))
    for o in outcomes:
        if on_outcome:
            on_outcome(o)
    return todo, outcomes


def _report(outcome: Outcome, on_outcome) -> Outcome:
    if on_outcome:
        on_outcome(outcome)
    return outcome


# --------------------------------------------------------------------------- worker processes

STOP_GRACE_S = 10.0      # how long Ctrl-C waits for running runs to record `interrupted`
# What the fork server imports, once for all workers: torch and ics (about 1.5 s here), and
# torch._dynamo, which torch.optim imports at the first optimizer (another second); the `ics`
# script's module reimports the CLI in each worker. A name that does not import is skipped.
PRELOAD = ["ics_cli.cli", "ics_cli.sweep.run", "ics_cli.sweep.worker", "ics_cli.train", "torch._dynamo"]


def _context():
    """Workers forked from a fork server that has imported PRELOAD; spawned where there is none.

    The server is multiprocessing's, one per process: the first pool starts it (with SIGINT
    blocked, see run) and later sweeps of the process reuse it. It imports and never computes, so
    a forked worker inherits no OpenMP thread pool (GNU OpenMP hangs in a child forked after its
    parent used one) and sets its own thread count (run_one).
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)     # read when the server starts
    return ctx


@contextmanager
def _sigterm_as_ctrl_c():
    """SIGTERM (`kill PID`, a scheduler's stop) ends a sweep the way Ctrl-C does: no queued run starts,
    running runs record `interrupted`, one ics line and exit code 130, the pool shut down cleanly (no
    leaked-semaphore warning). Main thread only, where signals are delivered."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def _sigint_blocked():
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _stop(pool: ProcessPoolExecutor, stop, running: set) -> None:
    """Ctrl-C: no queued run starts; running runs record `interrupted` at their next step.

    A worker that has not stopped within STOP_GRACE_S is killed (its run resumes from its last
    checkpoint, like a kill -9), so the sweep returns within seconds.
    """
    stop.set()
    pool.shutdown(wait=False, cancel_futures=True)
    # Polled, not concurrent.futures.wait: a future cancelled by the shutdown never notifies a waiter.
    deadline = time.monotonic() + STOP_GRACE_S
    while not all(f.done() for f in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not all(f.done() for f in running):
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.kill()


def check_backend(backend: str, ray_address: str | None, ray_retries: int, jobs: int | None) -> None:
    """One line for a backend option that does not go with the others, or Ray missing."""
    from . import ray as ray_backend

    if backend != "ray":
        if ray_address is not None:
            raise IcsError("--ray-address applies to --backend ray only; add --backend ray or drop it")
        return
    if jobs is not None:
        raise IcsError("--jobs applies to --backend local only; with --backend ray every run is a task "
                       "of 1 CPU and Ray fills the cluster's CPUs")
    if ray_retries < 0:
        raise IcsError(f"--ray-retries must be an integer >= 0, got {ray_retries}")
    ray_backend.require()


def parse_seeds(text: str) -> list[int]:
    """--seeds '10,11,12' -> [10, 11, 12]: distinct non-negative integers, or a one-line error."""
    seeds = parse_list("--seeds", text, int)
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise IcsError(f"--seeds '{text}' must be distinct non-negative integers, e.g. --seeds 10,11,12")
    return seeds
