"""Seeds sized before the runs: the MDE formula, UNDERPOWERED and DESIGN CHECK verdicts (claims.py)."""

import math

import numpy as np
import pandas as pd
from scipy import stats

from ics_cli import studies
from ics_cli.studies import claims
from ics_cli.studies.claims import (DESIGN_CHECK, FAIL, PASS, UNDERPOWERED, Change, Claim, Study, directional,
                                    measurement, mde, paired, ratio, seeds_needed)


def test_mde_matches_a_simulated_power_of_80_percent():
    """A true effect of one MDE above the threshold clears a 95% paired t-interval about 80% of the time."""
    sd, n = 0.02, 5
    d = mde(sd, n, 0.95)
    assert d == (stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) * sd / math.sqrt(n)
    rng = np.random.default_rng(0)
    x = rng.normal(d, sd, size=(20000, n))
    lo = x.mean(1) - stats.t.ppf(0.975, n - 1) * x.std(1, ddof=1) / math.sqrt(n)
    assert 0.77 < (lo > 0).mean() < 0.83


def test_seeds_needed_is_the_fewest_with_mde_within_the_margin():
    n = seeds_needed(0.02, 0.95, 0.02)
    assert mde(0.02, n, 0.95) <= 0.02 < mde(0.02, n - 1, 0.95)
    assert seeds_needed(1.0, 0.95, 1e-4) is None


def test_intervals_carry_their_sd_confidence_and_scale():
    a = {s: v for s, v in enumerate([1.0, 2.0, 4.0])}
    b = {s: 1.0 for s in range(3)}
    iv = paired(a, b, 0.975)
    assert iv.sd == np.std([0.0, 1.0, 3.0], ddof=1) and iv.confidence == 0.975 and not iv.log
    r = ratio(a, b)
    assert r.log and math.isclose(r.sd, np.std(np.log([1, 2, 4]), ddof=1))


def _study(margin, design=None, history=()):
    def measure(ctx):
        iv = paired(ctx, {s: 0.0 for s in ctx})
        return measurement(iv, directional(iv.lo, iv.hi, ">", 0.0), "seen.")
    claim = Claim("X1", "x is positive", "test", "x", "x > 0", None, measure, margin=margin, design=design)
    return Study("t", "t", "t", "", lambda *a, **k: None, [claim], history=list(history))


def test_a_claim_whose_pilot_mde_exceeds_its_margin_is_underpowered_whatever_its_data():
    data = {s: 1.0 + 0.01 * s for s in range(5)}          # clearly positive: PASS on the data alone
    pilot = pd.DataFrame([{"claim_id": "X1", "sd": 0.5}])   # but a noisy pilot: MDE ≈ 0.9
    assert studies.measure(_study(margin=0.1), data)["verdict"][0] == PASS
    row = studies.measure(_study(margin=0.1), data, pilot).iloc[0]
    assert row["verdict"] == UNDERPOWERED and row["mde"] > 0.1 and "not decided" in row["seen"]
    # ... and not read: no value or interval is shown for it.
    assert math.isnan(row["measured"]) and row["ci_low"] is None and "PASS" not in row["seen"]
    quiet = pd.DataFrame([{"claim_id": "X1", "sd": 0.01}])
    assert studies.measure(_study(margin=0.1), data, quiet)["verdict"][0] == PASS
    # The same for a FAIL: an underpowered claim is not decided in either direction.
    negative = {s: -1.0 - 0.01 * s for s in range(5)}
    assert studies.measure(_study(margin=0.1), negative)["verdict"][0] == FAIL
    assert studies.measure(_study(margin=0.1), negative, pilot)["verdict"][0] == UNDERPOWERED


def test_a_design_check_is_neither_pass_nor_fail_and_does_not_count():
    data = {s: 1.0 + 0.01 * s for s in range(5)}
    v = studies.measure(_study(margin=None, design="the protocol makes it move."), data)
    assert v["verdict"][0] == DESIGN_CHECK and v["seen"][0].startswith("Not a test here")
    assert studies.tally(v["verdict"]) == "0 PASS, 0 FAIL, 0 INCONCLUSIVE, 1 DESIGN CHECK"


def test_a_change_after_the_data_marks_its_claim():
    data = {s: 1.0 + 0.01 * s for s in range(5)}
    v = studies.measure(_study(0.1, history=[Change("X1", "abc123", "threshold 5 to 3", "a release read 3.2")]), data)
    assert v["changed_after_data"][0] == "yes"
    assert studies.measure(_study(0.1), data)["changed_after_data"][0] == "no"


def test_every_verdict_has_a_meaning_and_tests_are_a_subset():
    assert set(claims.TESTS) < set(claims.VERDICTS)
    assert all(claims.VERDICTS.values())


# --------------------------------------------------------------------------- runs only powered claims read


def _pruned_study(out_of_margin: float, a_margin: float = 100.0, figures=None):
    """Two run groups of tiny MLP runs: claim A reads `a` (its pilot SD is small), claim B reads `b`
    with margin `out_of_margin` (too small for its pilot SD when tiny)."""
    from ics_cli.config import RunConfig
    from ics_cli.studies.context import Plan, run_groups
    from ics_cli.sweep.run import Sweep

    common = RunConfig(dataset="synthetic", model="mlp", depth=2, width=8, steps=4, log_every=2, eval_every=2)

    def plan(quick, seeds=None):
        grid = lambda lr: Sweep(common=common, norms=["batch"], lrs=[lr], seeds=list(seeds or [0, 1, 2]))
        return {"g": Plan(groups={"a": grid(0.1), "b": grid(0.2)})}

    def run(out, quick=False, jobs=None, on_outcome=None, seeds=None):
        return run_groups(out, plan(quick, seeds), quick=quick, jobs=1, on_outcome=on_outcome)

    def loss_at(lr):
        def measure(ctx):
            runs = ctx.by_seed("g", lr=lr)
            iv = paired({s: float(r.summary["final"]["train_loss"]) for s, r in runs.items()},
                        {s: 0.0 for s in runs})
            return measurement(iv, directional(iv.lo, iv.hi, ">", 0.0), "seen.")
        return measure
    claims_ = [Claim("A", "a's loss is positive", "test", "loss", "> 0", None, loss_at(0.1), margin=a_margin,
                     runs=("a",)),
               Claim("B", "b's loss is positive", "test", "loss", "> 0", None, loss_at(0.2),
                     margin=out_of_margin, runs=("b",))]
    return Study("fake", "t", "t", "", run, claims_, plan=plan, figures=figures)


