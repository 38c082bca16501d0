"""Terminal tables keep every number whole at any width (report/terminal.Fitted), in a real pseudo-terminal."""

import os
import pty
import re
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console

from ics_cli.report import terminal

from fixtures_runs import write_runs

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")
CUT_NUMBER = re.compile(r"[0-9.eE+-]…|…[0-9]")


def in_pty(args: list[str], columns: int) -> str:
    """stdout and stderr of `args` run in a pseudo-terminal `columns` wide, ANSI codes removed."""
    pid, fd = pty.fork()
    if pid == 0:                                  # the child: a terminal of the given width
        os.environ.update(COLUMNS=str(columns), LINES="60", TERM="xterm-256color")
        os.execv(args[0], args)
    out = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    os.waitpid(pid, 0)
    return ANSI.sub("", out.decode(errors="replace"))


def test_compare_at_80_columns_prints_no_cut_number(tmp_path):
    sweep = write_runs(tmp_path)
    ics = str(Path(sys.executable).with_name("ics"))
    text = in_pty([ics, "compare", str(sweep), "--out", str(tmp_path / "cmp")], 80)
    assert "Headline comparison" in text
    assert not CUT_NUMBER.search(text), text
    assert max(len(line) for line in text.splitlines()) <= 80
    # The table the narrow layout split still shows every headline number, e.g. each final accuracy.
    head = pd.read_csv(tmp_path / "cmp" / "summary.csv")
    assert f"{head['final_test_acc_mean'].dropna().iloc[0]:.3g}" in text


def _render(table, width: int) -> str:
    console = Console(width=width, file=open(os.devnull, "w"), record=True, color_system=None)
    console.print(table)
    return console.export_text()


def test_a_long_exponent_survives_every_width():
    df = pd.DataFrame({"norm": ["batch", "none"], "lr rule": ["the largest lr at which every seed trained"] * 2,
                       "grad_norm_cv": [3.163e-05, 1.0], "drift": [123456.789, 2.5], "acc": [0.91234, 0.5]})
    table = terminal.frame_table(df, "t")
    for width in (40, 60, 80, 110, 200):
        text = _render(table, width)
        assert "3.163e-05" in text and "1.235e+05" in text, (width, text)
        assert "…" not in text
        assert max(len(line) for line in text.splitlines()) <= width
    assert len(_render(table, 200).splitlines()) < len(_render(table, 60).splitlines())


def test_keys_too_wide_for_any_table_fall_back_to_one_block_per_row():
    df = pd.DataFrame({"run": ["a" * 70], "x": [1.5e-09]})
    text = _render(terminal.frame_table(df, "t"), 40)
    assert "1.5e-09" in text and "…" not in text


# --------------------------------------------------------------------------- progress where stderr is a file


def test_a_run_writes_a_progress_line_every_few_seconds_when_stderr_is_not_a_terminal(monkeypatch):
    import io
    import time

    from rich.console import Console

    from ics_cli.config import RunConfig
    from ics_cli.report import terminal

    monkeypatch.setattr(terminal, "HEARTBEAT_S", 0.05)
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=False, width=100)
    with terminal.run_progress(RunConfig(steps=40), console=console) as (on_log, on_step, _):
        assert sink.getvalue() == ""             # nothing before the run trains
        for step in range(1, 4):
            on_step(step)
            time.sleep(0.12)
    lines = [line for line in sink.getvalue().splitlines() if "elapsed" in line]
    assert len(lines) >= 2
    assert "step 3/40" in lines[-1] and "elapsed 0:00:00" in lines[-1]


def test_clock_reads_hours_minutes_seconds():
    from ics_cli.report.terminal import clock

    assert clock(0) == "0:00:00" and clock(3725.9) == "1:02:05"
