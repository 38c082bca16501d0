"""ics sweep: grid expansion, hashing, resumption after kill -9, bad input; ics compare/plot CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ics_cli.analyse import compare
from ics_cli.store import files
from ics_cli.analyse.base import TABLE_NAMES
from ics_cli.analyse import outputs
from ics_cli.store import runs as store
from ics_cli.sweep import run as sweep
from ics_cli.cli import main
from ics_cli.config import RunConfig
from ics_cli.errors import ConfigError

from expect import error_line

FAST = ["--dataset", "synthetic", "--log-every", "10", "--probe-size", "64"]


def test_grid_expansion_is_the_product_in_a_fixed_order_without_duplicates():
    plan = sweep.Sweep(common=RunConfig(dataset="synthetic", steps=5), norms=["none", "batch"],
                       lrs=[0.1, 1.0, 0.1], seeds=[0, 1], batch_sizes=[16, 32])
    cfgs = plan.configs()
    assert len(cfgs) == 2 * 2 * 2 * 2          # the repeated lr 0.1 collapses
    assert len({c.hash() for c in cfgs}) == len(cfgs)
    assert [(c.norm, c.lr, c.batch_size, c.seed) for c in cfgs[:3]] == [
        ("none", 0.1, 16, 0), ("none", 0.1, 16, 1), ("none", 0.1, 32, 0)]
    assert all(c.steps == 5 and c.dataset == "synthetic" for c in cfgs)


def test_hash_covers_what_changes_results_and_nothing_else():
    base = RunConfig(dataset="synthetic")
    assert base.hash() == RunConfig(dataset="synthetic").hash()
    for change in ({"lr": 0.3}, {"seed": 1}, {"norm": "batch"}, {"log_every": 7}, {"width": 50}):
        assert RunConfig(dataset="synthetic", **change).hash() != base.hash(), change
    for change in ({"out": "elsewhere"}, {"device": "cpu"}, {"data_dir": "x"}):
        assert RunConfig(dataset="synthetic", **change).hash() == base.hash(), change
    # Defaults resolved: an explicit default width hashes like the implicit one.
    assert RunConfig(dataset="synthetic", width=100).hash() == base.hash()
    assert base.name().endswith(base.hash())


@pytest.mark.parametrize("text,cast,error", [
    ("", float, "is empty"), ("0.1,abc", float, "comma-separated numbers"), ("1,x", int, "integers")])
def test_parse_list_errors_name_the_option(text, cast, error):
    with pytest.raises(ConfigError, match=error):
        sweep.parse_list("--lrs", text, cast)


def test_toml_grid_and_explicit_options(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text('[grid]\nnorms = ["none", "layer"]\nlrs = [0.1, 0.2]\n[common]\nsteps = 7\nmodel = "mlp"\n')
    plan = sweep.make_sweep({"steps": 9}, {"seeds": "3,4"}, sweep.load_toml(grid))
    assert plan.norms == ["none", "layer"] and plan.lrs == [0.1, 0.2] and plan.seeds == [3, 4]
    assert plan.common.steps == 9              # an option given on the command line wins over the file
    bad = tmp_path / "bad.toml"
    bad.write_text('[grid]\nnorm = ["none"]\n')
    with pytest.raises(ConfigError, match="unknown keys"):
        sweep.load_toml(bad)


@pytest.mark.parametrize("args,needle", [
    (["sweep", "--norms", "", "--steps", "5"], "--norms is empty"),
    (["sweep", "--lrs", "0.1,fast", "--steps", "5"], "--lrs"),
    (["sweep", "--norms", "none,nonsense", "--steps", "5"], "--norm 'nonsense'"),
    (["sweep", "--seeds", "1.5", "--steps", "5"], "--seeds"),
])
def test_sweep_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, args, needle):
    out = tmp_path / "S"
    err = error_line(main(args + FAST + ["--out", str(out)]), capsys)
    assert needle in err
    assert not out.exists()


def test_compare_bad_input(tmp_path, capsys):
    assert "no such folder" in error_line(main(["compare", str(tmp_path / "missing")]), capsys)
    (tmp_path / "empty").mkdir()
    assert "no run folders" in error_line(main(["compare", str(tmp_path / "empty")]), capsys)
    assert "--format" in error_line(main(["compare", str(tmp_path), "--format", "gif"]), capsys)
    assert "no comparison tables" in error_line(main(["plot", str(tmp_path / "empty")]), capsys)


def _sweep_cmd(out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "ics_cli", "sweep", "--norms", "none,batch", "--lrs", "0.1,50",
            "--seeds", "0", "--steps", str(steps), "--jobs", "2", "--quiet", "--out", str(out), *FAST,
            "--checkpoint-every", "0.1"]


def _equal_tables(a: Path, b: Path) -> None:
    ta, tb = outputs.load(a), outputs.load(b)
    for name in ("summary", "drift", "gradient_stability", "lr_tolerance", "curves", "layer_curves"):
        pd.testing.assert_frame_equal(ta[name], tb[name], check_exact=True, obj=name)


def test_sweep_killed_with_sigkill_resumes_to_the_same_tables(tmp_path):
    steps = 1500
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen(_sweep_cmd(killed, steps), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Kill the whole process group once some run has recorded a checkpoint but not finished.
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        mid_run = [p for p in killed.glob("*/checkpoint.pt") if not (p.parent / "summary.json").exists()]
        if mid_run:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be killed; raise steps"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    unfinished = [r for r in store.find_runs(killed) if r.summary is None]
    assert unfinished, "a run should have been cut off mid-way"

    # Nothing half-written is read: the unfinished run is not complete, so compare ignores it.
    tables = compare.build(store.find_runs(killed))
    assert tables["summary"]["n_incomplete"].sum() >= 1

    assert subprocess.run(_sweep_cmd(killed, steps), capture_output=True).returncode == 0
    assert subprocess.run(_sweep_cmd(clean, steps), capture_output=True).returncode == 0

    runs = store.find_runs(killed)
    assert len(runs) == 4 and all(r.status in store.FINISHED for r in runs)
    assert sorted(p.name for p in killed.iterdir() if p.is_dir()) == sorted(
        p.name for p in clean.iterdir() if p.is_dir())            # exactly the expected runs, no duplicates
    assert not list(killed.glob("*/checkpoint.pt")) and not list(killed.rglob("*.tmp"))
    for name in ("layers.csv", "grads.csv", "units.parquet"):
        for run in runs:
            assert (run.path / name).read_bytes() == (clean / run.path.name / name).read_bytes(), (run.path, name)

    files.write_tables(compare.build(store.find_runs(killed)), tmp_path / "ck")
    files.write_tables(compare.build(store.find_runs(clean)), tmp_path / "cc")
    _equal_tables(tmp_path / "ck", tmp_path / "cc")


def test_sweep_cli_end_to_end_records_divergence_and_compare_draws(tmp_path, capsys):
    out = tmp_path / "S"
    rc = main(["sweep", "--norms", "none,batch", "--lrs", "0.05,50", "--seeds", "0", "--steps", "60",
               "--log-every", "20", "--jobs", "1", "--quiet", "--out", str(out)])
    assert rc == 0
    runs = store.find_runs(out)
    assert len(runs) == 4 and (out / "sweep.json").exists()
    assert any(r.status == "diverged" for r in runs)
    assert all(r.status in store.FINISHED for r in runs)
    # Rerunning skips everything: no run is touched again.
    stamps = {r.path: (r.path / "summary.json").stat().st_mtime_ns for r in runs}
    assert main(["sweep", "--norms", "none,batch", "--lrs", "0.05,50", "--seeds", "0", "--steps", "60",
                 "--log-every", "20", "--jobs", "1", "--quiet", "--out", str(out)]) == 0
    assert {p: (p / "summary.json").stat().st_mtime_ns for p in stamps} == stamps

    assert main(["compare", str(out), "--quiet"]) == 0
    cmp = out / "compare"
    for name in TABLE_NAMES:
        assert (cmp / f"{name}.csv").stat().st_size > 0
    pngs = list(cmp.glob("*.png"))
    assert len(pngs) >= 7 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    for p in pngs:
        p.unlink()
    assert main(["plot", str(out)]) == 0
    assert len(list(cmp.glob("*.png"))) == len(pngs)


# --------------------------------------------------------------------------- pool workers


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat and int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"      # a zombie has ended (nobody reaped it yet)


def test_pool_workers_run_with_their_share_of_the_cores(tmp_path):
    """A worker forked from the fork server sets its own thread count: the environment's is not it."""
    threads = max(1, (os.cpu_count() or 1) // 2)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads + 2)}
    out = tmp_path / "S"
    done = subprocess.run([sys.executable, "-m", "ics_cli", "sweep", "--norms", "none,batch", "--steps", "20",
                           "--jobs", "2", "--quiet", "--out", str(out), *FAST], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    configs = [json.loads(p.read_text()) for p in out.glob("*/config.json")]
    assert len(configs) == 2 and all(c["threads"] == threads for c in configs), configs


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_kill_9_of_a_sweep_leaves_no_process_behind(tmp_path):
    """Workers end within seconds of the sweep's process, and so do its fork server and resource tracker."""
    out = tmp_path / "S"
    cmd = [sys.executable, "-m", "ics_cli", "sweep", "--norms", "none,batch", "--lrs", "0.05",
           "--steps", "100000", "--jobs", "2", "--quiet", "--out", str(out), *FAST]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while len(list(out.glob("*/config.json"))) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None and len(list(out.glob("*/config.json"))) == 2, "both runs under way"
        helpers = _children(proc.pid)
        workers = [w for h in helpers for w in _children(h)]
        assert len(workers) == 2, (helpers, workers)      # forked by the fork server, not by the sweep
        os.kill(proc.pid, signal.SIGKILL)                # the sweep's process only
        proc.wait()
        t0 = time.time()
        while any(map(_running, workers)) and time.time() - t0 < 10:
            time.sleep(0.01)
        assert not any(map(_running, workers)), "a worker outlived its sweep"
        while any(map(_running, helpers)) and time.time() - t0 < 60:
            time.sleep(0.05)
        assert not any(map(_running, helpers)), "the fork server or resource tracker outlived the sweep"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
