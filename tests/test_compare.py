"""Facts about ics_cli.analyse.compare, checked against numbers worked out by hand from tests/fixtures_runs.py.

t quantiles used below (from printed tables, not from scipy): t(0.975, 1) = 12.7062047,
t(0.975, 2) = 4.3026527.
"""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from ics_cli.analyse import compare
from ics_cli.store import files
from ics_cli.analyse.base import ALL_TABLE_NAMES, TABLE_NAMES
from ics_cli.analyse import outputs
from ics_cli.analyse.keys import key_columns
from ics_cli.analyse.stats import mean_ci, t_crit
from ics_cli.store.runs import runs_under
from ics_cli.errors import IcsError
from ics_cli.store.runs import find_runs

from expect import one
from fixtures_runs import write_runs
from synthetic import edit_config

T1, T2 = 12.706204736, 4.302652730
SQ2, SQ3 = math.sqrt(2), math.sqrt(3)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return write_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def tables(sweep):
    return compare.build(find_runs(sweep), target=0.8)


def ci(table_row, name, mean, half):
    """`name` has this mean and this CI half-width (NaN half-width: blank bounds)."""
    assert table_row[f"{name}_mean"] == pytest.approx(mean, abs=1e-7)
    if math.isnan(half):
        assert math.isnan(table_row[f"{name}_ci_low"]) and math.isnan(table_row[f"{name}_ci_high"])
    else:
        assert table_row[f"{name}_ci_low"] == pytest.approx(mean - half, abs=1e-7)
        assert table_row[f"{name}_ci_high"] == pytest.approx(mean + half, abs=1e-7)


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("n, confidence, expected", [
    (2, 0.95, 12.706204736), (3, 0.95, 4.302652730), (5, 0.95, 2.776445105),
    (11, 0.95, 2.228138852), (30, 0.95, 2.045229642), (101, 0.95, 1.983971519),
    (6, 0.99, 4.032142984), (4, 0.8, 1.637744354),
])
def test_t_crit_matches_printed_tables(n, confidence, expected):
    """t((1 + confidence)/2, n - 1), the values of a printed Student-t table."""
    assert t_crit(n, confidence) == pytest.approx(expected, abs=1e-7)


def test_t_crit_needs_two_values_and_tends_to_the_normal_quantile():
    assert math.isnan(t_crit(1)) and math.isnan(t_crit(0))
    assert t_crit(100_001) == pytest.approx(1.959963985, abs=1e-4)


def test_mean_ci_follows_the_confidence():
    mean, low, high, n = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], confidence=0.99)
    s = math.sqrt(17.5 / 5)
    assert (mean, n) == (3.5, 6)
    assert (low, high) == pytest.approx((3.5 - 4.032142984 * s / math.sqrt(6),
                                         3.5 + 4.032142984 * s / math.sqrt(6)))


def test_mean_ci_is_the_t_interval():
    mean, low, high, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3)
    assert (low, high) == pytest.approx((2 - T2 / SQ3, 2 + T2 / SQ3))


def test_mean_ci_edge_cases_skip_non_finite_values():
    mean, low, high, n = mean_ci([5.0])
    assert (mean, n) == (5.0, 1) and math.isnan(low) and math.isnan(high)
    assert mean_ci([])[3] == 0 and math.isnan(mean_ci([])[0])
    mean, low, high, n = mean_ci([1.0, math.inf, math.nan, 3.0])
    assert (mean, n) == (2.0, 2)
    assert high - mean == pytest.approx(T1 * math.sqrt(2) / SQ2)


# --------------------------------------------------------------------------- keys and counts


def test_build_returns_every_table(tables):
    assert tuple(tables) == ALL_TABLE_NAMES
    assert tuple(tables)[:5] == TABLE_NAMES == ("summary", "drift", "gradient_stability",
                                                        "lr_tolerance", "best_lr")


def test_key_is_model_norm_lr_batch_size_when_nothing_else_varies(sweep):
    assert key_columns(find_runs(sweep)) == ["model", "norm", "lr", "batch_size"]


def test_a_varying_hashed_field_joins_the_key_and_splits_configurations(tmp_path):
    sweep = write_runs(tmp_path)
    target = next(p for p in sweep.iterdir() if "batch-sigmoid-lr0.1-bs60-s1" in p.name)
    edit_config(target, activation="relu", out="elsewhere")  # out is not hashed: must not join the key
    runs = find_runs(sweep)
    assert key_columns(runs) == ["model", "norm", "lr", "batch_size", "activation"]
    summary = compare.build(runs)["summary"]
    split = summary[(summary["norm"] == "batch") & (summary["lr"] == 0.1)]
    assert sorted(split["activation"]) == ["relu", "sigmoid"]
    assert list(split["n_seeds"]) == [1, 1]


