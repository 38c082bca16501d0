"""Replication on fresh seeds: which committed verdicts held (studies.held_table, report.readme.replication)."""

import json

import pandas as pd
import pytest

from ics_cli.errors import IcsError
from ics_cli.report import readme
from ics_cli.studies import held_table


def _verdicts(folder, verdicts: dict, study: str | None = None, seeds=None):
    folder.mkdir(parents=True)
    pd.DataFrame({"claim_id": list(verdicts), "verdict": list(verdicts.values())}).to_csv(
        folder / "verdicts.csv", index=False)
    if study:
        (folder / "study.json").write_text(json.dumps({"study": study, "quick": False, "seeds": seeds}))


def test_held_table_compares_each_claim_with_the_committed_verdict(tmp_path):
    _verdicts(tmp_path / "results" / "ioffe2015", {"I1": "PASS", "I2": "FAIL", "I3": "UNDERPOWERED"})
    rep = tmp_path / "rep" / "ioffe2015-s10-11-12"
    _verdicts(rep, {"I1": "PASS", "I2": "INCONCLUSIVE", "I3": "UNDERPOWERED"}, "ioffe2015", [10, 11, 12])
    t = held_table(tmp_path / "results", [rep])
    assert list(t["held"]) == [True, False, True]
    assert set(t["seeds"]) == {"10,11,12"}
    lines = readme.replication(tmp_path / "results", [rep])
    text = "\n".join(lines)
    assert "1 of 2 committed PASS/FAIL verdicts held" in text and "| ioffe2015 | I2 | FAIL | INCONCLUSIVE | **no** |" in text
    assert (tmp_path / "results" / "replication.csv").is_file()
    assert "Not rerun" not in text


def test_a_study_left_out_of_the_replication_is_named_with_why(tmp_path):
    _verdicts(tmp_path / "results" / "ioffe2015", {"I1": "UNDERPOWERED", "I2": "UNDERPOWERED"})
    _verdicts(tmp_path / "results" / "wu2021", {"P1": "PASS"})
    _verdicts(tmp_path / "results" / "note", {"N1a": "PASS"})
    rep = tmp_path / "rep" / "note-s10-11-12"
    _verdicts(rep, {"N1a": "PASS"}, "note", [10, 11, 12])
    text = "\n".join(readme.replication(tmp_path / "results", [rep]))
    assert "Not rerun: ioffe2015 (none of its 2 claims is PASS or FAIL" in text
    assert "Not rerun: wu2021." in text and "Not rerun: note" not in text


def test_a_folder_that_is_not_a_replication_is_refused(tmp_path):
    _verdicts(tmp_path / "results" / "ioffe2015", {"I1": "PASS"})
    own = tmp_path / "own"
    _verdicts(own, {"I1": "PASS"}, "ioffe2015", None)
    with pytest.raises(IcsError, match="not a replication folder"):
        held_table(tmp_path / "results", [own])
    assert readme.replication(tmp_path / "results", []) == []


@pytest.mark.parametrize("model", ["mlp", "resmlp", "vgg", "dln", "cnn"])
def test_a_sweeps_grid_line_names_the_models_own_depth_and_width_never_none(tmp_path, model):
    from dataclasses import replace

    from ics_cli.config import RunConfig

    common = replace(RunConfig(), model=model, depth=None, width=None, activation=None).to_dict()
    (tmp_path / "sweep.json").write_text(json.dumps({"common": common, "runs": ["a"], "grid": {
        "norms": ["none"], "lrs": [0.1], "seeds": [0], "batch_sizes": [60]}}))
    line = readme._grid_lines([tmp_path])[0]
    assert "None" not in line and f"**{model}**" in line
    resolved = RunConfig.from_record(common).resolved()
    assert f"{resolved.depth} hidden layers of {resolved.width}" in line
