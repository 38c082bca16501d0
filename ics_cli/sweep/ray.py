"""A sweep's runs as Ray tasks: one task per run, on a local Ray instance or a cluster.

Ray is an optional extra (`pip install -e '.[ray]'` in a checkout, or `pip install ray`) and is imported here only. Each run is one
task that calls sweep.run_one in a Ray worker with one thread, declared as `num_cpus=1` (and
`num_gpus=1` under `--device cuda`), so Ray packs runs onto nodes by their resources. A run writes
its own folder under `--out` exactly as a local sweep does, so on a cluster `--out` must be a path
every node sees (a shared file system): `session` checks that from every alive node first.

**One writer per run** holds as locally: train takes the run folder's lock (lock.py), so a run
another sweep is writing comes back `busy` and is not touched. **A dead worker** (its node lost, or
the process killed) releases that lock with its process; Ray retries the task (`max_retries`) and
the retry resumes the run from its checkpoint, to the same bytes. A Python error in a run is not
retried (`retry_exceptions=False`): it is a `failed` run, as locally. Each attempt appends one line
to `<out>/.<run name>.attempts`, beside the run folder like its lock file, never inside it; the
Outcome carries the count, so the sweep reports a retried run, and the file goes once the run has
finished.

**Ctrl-C** cancels every outstanding task: a queued one never starts (`cancelled`), a running one
gets a KeyboardInterrupt and records `interrupted` as locally; one that has not within STOP_GRACE_S
is force-cancelled (its worker killed: the run resumes from its checkpoint). Finished runs are intact.

**A cluster address nobody answers at** is one line at once (`_reachable`), not minutes of ray.init
retrying. A relative `--out` is the driver's: each task works in the driver's folder.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from ..config import RunConfig
from ..errors import ConfigError, IcsError, installed, require as require_package

STOP_GRACE_S = 10.0
# Test hook (tests/test_ray_backend.py): a file whose text is a step number. The first task to
# reach that step while the file exists removes it and SIGKILLs its own worker, as a lost node would.
KILL_ENV = "ICS_TEST_KILL_FILE"


def available() -> bool:
    """Whether Ray is installed (without importing it: that takes a second)."""
    return installed("ray")


def require() -> None:
    require_package("ray", "Ray", "--backend ray", present=available())


def connect(address: str | None) -> bool:
    """Join the Ray cluster at `address` ("auto": the one `ray start` started on this machine), or
    start a local instance with this machine's cores (None). Returns whether this call started Ray;
    an already connected process (a notebook, a test) keeps its connection.
    """
    require()
    import ray

    if ray.is_initialized():
        return False
    if address is not None:
        _reachable(address)
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address is None:     # "local": a new instance, even where `ray start` runs one
            ray.init(address="local", num_cpus=os.cpu_count() or 1, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        where = "start a local Ray instance" if address is None else f"connect to Ray at --ray-address '{address}'"
        hint = "" if address is None else ("; start one with `ray start --head`, or leave --ray-address out "
                                           "to start a local instance")
        raise IcsError(f"cannot {where}: {' '.join(str(e).split())[:300]}{hint}") from None
    return True


def _reachable(address: str) -> None:
    """One line, at once, for a cluster address nobody answers at (ray.init would retry for minutes)."""
    import socket

    if address == "auto":     # the address `ray start` left in Ray's temp folder, if any
        try:
            from ray._private.services import canonicalize_bootstrap_address
            address = canonicalize_bootstrap_address("auto")
        except Exception:      # noqa: BLE001 - a private helper: if it moved, ray.init says what is wrong
            return
        if not address:
            return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise IcsError(f"cannot connect to Ray at --ray-address '{address}' ({e.strerror or e}); start a head node "
                       f"with `ray start --head`, or leave --ray-address out to start a local instance") from None


@contextmanager
def session(address: str | None, out: Path):
    """Connected to Ray for the body of the `with`, with `out` checked from every node; a Ray
    instance started here is shut down at the end, and its processes die with this one (kill -9
    included: `watchdog`)."""
    started = connect(address)
    watch = watchdog() if started and address is None else None
    try:
        check_shared(Path(out))
        yield
    finally:
        if started:
            import ray

            ray.shutdown()
        if watch is not None:
            watch.stdin.close()        # the watchdog's cue: it kills what shutdown left, then exits


# A process of its own session, given this process' Ray processes (pid:start time): it notes their
# descendants every second until the end of its stdin, which comes when the sweep's process closes it
# or dies (kill -9 included), then kills each that still runs. The start time tells a process from a
# later one that reused its pid.
WATCHDOG = """
import os, signal, sys
def stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[1]), fields[19]          # parent pid, start time
    except (OSError, IndexError, ValueError):
        return None