def test_status_counts_and_seeds(tables):
    s = tables["summary"]
    assert list(zip(s["norm"], s["lr"])) == [("none", 0.1), ("none", 1.0), ("batch", 0.01),
                                             ("batch", 0.1), ("batch", 1.0)]
    r = one(s, norm="none", lr=1.0)
    assert (r["n_seeds"], r["n_completed"], r["n_diverged"], r["n_interrupted"], r["n_incomplete"]) \
        == (2, 1, 1, 0, 0)
    r = one(s, norm="batch", lr=1.0)
    assert (r["n_seeds"], r["n_completed"], r["n_incomplete"], r["seeds"]) == (2, 2, 1, "0 1")
    assert one(s, norm="none", lr=0.1)["seeds"] == "0 1 2"


# --------------------------------------------------------------------------- summary


def test_summary_final_accuracy_and_loss(tables):
    s = tables["summary"]
    ci(one(s, norm="none", lr=0.1), "final_test_acc", 0.82, T2 * 0.02 / SQ3)
    ci(one(s, norm="none", lr=0.1), "final_test_loss", 0.36, T2 * 0.04 / SQ3)
    # Diverged seed: summary.json has no finite final accuracy, so its last finite logged one (0.35).
    ci(one(s, norm="none", lr=1.0), "final_test_acc", 0.375, T1 * (0.05 / SQ2) / SQ2)
    ci(one(s, norm="none", lr=1.0), "final_test_loss", 1.25, T1 * (0.1 / SQ2) / SQ2)
    ci(one(s, norm="batch", lr=0.01), "final_test_acc", 0.80, math.nan)
    ci(one(s, norm="batch", lr=0.1), "final_test_acc", 0.91, T1 * (0.02 / SQ2) / SQ2)
    ci(one(s, norm="batch", lr=0.1), "best_test_acc", 0.925, T1 * (0.01 / SQ2) / SQ2)
    ci(one(s, norm="none", lr=1.0), "best_test_acc", 0.475, T1 * (0.25 / SQ2) / SQ2)


def test_summary_steps_to_target(tables):
    s = tables["summary"]
    assert (s["target"] == 0.8).all()
    r = one(s, norm="none", lr=0.1)  # reached at steps 40, 40, 20
    ci(r, "steps_to_target", 100 / 3, T2 * (20 / SQ3) / SQ3)
    assert r["n_reached_target"] == 3
    r = one(s, norm="none", lr=1.0)
    assert r["n_reached_target"] == 0 and math.isnan(r["steps_to_target_mean"])
    ci(one(s, norm="batch", lr=0.1), "steps_to_target", 10.0, 0.0)


def test_default_target_is_a_fraction_of_the_best_configuration(sweep):
    s = compare.build(find_runs(sweep))["summary"]
    assert s["target"].iloc[0] == pytest.approx(0.9 * 0.95)  # batch lr 1: best acc 0.94, 0.96
    assert one(s, norm="batch", lr=0.1)["n_reached_target"] == 2  # 0.90 and 0.93 >= 0.855


def test_incomplete_runs_are_counted_never_aggregated(tables):
    # batch lr 1.0 seed 2 logged acc 0.99 and drift 9 before it was killed; none of it may show up.
    assert one(tables["summary"], norm="batch", lr=1.0)["best_test_acc_mean"] == pytest.approx(0.95)
    c = one(tables["curves"], norm="batch", lr=1.0, step=10)
    assert (c["n_seeds"], c["test_acc_mean"]) == (2, pytest.approx(0.87))
    d = one(tables["drift"], norm="batch", lr=1.0, layer="hidden1", site="norm")
    ci(d, "drift_mean_total", 0.025, 0.0)
    g = one(tables["grad_curves"], norm="batch", lr=1.0, layer="hidden1", step=10)
    assert g["grad_norm_mean"] == 2.0
    runs = tables["runs"]
    assert (runs["status"] == "incomplete").sum() == 1
    assert runs.loc[runs["status"] == "incomplete", "final_test_acc"].isna().all()


# --------------------------------------------------------------------------- drift


