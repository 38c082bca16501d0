"""Faults a run folder must survive (issue 8: nothing lost, nothing run twice, nothing hung).

Real processes where the fault needs them: a sweep's parent killed with kill -9 (its workers die
too), the whole process group killed, two sweeps on one folder, Ctrl-C; in-process for the rest:
a planted pickle, a planted link, a full disk (simulated, and on a tiny tmpfs where this machine
allows mounting one), a run folder another process holds. After each, a rerun finishes every run
exactly once, with the bytes of an unbroken run.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import torch

from ics_cli.store import lock, runs as store
from ics_cli.store import files
from ics_cli.sweep import run as sweep
from ics_cli import train as train_mod
from ics_cli.cli import main
from ics_cli.config import RunConfig
from ics_cli.errors import IcsError

from expect import error_line
from helpers import csv_lines, strip_elapsed

# Checkpoints every 0.1 s rather than every 30: a run is caught between two of them.
FAST = ["--dataset", "synthetic", "--log-every", "50", "--probe-size", "64", "--checkpoint-every", "0.1"]
STEPS = 1500                    # long enough to catch every run mid-way on a busy 2-core machine
GRID = ["--norms", "none,batch", "--lrs", "0.05,0.5", "--seeds", "0"]     # 4 runs for 2 workers
RUN_KW = dict(dataset="synthetic", steps=20, log_every=4, probe_size=64, norm="batch", seed=3,
              checkpoint_every=0)   # a checkpoint after every step
TRAIN_ARGV = ["train", "--dataset", "synthetic", "--steps", "20", "--log-every", "4", "--probe-size", "64",
              "--norm", "batch", "--seed", "3", "--checkpoint-every", "0", "--quiet"]


def _sweep_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ics_cli", "sweep", *GRID, "--steps", str(STEPS), "--jobs", "2",
            "--quiet", "--out", str(out), *FAST, *extra]


def _ctrl_c_reaches_it() -> None:
    """In the child before exec: SIGINT at its default, so Python turns it into KeyboardInterrupt
    even when this test run was started with SIGINT ignored (a background job of a script is)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def _session(cmd: list[str], **kw):
    """A process in its own process group; whatever of the group is left is killed afterwards."""
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_ctrl_c_reaches_it, **kw)
    try:
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)     # the group outlives its leader: orphans too
        except ProcessLookupError:
            pass
        proc.wait()


def _run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in Path(out).iterdir() if p.is_dir()) if Path(out).exists() else []


def _mid_run(out: Path) -> list[Path]:
    """Run folders with a checkpoint and no summary: cut off now, they resume."""
    return [p.parent for p in Path(out).glob("*/checkpoint.pt") if not (p.parent / "summary.json").exists()]


def _wait(predicate, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.02)
    return predicate()


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = text[text.rindex(")") + 2:].split()[:2]
    return state, int(ppid)


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")       # a zombie has died (nobody reaped it yet)


def _children(parent: int) -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit() and (_stat(int(e.name)) or ("", 0))[1] == parent]


def _workers(parent: int) -> list[int]:
    """The pool workers of a sweep process: the children of its fork server (not the resource tracker)."""
    found = []
    for child in _children(parent):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.forkserver" in cmdline:
            found += _children(child)
    return found


def _assert_each_run_once(out: Path, n: int) -> None:
    """n finished runs, nothing left over, no step recorded twice."""
    runs = store.find_runs(out)
    assert len(runs) == n and all(r.status in store.FINISHED for r in runs), [(r.path.name, r.status) for r in runs]
    assert not list(out.glob("*/checkpoint.pt")) and not list(out.rglob("*.tmp"))
    assert not list(out.glob("*/error.txt"))
    for run in runs:
        steps = [int(ln.split(",", 1)[0]) for ln in csv_lines(run.path / "metrics.csv")[1:]]
        assert steps == sorted(set(steps)) and steps[-1] == run.summary["steps_done"], (run.path.name, steps)
        for name, key in (("layers.csv", 3), ("grads.csv", 2)):
            rows = [tuple(ln.split(",")[:key]) for ln in csv_lines(run.path / name)[1:]]
            assert len(rows) == len(set(rows)), (run.path.name, name)
        units = store.read_table(run.path, "units")
        assert not units.duplicated(["step", "layer", "site", "unit"]).any(), run.path.name