def descendants(roots):
    found, table = set(roots), {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (s := stat(int(name))):
            table[int(name)] = s[0]
    grew = True
    while grew:
        more = {p for p, parent in table.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found
import select
roots = [int(p) for p, start in (a.split(":") for a in sys.argv[1:]) if (s := stat(int(p))) and s[1] == start]
known = {}
while True:        # the tree as it grows (a raylet's agents and workers), noted every second
    ready = select.select([sys.stdin], [], [], 1.0)[0]
    known.update({pid: s[1] for pid in descendants(roots) if (s := stat(pid))})
    if ready and not os.read(sys.stdin.fileno(), 4096):
        break
known.update({pid: s[1] for pid in descendants(roots) if (s := stat(pid))})
for pid, start in known.items():
    if (s := stat(pid)) and s[1] == start:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


def watchdog():
    """Start the WATCHDOG over the processes the local Ray instance just started (this process'
    children: GCS, raylet, and what they start); None where /proc cannot tell them."""
    import subprocess
    import sys

    mine = []
    if not os.path.isdir("/proc"):
        return None
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                ray_process = b"ray" in f.read()     # GCS, raylet, monitors: not a pool's fork server
        except (OSError, ValueError):
            continue                # not a process, or one that just ended
        if name.isdigit() and int(fields[1]) == os.getpid() and ray_process:
            mine.append(f"{name}:{fields[19]}")
    return subprocess.Popen([sys.executable, "-c", WATCHDOG, *mine], stdin=subprocess.PIPE,
                            start_new_session=True, close_fds=True)


def check_shared(out: Path) -> None:
    """Refuse (one line naming the node) an `out` that some alive node cannot see or write.

    A marker folder made here, in the nearest existing folder of `out`, must be visible from each
    node, which creates and removes a file in it: a path that exists on each node but is not the
    same folder (a node's own /tmp) is refused too. The marker is removed before anything else.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    base = out.absolute()
    while not base.exists():
        base = base.parent
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    with tempfile.TemporaryDirectory(dir=base, prefix=".ics-shared-") as marker:
        probe = ray.remote(_probe)
        refs = {probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(marker): n for n in nodes}
        for ref, node in refs.items():
            problem = ray.get(ref)
            if problem:
                raise ConfigError(f"--out '{out}' cannot be written from Ray node {node['NodeManagerAddress']} "
                                  f"({problem}); on a cluster give a shared folder every node mounts")


def _probe(marker: str) -> str | None:
    """On one node: None if the driver's marker folder is here and writable, else what is wrong."""
    path = Path(marker)
    if not path.is_dir():
        return f"{path.parent} is not the driver's folder there"
    try:
        (path / f"node-{os.getpid()}").touch()
        (path / f"node-{os.getpid()}").unlink()
    except OSError as e:
        return e.strerror or str(e)
    return None


def run(configs: list[RunConfig], *, retries: int, on_outcome: Callable | None = None) -> list:
    """One Ray task per configuration (each with its `out`); outcomes in the order runs finish."""
    import ray

    from .worker import Outcome

    sweep_id = uuid.uuid4().hex      # tells this sweep's attempts from another's in the attempts file
    task = ray.remote(_task)
    cfg_of = {}
    for cfg in configs:
        resources = {"num_cpus": 1, **({"num_gpus": 1} if cfg.device == "cuda" else {})}
        ref = task.options(**resources, max_retries=retries, retry_exceptions=False).remote(
            cfg.to_dict(), sweep_id, os.getcwd())
        cfg_of[ref] = cfg
    outcomes: list[Outcome] = []
    pending, reported = list(cfg_of), set()
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                outcomes.append(_report(_result(ref, cfg_of[ref], sweep_id, retries), on_outcome))
                reported.add(ref)
    except KeyboardInterrupt:
        # Every task not yet reported, including one that had finished and was being read when Ctrl-C
        # came (it is no longer pending): _stop reads a finished task's own outcome.
        _stop([ref for ref in cfg_of if ref not in reported], cfg_of, sweep_id, retries, outcomes, on_outcome)
        raise
    return outcomes


def _report(outcome, on_outcome):
    if on_outcome:
        on_outcome(outcome)
    return outcome


def _result(ref, cfg: RunConfig, sweep_id: str, retries: int):
    """The task's Outcome; a worker that died on every attempt is a `failed` run."""
    import ray

    from .worker import Outcome

    run_dir = Path(cfg.out) / cfg.name()
    try:
        outcome = ray.get(ref)
    except ray.exceptions.TaskCancelledError:     # queued, or stopped before its run recorded anything
        outcome = Outcome(cfg.name(), "cancelled")
    except ray.exceptions.RayTaskError as e:  # an error in the task around its run (e.g. no such folder)
        cause = e.cause if e.cause is not None else e
        outcome = Outcome(cfg.name(), "failed", error=f"{type(cause).__name__}: {' '.join(str(cause).split())[:200]}")
    except ray.exceptions.RayError as e:      # the worker (or its node) died more than `retries` times
        reason = " ".join(str(e).split())[:200]
        outcome = Outcome(cfg.name(), "failed", error=f"its Ray worker died, {retries + 1} time(s) ({reason}); "
                                                      f"rerun to resume from its checkpoint")
    outcome.attempts = max(outcome.attempts, _attempts(run_dir, sweep_id))
    if outcome.status in ("completed", "diverged", "skipped"):
        _attempts_path(run_dir).unlink(missing_ok=True)
    return outcome


def _stop(pending: list, cfg_of: dict, sweep_id: str, retries: int, outcomes: list, on_outcome) -> None:
    """Ctrl-C: cancel every outstanding task; running runs record `interrupted`, or are killed (and
    reported `interrupted`)."""
    import ray

    from .worker import Outcome

    for ref in pending:
        ray.cancel(ref)                     # queued: dropped; running: KeyboardInterrupt in the task
    deadline = time.monotonic() + STOP_GRACE_S
    while pending and time.monotonic() < deadline:
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.1)
        for ref in done:
            outcomes.append(_report(_result(ref, cfg_of[ref], sweep_id, retries), on_outcome))
    for ref in pending:
        ray.cancel(ref, force=True)         # its run resumes from its last checkpoint
        outcomes.append(_report(Outcome(cfg_of[ref].name(), "interrupted",
                                        error=f"stopped by force after {STOP_GRACE_S:g} s; a rerun resumes it "
                                              "from its checkpoint"), on_outcome))


# --------------------------------------------------------------------------- in a Ray worker


def _task(cfg_dict: dict, sweep_id: str, cwd: str):
    """One run in a Ray worker, one thread; this attempt recorded beside the run folder first.

    A relative --out is the driver's: the worker works in the driver's folder (on a cluster, a
    shared one), so config.json records --out as given, as a local sweep does.
    """
    from .worker import run_one

    # ray.cancel stops a running task with SIGINT: Python's Ctrl-C handler, even in a worker whose
    # cluster was started from a process that ignores SIGINT (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cfg = RunConfig.from_dict(cfg_dict)
    if not Path(cfg.out).is_absolute():
        os.chdir(cwd)
    run_dir = Path(cfg.out) / cfg.name()
    with open(_attempts_path(run_dir), "a") as f:   # one short line per append: whole, even concurrently
        f.write(f"{sweep_id}\n")
    outcome = run_one(cfg_dict, threads=1, on_step=_kill_point())
    outcome.attempts = _attempts(run_dir, sweep_id)
    return outcome


def _attempts_path(run_dir: Path) -> Path:
    return run_dir.with_name(f".{run_dir.name}.attempts")


def _attempts(run_dir: Path, sweep_id: str) -> int:
    try:
        return max(1, _attempts_path(run_dir).read_text().split().count(sweep_id))
    except OSError:
        return 1


def _kill_point() -> Callable[[int], None] | None:
    """The test hook (KILL_ENV): None unless its file exists."""
    path = os.environ.get(KILL_ENV)
    if not path or not os.path.exists(path):
        return None
    step = int(Path(path).read_text())

    def kill(at: int) -> None:
        if at == step:
            try:
                os.unlink(path)             # the first task here wins; the retry finds no file
            except FileNotFoundError:
                return
            os.kill(os.getpid(), signal.SIGKILL)

    return kill
