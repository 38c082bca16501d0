"""`--backend ray`: the same run folders as a local sweep, a dead worker retried to the same bytes,
a Ray sweep and a local one on one folder never training a run twice, and the one-line errors.

One local Ray instance (2 CPUs) serves the whole module (starting one takes seconds); the tests that
need it skip where Ray is not installed. Its workers inherit ray_backend.KILL_ENV from this process,
set before Ray starts: the test hook with which a run's worker kills itself mid-run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ics_cli.sweep import ray as ray_backend, run as sweep
from ics_cli.store import runs as store
from ics_cli.cli import main
from ics_cli.config import RunConfig

from expect import error_line

FAST = ["--dataset", "synthetic", "--log-every", "10", "--probe-size", "64"]
# Fields that depend on the wall clock or on where and how the run was executed, not on its results.
WALL_CLOCK = {"metrics.csv": {"elapsed_s"}, "summary.json": {"wall_s", "steps_per_s"},
              "config.json": {"timestamp"}}
# config.json also names its own folder (`out`), which differs between the two sweeps compared.
WHERE = {"config.json": {"out"}}


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory):
    """A local Ray instance of 2 CPUs for the module; yields the kill hook's file (absent: no kill)."""
    ray = pytest.importorskip("ray")
    kill = tmp_path_factory.mktemp("hook") / "kill-at-step"
    os.environ[ray_backend.KILL_ENV] = str(kill)          # inherited by the Ray workers
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield kill
    ray.shutdown()
    del os.environ[ray_backend.KILL_ENV]


def _grid(out: Path, steps: int, *extra: str) -> list[str]:
    return ["sweep", "--norms", "none,batch", "--seeds", "0,1", "--steps", str(steps), "--quiet",
            "--out", str(out), *FAST, *extra]


def _without(value, drop: set):
    """A parsed JSON document without the keys in `drop`, at any depth."""
    if isinstance(value, dict):
        return {k: _without(v, drop) for k, v in value.items() if k not in drop}
    return value


def _same_run(a: Path, b: Path) -> None:
    """Every file of run folder `a` equals `b`'s: bytes, or parsed without the wall-clock fields."""
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir()), (a, b)
    for pa in sorted(a.iterdir()):
        pb = b / pa.name
        drop = WALL_CLOCK.get(pa.name, set()) | WHERE.get(pa.name, set())
        if pa.suffix == ".json":
            assert _without(json.loads(pa.read_text()), drop) == _without(json.loads(pb.read_text()), drop), pa
        elif pa.suffix == ".csv" and drop:
            pd.testing.assert_frame_equal(pd.read_csv(pa).drop(columns=list(drop)),
                                          pd.read_csv(pb).drop(columns=list(drop)), check_exact=True)
            assert set(pd.read_csv(pa).columns) >= drop          # the fields dropped exist: no silent pass
        else:
            assert pa.read_bytes() == pb.read_bytes(), pa


