"""Help by topic: every run option in a topic panel, examples at the end, short choices shown."""

import dataclasses

from typer.testing import CliRunner

from ics_cli.cli import app
from ics_cli.config import RunConfig
from ics_cli.report.options import EXAMPLES, PANEL_OF, PANELS


def test_every_run_option_has_exactly_one_topic_panel():
    names = [f.name for f in dataclasses.fields(RunConfig)]
    assert sorted(PANEL_OF) == sorted(names)
    assert sum(len(v) for v in PANELS.values()) == len(names)


def test_train_help_shows_topic_panels_and_examples():
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    shown = [p for p in PANELS if f"─ {p} " in result.output]
    assert len(shown) >= 6, shown
    assert "Examples:" in result.output and EXAMPLES["train"][0] in result.output
    assert "<official|heldout>" in result.output        # a short choice list is shown in full


def test_examples_name_commands_that_exist():
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert set(EXAMPLES) <= commands | {"report"}
    assert all(line.split()[1] == name for name, lines in EXAMPLES.items() for line in lines)
