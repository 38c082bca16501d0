"""A process that does not train does not import torch: help, version, a refused option, compare,
plot, report and export read registries and tables only (importing torch costs seconds per process).
A process that trains imports it, once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synthetic import write_run

ROOT = Path(__file__).resolve().parent.parent
# Runs the CLI as `ics` does, then writes on stderr whether torch was imported.
PROBE = ("import sys, atexit; atexit.register(lambda: sys.stderr.write('torch imported: %s\\n' % "
         "('torch' in sys.modules))); from ics_cli.cli import main; sys.exit(main(sys.argv[1:]))")


def ics(*args) -> tuple[int, bool, str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    lines = done.stderr.splitlines()
    assert lines and lines[-1].startswith("torch imported: "), done.stderr
    return done.returncode, lines[-1].endswith("True"), "\n".join(lines[:-1])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for norm in ("none", "batch"):
        write_run(root, norm=norm, seed=0, test_acc=[0.1, 0.5, 0.7])
    return root


@pytest.mark.parametrize("args, rc", [
    (["--version"], 0), (["train", "--help"], 0), (["train", "--norm", "instance"], 2), (["sweep", "--lrs", "-1"], 2),
])
def test_commands_that_do_not_train_do_not_import_torch(args, rc):
    code, torch_in, err = ics(*args)
    assert code == rc, err
    assert not torch_in


def test_compare_plot_report_and_export_do_not_import_torch(sweep, tmp_path):
    out = tmp_path / "compare"
    for args in (["compare", sweep, "--out", out], ["plot", out], ["report", sweep, "-o", tmp_path / "r.html"],
                 ["export", next(sweep.iterdir()), "--table", "metrics", "--out", tmp_path / "m.csv"]):
        code, torch_in, err = ics(*args)
        assert code == 0, (args, err)
        assert not torch_in, args
    assert (out / "summary.csv").is_file() and (tmp_path / "r.html").is_file()


def test_a_process_that_trains_imports_torch(tmp_path):
    code, torch_in, err = ics("train", "--dataset", "synthetic", "--steps", "2", "--quiet", "--out", tmp_path)
    assert code == 0, err
    assert torch_in