def test_drift_totals_steps_and_final_drift_from_init(tables):
    d = one(tables["drift"], norm="none", lr=0.1, layer="hidden1", site="norm")
    assert d["n_seeds"] == 3
    # 0.5 x sum|ΔM|: seed 0: 0.5(0.2+0.3+0.1) = 0.3, seed 1: 0.5(0.4+0.4) = 0.4, seed 2: 0.5(0.6) = 0.3
    s = math.sqrt(((0.3 - 1 / 3) ** 2 * 2 + (0.4 - 1 / 3) ** 2) / 2)
    ci(d, "drift_mean_total", 1 / 3, T2 * s / SQ3)
    ci(d, "drift_mean_step", 1 / 12, T2 * s / 4 / SQ3)  # 4 logged steps after step 0
    ci(d, "drift_mean_init_final", 0.3, T2 * 0.1 / SQ3)  # 0.5 x |M_40 - M_0| = 0.2, 0.4, 0.3
    # 0.5 x sum|ΔV|: 0.5, 1.0, 0.25
    assert d["drift_var_total_mean"] == pytest.approx(1.75 / 3)
    assert d["drift_var_init_final_mean"] == pytest.approx(1.75 / 3)
    # hidden2 act: factor 2 x 0.1 = 0.2 -> 0.12, 0.16, 0.12
    d2 = one(tables["drift"], norm="none", lr=0.1, layer="hidden2", site="act")
    assert d2["drift_mean_total_mean"] == pytest.approx(0.4 / 3)


def test_drift_of_a_diverged_run_uses_its_finite_steps(tables):
    d = one(tables["drift"], norm="none", lr=1.0, layer="hidden1", site="norm")
    # seed 0: 0.5(1+1+1+1) = 2; diverged seed 1: 0.5(2+2) = 2 over its 2 finite steps.
    ci(d, "drift_mean_total", 2.0, 0.0)
    assert d["drift_mean_step_mean"] == pytest.approx((0.5 + 1.0) / 2)
    assert d["drift_mean_init_final_mean"] == pytest.approx(2.0)  # seed 1: last finite, step 20


def test_scale_free_drift_totals_steps_and_final(tables):
    """drift_mean_scaled = f|ΔM| (f = 1 at linear, 0.4 at norm_eval), whatever the layer."""
    for layer in ("hidden1", "hidden2"):
        d = one(tables["drift"], norm="none", lr=0.1, layer=layer, site="linear")
        s = math.sqrt(((0.6 - 2 / 3) ** 2 * 2 + (0.8 - 2 / 3) ** 2) / 2)
        ci(d, "drift_mean_scaled_total", 2 / 3, T2 * s / SQ3)  # Σ|ΔM| = 0.6, 0.8, 0.6
        ci(d, "drift_mean_scaled_step", 2 / 3 / 4, T2 * s / 4 / SQ3)
        assert d["drift_mean_scaled_init_final_mean"] == pytest.approx((0.4 + 0.8 + 0.6) / 3)
    e = one(tables["drift"], norm="none", lr=0.1, layer="hidden2", site="norm_eval")
    assert e["drift_mean_scaled_total_mean"] == pytest.approx(0.4 * 2 / 3)
    # Diverged seed 1 of none lr 1: M = 0, 2, 4, blank -> Σ = 4 over its finite steps, like seed 0's.
    d = one(tables["drift"], norm="none", lr=1.0, layer="hidden1", site="linear")
    ci(d, "drift_mean_scaled_total", 4.0, 0.0)
    assert d["drift_mean_scaled_step_mean"] == pytest.approx((1.0 + 2.0) / 2)
    assert d["drift_mean_scaled_init_final_mean"] == pytest.approx(4.0)


def test_runs_recorded_before_the_scale_free_drift_still_compare(tmp_path):
    """Older run folders: three sites, no drift_mean_scaled/_init, no dead_units: blank, not an error."""
    tables = compare.build(find_runs(write_runs(tmp_path, legacy=True)), target=0.8)
    assert "norm_eval" not in set(tables["drift"]["site"])
    assert tables["drift"]["drift_mean_scaled_total_mean"].isna().all()
    assert tables["layer_curves"]["dead_units_mean"].isna().all()
    ci(one(tables["drift"], norm="none", lr=0.1, layer="hidden1", site="norm"),
       "drift_mean_total", 1 / 3, T2 * math.sqrt((2 * (1 / 30) ** 2 + (1 / 15) ** 2) / 2) / SQ3)
    h = compare.headline(tables)
    assert h["drift_linear_scaled"].isna().all() and h["drift_norm_eval_scaled"].isna().all()
    assert h["final_test_acc_mean"].notna().all()


# --------------------------------------------------------------------------- gradient stability