def _assert_same_bytes(out: Path, ref: Path) -> None:
    """The same run folders as an unbroken sweep, with the same bytes (elapsed_s aside)."""
    assert [p.name for p in _run_dirs(out)] == [p.name for p in _run_dirs(ref)]
    for run in _run_dirs(ref):
        for name in ("layers.csv", "grads.csv", "units.parquet"):
            assert (out / run.name / name).read_bytes() == (run / name).read_bytes(), (run.name, name)
        assert strip_elapsed(out / run.name / "metrics.csv") == strip_elapsed(run / "metrics.csv")


def _rerun_finishes_every_run_once(out: Path, ref: Path) -> None:
    """Rerunning the sweep completes it with no traceback, each run once, the bytes of an unbroken sweep."""
    rerun = subprocess.run(_sweep_cmd(out), capture_output=True, text=True)
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, rerun.stderr
    _assert_each_run_once(out, 4)
    _assert_same_bytes(out, ref)


@pytest.fixture(scope="module")
def unbroken_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unbroken") / "S"
    assert subprocess.run(_sweep_cmd(out), capture_output=True).returncode == 0
    return out


@pytest.fixture(scope="module")
def unbroken_run(tmp_path_factory) -> Path:
    return train_mod.train(RunConfig(out=str(tmp_path_factory.mktemp("ref")), **RUN_KW)).path


def _interrupted_run(out: Path, at: int = 10) -> Path:
    """A resumable run folder: a run of RUN_KW stopped by Ctrl-C at step `at` (checkpointed there)."""
    def stop(step):
        if step == at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_mod.train(RunConfig(out=str(out), **RUN_KW), on_step=stop)
    [run] = _run_dirs(out)
    assert (run / "checkpoint.pt").exists()
    return run


def _snapshot(folder: Path) -> dict:
    """Every entry under folder: a link's target, a file's bytes, a folder's own snapshot."""
    return {p.name: (os.readlink(p) if p.is_symlink() else _snapshot(p) if p.is_dir() else p.read_bytes())
            for p in folder.iterdir()}


# --------------------------------------------------------------------------- kill -9


@pytest.mark.slow
def test_kill_9_of_the_sweep_process_alone_kills_its_workers(tmp_path, unbroken_sweep):
    out = tmp_path / "S"
    with _session(_sweep_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        assert _wait(lambda: _mid_run(out), 120, proc), "the sweep ended before a run was under way"
        workers = _workers(proc.pid)
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)          # the parent only: its workers are not signalled
        proc.wait()
        assert _wait(lambda: not any(_alive(w) for w in workers), 10), "a worker outlived its sweep"
    assert _mid_run(out), "a run should have been cut off mid-way"

    _rerun_finishes_every_run_once(out, unbroken_sweep)


@pytest.mark.slow
def test_kill_9_of_the_process_group_resumes_every_run_once(tmp_path, unbroken_sweep):
    out = tmp_path / "S"
    with _session(_sweep_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        assert _wait(lambda: _mid_run(out), 120, proc), "the sweep ended before a run was under way"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert _mid_run(out)

    _rerun_finishes_every_run_once(out, unbroken_sweep)


# --------------------------------------------------------------------------- two writers


@pytest.mark.slow
def test_two_sweeps_on_one_folder_train_each_run_exactly_once(tmp_path, unbroken_sweep):
    out = tmp_path / "S"
    cmd = _sweep_cmd(out, "--json")
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _session(cmd, **pipes) as a, _session(cmd, **pipes) as b:
        procs = [a, b]
        results = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, results):
        assert p.returncode == 0 and "Traceback" not in stderr and "Error" not in stderr, stderr
    outcomes = [json.loads(stdout) for stdout, _ in results]
    for name in (p.name for p in _run_dirs(unbroken_sweep)):
        statuses = sorted(o["status"] for sweep_outcomes in outcomes for o in sweep_outcomes if o["name"] == name)
        trained = [s for s in statuses if s in store.FINISHED]
        assert len(trained) == 1 and len(statuses) == 2, (name, statuses)      # once, by one sweep
        assert set(statuses) - set(trained) <= {"skipped", "busy"}, (name, statuses)
    for o in (o for sweep_outcomes in outcomes for o in sweep_outcomes if o["status"] == "busy"):
        assert "running elsewhere" in o["error"]
    _assert_each_run_once(out, 4)
    assert not list(out.glob(".*.lock")), "a lock file outlived its run"
    _assert_same_bytes(out, unbroken_sweep)


