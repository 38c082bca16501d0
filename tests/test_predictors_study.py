"""The predictors study's runner (studies/predictors_run.py): the pilot's seed sizing by its stated rule,
the grid-end check, the replication join, the plain-words finding (it must name a measure that predicts
and say so when the machinery failed), noisy batch norm compared inside its (model, lr) cell, and one
tiny study end to end (pilot, sizing, deciding grid, replication, README; a rerun trains nothing)."""

from __future__ import annotations

import json

import math
from dataclasses import replace

import pandas as pd
import pytest

from ics_cli import studies
from ics_cli.analyse import predictors as rules
from ics_cli.studies import predictors as protocol, predictors_readme, predictors_run as runner
from ics_cli.store.files import read_json
from ics_cli.sweep.run import Sweep


def pilot_verdicts(widths: list[float]) -> pd.DataFrame:
    rows = [dict(measure=f"m{i}", role=rules.MEASURE, outcome="final_acc", tau_norm_ci_low=-w / 2,
                 tau_norm_ci_high=w / 2) for i, w in enumerate(widths)]
    rows.append(dict(measure="log_lr", role=rules.CONFOUNDER, outcome="final_acc", tau_norm_ci_low=-5,
                     tau_norm_ci_high=5))              # a confounder's width never sizes the seeds
    return pd.DataFrame(rows)


def test_narrow_pilot_intervals_keep_three_seeds():
    s = runner.size(pilot_verdicts([0.2, 0.3, 0.35]), pilot_seconds=30)
    assert s["median_width"] == pytest.approx(0.3) and s["wanted"] == 2 and s["seeds"] == 3
    assert s["measures"] == 3


def test_wide_pilot_intervals_ask_for_more_seeds_by_the_square_root_rule():
    s = runner.size(pilot_verdicts([0.6, 0.6, 0.6]), pilot_seconds=30)
    assert s["wanted"] == math.ceil(3 * (0.6 / 0.4) ** 2) == 7
    assert s["seeds"] == 7 and "within the budget" in s["why"]