def test_gradient_norm_mean_cv_and_spikes(tables):
    g = one(tables["gradient_stability"], norm="none", lr=0.1, layer="hidden1")
    ci(g, "grad_norm_mean", 2.5, T2 * 0.5 / SQ3)  # means of [1,1,1,5], [1,2,3,4], [2,1,7,2]
    cvs = [math.sqrt(3) / 2, math.sqrt(1.25) / 2.5, math.sqrt(5.5) / 3]
    assert g["grad_norm_cv_mean"] == pytest.approx(sum(cvs) / 3)
    # spikes: 5 > 3·median(1,1,1,5)=3 (1 of 4); none in 1,2,3,4; 7 > 3·median(2,1,7)=6 (1 of 4)
    assert g["spike_frac_mean"] == pytest.approx((0.25 + 0 + 0.25) / 3)
    h2 = one(tables["gradient_stability"], norm="none", lr=0.1, layer="hidden2")
    assert h2["grad_norm_mean_mean"] == pytest.approx((2 / 2 + 2.5 / 3 + 3 / 4) / 3)
    assert h2["grad_norm_cv_mean"] == pytest.approx(g["grad_norm_cv_mean"])  # scale-free
    out = one(tables["gradient_stability"], norm="none", lr=0.1, layer="output")
    assert out["grad_norm_mean_mean"] == pytest.approx(2.5 / 4)


def test_gradient_ratio_first_last_is_per_configuration(tables):
    gs = tables["gradient_stability"]
    rows = gs[(gs["norm"] == "none") & (gs["lr"] == 0.1)]
    assert len(rows) == 3  # hidden1, hidden2, output: the ratio is repeated on each
    for _, r in rows.iterrows():
        ci(r, "grad_ratio_first_last", 3.0, T2 * 1.0 / SQ3)  # R = 2, 3, 4


def test_gradient_stability_skips_non_finite_norms(tables):
    g = one(tables["gradient_stability"], norm="none", lr=1.0, layer="hidden1")
    # seed 0: [1,1,1,1]; diverged seed 1: [1, 2, inf] -> [1, 2]
    assert g["grad_norm_mean_mean"] == pytest.approx((1 + 1.5) / 2)
    assert g["grad_norm_cv_mean"] == pytest.approx((0 + 0.5 / 1.5) / 2)


def test_gradient_jitter_is_the_spread_around_a_running_median(tables):
    g = one(tables["gradient_stability"], norm="none", lr=0.1, layer="hidden1")
    s = math.sqrt(sum((j - sum(JITTER_NONE_01) / 3) ** 2 for j in JITTER_NONE_01) / 2)
    ci(g, "grad_norm_jitter", sum(JITTER_NONE_01) / 3, T2 * s / SQ3)
    for layer in ("hidden2", "output"):  # G / R and G / 4: scale-free, so the same
        other = one(tables["gradient_stability"], norm="none", lr=0.1, layer=layer)
        assert other["grad_norm_jitter_mean"] == pytest.approx(g["grad_norm_jitter_mean"])
    # none lr 1: seed 0 constant (0); diverged seed 1 keeps [1, 2]: median ln√2, r = ∓ln2/2
    d = one(tables["gradient_stability"], norm="none", lr=1.0, layer="hidden1")
    assert d["grad_norm_jitter_mean"] == pytest.approx((0 + LN2 / 2) / 2)


def test_gradient_jitter_ignores_a_smooth_decay_that_inflates_the_cv():
    """g = 2^-t, t = 0..9: ln g is a line, so a centred median is the centre value except at the
    edges (window cut): r = ln2, ln2/2, 0 × 6, -ln2/2, -ln2, std ln2/2, while the CV is > 1."""
    decay = 2.0 ** -np.arange(10)
    assert compare._jitter(decay) == pytest.approx(LN2 / 2)
    assert compare._jitter(7.0 * decay) == pytest.approx(LN2 / 2)  # scale-free
    assert decay.std() / decay.mean() > 1.0
    # A steady series with one spike: r = 0, 0, 0, ln5 -> std ln5·√3/4; zeros are left out.
    assert compare._jitter(np.array([1.0, 1.0, 1.0, 5.0])) == pytest.approx(LN5 * SQ3 / 4)
    assert compare._jitter(np.array([1.0, 0.0, 1.0, 1.0, 5.0])) == pytest.approx(LN5 * SQ3 / 4)
    assert math.isnan(compare._jitter(np.array([3.0])))


# --------------------------------------------------------------------------- lr tolerance