def test_a_run_another_process_holds_is_neither_trained_nor_touched(tmp_path, capsys):
    out = tmp_path / "runs"
    cfg = train_mod.prepare(RunConfig(out=str(out), **RUN_KW))[0]
    run_dir = out / cfg.name()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom ics_cli.store import lock\n"
                               "with lock.hold(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)",
                               str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc = main(TRAIN_ARGV + ["--out", str(out)])
        assert error_line(rc, capsys) == (f"ics: error: run folder {run_dir} is being written by another "
                                          f"process (pid {holder.pid}); wait for it to end (or stop it), then rerun")
        assert not run_dir.exists()

        other = RunConfig(out=str(out), **{**RUN_KW, "norm": "none"})
        plan = sweep.Sweep(common=RunConfig(**{**RUN_KW, "out": str(out)}), norms=["batch", "none"],
                           seeds=[RUN_KW["seed"]])
        outcomes = {o.name: o for o in sweep.run(plan, out, jobs=1)}
        assert outcomes[cfg.name()].status == "busy" and "running elsewhere" in outcomes[cfg.name()].error
        assert outcomes[train_mod.prepare(other)[0].name()].status == "completed"
        assert not run_dir.exists()
    finally:
        holder.kill()            # kill -9: the kernel releases the lock, the stale lock file is reused
        holder.wait()
    assert main(TRAIN_ARGV + ["--out", str(out)]) == 0
    assert store.finished(run_dir) and not lock.lock_path(run_dir).exists()


def test_the_lock_is_exclusive_within_one_process_too(tmp_path):
    with lock.hold(tmp_path / "run"):
        with pytest.raises(lock.Busy, match=f"pid {os.getpid()}"):
            with lock.hold(tmp_path / "run"):
                pass
    with lock.hold(tmp_path / "run"):           # released, and taken again
        pass
    assert not list(tmp_path.iterdir())


