"""Facts about ics_cli.studies: the study contract, the exact claims, and claim metrics on hand-made runs.

Whether each claim can fail is tested in tests/test_falsifiable.py.
"""

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from ics_cli.net import norms
from ics_cli import studies
from ics_cli.config import RunConfig
from ics_cli.errors import IcsError
from ics_cli.studies import ioffe2015, note
from ics_cli.studies.context import Context

CONTRACT = ["claim_id", "claim", "source", "metric", "measured", "ci_low", "ci_high", "n_seeds",
            "mde", "margin", "expected", "paper_value", "verdict", "changed_after_data"]


def run_folders(out: Path) -> list[Path]:
    return sorted(p.parent for p in (out / "runs").rglob("config.json"))


# --------------------------------------------------------------------------- the study contract


def test_registry_and_unknown_name():
    order = ["ioffe2015", "note", "santurkar2018", "bjorck2018", "wu2018", "ba2016", "ioffe2017", "wu2021",
             "predictors"]
    assert studies.names() == order
    assert studies.select("all") == order
    assert studies.select("studies") == studies.select("all", [10]) == order[:-1]     # the claim studies
    for study in studies.REGISTRY.values():
        assert study.description and "\n" not in study.description
        assert len({c.id for c in study.claims}) == len(study.claims)
    with pytest.raises(IcsError) as e:
        studies.run_study("nope")
    assert str(e.value) == f"unknown study 'nope'; choose one of: {', '.join(order)}, studies, all"


def check_outputs(result: studies.StudyResult, study: studies.Study) -> None:
    out = result.out
    verdicts = pd.read_csv(out / "verdicts.csv", keep_default_na=False)
    assert list(verdicts.columns) == CONTRACT
    assert verdicts["claim_id"].tolist() == [c.id for c in study.claims]
    assert set(verdicts["verdict"]) <= {"PASS", "FAIL", "INCONCLUSIVE"}
    readme = (out / "README.md").read_text()
    for claim in study.claims:
        assert f"**{claim.id}**" in readme
    # Every inline figure exists, linked relative to the study folder.
    links = [part.split(")")[0] for part in readme.split("](")[1:]]
    assert any(link.startswith("figures/") for link in links)
    for link in links:
        assert (out / link).is_file(), link
    assert (out / "compare" / "summary.csv").is_file()
    assert result.seconds > 0


def test_quick_ioffe_study_writes_the_contract_and_resumes(tmp_path, quick_study):
    first = quick_study("ioffe2015")
    check_outputs(first, studies.REGISTRY["ioffe2015"])
    out = Path(shutil.copytree(first.out, tmp_path / "ioffe"))     # resumed in a copy: the shared one is read
    folders = run_folders(out)
    plan = ioffe2015.plan(quick=True)["fig1"]
    assert len(folders) == len(plan.configs()) == 2 * len(ioffe2015.QUICK["seeds"])

    seen = []
    again = studies.run_study("ioffe2015", out, quick=True, jobs=1, on_outcome=lambda o: seen.append(o.status))
    assert seen == ["skipped"] * len(folders)
    assert run_folders(out) == folders
    pd.testing.assert_frame_equal(first.verdicts, again.verdicts)


def test_quick_note_study_writes_the_contract(tmp_path):
    result = studies.run_study("note", tmp_path / "note", quick=True, jobs=1)
    check_outputs(result, studies.REGISTRY["note"])
    v = result.verdicts.set_index("claim_id")["verdict"]
    # One seed: no interval, so every trained claim stays open; the exact ones are decided.
    assert v[["N1a", "N1b", "N3", "N6", "N7", "N8-mlp", "N8-cnn", "N10"]].eq("INCONCLUSIVE").all()
    assert v[["N2", "N4b", "N5", "N9"]].eq("PASS").all() and v["N4a"] == "FAIL"


# --------------------------------------------------------------------------- exact claims


@pytest.mark.parametrize("measure, verdict", [
    (note.measure_n2, "PASS"), (note.measure_n4a, "FAIL"), (note.measure_n4b, "PASS"),
    (note.measure_n5, "PASS"), (note.measure_n9, "PASS")])
def test_exact_claims(measure, verdict):
    m = measure(None)
    assert m.verdict == verdict, m.seen
    assert m.ci_low is None and m.ci_high is None


def test_identity_needs_the_square_root_of_var_plus_eps():
    """γ = sqrt(var + eps), β = mean undoes batch norm; γ = var does only where var = sqrt(var + eps)."""
    cfg = RunConfig(eps=1e-5)
    z = torch.randn(60, 3, dtype=torch.float64) * torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64) + 2
    err_sqrt, ok_sqrt = note.exact.identity_error(z, cfg, "sqrt")
    err_var, ok_var = note.exact.identity_error(z, cfg, "var")
    assert err_sqrt < 1e-12 and ok_sqrt == 3
    assert err_var > 0.1 and ok_var == 0


def test_sets_are_the_axes_each_norm_promises():
    x = torch.arange(2 * 4 * 3 * 1, dtype=torch.float64).reshape(2, 4, 3, 1)
    assert note.exact.sets(x, "batch", 2)[1].tolist() == [3, 4, 5, 15, 16, 17]
    assert note.exact.sets(x, "layer", 2)[0].tolist() == list(range(12))
    assert note.exact.sets(x, "instance", 2)[1].tolist() == [3, 4, 5]
    assert note.exact.sets(x, "group", 2)[1].tolist() == list(range(6, 12))


