"""Facts about damaged inputs and killed outputs (issue 8): a damaged run folder is skipped with one
warning line, never read through a symbolic link, never unpickled; a log with a step twice is reported,
not aggregated; every bad input is one `ics: error:` line and exit code 2; an output set of `ics compare`
or `ics plot` is complete, or marked incomplete and refused by its readers."""

import os
import pickle
import shutil
from functools import partial
from pathlib import Path

import pytest

from ics_cli.analyse.base import ALL_TABLE_NAMES
from ics_cli.analyse import outputs
from ics_cli.figures import draw
from ics_cli.figures import style
from ics_cli.store import runs as store
from ics_cli.store import staging
from ics_cli.cli import main
from ics_cli.errors import IcsError

from expect import error_line
from fixtures_runs import RUNS, write_runs

# Five of the hand-made runs (none and batch at lr 0.1): enough to damage one, and fast to compare.
FEW = [r for r in RUNS if r["lr"] == 0.1]
N_RUNS = len(FEW)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_runs(tmp_path_factory.mktemp("pristine"), FEW)


@pytest.fixture
def sweep(pristine, tmp_path):
    """A fresh copy of the hand-made sweep, to damage."""
    return Path(shutil.copytree(pristine, tmp_path / "sweep"))


@pytest.fixture(autouse=True)
def fast_figures(monkeypatch):
    """One small real figure instead of the seven (figures are tested in test_plots.py): draw_all and
    its staging still run for real."""
    def one(tables, out_dir, fmt="png"):
        return [style.save_figure(style.new_figure(1, 1), out_dir, "lr_tolerance", fmt)]
    monkeypatch.setattr(draw, "FIGURES", (one,))


def run_folder(sweep: Path, part: str) -> Path:
    return next(p for p in sorted(sweep.iterdir()) if part in p.name)


# One line `ics: error: ...` naming every needle, exit code 2, no traceback, and never an interrupt.
one_error = partial(error_line, absent=("interrupted",))


def runs_compared(folder: Path) -> list[str]:
    return list(outputs.load(folder)["runs"]["path"])


# --------------------------------------------------------------------------- damaged run folders


def _binary(run):
    (run / "metrics.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe garbage")


def _text_garbage(run):
    (run / "metrics.csv").write_text("this is not, the log\nof a run\n")


def _bad_config(run):
    (run / "config.json").write_text("{not json")


def _config_without_config(run):
    (run / "config.json").write_text("[1, 2, 3]")


def _bad_summary(run):
    (run / "summary.json").write_text('{"status": ')


def _summary_without_status(run):
    (run / "summary.json").write_text('{"final": {}}')


def _truncated_parquet(run):
    path = run / "units.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _duplicate_unit_row(run):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = run / "units.parquet"
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table.slice(0, 3), table.slice(1, 1), table.slice(3)]), path)


def _duplicate_step(run):
    lines = (run / "metrics.csv").read_text().splitlines()
    (run / "metrics.csv").write_text("\n".join(lines + [lines[2]]) + "\n")


def _duplicate_layer_row(run):
    lines = (run / "layers.csv").read_text().splitlines()
    (run / "layers.csv").write_text("\n".join(lines[:3] + [lines[1]] + lines[3:]) + "\n")


def _linked_file(name):
    def damage(run):
        elsewhere = run.parent.parent / f"elsewhere-{name}"
        (run / name).rename(elsewhere)
        (run / name).symlink_to(elsewhere.resolve())
    return damage