def test_write_atomic_temporary_names_are_per_process(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(store.os, "replace", lambda a, b: (seen.append(Path(a).name), real_replace(a, b)))
    store.write_atomic(tmp_path / "sweep.json", "{}")
    assert seen == [f".sweep.json.{os.getpid()}.tmp"]


# --------------------------------------------------------------------------- Ctrl-C


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_within_seconds_and_starts_no_queued_run(tmp_path, unbroken_sweep):
    out = tmp_path / "S"
    with _session(_sweep_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        # Both workers mid-way through their first run, two runs queued.
        assert _wait(lambda: len(_mid_run(out)) == 2, 120, proc), "the workers did not both get under way"
        assert not list(out.glob("*/summary.json")), "raise STEPS: a run finished before the interrupt"
        started = [p.name for p in _run_dirs(out)]
        t0 = time.time()
        os.killpg(proc.pid, signal.SIGINT)        # what Ctrl-C in a terminal does
        _, stderr = proc.communicate(timeout=60)
        took = time.time() - t0
    assert proc.returncode == 130 and took < 8, (proc.returncode, took, stderr)
    assert "Traceback" not in stderr, stderr
    assert [p.name for p in _run_dirs(out)] == started         # no queued run started
    for run in started:                                         # each recorded what it had
        assert json.loads((out / run / "summary.json").read_text())["status"] == "interrupted"
        assert (out / run / "checkpoint.pt").exists()
    assert not list(out.rglob("*.tmp")) and not list(out.glob(".*.lock"))

    _rerun_finishes_every_run_once(out, unbroken_sweep)


@pytest.mark.slow
def test_sigterm_stops_a_sweep_like_ctrl_c_with_one_line_and_no_leaked_semaphores(tmp_path):
    out = tmp_path / "S"
    with _session(_sweep_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        assert _wait(lambda: len(_mid_run(out)) == 2, 120, proc), "the workers did not both get under way"
        started = [p.name for p in _run_dirs(out)]
        os.kill(proc.pid, signal.SIGTERM)         # `kill PID`: the sweep's process alone
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "Traceback" not in stderr and "leaked semaphore" not in stderr, stderr
    assert [p.name for p in _run_dirs(out)] == started         # no queued run started
    for run in started:
        assert json.loads((out / run / "summary.json").read_text())["status"] == "interrupted"


def test_ctrl_c_in_a_one_process_sweep_starts_no_further_run(tmp_path):
    out = tmp_path / "S"
    plan = sweep.Sweep(common=RunConfig(dataset="synthetic", steps=100_000, log_every=20, probe_size=64,
                                        checkpoint_every=0.1),
                       norms=["none", "batch", "layer"])
    main_thread = threading.get_ident()

    def interrupt():
        _wait(lambda: _mid_run(out), 60)
        signal.pthread_kill(main_thread, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    t0 = time.time()
    # Python's Ctrl-C handler, even if this test run was started with SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            sweep.run(plan, out, jobs=1)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.time() - t0 < 30
    [run] = _run_dirs(out)
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"


# --------------------------------------------------------------------------- planted files


class _Evil:
    """Unpickling this runs open(marker, 'w'): code, where a checkpoint holds only tensors."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_pickle_checkpoint_runs_no_code(tmp_path, capsys):
    out = tmp_path / "runs"
    run = _interrupted_run(out)
    marker = tmp_path / "pwned"
    torch.save({"model": _Evil(marker)}, run / "checkpoint.pt")
    # The planted file is a real exploit: an unsafe load runs it.
    torch.load(run / "checkpoint.pt", weights_only=False)
    assert marker.exists()
    marker.unlink()

    rc = main(TRAIN_ARGV + ["--out", str(out)])
    line = error_line(rc, capsys)
    assert f"{run / 'checkpoint.pt'} is not a checkpoint ics can load safely" in line and "afresh" in line
    assert not marker.exists() and _run_dirs(out) == [run]


@pytest.mark.parametrize("where", ["metrics.csv", "run folder"])
def test_no_write_goes_through_a_planted_link(tmp_path, capsys, where):
    out = tmp_path / "runs"
    run = _interrupted_run(out)
    target = tmp_path / "elsewhere"
    if where == "metrics.csv":
        (run / "metrics.csv").unlink()
        (run / "metrics.csv").symlink_to(target / "metrics.csv")       # dangling
        named = run / "metrics.csv"
    else:
        run.rename(target)
        run.symlink_to(target, target_is_directory=True)
        named = run
    before = _snapshot(target) if target.is_dir() else None
    before_run = _snapshot(run)

    rc = main(TRAIN_ARGV + ["--out", str(out)])
    line = error_line(rc, capsys)
    assert f"{named} is a symbolic link" in line or f"run folder {named} is a symbolic link" in line, line
    assert _snapshot(run) == before_run
    assert (_snapshot(target) if target.is_dir() else None) == before


# --------------------------------------------------------------------------- a full disk


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd to see which file is written")
def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch,
                                                                        unbroken_run):
    out = tmp_path / "runs"
    real_fsync, count = os.fsync, {"n": 0}

    def full(fd):
        if ".checkpoint.pt." in _fd_path(fd):
            count["n"] += 1
            if count["n"] == 3:                          # the checkpoint at step 8
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", full)
    rc = main(TRAIN_ARGV + ["--out", str(out)])
    [run] = _run_dirs(out)
    assert error_line(rc, capsys) == (f"ics: error: cannot write {run / 'checkpoint.pt'}: No space left on "
                                      "device; free space and rerun to resume")
    assert not list(run.glob(".*")) and not list(out.glob(".*"))     # no temporary file, no lock file
    assert (run / "checkpoint.pt").exists() and not (run / "summary.json").exists()

    monkeypatch.setattr(store.os, "fsync", real_fsync)
    assert main(TRAIN_ARGV + ["--out", str(out)]) == 0
    _assert_each_run_once(out, 1)
    _assert_same_bytes(out, unbroken_run.parent)


def test_a_full_disk_mid_row_is_one_line_and_the_torn_row_is_dropped(tmp_path, capsys, monkeypatch,
                                                                     unbroken_run):
    out = tmp_path / "runs"
    real_append, count = files.CsvLog.append_text, {"n": 0}

    def torn(self, text):
        if self.path.name == "layers.csv":
            count["n"] += 1
            if count["n"] == 4:                          # the block of the log step at step 12
                with open(self.path, "a") as f:
                    f.write("12,hidden0,li")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_append(self, text)

    monkeypatch.setattr(files.CsvLog, "append_text", torn)
    rc = main(TRAIN_ARGV + ["--out", str(out)])
    [run] = _run_dirs(out)
    assert error_line(rc, capsys) == (f"ics: error: cannot write {run / 'layers.csv'}: No space left on "
                                      "device; free space and rerun to resume")
    monkeypatch.setattr(files.CsvLog, "append_text", real_append)
    assert main(TRAIN_ARGV + ["--out", str(out)]) == 0
    _assert_each_run_once(out, 1)
    _assert_same_bytes(out, unbroken_run.parent)


def test_a_read_only_file_is_one_line(tmp_path):
    with pytest.raises(IcsError, match=r"cannot write .*x\.csv: Permission denied; make it writable"):
        with lock.writing(tmp_path / "x.csv"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "x.csv"))
    with pytest.raises(OSError, match="Bad file"):          # not a disk problem: not reworded
        with lock.writing(tmp_path / "x.csv"):
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))


@pytest.fixture
def tiny_disk(tmp_path):
    """A 320 KiB tmpfs at tmp_path/disk (root only); unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_really_full_disk_is_one_line_and_the_run_resumes_after_space_is_freed(tmp_path, tiny_disk,
                                                                                 unbroken_run):
    out = tiny_disk / "runs"
    cmd = [sys.executable, "-m", "ics_cli", *TRAIN_ARGV, "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 2, first.stderr
    [run] = _run_dirs(out)
    assert re.fullmatch(rf"ics: error: cannot write {re.escape(str(run))}/[\w.]+: No space left on device; "
                        r"free space and rerun to resume\n", first.stderr), first.stderr
    assert not list(run.glob(".*")) and not list(out.glob(".*"))
    assert (run / "checkpoint.pt").exists() and not (run / "summary.json").exists()

    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    _assert_each_run_once(out, 1)
    _assert_same_bytes(out, unbroken_run.parent)


SIGNAL_STEPS = 4000     # long enough that an idle machine still trains 0.5 s after step 0's evaluation


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_checkpoints_the_step_it_stops_at_and_a_rerun_resumes_there(tmp_path, sig):
    """Ctrl-C (or SIGTERM) mid-run, with no timed checkpoint due for an hour: the run stops at a step
    boundary, checkpoints that step, and the same command resumes at it, saying so; the finished
    tables equal an unbroken run's."""
    argv = [sys.executable, "-m", "ics_cli", "train", "--dataset", "synthetic", "--steps", str(SIGNAL_STEPS),
            "--log-every", "50", "--eval-every", "200", "--probe-size", "64", "--checkpoint-every", "3600", "--out"]
    with _session(argv + [str(tmp_path / "a")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            logged = list((tmp_path / "a").glob("*/metrics.csv"))
            if logged and len(logged[0].read_text().splitlines()) >= 2:     # step 0 evaluated: training
                break
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 130
    [run] = _run_dirs(tmp_path / "a")
    summary = json.loads((run / "summary.json").read_text())
    stopped = summary["steps_done"]
    assert summary["status"] == "interrupted" and 0 < stopped < SIGNAL_STEPS
    assert (run / "checkpoint.pt").exists()
    again = subprocess.run(argv + [str(tmp_path / "a")], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"resuming from step {stopped:,}" in again.stderr
    whole = subprocess.run(argv + [str(tmp_path / "b")], capture_output=True, text=True, timeout=600)
    [unbroken] = _run_dirs(tmp_path / "b")
    for table in ("metrics.csv", "layers.csv", "grads.csv"):
        a, b = (pd.read_csv(d / table) for d in (run, unbroken))
        pd.testing.assert_frame_equal(a.drop(columns=["elapsed_s"], errors="ignore"),
                                      b.drop(columns=["elapsed_s"], errors="ignore"))