def test_batch_nograd_forward_equals_batch_norm_and_its_gradient_ignores_the_statistics():
    """The N3 ablation: same output, but dL/dx = γ / sqrt(v + eps) · dL/dy, as if mean and var were constants."""
    cfg = RunConfig(norm="batch-nograd", eps=1e-5)
    torch.manual_seed(0)
    x = torch.randn(16, 5) * 3 + 1
    w = torch.randn(16, 5)
    mods = {n: norms.build(n, 5, False, cfg).train() for n in ("batch", "batch-nograd")}
    assert isinstance(mods["batch"], nn.BatchNorm1d)
    grads, outs = {}, {}
    for name, m in mods.items():
        with torch.no_grad():
            m.weight.copy_(torch.linspace(0.5, 2, 5))
        xi = x.clone().requires_grad_(True)
        outs[name] = m(xi)
        (outs[name] * w).sum().backward()
        grads[name] = xi.grad
    torch.testing.assert_close(outs["batch-nograd"], outs["batch"])
    var = x.var(0, unbiased=False)
    expected = torch.linspace(0.5, 2, 5) / torch.sqrt(var + cfg.eps) * w
    torch.testing.assert_close(grads["batch-nograd"], expected)
    assert (grads["batch"] - expected).abs().max() > 0.1


# --------------------------------------------------------------------------- where studies go


def test_quick_and_replication_runs_never_write_into_results():
    assert studies.default_out("note") == Path("results/note")
    assert studies.default_out("note", quick=True) == Path("runs/quick/note")
    assert studies.default_out("note", seeds=[10, 11, 12]) == Path("runs/replicate/note-s10-11-12")
    assert studies.default_out("note", quick=True, seeds=[3]) == Path("runs/replicate/note-s3")


def test_replication_reports_which_verdicts_held(tmp_path):
    reference = tmp_path / "verdicts.csv"
    reference.write_text("claim_id,verdict\nN1,PASS\nN2,FAIL\n")
    verdicts = pd.DataFrame({"claim_id": ["N1", "N2", "N3"], "verdict": ["PASS", "PASS", "FAIL"]})
    held = studies.held(studies.StudyResult("note", tmp_path, verdicts, 1.0), reference)
    assert held.to_dict("records") == [
        {"claim_id": "N1", "reference_verdict": "PASS", "verdict": "PASS", "held": True},
        {"claim_id": "N2", "reference_verdict": "FAIL", "verdict": "PASS", "held": False},
        {"claim_id": "N3", "reference_verdict": "", "verdict": "FAIL", "held": False}]
    with pytest.raises(IcsError, match="no committed verdicts"):
        studies.held(studies.StudyResult("note", tmp_path, verdicts, 1.0), tmp_path / "missing.csv")


def test_study_seeds_replace_the_protocols_seeds():
    grid = note.plan(quick=False, seeds=[10, 11, 12])
    assert {c.seed for g in grid.values() for c in g.configs()} == {10, 11, 12}
    assert ioffe2015.plan(quick=False, seeds=[7])["fig1"].seeds == [7]     # full MNIST: not read here
    with pytest.raises(IcsError, match="--seeds"):
        studies.run_study("note", seeds=[-1])


def test_a_study_folder_redraws_its_figures_without_its_runs(tmp_path, quick_study):
    out = Path(shutil.copytree(quick_study("ioffe2015").out, tmp_path / "ioffe"))
    shutil.rmtree(out / "runs")
    for png in (out / "figures").glob("*.png"):
        png.unlink()
    paths = studies.redraw(out)
    assert sorted(p.name for p in paths) == ["fig1a_accuracy.png", "fig1bc_sigmoid_input.png"]
    assert all(p.is_file() for p in paths)
    with pytest.raises(IcsError, match="not a study folder"):
        studies.redraw(tmp_path)


def test_missing_data_is_inconclusive(tmp_path):
    ctx = Context(out=tmp_path, quick=False, groups={})
    table = studies.measure(studies.REGISTRY["ioffe2015"], ctx)
    assert table["verdict"].eq("INCONCLUSIVE").all()
    assert table["measured"].isna().all()


@pytest.mark.parametrize("verdict", ["PASS", "FAIL", "INCONCLUSIVE", "UNDERPOWERED"])
def test_findings_are_a_few_plain_sentences_whatever_the_verdicts(tmp_path, verdict):
    """Only a decided verdict (PASS, FAIL) of a claim the review left standing is a finding, with its caveat."""
    from ics_cli.studies import findings

    for name, study in studies.REGISTRY.items():
        (tmp_path / name).mkdir()
        rows = "".join(f"{c.id},0.5,0.25,0.75,{verdict}\n" for c in study.claims)
        (tmp_path / name / "verdicts.csv").write_text("claim_id,measured,ci_low,ci_high,verdict\n" + rows)
    found = findings.sentences(tmp_path)
    assert "course note" in found[0] and "red-team" in found[0]
    expected = [(study, claim) for study, claim, _, words in findings.SENTENCES
                if (study, claim) in findings.SURVIVED and verdict in words and verdict in ("PASS", "FAIL")]
    assert len(found) == 1 + len(expected)
    if verdict in ("PASS", "FAIL"):
        assert 4 <= len(expected) <= 12
    for (study, claim), text in zip(expected, found[1:]):
        assert f"[{claim}: {verdict}]({study}/README.md)" in text and "Caveat:" in text
        assert "{" not in text