def test_lr_tolerance(tables):
    t = tables["lr_tolerance"]
    assert list(t["norm"]) == ["none", "batch"] and "lr" not in t.columns
    none = one(t, norm="none")
    assert none["best_acc"] == pytest.approx(0.82) and none["threshold"] == pytest.approx(0.738)
    # lr 1 is below threshold and has a diverged seed
    assert (none["max_stable_lr"], none["min_good_lr"], none["good_range_decades"]) == (0.1, 0.1, 0.0)
    assert none["stable_lr_vs_none"] == 1.0 and none["acc_by_lr"] == "0.1=0.8200 1=0.3750(div1/2)"
    batch = one(t, norm="batch")
    assert batch["best_acc"] == pytest.approx(0.95) and batch["best_lr"] == 1.0
    assert batch["threshold"] == pytest.approx(0.855)
    # lr 0.01 (0.80) is below 0.855; lr 0.1 (0.91) and 1 (0.95) are good
    assert (batch["n_lrs"], batch["n_good_lrs"]) == (3, 2)
    assert (batch["max_stable_lr"], batch["min_good_lr"]) == (1.0, 0.1)
    assert batch["good_range_decades"] == pytest.approx(1.0)
    assert batch["stable_lr_vs_none"] == pytest.approx(10.0)


def test_lr_tolerance_follows_the_tolerance(sweep):
    t = compare.build(find_runs(sweep), tolerance=0.97)["lr_tolerance"]
    batch = one(t, norm="batch")  # threshold 0.9215: only lr 1
    assert (batch["n_good_lrs"], batch["min_good_lr"], batch["good_range_decades"]) == (1, 1.0, 0.0)


def test_lr_tolerance_is_blank_when_one_lr_was_swept(sweep):
    t = compare.build([r for r in find_runs(sweep) if r.config["config"]["lr"] == 0.1])["lr_tolerance"]
    for _, r in t.iterrows():
        assert r["n_lrs"] == 1 and r["n_good_lrs"] == 1
        for col in ("max_stable_lr", "min_good_lr", "good_range_decades", "stable_lr_vs_none"):
            assert math.isnan(r[col]), col


# --------------------------------------------------------------------------- best lr, held out


def test_best_lr_on_the_fixture(tables):
    b = tables["best_lr"]
    assert list(b.columns) == ["model", "norm", "batch_size", "n_seeds", "seeds", "n_lrs", "lrs_chosen",
                               "final_test_acc_mean", "final_test_acc_ci_low", "final_test_acc_ci_high",
                               "final_loss_drop_mean", "final_loss_drop_ci_low", "final_loss_drop_ci_high",
                               "note"]
    # none: lr 1 has a diverged seed 1, so only the fold without seed 1 could pick it, and its
    # 0.40 loses to 0.82: lr 0.1 for every held-out seed, scores 0.80, 0.82, 0.84.
    none = one(b, norm="none")
    assert (none["n_seeds"], none["seeds"], none["lrs_chosen"]) == (3, "0 1 2", "0.1 0.1 0.1")
    ci(none, "final_test_acc", 0.82, T2 * 0.02 / SQ3)
    # batch: seed 0 held out -> seed 1 has lrs 0.1 (0.90), 1 (0.96): lr 1, seed 0 scores 0.94;
    # seed 1 held out -> seed 0: 0.80, 0.92, 0.94: lr 1, seed 1 scores 0.96. Incomplete seed 2 is out.
    batch = one(b, norm="batch")
    assert (batch["n_seeds"], batch["n_lrs"], batch["lrs_chosen"]) == (2, 3, "1 1")
    ci(batch, "final_test_acc", 0.95, T1 * (0.02 / SQ2) / SQ2)
    assert b["note"].isna().all()


def runs_table(rows):
    """A `runs` table from (lr, seed, status, final_test_acc) of one model × norm."""
    return pd.DataFrame([dict(model="mlp", norm="batch", lr=lr, batch_size=60, seed=seed, status=status,
                              final_test_acc=acc) for lr, seed, status, acc in rows])


