"""Facts about ics_cli.studies: the study contract, the exact claims, and claim metrics on hand-made runs.

Hand-computed numbers below come from the rules in tests/fixtures_runs.py (at the `norm` site of
hidden layer l: unit-0 p50 = l·0.5·M, p15/p85 = p50 ∓ 1, drift_mean = l·0.5·|ΔM|; grad norms G, G/R,
G/4) and t(0.975, 1) = 12.7062047.
"""

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from ics_cli import norms, studies
from ics_cli.config import RunConfig
from ics_cli.errors import IcsError
from ics_cli.store import find_runs, run_config
from ics_cli.studies import claims, ioffe2015, note
from ics_cli.studies.context import Context

from fixtures_runs import write_runs

T1 = 12.706204736
CONTRACT = ["claim_id", "claim", "source", "metric", "measured", "ci_low", "ci_high", "expected",
            "paper_value", "verdict"]


def run_folders(out: Path) -> list[Path]:
    return sorted(p.parent for p in (out / "runs").rglob("config.json"))


# --------------------------------------------------------------------------- the study contract


def test_registry_and_unknown_name():
    assert studies.names() == ["ioffe2015", "note"]
    assert studies.select("all") == ["ioffe2015", "note"]
    for study in studies.REGISTRY.values():
        assert study.description and "\n" not in study.description
        assert len({c.id for c in study.claims}) == len(study.claims)
    with pytest.raises(IcsError) as e:
        studies.run_study("nope")
    assert str(e.value) == "unknown study 'nope'; choose one of: ioffe2015, note, all"


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


def test_quick_ioffe_study_writes_the_contract_and_resumes(tmp_path):
    out = tmp_path / "ioffe"
    first = studies.run_study("ioffe2015", out, quick=True, jobs=1)
    check_outputs(first, studies.REGISTRY["ioffe2015"])
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
    assert v[["N1", "N3", "N6", "N7", "N8", "N10"]].eq("INCONCLUSIVE").all()
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


# --------------------------------------------------------------------------- metrics on hand-made runs


@pytest.fixture(scope="module")
def fixture_runs(tmp_path_factory):
    sweep = write_runs(tmp_path_factory.mktemp("runs"))
    # none at lr 0.1 (seeds 0, 1, 2) and batch at lr 0.1 (seeds 0, 1): seeds 0 and 1 are paired.
    return [r for r in find_runs(sweep) if run_config(r)["lr"] == 0.1]


def test_ioffe_i3_total_variation_on_hand_made_runs(fixture_runs, tmp_path):
    """p50 = M at hidden2's norm site: TV = Σ|ΔM|; none 0.6, 0.8, 0.6, batch 0.03, 0.05; spread constant 2."""
    ctx = Context(out=tmp_path, quick=False, groups={"fig1": fixture_runs})
    tv50, spread = ioffe2015._total_variation(ctx, "none")
    assert tv50 == pytest.approx({0: 0.6, 1: 0.8, 2: 0.6}) and spread == pytest.approx({0: 0, 1: 0, 2: 0})
    tv50, spread = ioffe2015._total_variation(ctx, "batch")
    assert tv50 == pytest.approx({0: 0.03, 1: 0.05}) and spread == pytest.approx({0: 0, 1: 0})
    # The p50 part (difference -0.66 ± 1.14) is open, but the spread never moves in either network:
    # equal spreads contradict "BN's is smaller", so the claim fails and that part is what is measured.
    m = ioffe2015.measure_i3(ctx)
    assert (m.value, m.ci_low, m.ci_high, m.verdict) == (0.0, 0.0, 0.0, "FAIL")
    half = T1 * abs((0.03 - 0.6) - (0.05 - 0.8)) / math.sqrt(2) / math.sqrt(2)
    assert f"-0.66 [{-0.66 - half:.3g}, {-0.66 + half:.3g}]" in m.seen


def test_ioffe_i4_drift_on_hand_made_runs(fixture_runs, tmp_path):
    """Mean over layers of drift_mean_total at the norm site = (1·0.5 + 2·0.5)/2 · Σ|ΔM| = 0.75 · TV."""
    ctx = Context(out=tmp_path, quick=False, groups={"fig1": fixture_runs})
    m = ioffe2015.measure_i4(ctx)
    diffs = [0.75 * (0.03 - 0.6), 0.75 * (0.05 - 0.8)]
    assert m.value == pytest.approx(sum(diffs) / 2)
    assert m.verdict == "INCONCLUSIVE"          # two seeds, t(1) = 12.7: the interval straddles 0


def test_note_n8_gradient_cv_on_hand_made_runs(fixture_runs, tmp_path):
    """CV is scale-free, so every layer has CV(G): none seed 0 G = 1,1,1,5 → √3/2; seed 1 G = 1..4 → √1.25/2.5."""
    ctx = Context(out=tmp_path, quick=False, groups={"shared_lr": fixture_runs})
    m = note.measure_n8(ctx)
    diffs = [0 - math.sqrt(3) / 2, 0 - math.sqrt(1.25) / 2.5]
    half = T1 * abs(diffs[0] - diffs[1]) / math.sqrt(2) / math.sqrt(2)
    assert m.value == pytest.approx(sum(diffs) / 2)
    assert (m.ci_low, m.ci_high) == pytest.approx((m.value - half, m.value + half))
    assert m.verdict == "INCONCLUSIVE"


def test_missing_data_is_inconclusive(tmp_path):
    ctx = Context(out=tmp_path, quick=False, groups={})
    table = studies.measure(studies.REGISTRY["ioffe2015"], ctx)
    assert table["verdict"].eq("INCONCLUSIVE").all()
    assert table["measured"].isna().all()


@pytest.mark.parametrize("lo, hi, op, verdict", [
    (0.1, 0.3, ">", "PASS"), (-0.1, 0.3, ">", "INCONCLUSIVE"), (-0.3, -0.1, ">", "FAIL"),
    (0.0, 0.0, ">=", "PASS"), (0.0, 0.0, "<", "FAIL"), (None, None, "<", "INCONCLUSIVE"),
    (0.2, 0.5, "<=", "PASS"), (0.4, 0.6, "<=", "INCONCLUSIVE"), (0.51, 0.9, "<=", "FAIL")])
def test_verdict_rule(lo, hi, op, verdict):
    threshold = 0.5 if op == "<=" else 0.0
    assert claims.directional(lo, hi, op, threshold) == verdict