def _runs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def test_ray_sweep_writes_the_same_run_folders_as_a_local_one(ray_instance, tmp_path):
    assert main(_grid(tmp_path / "ray", 40, "--backend", "ray")) == 0
    # In a subprocess: the local pool's fork server is reached by a socket, which conftest refuses.
    local = subprocess.run([sys.executable, "-m", "ics_cli", *_grid(tmp_path / "local", 40, "--jobs", "2")],
                           capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    ray_runs, local_runs = _runs(tmp_path / "ray"), _runs(tmp_path / "local")
    assert [p.name for p in ray_runs] == [p.name for p in local_runs] and len(ray_runs) == 4
    for a, b in zip(ray_runs, local_runs):
        assert store.finished(a)["status"] == "completed"
        _same_run(a, b)
    # Nothing but the run folders and sweep.json is left beside them (no lock or attempts files).
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == sorted(
        p.name for p in (tmp_path / "local").iterdir())
    # A rerun skips every finished run, as locally.
    outcomes = sweep.run(sweep.make_sweep({"steps": 40, "dataset": "synthetic", "log_every": 10, "probe_size": 64},
                                          {"norms": "none,batch", "seeds": "0,1"}),
                         tmp_path / "ray", backend="ray")
    assert [o.status for o in outcomes] == ["skipped"] * 4


def test_a_worker_killed_mid_run_is_retried_and_resumes_to_the_same_bytes(ray_instance, tmp_path):
    plan = sweep.Sweep(common=RunConfig(dataset="synthetic", steps=60, log_every=10, probe_size=64,
                                        checkpoint_every=0), norms=["batch"], seeds=[0])
    ray_instance.write_text("30")             # the run's worker SIGKILLs itself after step 30
    seen = []
    [outcome] = sweep.run(plan, tmp_path / "killed", backend="ray", ray_retries=2, on_outcome=seen.append)
    assert not ray_instance.exists(), "the hook did not fire: nothing was killed"
    assert outcome.status == "completed" and outcome.attempts == 2 and seen == [outcome]
    [unbroken] = sweep.run(plan, tmp_path / "clean", backend="ray")
    assert unbroken.attempts == 1
    [run] = _runs(tmp_path / "killed")        # exactly one run folder, finished, no leftovers
    assert not (run / "checkpoint.pt").exists() and not list(run.rglob("*.tmp"))
    assert not list((tmp_path / "killed").glob(".*.attempts"))
    _same_run(run, tmp_path / "clean" / run.name)


def test_a_worker_that_dies_on_every_attempt_is_a_failed_run(ray_instance, tmp_path, monkeypatch):
    plan = sweep.Sweep(common=RunConfig(dataset="synthetic", steps=40, log_every=10, probe_size=64,
                                        checkpoint_every=0), norms=["none"], seeds=[0])
    ray_instance.write_text("5")
    [outcome] = sweep.run(plan, tmp_path / "S", backend="ray", ray_retries=0)
    assert outcome.status == "failed" and "died" in outcome.error and outcome.attempts == 1
    # Rerun: it resumes from its checkpoint and completes.
    [outcome] = sweep.run(plan, tmp_path / "S", backend="ray")
    assert outcome.status == "completed"


def test_a_local_and_a_ray_sweep_on_one_folder_train_each_run_once(ray_instance, tmp_path):
    out = tmp_path / "S"
    local = subprocess.Popen([sys.executable, "-m", "ics_cli", *_grid(out, 300, "--jobs", "2", "--json")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(out.glob(".*.lock")) and time.time() < deadline:   # the local sweep is under way
        time.sleep(0.02)
    plan = sweep.make_sweep({"steps": 300, "dataset": "synthetic", "log_every": 10, "probe_size": 64},
                            {"norms": "none,batch", "seeds": "0,1"})
    ray_outcomes = {o.name: o.status for o in sweep.run(plan, out, backend="ray")}
    stdout, stderr = local.communicate(timeout=300)
    assert local.returncode == 0, stderr
    local_outcomes = {o["name"]: o["status"] for o in json.loads(stdout)}

    runs = _runs(out)
    assert len(runs) == 4 and set(ray_outcomes) == set(local_outcomes) == {r.name for r in runs}
    for run in runs:
        assert store.check_run(run) is None and store.finished(run)["status"] == "completed"
        trained = [s for s in (ray_outcomes[run.name], local_outcomes[run.name]) if s == "completed"]
        assert len(trained) == 1, (run.name, ray_outcomes[run.name], local_outcomes[run.name])
        assert {ray_outcomes[run.name], local_outcomes[run.name]} - {"completed"} <= {"busy", "skipped"}
    assert "busy" in set(ray_outcomes.values()) | set(local_outcomes.values()), "the sweeps did not overlap"


def test_ctrl_c_cancels_outstanding_runs_and_keeps_finished_ones(ray_instance, tmp_path):
    # lr 50 diverges within steps; the lr 0.1 and 0.2 runs would take minutes, two at a time.
    plan = sweep.Sweep(common=RunConfig(dataset="synthetic", steps=100_000, log_every=10, probe_size=64,
                                        checkpoint_every=0.1), norms=["none"], lrs=[50, 0.1, 0.2], seeds=[0, 1])
    out = tmp_path / "S"

    def ctrl_c_once_a_long_run_has_a_checkpoint():
        deadline = time.time() + 120
        while time.time() < deadline and not (len(list(out.glob("*lr50*/summary.json"))) == 2
                                              and list(out.glob("*lr0.1*/checkpoint.pt"))):
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    seen = []
    threading.Thread(target=ctrl_c_once_a_long_run_has_a_checkpoint, daemon=True).start()
    start = time.time()
    # Python's Ctrl-C handler, even if this test run was started with SIGINT ignored (a background job).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            sweep.run(plan, out, backend="ray", on_outcome=seen.append)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.time() - start < 60
    status = {o.name: o.status for o in seen}
    assert len(status) == 6 and list(status.values()).count("diverged") == 2, status
    assert "interrupted" in status.values() and set(status.values()) <= {"diverged", "interrupted", "cancelled"}
    for run in _runs(out):
        assert store.check_run(run) is None
        summary = store.finished(run)
        if status[run.name] == "diverged":                  # finished runs are intact
            assert summary["status"] == "diverged"
        else:                                               # the others resume on a rerun
            assert summary is None and (status[run.name] == "cancelled" or (run / "checkpoint.pt").exists())


# --------------------------------------------------------------------------- errors (no Ray needed)


def test_backend_ray_without_ray_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ray_backend, "available", lambda: False)
    out = tmp_path / "S"
    err = error_line(main(_grid(out, 5, "--backend", "ray")), capsys)
    assert "pip install ray (or, in a checkout of ics: pip install -e '.[ray]')" in err
    assert not out.exists()
    assert "pip install ray (or, in a checkout of ics: pip install -e '.[ray]')" in error_line(
        main(["reproduce", "ba2016", "--quick", "--backend", "ray", "--out", str(out)]), capsys)
    assert not out.exists()


@pytest.mark.parametrize("extra,needle", [
    (["--ray-address", "auto"], "--ray-address applies to --backend ray"),
    (["--backend", "ray", "--jobs", "2"], "--jobs applies to --backend local"),
    (["--backend", "ray", "--ray-retries", "-1"], "--ray-retries"),
    (["--backend", "slurm"], "--backend"),
])
def test_backend_options_that_do_not_fit_are_one_line(tmp_path, capsys, monkeypatch, extra, needle):
    monkeypatch.setattr(ray_backend, "available", lambda: True)     # the check comes before Ray is used
    out = tmp_path / "S"
    assert needle in error_line(main(_grid(out, 5, *extra)), capsys)
    assert not out.exists()


def test_a_node_that_cannot_see_the_folder_is_named(tmp_path):
    assert ray_backend._probe(str(tmp_path)) is None
    assert "not the driver's folder" in ray_backend._probe(str(tmp_path / "elsewhere"))


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    parents = {}
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                parents[int(name)] = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, grew = {pid}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found - {pid}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_kill_9_of_a_ray_sweep_leaves_none_of_its_processes(tmp_path):
    """The local Ray instance a sweep started (GCS, raylet, workers) dies with the sweep, kill -9 included,
    and a rerun finishes the runs."""
    pytest.importorskip("ray")
    out = tmp_path / "S"
    argv = [sys.executable, "-m", "ics_cli", *_grid(out, 4000, "--backend", "ray")]
    sweep_process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(out.glob("*/metrics.csv")):
            time.sleep(0.5)
        assert list(out.glob("*/metrics.csv")), "no run started"
        ray_processes = _descendants(sweep_process.pid)
        assert ray_processes
    finally:
        sweep_process.send_signal(signal.SIGKILL)
        sweep_process.wait()
    deadline = time.time() + 60
    while time.time() < deadline and any(_alive(p) for p in ray_processes):
        time.sleep(0.5)
    assert not [p for p in ray_processes if _alive(p)]