def test_best_lr_chooses_on_the_other_seeds_only():
    """lr 1 is steady (0.85); lr 3 is good for seeds 0, 2 only; lr 10 is good for seeds 0, 1 and
    diverges for seed 2 (last finite accuracy 0.10). Chosen on the other seeds:
    hold out 0 -> {1, 2}: lr 1 0.85, lr 3 0.80, lr 10 has a diverged seed -> lr 1, score 0.85;
    hold out 1 -> {0, 2}: lr 1 0.85, lr 3 0.925, lr 10 diverged -> lr 3, score 0.70;
    hold out 2 -> {0, 1}: lr 1 0.85, lr 3 0.825, lr 10 0.90 -> lr 10, score 0.10.
    Choosing on all seeds and reporting them would give lr 3 at 0.85 (or lr 10 at 0.63)."""
    runs = runs_table([(1, s, "completed", 0.85) for s in (0, 1, 2)]
                      + [(3, 0, "completed", 0.95), (3, 1, "completed", 0.70), (3, 2, "completed", 0.90),
                         (10, 0, "completed", 0.90), (10, 1, "completed", 0.90), (10, 2, "diverged", 0.10),
                         (30, 2, "interrupted", 0.99)])
    r = compare.best_lr(runs).iloc[0]
    assert (r["n_seeds"], r["seeds"], r["n_lrs"], r["lrs_chosen"]) == (3, "0 1 2", 3, "1 3 10")
    s = pstd([0.85, 0.70, 0.10]) * math.sqrt(3 / 2)
    ci(r, "final_test_acc", 0.55, T2 * s / SQ3)


def test_best_lr_ties_go_to_the_smaller_lr_and_one_seed_says_so():
    tie = runs_table([(lr, s, "completed", 0.9) for lr in (0.3, 0.1) for s in (0, 1)])
    assert compare.best_lr(tie).iloc[0]["lrs_chosen"] == "0.1 0.1"
    one = compare.best_lr(runs_table([(0.1, 0, "completed", 0.9), (1.0, 0, "completed", 0.95)])).iloc[0]
    assert one["n_seeds"] == 1 and one["note"] == "one seed: no other seeds to choose the lr on"
    assert pd.isna(one["lrs_chosen"]) and math.isnan(one["final_test_acc_mean"])
    assert math.isnan(one["final_test_acc_ci_low"])


def test_lr_curve_is_long(tables):
    c = tables["lr_curve"]
    assert len(c) == 5
    r = one(c, norm="none", lr=1.0)
    assert (r["n_seeds"], r["n_diverged"]) == (2, 1)
    assert r["final_test_acc_mean"] == pytest.approx(0.375)


# --------------------------------------------------------------------------- step tables


def test_step_tables(tables):
    c = one(tables["curves"], norm="none", lr=0.1, step=10)
    ci(c, "test_acc", 0.5, T2 * 0.05 / SQ3)
    # The diverged seed has a row at step 30 with blank accuracy: counted as a run, not in the mean.
    c = one(tables["curves"], norm="none", lr=1.0, step=30)
    assert (c["n_seeds"], c["test_acc_mean"]) == (2, pytest.approx(0.5))
    assert math.isnan(c["test_acc_ci_low"])
    assert one(tables["curves"], norm="none", lr=1.0, step=40)["n_seeds"] == 1
    lc = one(tables["layer_curves"], norm="none", lr=0.1, layer="hidden1", site="norm", step=20)
    assert lc["mean_mean"] == pytest.approx((0.25 + 0.2 + 0.15) / 3)
    assert lc["drift_mean_mean"] == pytest.approx(0.5 * (0.3 + 0 + 0.2) / 3)
    assert math.isnan(one(tables["layer_curves"], norm="none", lr=0.1, layer="hidden1",
                          site="norm", step=0)["drift_mean_mean"])
    lc = one(tables["layer_curves"], norm="none", lr=0.1, layer="hidden1", site="linear", step=20)
    assert lc["drift_mean_scaled_mean"] == pytest.approx((0.3 + 0 + 0.2) / 3)  # |ΔM| at step 20
    assert one(tables["layer_curves"], norm="none", lr=0.1, layer="hidden2", site="act",
               step=30)["dead_units_mean"] == 3  # the 4th log step
    g = one(tables["grad_curves"], norm="none", lr=0.1, layer="hidden1", step=40)
    assert g["grad_norm_mean"] == pytest.approx((5 + 4 + 2) / 3)


def test_percentiles_are_per_seed_never_averaged(tables):
    """Unit 1 of seed 0 and unit 1 of seed 1 are different units: one row each, as recorded."""
    pct = tables["percentiles"]
    assert "seed" in pct.columns and "p50_mean" not in pct.columns
    # hidden2 norm site: p50 = 2·0.5·M_40 + 0.1 for unit 1, M_40 = 0.4, 0.8, 0.6 for seeds 0, 1, 2
    for seed, m in ((0, 0.4), (1, 0.8), (2, 0.6)):
        p = one(pct, norm="none", lr=0.1, seed=seed, layer="hidden2", site="norm", unit=1, step=40)
        assert (p["p15"], p["p50"], p["p85"]) == pytest.approx((m - 0.9, m + 0.1, m + 1.1))
    assert set(pct["unit"]) == {0, 1}  # untracked unit 2 has no percentiles
    assert set(pct.loc[pct["norm"] == "batch", "seed"]) == {0, 1}  # incomplete seed 2 left out
    assert list(pct["site"].drop_duplicates()) == ["linear", "norm", "act", "norm_eval"]