DAMAGES = {
    "binary metrics.csv": (_binary, "metrics.csv is not a CSV (binary data"),
    "text that is no log": (_text_garbage, "metrics.csv is not a metrics log: no column step"),
    "invalid config.json": (_bad_config, "config.json is not valid JSON"),
    "config.json not a run config": (_config_without_config, "config.json is not a run config"),
    "invalid summary.json": (_bad_summary, "summary.json is not valid JSON"),
    "summary.json without status": (_summary_without_status, "summary.json is not a run summary"),
    "truncated units.parquet": (_truncated_parquet, "units.parquet is truncated or not Parquet"),
    "a row twice in units.parquet": (_duplicate_unit_row,
                                     "units.parquet holds step 0, layer hidden1, site linear, unit 1 twice"),
    "linked units.parquet": (_linked_file("units.parquet"), "units.parquet is a symbolic link"),
    "a step twice in metrics.csv": (_duplicate_step, "metrics.csv holds step 10 twice"),
    "a row twice in layers.csv": (_duplicate_layer_row,
                                  "layers.csv holds step 0, layer hidden1, site linear twice"),
    "linked config.json": (_linked_file("config.json"), "config.json is a symbolic link"),
    "linked metrics.csv": (_linked_file("metrics.csv"), "metrics.csv is a symbolic link"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_run_folder_is_skipped_with_one_warning_and_the_rest_compared(damage, sweep, capsys):
    run = run_folder(sweep, "batch-sigmoid-lr0.1-bs60-s1")
    harm, needle = DAMAGES[damage]
    harm(run)
    assert main(["compare", str(sweep), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [captured.err.strip()], captured.err   # one line
    line = captured.err.strip()
    assert line.startswith(f"ics: warning: skipping {run}: ") and needle in line, line
    assert "Traceback" not in captured.err
    compared = runs_compared(sweep / "compare")
    assert len(compared) == N_RUNS - 1 and str(run) not in compared


def test_the_library_says_what_is_wrong(sweep):
    run = run_folder(sweep, "batch-sigmoid-lr0.1-bs60-s1")
    assert store.check_run(run) is None
    _duplicate_step(run)
    assert store.check_run(run).startswith("metrics.csv holds step 10 twice")
    with pytest.raises(store.DamagedRun, match="metrics.csv holds step 10 twice"):
        store.read_run(run).table("metrics")        # a notebook is told too, never given the rows
    _bad_config(run)
    with pytest.raises(store.DamagedRun, match="config.json is not valid JSON"):
        store.read_run(run)
    with pytest.warns(store.DamagedRunWarning, match=f"skipping {run}: config.json"):
        runs = store.find_runs(sweep)
    assert len(runs) == N_RUNS - 1
    heard = []
    store.find_runs(sweep, on_damaged=lambda path, reason: heard.append((path, reason)))
    assert [path for path, _ in heard] == [run]


def test_a_run_folder_linked_from_outside_the_searched_folder_is_not_read(sweep, tmp_path, capsys):
    run = run_folder(sweep, "batch-sigmoid-lr0.1-bs60-s1")
    outside = tmp_path / "outside" / run.name
    shutil.move(run, outside)
    run.symlink_to(outside.resolve())
    assert main(["compare", str(sweep), "--quiet"]) == 0
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"ics: warning: skipping {run}: it is a symbolic link to") and "outside" in line
    assert len(runs_compared(sweep / "compare")) == N_RUNS - 1


def test_a_run_folder_linked_from_inside_is_read_once_without_a_warning(sweep, capsys):
    run = run_folder(sweep, "batch-sigmoid-lr0.1-bs60-s1")
    (sweep / "alias").symlink_to(run.resolve())
    assert main(["compare", str(sweep), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert len(runs_compared(sweep / "compare")) == N_RUNS


class _Boom:
    """Unpickling it creates the file `marker`: proof that something unpickled model.pt."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_reading_runs_never_unpickles_anything(sweep, tmp_path, capsys):
    marker = tmp_path / "unpickled"
    for run in sweep.iterdir():
        (run / "model.pt").write_bytes(pickle.dumps(_Boom(marker)))
    assert main(["compare", str(sweep), "--quiet"]) == 0
    assert not marker.exists() and capsys.readouterr().err == ""


def test_a_truncated_units_table_in_every_run_is_one_error_not_an_interrupt(sweep, capsys):
    needle = "units.parquet is truncated"
    for run in sweep.iterdir():
        _truncated_parquet(run)
    rc = main(["compare", str(sweep)])
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    warnings, errors = captured.err.splitlines()[:-1], captured.err.splitlines()[-1:]
    assert len(warnings) == N_RUNS and all(needle in w for w in warnings)
    assert errors[0].startswith(f"ics: error: no readable run folders under {sweep}: all {N_RUNS} are damaged")
    assert "interrupted" not in captured.err and "Traceback" not in captured.err
    assert not (sweep / "compare").exists()


# --------------------------------------------------------------------------- bad options


def test_compare_out_that_is_a_file_is_refused_before_any_work(sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(store, "runs_under", lambda *a, **k: pytest.fail("work began"))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    one_error(main(["compare", str(sweep), "--out", str(blocker)]), capsys, "--out", str(blocker),
              "is a file")
    one_error(main(["compare", str(sweep), "--out", str(blocker / "sub")]), capsys, "--out",
              "is a file")
    assert blocker.read_text() == "a file"


def test_compare_out_that_is_read_only_is_refused_before_any_work(sweep, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(store, "runs_under", lambda *a, **k: pytest.fail("work began"))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:      # root writes anywhere: let os.access answer as it would for a user
        real = os.access
        monkeypatch.setattr(os, "access",
                            lambda p, mode: real(p, mode) and not (Path(p) == locked and mode & os.W_OK))
    try:
        one_error(main(["compare", str(sweep), "--out", str(locked / "compare")]), capsys, "--out",
                  "is not writable", str(locked))
        one_error(main(["compare", str(sweep), "--out", str(locked)]), capsys, "--out", "is not writable")
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


# --------------------------------------------------------------------------- ics plot


@pytest.fixture
def compared(sweep, capsys):
    assert main(["compare", str(sweep), "--quiet"]) == 0
    capsys.readouterr()
    return sweep / "compare"


@pytest.mark.parametrize("content, needle", [
    (b"", "summary.csv is empty"),
    (b"\x00\x01\x02\xff\xfe\x00binary", "summary.csv is not a CSV (binary data"),
    (None, "summary.csv is truncated (a header and no rows"),     # cut after the header line
    (-25, "summary.csv is truncated (its last line is cut)"),    # cut mid-row
])
def test_plot_on_an_empty_binary_or_truncated_summary_is_one_error(compared, capsys, content, needle):
    summary = compared / "summary.csv"
    text = summary.read_bytes()
    if content is None:
        content = text[: text.index(b"\n") + 1]
    elif isinstance(content, int):
        content = text[:content]
    summary.write_bytes(content)
    figure = compared / "lr_tolerance.png"
    before = figure.read_bytes()
    line = one_error(main(["plot", str(compared.parent)]), capsys, str(compared), needle)
    assert "not from these tables" in line and "rerun `ics compare`" in line   # stale, and says so
    assert figure.read_bytes() == before      # nothing redrawn from a damaged table
    assert "figures written" not in capsys.readouterr().out


def test_plot_redraws_as_one_set_and_removes_stale_figures_of_its_format(compared, capsys):
    stale = compared / "drift_heatmap_cnn.png"     # a figure of an earlier comparison
    stale.write_bytes(b"old")
    mine = compared / "notes.txt"
    mine.write_text("kept")
    assert main(["plot", str(compared.parent)]) == 0
    assert "1 figures written" in capsys.readouterr().out
    assert not stale.exists() and mine.read_text() == "kept"
    assert not staging.is_incomplete(compared) and not staging.staging_folder(compared).exists()


def test_plot_and_load_refuse_a_folder_marked_incomplete(compared, capsys):
    (compared / staging.INCOMPLETE).write_text(staging.INCOMPLETE_NOTE)   # a kill while files moved in
    one_error(main(["plot", str(compared.parent)]), capsys, str(compared), "incomplete", "ics compare")
    with pytest.raises(IcsError, match="incomplete set of compare outputs"):
        outputs.load(compared)


# --------------------------------------------------------------------------- a killed compare


def _fingerprint(folder: Path) -> dict[str, bytes]:
    """Every file of the output set, the long tables in long/ too, by its path in `folder`."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_compare_killed_while_drawing_leaves_the_previous_outputs_intact(compared, sweep, capsys,
                                                                           monkeypatch):
    before = _fingerprint(compared)
    stage = staging.staging_folder(compared)
    real = draw.draw_all
    seen = {}

    def killed(tables, out_dir, fmt="png"):
        real(tables, out_dir, fmt)          # half-way: the figures drawn in the staging folder...
        seen["stage"] = sorted(p.name for p in Path(out_dir).iterdir())
        # ... what a hard kill would leave now: the destination as it was, the staging folder marked.
        assert _fingerprint(compared) == before
        with pytest.raises(IcsError, match="incomplete set of compare outputs"):
            outputs.load(out_dir)
        raise KeyboardInterrupt

    monkeypatch.setattr(draw, "draw_all", killed)
    run_folder(sweep, "none-sigmoid-lr0.1-bs60-s2").joinpath("summary.json").unlink()   # new tables
    assert main(["compare", str(sweep), "--quiet"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert Path(seen["stage"][0]) == Path(staging.INCOMPLETE) and "summary.csv" in seen["stage"]
    assert _fingerprint(compared) == before            # the previous complete set, byte for byte
    assert not stage.exists()                          # and no half set beside it
    assert not [p for p in compared.iterdir() if ".tmp" in p.name]
    monkeypatch.setattr(draw, "draw_all", real)
    assert main(["plot", str(sweep)]) == 0              # still a complete, readable set


def test_a_hard_kill_leaves_a_marked_staging_folder_that_the_next_compare_replaces(compared, sweep,
                                                                                   capsys):
    stage = staging.staging_folder(compared)
    stage.mkdir()
    (stage / staging.INCOMPLETE).write_text(staging.INCOMPLETE_NOTE)
    (stage / "summary.csv").write_text("model,norm\nmlp,bat")
    (stage / ".drift.tmp.png").write_bytes(b"half")
    with pytest.raises(IcsError, match="incomplete set"):
        outputs.load(stage)
    assert main(["compare", str(sweep), "--quiet"]) == 0
    assert not stage.exists() and not staging.is_incomplete(compared)
    assert len(runs_compared(compared)) == N_RUNS


def test_compare_removes_outputs_of_an_earlier_set_and_leftover_temporaries(compared, sweep, capsys):
    (compared / "drift_heatmap_cnn.svg").write_bytes(b"old")
    (compared / ".lr_tolerance.tmp.png").write_bytes(b"half")    # left by a kill before issue 8
    (compared / "notes.txt").write_text("kept")
    assert main(["compare", str(sweep), "--quiet"]) == 0
    names = {p.name for p in compared.iterdir()}
    assert "drift_heatmap_cnn.svg" not in names and ".lr_tolerance.tmp.png" not in names
    assert "notes.txt" in names and {f"{n}.csv" for n in ALL_TABLE_NAMES} <= names


# --------------------------------------------------------------------------- ics summarize


def test_summarize_refuses_a_comparison_outside_root(compared, tmp_path, capsys):
    root = tmp_path / "results"
    root.mkdir()
    one_error(main(["summarize", str(root), "--compare", str(compared)]), capsys, "--compare",
              str(compared), "not inside ROOT")
    assert not (root / "README.md").exists()


def test_summarize_refuses_a_sweep_folder_without_sweep_json(tmp_path, compared, capsys):
    root = compared.parent
    one_error(main(["summarize", str(root), "--compare", str(compared), "--sweep", str(root)]), capsys,
              "--sweep", str(root), "has no sweep.json")
    (root / "sweep.json").write_text("{broken")
    one_error(main(["summarize", str(root), "--compare", str(compared), "--sweep", str(root)]), capsys,
              "--sweep", "sweep.json is not valid JSON")
    (root / "sweep.json").write_text('{"groups": {}}')      # the sweep.json of a study's runs folder
    one_error(main(["summarize", str(root), "--compare", str(compared), "--sweep", str(root)]), capsys,
              "--sweep", "a study's runs folder")
    (root / "sweep.json").write_text('{"grid": {}}')
    one_error(main(["summarize", str(root), "--compare", str(compared), "--sweep", str(root)]), capsys,
              "--sweep", "no 'common' entry")
    one_error(main(["summarize", str(root), "--compare", str(compared), "--sweep", str(tmp_path / "no")]),
              capsys, "no such folder", "sweep")
    assert not (root / "README.md").exists()


def test_plot_where_only_a_killed_first_compare_left_its_staging_folder_says_so(sweep, capsys):
    stage = staging.staging_folder(sweep / "compare")
    stage.mkdir()
    (stage / staging.INCOMPLETE).write_text(staging.INCOMPLETE_NOTE)
    one_error(main(["plot", str(sweep)]), capsys, "no comparison tables", "was stopped before it finished")
