"""Facts about the `ics` command as a person drives it: --version, bare `ics`, help that is the manual,
choices with completion, data on stdout and progress on stderr, `ics reproduce` and `ics plot`."""

import enum
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import typer

from ics_cli import __version__, config, studies
from ics_cli.figures import draw
from ics_cli.net import norms
from ics_cli.report import terminal as report
from ics_cli.cli import app, main
from ics_cli.net.data import DATASETS
from ics_cli.errors import IcsError

from expect import error_line



def bar(label: str, total: int, text: str) -> bool:
    """Whether `text` holds a Rich progress bar line: its label, then N/N done."""
    return re.search(rf"^{re.escape(label)} .*\b{total}/{total}\b", text, re.M) is not None

COMMANDS = typer.main.get_command(app).commands


# --------------------------------------------------------------------------- the app itself


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"ics {__version__}\n" and captured.err == ""


def test_bare_ics_prints_the_help_and_no_error(capsys):
    assert main([]) == 0
    captured = capsys.readouterr()
    assert "Usage: ics" in captured.out and "reproduce" in captured.out
    assert captured.err == ""


# --------------------------------------------------------------------------- help is the manual


def help_of(command, capsys, monkeypatch) -> str:
    """`ics COMMAND --help`, rendered wide enough that every help text stays on one line."""
    monkeypatch.setenv("COLUMNS", "1000")
    assert main([command, "--help"] if command else ["--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_and_it_renders_whole(name, capsys, monkeypatch):
    """Rich markup must not eat `[grid]`-like words: each help text appears as written."""
    text = help_of(name, capsys, monkeypatch)
    for param in COMMANDS[name].params:
        assert param.help, f"ics {name}: {param.name} has no help"
        assert param.help.replace("\\[", "[") in text, (name, param.name)


def test_square_brackets_survive_in_help(capsys, monkeypatch):
    assert "TOML file with [grid] and [common] tables." in help_of("sweep", capsys, monkeypatch)
    assert "SGD momentum in [0, 1)." in help_of("train", capsys, monkeypatch)


@pytest.mark.parametrize("name", ["train", "sweep", "compare", "reproduce", ""])
def test_boolean_options_are_flags_without_a_value(name, capsys, monkeypatch):
    text = help_of(name, capsys, monkeypatch)
    for line in text.splitlines():
        if "<bool>" in line or "BOOLEAN" in line:      # typer's own --help / completion options only
            assert "--help" in line or "-completion" in line, line
    params = COMMANDS[name].params if name else typer.main.get_command(app).params
    for param in params:
        if getattr(param.type_descriptor, "annotation", None) is bool:
            assert param.is_flag, (name, param.name)


def test_flags_off_by_default_have_no_negative_and_eval_batchstats_has_one(capsys, monkeypatch):
    text = help_of("train", capsys, monkeypatch)
    for name in ("--download", "--binarize", "--json", "--quiet", "--force"):
        assert name in text and f"--no-{name[2:]}" not in text
    assert "--eval-batchstats" in text and "--no-eval-batchstats" in text


# --------------------------------------------------------------------------- choices


CHOICE_OPTIONS = [
    ("train", "--dataset", tuple(DATASETS)),
    ("train", "--model", config.MODELS),
    ("train", "--activation", config.ACTIVATIONS),
    ("train", "--init", config.INITS),
    ("train", "--optimizer", config.OPTIMIZERS),
    ("train", "--device", config.DEVICES),
    ("train", "--norm", tuple(norms.REGISTRY)),
    ("sweep", "--dataset", tuple(DATASETS)),
    ("compare", "--format", ("png", "svg", "pdf")),
    ("plot", "--format", ("png", "svg", "pdf")),
]


@pytest.mark.parametrize("command, option, allowed", CHOICE_OPTIONS,
                         ids=[f"{c} {o}" for c, o, _ in CHOICE_OPTIONS])
def test_a_choice_is_an_enum_listed_in_help_and_completed(command, option, allowed, capsys, monkeypatch):
    [param] = [p for p in COMMANDS[command].params if option in p.opts]
    assert issubclass(param.type_descriptor.annotation, enum.Enum)
    assert [e.value for e in param.type_descriptor.annotation] == list(allowed)
    help_line = next(line for line in help_of(command, capsys, monkeypatch).splitlines() if option in line)
    assert ", ".join(allowed) in help_line

    monkeypatch.setenv("_ICS_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", f"ics {command} {option} ")
    monkeypatch.setenv("COMP_CWORD", "3")
    with pytest.raises(SystemExit) as done:
        main([])
    assert done.value.code == 0
    assert capsys.readouterr().out.split() == list(allowed)


@pytest.mark.parametrize("command, option, allowed", CHOICE_OPTIONS,
                         ids=[f"{c} {o}" for c, o, _ in CHOICE_OPTIONS])
def test_a_bad_choice_is_one_line_naming_the_option_and_the_allowed_values(command, option, allowed,
                                                                           capsys, tmp_path):
    argv = [command, str(tmp_path)] if command in ("compare", "plot") else [command, "--out", str(tmp_path)]
    error_line(main(argv + [option, "nope"]), capsys, option, "nope", *allowed)
    assert not any(tmp_path.iterdir())


def test_the_library_gets_plain_strings(monkeypatch, capsys):
    """Enum members stay in the CLI: RunConfig holds the same str values a notebook would pass."""
    from ics_cli import train

    seen = []

    def stop(cfg):
        seen.append(cfg)
        raise IcsError("stopped by the test")

    monkeypatch.setattr(train, "prepare", stop)
    main(["train", "--norm", "batch-nograd", "--dataset", "synthetic", "--init", "gaussian", "--quiet"])
    [cfg] = seen
    for field in ("dataset", "model", "init", "norm", "optimizer", "device"):
        assert type(getattr(cfg, field)) is str, field
    assert cfg.activation is None         # left out: the model's default (RunConfig.resolved)
    assert (cfg.norm, cfg.dataset, cfg.init) == ("batch-nograd", "synthetic", "gaussian")
    assert cfg == config.RunConfig(norm="batch-nograd", dataset="synthetic", init="gaussian")


# --------------------------------------------------------------------------- stdout is data, stderr is status


def test_train_draws_its_progress_on_stderr_and_its_tables_on_stdout(tmp_path, capsys):
    argv = ["train", "--dataset", "synthetic", "--steps", "20", "--log-every", "10", "--out", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert bar("mlp/none", 20, captured.err) and not bar("mlp/none", 20, captured.out)
    assert "run folder:" in captured.out and "hidden1" in captured.out
    assert "run folder:" not in captured.err


def test_sweep_progress_and_status_lines_go_to_stderr(tmp_path, capsys):
    argv = ["sweep", "--dataset", "synthetic", "--norms", "none,batch", "--steps", "3", "--log-every", "10",
            "--jobs", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert bar("sweep", 2, captured.err) and not bar("sweep", 2, captured.out)
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert len(names) == 2
    for name in names:
        assert any("completed" in line and name in line for line in captured.err.splitlines())
        assert name in captured.out                                  # the outcome table, on stdout


def test_sweep_json_is_the_whole_of_stdout(tmp_path, capsys):
    argv = ["sweep", "--dataset", "synthetic", "--norms", "none", "--steps", "3", "--log-every", "10",
            "--jobs", "1", "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    [outcome] = json.loads(capsys.readouterr().out)
    assert outcome["status"] == "completed"


@pytest.fixture
def fixture_sweep(tmp_path, monkeypatch):
    """The hand-made runs of tests/fixtures_runs.py, with figure drawing skipped (see test_plots.py)."""
    from fixtures_runs import write_runs


    monkeypatch.setattr(draw, "draw_all", lambda tables, folder, fmt="png": [])
    return write_runs(tmp_path / "runs")


def test_compare_piped_prints_every_headline_column_unbroken(fixture_sweep, capsys):
    from ics_cli.analyse import compare
    from ics_cli.store import runs as store

    assert main(["compare", str(fixture_sweep)]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "model" in line and "norm" in line)
    head = compare.headline(compare.build(store.find_runs(fixture_sweep)))
    for col in head.columns:
        if col not in ("final_test_acc_ci_low", "final_test_acc_ci_high"):
            assert report.HEADLINE_LABELS.get(col, col.replace("_", " ")) in header, col
    assert "final test acc [95% CI]" in header


def test_compare_json_is_the_whole_of_stdout(fixture_sweep, capsys):
    assert main(["compare", str(fixture_sweep), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["norm"] for r in rows} == {"none", "batch"}


# --------------------------------------------------------------------------- reproduce


LONG_CLAIM = ("Batch norm keeps the distribution of every hidden layer's input stable through training, "
              "which is what makes much higher learning rates usable without divergence")


def verdicts(*rows) -> pd.DataFrame:
    return pd.DataFrame([{"claim_id": cid, "claim": LONG_CLAIM if cid == "N1" else f"claim {cid} [per unit]",
                          "measured": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n_seeds": 3,
                          "expected": "> 0", "verdict": v, "seen": "..."} for cid, v in rows])


@pytest.fixture
def fake_study(monkeypatch, tmp_path):
    """studies.run_study replaced by a recorder that reports one finished run; the cwd is tmp_path."""
    calls = []

    def run_study(name, out=None, *, quick=False, seeds=None, jobs=None, on_outcome=None):
        calls.append({"name": name, "out": out, "quick": quick, "seeds": seeds, "jobs": jobs})
        if on_outcome:
            on_outcome(SimpleNamespace(status="completed", name=f"{name}-run-1"))
        folder = out or Path("runs") / "somewhere" / name
        return SimpleNamespace(name=name, out=Path(folder), seconds=1.0,
                               verdicts=verdicts(("N1", "PASS"), ("N2", "PASS")))

    monkeypatch.setattr(studies, "run_study", run_study)
    monkeypatch.chdir(tmp_path)
    return calls


def test_reproduce_prints_verdicts_with_whole_cells_and_status_on_stderr(fake_study, capsys):
    assert main(["reproduce", "note", "--quick"]) == 0
    captured = capsys.readouterr()
    assert fake_study == [{"name": "note", "out": None, "quick": True, "seeds": None, "jobs": None}]
    assert LONG_CLAIM in captured.out                  # piped stdout: no wrapping at 80 columns
    assert "claim N2 [per unit]" in captured.out       # claims are text, not Rich markup
    assert "n_seeds" in captured.out
    assert "note-run-1" in captured.err and "note-run-1" not in captured.out


def test_reproduce_all_with_out_puts_each_study_in_its_own_folder(fake_study, capsys, tmp_path):
    assert main(["reproduce", "all", "--out", str(tmp_path / "d"), "--jobs", "2"]) == 0
    assert [(c["name"], c["out"], c["jobs"]) for c in fake_study] == [
        (name, tmp_path / "d" / name, 2) for name in studies.names()]


def test_reproduce_on_fresh_seeds_says_which_verdicts_held(fake_study, capsys):
    committed = Path("results") / "note"
    committed.mkdir(parents=True)
    verdicts(("N1", "PASS"), ("N2", "FAIL")).drop(columns="seen").to_csv(committed / "verdicts.csv",
                                                                        index=False)
    assert main(["reproduce", "note", "--seeds", "10,11,12"]) == 0
    captured = capsys.readouterr()
    assert fake_study[0]["seeds"] == [10, 11, 12] and fake_study[0]["out"] is None
    assert "which verdicts held on fresh seeds 10,11,12" in captured.out
    assert "1 of 2 verdicts held" in captured.out


def test_reproduce_on_fresh_seeds_without_a_committed_result_says_so_in_one_line(fake_study, capsys):
    assert main(["reproduce", "note", "--seeds", "7"]) == 0
    captured = capsys.readouterr()
    assert fake_study[0]["seeds"] == [7]
    [line] = [line for line in captured.err.splitlines() if "committed" in line]
    assert "no committed result to compare with" in line and "held" not in captured.out


@pytest.mark.parametrize("seeds", ["-1", "a,b", ",", "3,3", "1.5"])
def test_bad_seeds_are_refused_before_anything_runs(fake_study, capsys, seeds):
    error_line(main(["reproduce", "note", "--seeds", seeds]), capsys, "--seeds")
    assert fake_study == []


def test_an_unknown_study_is_refused(fake_study, capsys):
    error_line(main(["reproduce", "nope"]), capsys, "nope", "note", "all")
    assert fake_study == []


# --------------------------------------------------------------------------- plot


@pytest.fixture
def drawn(monkeypatch):
    """draw.draw_all and studies.redraw replaced by recorders (figures are tested in test_plots.py)."""
    from ics_cli.analyse import outputs

    calls = []
    monkeypatch.setattr(outputs, "load", lambda folder: {"folder": folder})
    monkeypatch.setattr(draw, "draw_all", lambda tables, folder, fmt: calls.append(("compare", folder, fmt))
                        or [folder / f"a.{fmt}", folder / f"b.{fmt}", folder / f"c.{fmt}"])
    monkeypatch.setattr(studies, "redraw", lambda folder, fmt="png": calls.append(("study", folder, fmt))
                        or [folder / "figures" / f"x.{fmt}"], raising=False)
    return calls


def compare_folder(root: Path) -> Path:
    (root / "compare").mkdir(parents=True)
    (root / "compare" / "summary.csv").write_text("model,norm\n")
    return root


def test_plot_of_a_study_folder_redraws_its_compare_and_its_own_figures(tmp_path, capsys, drawn):
    study = compare_folder(tmp_path / "note")
    (study / "verdicts.csv").write_text("claim_id,verdict\n")
    assert main(["plot", str(study), "--format", "svg"]) == 0
    assert drawn == [("compare", study / "compare", "svg"), ("study", study, "svg")]
    out = capsys.readouterr().out
    assert "3 figures written to" in out and "1 study figures written to" in out


def test_plot_of_a_comparison_redraws_only_the_comparison(tmp_path, capsys, drawn):
    folder = compare_folder(tmp_path / "sweep")
    assert main(["plot", str(folder)]) == 0
    assert drawn == [("compare", folder / "compare", "png")]


def test_plot_without_comparison_tables_is_refused(tmp_path, capsys, drawn):
    error_line(main(["plot", str(tmp_path)]), capsys, "ics compare")
    assert drawn == []


def test_a_pool_reports_the_step_each_running_run_has_reached(tmp_path):
    import subprocess
    import sys

    from ics_cli.report.terminal import running_text

    # In a process of its own: the pool's fork server talks over a socket this test session refuses.
    script = (
        "import json, sys\n"
        "from ics_cli.config import RunConfig\n"
        "from ics_cli.sweep import run as sweep\n"
        "sweep.PROGRESS_S = 0.2\n"
        "plan = sweep.Sweep(common=RunConfig(dataset='synthetic', steps=1500, log_every=500, probe_size=64),\n"
        "                   norms=['none', 'batch'])\n"
        "reports = []\n"
        "outcomes = sweep.run(plan, sys.argv[1], jobs=2, on_running=reports.append)\n"
        "print(json.dumps({'status': sorted({o.status for o in outcomes}), 'reports': reports,\n"
        "                  'names': sorted(c.name() for c in plan.configs())}))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["status"] == ["completed"]
    seen = [tuple(x) for report in got["reports"] for x in report]
    assert seen and {name for name, _, _ in seen} <= set(got["names"]) and {t for _, _, t in seen} == {1500}
    assert any(0 < step < 1500 for _, step, _ in seen)            # caught mid-run, not only at the ends
    assert running_text([("a", 120, 500), ("b", 80, 0)]) == "running: 120/500 80"