LN2, LN3, LN5, LN7 = math.log(2), math.log(3), math.log(5), math.log(7)


def pstd(values):
    """Population standard deviation (ddof 0)."""
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


# Residuals r = ln g - centred running median (window 5, fewer at the edges) of none lr 0.1, hidden1:
# G = 1,1,1,5: medians 0,0,0,0; G = 1,2,3,4: medians ln2, ln√6, ln√6, ln3; G = 2,1,7,2: all ln2.
JITTER_NONE_01 = [pstd([0, 0, 0, LN5]),
                  pstd([-LN2, LN2 - math.log(6) / 2, LN3 - math.log(6) / 2, math.log(4) - LN3]),
                  pstd([0, -LN2, LN7 - LN2, 0])]


def test_headline_compares_every_norm_at_one_matched_lr(tables):
    """Common lrs 0.1 and 1; at 1 none has a diverged seed, so lr 0.1 (mean accuracy (0.82 + 0.91) / 2)."""
    h = compare.headline(tables)
    assert list(h["norm"]) == ["none", "batch"] and list(h["lr"]) == [0.1, 0.1]
    assert list(h["lr_rule"]) == ["matched: best mean over norms"] * 2
    none, batch = h.iloc[0], h.iloc[1]
    assert (none["n_seeds"], none["n_diverged"], none["max_stable_lr"]) == (3, 0, 0.1)
    ci(none, "final_test_acc", 0.82, T2 * 0.02 / SQ3)
    ci(batch, "final_test_acc", 0.91, T1 * (0.02 / SQ2) / SQ2)
    assert (batch["n_seeds"], batch["max_stable_lr"]) == (2, 1.0)
    # drift_mean_scaled = f|ΔM|, the same in both hidden layers: mean over layers of Σ|ΔM| per seed
    assert none["drift_linear_scaled"] == pytest.approx((0.6 + 0.8 + 0.6) / 3)
    assert none["drift_norm_eval_scaled"] == pytest.approx(0.4 * (0.6 + 0.8 + 0.6) / 3)
    assert batch["drift_linear_scaled"] == pytest.approx((0.03 + 0.05) / 2)
    assert batch["drift_norm_eval_scaled"] == pytest.approx(0.4 * (0.03 + 0.05) / 2)
    assert none["grad_norm_cv"] == pytest.approx(
        (math.sqrt(3) / 2 + math.sqrt(1.25) / 2.5 + math.sqrt(5.5) / 3) / 3)
    assert none["grad_norm_jitter"] == pytest.approx(sum(JITTER_NONE_01) / 3)  # every layer alike
    assert (batch["grad_norm_cv"], batch["grad_norm_jitter"]) == (0.0, 0.0)
    assert "drift_norm_total" not in h.columns


def test_headline_lr_rule_prefers_lrs_where_no_norm_diverged(tables):
    # none at lr 1 made the most accurate: (0.99 + 0.95) / 2 > 0.865, but a none seed diverged there.
    t = {**tables, "summary": tables["summary"].copy()}
    s = t["summary"]
    s.loc[(s["norm"] == "none") & (s["lr"] == 1.0), "final_test_acc_mean"] = 0.99
    assert set(compare.headline(t)["lr"]) == {0.1}
    # Without the divergence lr 1 wins.
    s.loc[(s["norm"] == "none") & (s["lr"] == 1.0), "n_diverged"] = 0
    assert set(compare.headline(t)["lr"]) == {1.0}
    # When every common lr has a diverged seed, the best of all of them is taken.
    s.loc[(s["norm"] == "none") & (s["lr"] == 1.0), "n_diverged"] = 1
    s.loc[(s["norm"] == "batch") & (s["lr"] == 0.1), "n_diverged"] = 1
    assert set(compare.headline(t)["lr"]) == {1.0}