def test_runs_that_only_an_underpowered_claim_reads_are_not_made(tmp_path, monkeypatch):
    """The pilot sizes each claim before the deciding runs: B cannot reach its margin, so its group is
    run on the pilot's seeds only and B is not read; A's runs are made and A is decided. A replication
    sizes the claims from the committed pilot.csv at its own seeds."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(studies.REGISTRY, "fake", _pruned_study(out_of_margin=1e-12))
    out = tmp_path / "results" / "fake"
    result = studies.run_study("fake", out, jobs=1)
    v = result.verdicts.set_index("claim_id")
    assert v.loc["B", "verdict"] == UNDERPOWERED and math.isnan(v.loc["B", "measured"])
    assert "its runs were not made" in v.loc["B", "seen"]
    assert v.loc["A", "verdict"] == PASS and v.loc["A", "n_seeds"] == 3
    made = sorted(p.name for p in (out / "runs").iterdir() if p.is_dir())
    assert len(made) == 3 and all("lr0.1-" in name for name in made)        # only group a, seeds 0-2
    piloted = sorted(p.name for p in (out / "pilot" / "runs").iterdir() if p.is_dir())
    assert len(piloted) == 6                                                 # both groups, seeds 100-102
    pilot = pd.read_csv(out / "pilot.csv").set_index("claim_id")
    assert pilot.loc["B", "powered"] == "no" and pilot.loc["A", "powered"] == "yes" and pilot.loc["A", "seeds"] == 3
    assert (out / "pilot" / "tables" / "g").is_dir()                        # what a figure of group b draws
    # A replication on other seeds reads results/fake/pilot.csv: B is still not made there.
    rep = studies.run_study("fake", tmp_path / "rep", seeds=[10, 11, 12], jobs=1)
    replicated = [p.name for p in (tmp_path / "rep" / "runs").iterdir() if p.is_dir()]
    assert len(replicated) == 3 and all("lr0.1-" in n and "-s1" in n for n in replicated)
    assert rep.verdicts.set_index("claim_id").loc["B", "verdict"] == UNDERPOWERED


def test_with_a_margin_it_can_reach_the_claim_is_run_and_read(tmp_path, monkeypatch):
    """The same study with B's margin wide: nothing is skipped and B is decided (the rule can pass)."""
    monkeypatch.setitem(studies.REGISTRY, "fake", _pruned_study(out_of_margin=100.0))
    result = studies.run_study("fake", tmp_path / "fake", jobs=1)
    v = result.verdicts.set_index("claim_id")
    assert v.loc["B", "verdict"] == PASS and v.loc["B", "measured"] > 0
    assert len([p for p in (tmp_path / "fake" / "runs").iterdir() if p.is_dir()]) == 6


def test_every_claim_names_run_groups_its_study_plans():
    """A study sized before its runs names, for each claim, run groups of its own plan (a typo would
    make a claim's runs look unread, and so never made)."""
    from ics_cli.studies.context import labels
    sized = [s for s in studies.REGISTRY.values() if studies.prunable(s)]
    assert sized, "no study declares which runs its claims read"
    for study in sized:
        groups = set(labels(study.plan(False, None)))
        for claim in study.claims:
            assert set(claim.runs) <= groups, (study.name, claim.id, claim.runs)


def test_with_every_claim_underpowered_no_deciding_run_is_made_and_the_pilot_is_shown(tmp_path, monkeypatch):
    """Nothing to decide: the deciding seeds make no run; the comparison tables and the study's figures
    are the pilot's (its tables kept under pilot/tables/), and the README says so."""
    drawn = []

    def figures(ctx, folder, fmt="png"):
        drawn.append(sorted(ctx.tables("g")["runs"]["seed"].astype(int).unique()))
        return []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(studies.REGISTRY, "fake", _pruned_study(1e-12, a_margin=1e-12, figures=figures))
    out = tmp_path / "results" / "fake"
    result = studies.run_study("fake", out, jobs=1)
    assert set(result.verdicts["verdict"]) == {UNDERPOWERED} and result.verdicts["measured"].isna().all()
    assert not [p for p in (out / "runs").iterdir() if p.is_dir()] if (out / "runs").exists() else True
    runs = pd.read_csv(out / "compare" / "runs.csv")
    assert sorted(runs["seed"].unique()) == [100, 101, 102]
    assert drawn == [[100, 101, 102]]
    assert "no deciding run was made" in (out / "README.md").read_text()
    # `ics plot` redraws from the same pilot tables.
    studies.redraw(out)
    assert drawn[-1] == [100, 101, 102]
    # A replication makes nothing either, and still writes its verdicts.
    rep = studies.run_study("fake", tmp_path / "rep", seeds=[10, 11, 12], jobs=1)
    assert set(rep.verdicts["verdict"]) == {UNDERPOWERED} and (tmp_path / "rep" / "verdicts.csv").is_file()