def test_the_budget_caps_the_seeds_and_says_so():
    # A pilot of 1000 s: a deciding seed costs 1000/3 × 8/3 s; pilot + 2 grids must fit 3600 s.
    s = runner.size(pilot_verdicts([0.8, 0.8, 0.8]), pilot_seconds=1000)
    per_seed = 1000 / 3 * len(protocol.LRS) / len(protocol.PILOT_LRS)
    assert s["affordable"] == int((protocol.BUDGET_S - 1000) // (2 * per_seed))
    assert s["seeds"] == max(3, s["affordable"]) and "the budget affords" in s["why"]


def test_grid_check_flags_a_grid_whose_ends_train_best():
    rows = []
    for norm, accs in (("none", [0.5, 0.9, 0.1]), ("batch", [0.95, 0.9, 0.8]), ("layer", [0.5, 0.8, 0.9])):
        for lr, acc in zip((0.01, 0.3, 30), accs):
            rows.append(dict(model="mlp", norm=norm, lr=lr, depth=3, seed=0, final_acc=acc, diverged=0.0))
            rows.append(dict(model="mlp", norm=norm, lr=lr, depth=10, seed=0, final_acc=0.5, diverged=1.0))
    check = runner.grid_check(pd.DataFrame(rows))
    assert set(check["model"]) == {"mlp depth=3", "mlp depth=10"}      # two MLPs, two models
    check = check[check["model"] == "mlp depth=3"].set_index("norm")
    assert check.loc["none", "low_end_ok"] and check.loc["none", "high_end_ok"]
    assert not check.loc["batch", "low_end_ok"] and check.loc["batch", "high_end_ok"]
    assert check.loc["layer", "low_end_ok"] and not check.loc["layer", "high_end_ok"]


def test_held_marks_a_changed_verdict():
    deciding = pd.DataFrame(dict(measure=["a", "b"], outcome=["final_acc"] * 2,
                                 verdict=[rules.PREDICTS, rules.NO]))
    again = pd.DataFrame(dict(measure=["a", "b"], outcome=["final_acc"] * 2,
                              verdict=[rules.PREDICTS, rules.INCONCLUSIVE]))
    out = runner.held(deciding, again)
    assert list(out["held"]) == [True, False] and list(out["replicated"]) == [rules.PREDICTS, rules.INCONCLUSIVE]


def verdict_rows(predicts: str | None, failed: str | None = None) -> pd.DataFrame:
    rows = []
    for m in ("drift_mean_linear", "grad_ics_rel", "early_train_loss", "shuffled"):
        role = rules.ROLE[m]
        v = (rules.PREDICTS if m in (predicts, "early_train_loss") else rules.NO)
        rows.append(dict(measure=m, role=role, outcome="final_acc", verdict=failed and rules.FAILED or v,
                         reason=f"machinery failed: {failed}" if failed else "", replicated=v, held=True,
                         tau_norm=-0.3, rival="early_test_acc", rival_tau=0.5))
    return pd.DataFrame(rows)


def test_the_finding_names_the_measure_that_predicts_and_none_when_none_does():
    yes = predictors_readme.finding(verdict_rows("grad_ics_rel"), None)
    assert "`grad_ics_rel` predicted" in yes and "No measure" not in yes
    no = predictors_readme.finding(verdict_rows(None), None)
    assert no.startswith("No measure") and "`grad_ics_rel`" in no and "did not predict" in no
    rows = verdict_rows(None)
    rows.loc[rows["measure"] == "drift_mean_linear", "verdict"] = rules.ON_AVERAGE
    some = predictors_readme.finding(rows, None)
    assert "`drift_mean_linear` ranked the norms at a fixed lr on average (τ across norms -0.30)" in some
    assert "none ranked them as well as a plain early signal (early_test_acc, |τ| 0.50)" in some


def test_the_finding_says_the_machinery_failed():
    rows = verdict_rows("grad_ics_rel", failed="shuffled control predicts final_acc")
    assert predictors_readme.machinery_of(rows) == "shuffled control predicts final_acc"
    text = predictors_readme.finding(rows, predictors_readme.machinery_of(rows))
    assert "machinery failed" in text and "predicted" not in text


def test_noisy_batch_norm_is_a_norm_of_its_cell():
    assert rules.norm_variant({"norm": "batch", "noise": "santurkar"}) == "batch+santurkar"
    assert rules.norm_variant({"norm": "batch", "noise": "none"}) == "batch"


def tiny_plan(quick: bool = False, seeds=None, pilot: bool = False) -> dict[str, Sweep]:
    """Two norms and noisy BN on the sigmoid MLP, two lrs, 24 steps: the study's machinery, not its grid."""
    chosen = list(protocol.PILOT_SEEDS if pilot else seeds or protocol.DECIDING_SEEDS)
    common = replace(protocol.MODELS["sigmoid-mlp"], steps=24, log_every=2, eval_every=2, ics_every=2,
                     landscape_every=4, sharpness_every=4, sharpness_iters=4, probe_size=64, width=16)
    return {"sigmoid-mlp": Sweep(common=common, norms=["none", "batch"], lrs=[0.1, 1.0], seeds=chosen,
                                 batch_sizes=[60]),
            "sigmoid-mlp-noisy-batch": Sweep(common=replace(common, noise="santurkar"), norms=["batch"],
                                             lrs=[0.1, 1.0], seeds=chosen, batch_sizes=[60])}


def test_a_tiny_study_end_to_end_then_a_rerun_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(protocol, "plan", tiny_plan)
    monkeypatch.setattr(runner, "BOOTSTRAP", 100)
    monkeypatch.setattr(runner, "PERMUTATIONS", 100)
    out = tmp_path / "predictors"
    (out / "protocol2").mkdir(parents=True)             # an earlier protocol's verdicts, shown beside
    pd.DataFrame([dict(measure="drift_mean_linear", outcome="final_acc", verdict="does not predict",
                       replicated="does not predict"),
                  dict(measure="sharpness_lr", outcome="final_acc", verdict="proxy of a confounder only",
                       replicated="")]).to_csv(out / "protocol2" / "verdicts.csv", index=False)
    # A study.json left by another protocol (it decided on seeds 0-2): its times and sizing are not reused.
    (out / "study.json").write_text(json.dumps({"study": "predictors", "seeds": [0, 1, 2], "phases": {
        "pilot_s": 9999.0, "deciding_s": 9999.0}, "sizing": {"seeds": 7, "why": "another protocol"}}))
    done = studies.run_study("predictors", out, jobs=1)
    meta = read_json(out / "study.json")
    assert meta["protocol"] == runner.fingerprint() and meta["from_empty_s"] < 9999
    assert meta["study"] == "predictors" and meta["sizing"]["seeds"] == len(meta["seeds"]) >= 3
    assert meta["seeds"][0] == protocol.DECIDING_SEEDS[0]
    assert set(meta["phases"]) == {"pilot_s", "pilot_analysis_s", "deciding_s", "replication_s", "analysis_s"}
    assert meta["from_empty_s"] == pytest.approx(sum(meta["phases"].values()))
    verdicts = pd.read_csv(out / "verdicts.csv")
    assert {"replicated", "held"} <= set(verdicts.columns) and len(done.verdicts) == len(verdicts)
    assert set(verdicts["measure"]) == {c.name for c in rules.MEASURES}
    runs = pd.read_csv(out / "predictor_runs.csv")
    assert set(runs["norm"]) == {"none", "batch", "batch+santurkar"}
    assert sorted(runs["seed"].unique()) == meta["seeds"]
    replicated = pd.read_csv(out / "replication" / "predictor_runs.csv")
    assert sorted(replicated["seed"].unique()) == [protocol.REPLICATION_SEEDS[0] + i for i in range(len(meta["seeds"]))]
    assert (out / "pilot" / "grid_check.csv").is_file() and (out / "forest_final_acc.png").is_file()
    text = (out / "README.md").read_text()
    for needle in ("## Answer", "## Pilot: the seeds it chose", "## Threshold history", "## Red-team review",
                   "| `drift_mean_linear` |", "## Before and after", "| `sharpness_lr` | proxy of a confounder only | – | "
                   "not a candidate | – |", "| `shuffled_config` | not a candidate |"):
        assert needle in text
    trained_for = {k: v for k, v in meta["phases"].items() if k != "analysis_s"}
    trained = []
    studies.run_study("predictors", out, jobs=1, on_outcome=lambda o: trained.append(o.status))
    assert set(trained) == {"skipped"}
    again = read_json(out / "study.json")
    assert {k: v for k, v in again["phases"].items() if k != "analysis_s"} == trained_for   # nothing trained
    assert again["sizing"] == meta["sizing"]
    from ics_cli.cli import main

    assert main(["report", str(out), "-o", str(tmp_path / "page.html")]) == 0     # the HTML report reads it
    page = (tmp_path / "page.html").read_text()
    assert "Which measure of internal covariate shift predicts training?" in page and "forest_final_acc" in page
    text = (out / "README.md").read_text()
    (out / "README.md").unlink()
    studies.redraw(out)                       # `ics plot results/predictors`: figures and README again
    assert (out / "README.md").read_text() == text


def test_a_replication_of_all_leaves_out_the_predictors_study():
    assert studies.select("all")[-1] == "predictors"
    assert "predictors" not in studies.select("all", [10, 11, 12])      # it replicates inside its protocol


def test_results_findings_carry_the_predictors_answer(tmp_path):
    from ics_cli.studies.findings import sentences

    assert not any("predicts training" in s for s in sentences(tmp_path))      # no study folder: no paragraph
    (tmp_path / "predictors").mkdir()
    verdict_rows(None).to_csv(tmp_path / "predictors" / "verdicts.csv", index=False)
    text = sentences(tmp_path)[-1]
    assert text.startswith("**Which measure of internal covariate shift predicts training?** No measure")
    assert "Caveat:" in text and "(predictors/README.md)" in text


def test_tau_by_architecture_averages_each_models_cells_of_the_deciding_subset():
    from ics_cli.studies.predictors_readme import architecture, architecture_rows

    cell = "model=cnn, batch_size=60, depth=3, width=8, activation=relu, init=kaiming, lr=0.1"
    assert architecture(cell) == "cnn 3 8 relu"
    rows = [dict(measure="drift_mean_linear", role="measure", outcome="final_acc", window=0.1, subset=sub,
                 environment=f"model={m}, depth={d}, lr={lr}", statistic="tau_norm_cell", value=v)
            for sub, m, d, lr, v in (("s", "cnn", 3, 0.1, 0.5), ("s", "cnn", 3, 1.0, -0.1),
                                     ("s", "mlp", 3, 0.1, -0.6), ("all runs", "mlp", 3, 1.0, 0.9))]
    lines = architecture_rows(pd.DataFrame(rows), 0.1, "s")
    assert lines[0] == "| measure | cnn 3 (2 cells) | mlp 3 (1 cells) |"
    assert lines[2] == "| `drift_mean_linear` | 0.20 | -0.60 |"       # the all-runs cell is not read
    assert architecture_rows(pd.DataFrame(rows), 0.1, "none") == []