def test_headline_lr_ignores_lrs_that_not_every_norm_has(tables):
    """batch at lr 0.01 reaches 0.80, but none has no lr 0.01: never a candidate."""
    t = {**tables, "summary": tables["summary"].copy()}
    s = t["summary"]
    s.loc[(s["norm"] == "batch") & (s["lr"] == 0.01), "final_test_acc_mean"] = 1.0
    assert set(compare.headline(t)["lr"]) == {0.1}
    # No lr common to all norms (none: 1; batch: 0.01, 0.1): the lrs most norms have, here every lr
    # (one norm each); lr 1 has a diverged seed, and batch's edited 1.0 at lr 0.01 beats 0.91.
    alone = s[~((s["norm"] == "none") & (s["lr"] == 0.1)) & ~((s["norm"] == "batch") & (s["lr"] == 1.0))]
    h = compare.headline({**tables, "summary": alone})
    assert list(h["lr"]) == [0.01, 0.01] and "no lr common" in h["lr_rule"].iloc[0]
    none = h.iloc[0]
    assert (none["norm"], none["n_seeds"]) == ("none", 0) and math.isnan(none["final_test_acc_mean"])


def test_headline_at_a_given_lr_and_with_one_lr(tables, sweep):
    h = compare.headline(tables, lr=1.0)
    assert list(h["lr_rule"]) == ["given", "given"] and list(h["n_diverged"]) == [1, 0]
    h = compare.headline(tables, lr=0.01)  # none has no lr 0.01: its row stays, blank
    assert list(h["n_seeds"]) == [0, 1] and math.isnan(h.iloc[0]["final_test_acc_mean"])
    with pytest.raises(IcsError, match=r"lr 5 has no finished runs; the lrs with runs are: 0.01, 0.1, 1"):
        compare.headline(tables, lr=5.0)
    one = compare.build([r for r in find_runs(sweep) if r.config["config"]["lr"] == 1.0])
    h = compare.headline(one)
    assert list(h["lr_rule"]) == ["only lr", "only lr"]
    assert h["max_stable_lr"].isna().all()  # one lr swept: no tolerance to speak of


# --------------------------------------------------------------------------- files


def test_write_load_round_trip_and_bytes_are_deterministic(tables, sweep, tmp_path):
    paths = files.write_tables(tables, tmp_path / "a")
    assert [p.name for p in paths] == [f"{n}.csv" for n in ALL_TABLE_NAMES]
    loaded = outputs.load(tmp_path / "a")
    for name, table in tables.items():
        pd.testing.assert_frame_equal(loaded[name], table, check_dtype=False, rtol=1e-8)
    pd.testing.assert_frame_equal(compare.headline(loaded), compare.headline(tables),
                                  check_dtype=False, rtol=1e-8)
    again = files.write_tables(compare.build(list(reversed(find_runs(sweep))), target=0.8), tmp_path / "b")
    for a, b in zip(paths, again):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert not list((tmp_path / "a").glob(".*.tmp"))


def test_errors_are_one_line(tmp_path):
    with pytest.raises(IcsError, match=r"no run folders under .*; run `ics train` or `ics sweep` first"):
        runs_under(tmp_path)
    with pytest.raises(IcsError, match="no run folders"):
        compare.build([])
    with pytest.raises(IcsError, match="no compare tables"):
        outputs.load(tmp_path)


@pytest.mark.parametrize("option", [{"tolerance": 0.0}, {"tolerance": 1.5}, {"target": 2.0}])
def test_out_of_range_target_or_tolerance_is_refused(sweep, option):
    with pytest.raises(IcsError, match=f"--{next(iter(option))} must be"):
        compare.build(find_runs(sweep), **option)


def test_only_incomplete_runs_give_counts_and_no_numbers(tmp_path, sweep):
    only = tmp_path / "only"
    for p in sweep.iterdir():
        if "lr1-bs60-s2" in p.name:
            shutil.copytree(p, only / p.name)
    tables = compare.build(find_runs(only))
    r = tables["summary"].iloc[0]
    assert (r["n_seeds"], r["n_incomplete"]) == (0, 1) and math.isnan(r["final_test_acc_mean"])
    assert tables["curves"].empty and tables["lr_tolerance"].empty


def test_interrupted_runs_are_counted_not_aggregated(tmp_path):
    sweep = write_runs(tmp_path)
    target = next(p for p in sweep.iterdir() if "batch-sigmoid-lr0.1-bs60-s1" in p.name)
    summary = json.loads((target / "summary.json").read_text())
    (target / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    r = one(compare.build(find_runs(sweep))["summary"], norm="batch", lr=0.1)
    assert (r["n_seeds"], r["n_completed"], r["n_interrupted"], r["seeds"]) == (1, 1, 1, "0")
    assert r["final_test_acc_mean"] == pytest.approx(0.92)  # seed 0 alone
