"""Falsifiability of `ics meta` (analyse/predictors.py, analyse/ranks.py): synthetic run tables built so
that a measure truly predicts, only tracks the lr, or is noise, and the verdicts must say so; the controls
must catch a broken machine; the granulated τ equals a hand computation; the CMI's permutation null
removes the plug-in bias. Then the command on folders written by the fixtures (no training)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ics_cli.analyse import predictors as p, ranks
from ics_cli.cli import main

from expect import error_line
from fixtures_runs import RUNS, write_runs

FAST = dict(replicates=300, permutations=200)
CONTEXT = ["model", "batch_size"]


def world(seed: int = 0, models=("mlp", "cnn", "resmlp", "deep"), norms=8, lrs=8, seeds=3,
          loss_noise: float = 0.05) -> pd.DataFrame:
    """A run table: accuracy = the norm's quality + a hump in log lr + seed noise; `drift_mean_linear` is
    minus the norm's quality plus small noise (lower drift, better norm); `drift_var_linear` is log lr plus
    noise; `drift_mean_norm_eval` is noise; early training loss (the positive control) falls with accuracy,
    blurred by `loss_noise` (about half the spread of the norms' quality: a real but imperfect control)."""
    rng = np.random.default_rng(seed)
    rows = []
    log_lrs = np.linspace(-3, 0.5, lrs)
    for model in models:
        quality = rng.normal(0, 1, norms)
        for n in range(norms):
            for log_lr in log_lrs:
                for s in range(seeds):
                    acc = 0.1 * quality[n] - 0.05 * (log_lr + 1.2) ** 2 + rng.normal(0, 0.01)
                    rows.append(dict(model=model, norm=f"n{n}", lr=10 ** log_lr, batch_size=60, seed=s,
                                     final_acc=acc, steps_to_target=100 - 100 * acc, diverged=0.0,
                                     drift_mean_linear=-quality[n] + rng.normal(0, 0.1),
                                     drift_var_linear=log_lr + rng.normal(0, 0.1),
                                     drift_mean_norm_eval=rng.normal(0, 1),
                                     early_train_loss=-acc + rng.normal(0, loss_noise)))
    table = pd.DataFrame(rows)
    for c in p.MEASURES:
        if c.name not in table:
            table[c.name] = np.nan
    table["log_lr"] = np.log10(table["lr"])
    table["shuffled"] = table["early_train_loss"].to_numpy()[rng.permutation(len(table))]
    table["edge"] = np.nan
    table.attrs["key"] = ["model", "norm", "lr", "batch_size"]
    return table


def verdict(table: pd.DataFrame, measure: str, outcome: str = "final_acc") -> tuple[str, str]:
    rivals = {}
    for k in p.CONFOUNDERS:
        if k != measure and np.isfinite(table[k].to_numpy(float)).any():
            t = p.measure_stats(table, CONTEXT, k, outcome, **FAST).tau_norm.value
            if math.isfinite(t):
                rivals[k] = abs(t)
    return p.decide(p.measure_stats(table, CONTEXT, measure, outcome, **FAST), rivals)


def test_a_measure_that_ranks_norms_at_fixed_lr_predicts():
    v, reason = verdict(world(), "drift_mean_linear")
    assert v == p.PREDICTS, reason


def test_a_measure_that_only_tracks_the_lr_does_not_predict():
    v, reason = verdict(world(), "drift_var_linear")
    assert v in (p.PROXY, p.NO), reason


def test_noise_does_not_predict():
    v, reason = verdict(world(), "drift_mean_norm_eval")
    assert v == p.NO, reason


@pytest.mark.parametrize("seed", range(5))
def test_the_shuffled_control_never_predicts(seed):
    table = world(seed, models=("mlp", "cnn"), norms=6, lrs=6)
    for outcome in ("final_acc", "steps_to_target"):
        assert verdict(table, "shuffled", outcome)[0] != p.PREDICTS


def test_the_controls_pass_on_a_sound_world_and_a_broken_positive_control_fails_every_verdict():
    table = world(models=("mlp", "cnn"), norms=6, lrs=6)
    _, verdicts, problem = p.analyse(table, 0.1, **FAST)
    assert problem is None
    assert (verdicts.set_index(["measure", "outcome"]).loc[("early_train_loss", "final_acc"), "verdict"]
            == p.PREDICTS)
    broken = table.copy()
    broken["early_train_loss"] = np.random.default_rng(1).normal(size=len(broken))   # no longer tracks accuracy
    _, verdicts, problem = p.analyse(broken, 0.1, **FAST)
    assert problem and "early_train_loss" in problem
    assert (verdicts["verdict"] == p.FAILED).all()
    assert verdicts["reason"].str.startswith("machinery failed").all()


def test_a_shuffled_control_that_predicts_fails_the_machinery():
    table = world(models=("mlp", "cnn"), norms=6, lrs=6)
    table["shuffled"] = table["early_train_loss"]          # a "shuffle" that shuffled nothing
    _, verdicts, problem = p.analyse(table, 0.1, **FAST)
    assert problem and "shuffled" in problem
    assert (verdicts["verdict"] == p.FAILED).all()


def test_a_measure_absent_everywhere_is_reported_not_recorded():
    _, verdicts, _ = p.analyse(world(models=("mlp",), norms=4, lrs=4), 0.1, **FAST)
    rows = verdicts[verdicts["measure"] == "grad_ics_rel"]
    assert len(rows) == len(p.OUTCOMES) and (rows["unchecked_verdict"] == p.NOT_RECORDED).all()


def test_tau_b_is_scipys():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 9))
        x, y = rng.integers(0, 4, n).astype(float), rng.integers(0, 3, n).astype(float)
        ours, theirs = ranks.tau_b(x, y), stats.kendalltau(x, y).statistic
        assert (math.isnan(ours) and math.isnan(theirs)) or ours == pytest.approx(theirs, abs=1e-12)


def test_granulated_tau_by_hand():
    # lr 0.1: measure 1, 2, 3 and outcome 1, 3, 2 over norms a, b, c: pairs ab, ac concordant, bc
    # discordant, τ = (2 − 1)/3. lr 1: both 1, 2, 3: τ = 1. Ψ = (1/3 + 1)/2 = 2/3. Two seeds with the
    # same values: every bootstrap replicate is the same, the interval is the point.
    rows = []
    for lr, m, y in ((0.1, (1, 2, 3), (1, 3, 2)), (1.0, (1, 2, 3), (1, 2, 3))):
        for norm, mv, yv in zip("abc", m, y):
            for seed in (0, 1):
                rows.append(dict(model="mlp", lr=lr, norm=norm, seed=seed, m=float(mv), y=float(yv)))
    g = ranks.granulated(pd.DataFrame(rows), ["model", "lr"], "norm", "m", "y", replicates=50)
    assert g.value == pytest.approx(2 / 3)
    assert (g.ci_low, g.ci_high) == pytest.approx((2 / 3, 2 / 3))
    assert g.n == 2 and g.pairs == 6 and g.seeds == 2
    assert sorted(t for _, t, _ in g.per_cell) == pytest.approx([1 / 3, 1])
    # Seed means decide: norm c's seeds average to 2.5 > b's 2 in the measure at lr 0.1.
    frame = pd.DataFrame(rows)
    frame.loc[(frame.lr == 0.1) & (frame.norm == "c") & (frame.seed == 1), "m"] = 2.0   # means: 1, 2, 2.5
    assert ranks.granulated(frame, ["model", "lr"], "norm", "m", "y", replicates=10).value == pytest.approx(2 / 3)


def test_cmi_null_removes_the_plug_in_bias():
    rng = np.random.default_rng(3)
    plug_in, excess, ps = [], [], []
    for _ in range(20):
        t = pd.DataFrame(dict(lr=np.repeat([0.1, 0.3, 1.0], 12), m=rng.normal(size=36), y=rng.normal(size=36)))
        c = ranks.cmi(t, ["lr"], "m", "y", permutations=200, seed=int(rng.integers(1 << 30)))
        plug_in.append(c.value)
        excess.append(c.excess)
        ps.append(c.p)
    # The plug-in estimate of an independent pair is biased upwards (about (3 − 1)² / (2 · 12) = 0.17 nats
    # with terciles in strata of 12); minus the null's mean it is 0 within 3 standard errors.
    assert np.mean(plug_in) > 0.1
    assert abs(np.mean(excess)) < 3 * np.std(excess, ddof=1) / math.sqrt(len(excess))
    assert np.mean(np.array(ps) < 0.05) <= 0.2
    t = pd.DataFrame(dict(lr=np.repeat([0.1, 0.3, 1.0], 12), m=np.arange(36.0)))
    t["y"] = t["m"] + rng.normal(0, 0.5, 36)
    strong = ranks.cmi(t, ["lr"], "m", "y", permutations=200)
    assert strong.excess > 0.3 and strong.p < 0.01


def test_sign_error_ignores_pairs_within_seed_noise():
    t = pd.DataFrame(dict(model="mlp", lr=0.1, norm=list("aabbcc"), seed=[0, 1] * 3,
                          m=[1, 1, 2, 2, 3, 3.0], y=[0.5, 0.5, 0.9, 0.9, 0.2, 0.2]))
    [e] = ranks.sign_errors(t, ["model", "lr"], "norm", "m", "y", 1.0, noise_sd=0.0)
    assert e.pairs == 3 and e.value == pytest.approx(2 / 3)     # ab right; ac, bc wrong
    [e] = ranks.sign_errors(t, ["model", "lr"], "norm", "m", "y", 1.0, noise_sd=0.3)
    assert e.pairs == 1 and e.value == 1.0      # only bc (Δ 0.7) is beyond 2 × 0.3 × 1 = 0.6


# --------------------------------------------------------------------------- the command


def test_ics_meta_writes_its_outputs(tmp_path, capsys):
    sweep = write_runs(tmp_path)
    # The fixture logs at steps 0, 10, ... of 40: a window of half the run holds two log steps.
    assert main(["meta", str(sweep), "--out", str(tmp_path / "meta"), "--window", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "Predictors of final_acc" in out and "controls:" in out
    names = {f.name for f in (tmp_path / "meta").iterdir()}
    assert {"predictors.csv", "verdicts.csv", "predictor_runs.csv"} <= names
    assert any(n.startswith("forest_") and n.endswith(".png") for n in names)
    verdicts = pd.read_csv(tmp_path / "meta" / "verdicts.csv")
    assert set(verdicts["verdict"]) <= set(p.VERDICTS)
    assert (verdicts[verdicts["measure"] == "grad_ics_rel"]["unchecked_verdict"] == p.NOT_RECORDED).all()
    stats_rows = pd.read_csv(tmp_path / "meta" / "predictors.csv")
    assert list(stats_rows.columns) == p.STAT_COLUMNS
    assert set(stats_rows["role"]) == {p.MEASURE, p.CONFOUNDER, p.CONTROL}
    assert set(stats_rows["window"]) == {0.5, 0.02, 0.2}
    drift = verdicts[(verdicts["measure"] == "drift_mean_linear") & (verdicts["outcome"] == "final_acc")]
    assert np.isfinite(drift["tau_norm"]).all()


@pytest.mark.parametrize("keep, needle", [(lambda r: r["norm"] == "none", "1 norms (none); at least 2"),
                                          (lambda r: r["lr"] == 0.1, "1 learning rates (0.1); at least 2")])
def test_ics_meta_refuses_one_norm_or_one_lr(tmp_path, capsys, keep, needle):
    sweep = write_runs(tmp_path, [r for r in RUNS if keep(r)])
    error_line(main(["meta", str(sweep), "--out", str(tmp_path / "meta")]), capsys, needle)
    assert not (tmp_path / "meta").exists()


def test_a_measure_wrong_in_a_third_of_the_cells_predicts_on_average_only():
    table = world()
    log_lr = np.log10(table["lr"])
    cells = sorted({(m, round(l, 6)) for m, l in zip(table["model"], log_lr)})
    flipped = cells[::3]                                      # 11 of the 32 (model, lr) cells
    flip = pd.Series([(m, round(l, 6)) in flipped for m, l in zip(table["model"], log_lr)], index=table.index)
    table.loc[flip, "drift_mean_linear"] *= -1               # these cells order the norms backwards
    v, reason = verdict(table, "drift_mean_linear")
    assert v == p.ON_AVERAGE, reason
    assert "upper quartile 1.00" in reason
    one = world()
    one.loc[(one["model"] == "mlp") & np.isclose(np.log10(one["lr"]), -3), "drift_mean_linear"] *= -1
    v, reason = verdict(one, "drift_mean_linear")             # one bad cell of 32: every measure has some
    assert v == p.PREDICTS, reason


def test_partial_tau_by_hand():
    # One cell of five norms, one seed: the partial τ is Kendall's formula on the three τ_b.
    m, y, z = [1.0, 2, 3, 4, 5], [2.0, 1, 4, 3, 5], [1.0, 3, 2, 5, 4]
    t = pd.DataFrame(dict(model="mlp", lr=0.1, norm=list("abcde"), seed=0, m=m, y=y, z=z))
    g = ranks.partial(t, ["model", "lr"], "norm", "m", "y", ["z"], replicates=20)
    txy, txz, tyz = (stats.kendalltau(a, b).statistic for a, b in ((m, y), (m, z), (y, z)))
    assert g.value == pytest.approx((txy - txz * tyz) / math.sqrt((1 - txz ** 2) * (1 - tyz ** 2)))
    # A control that orders the outcome perfectly leaves nothing to add: 0, not undefined.
    t["z"] = t["y"]
    assert ranks.partial(t, ["model", "lr"], "norm", "m", "y", ["z"], replicates=20).value == 0


def test_beyond_the_early_loss_means_adding_to_it_not_echoing_it():
    # Accuracy = two qualities of the norm + a hump in log lr; the early loss sees the first quality and the
    # lr, the measure the second: each alone ranks the norms about as well, only the measure adds to the
    # loss. An echo of the loss ranks them as well as the loss does and adds nothing.
    rng = np.random.default_rng(5)
    rows = []
    for model in ("mlp", "cnn", "resmlp"):
        q1, q2 = rng.normal(0, 1, 8), rng.normal(0, 1, 8)
        for n in range(8):
            for log_lr in np.linspace(-3, 0, 6):
                for seed in range(3):
                    hump = -0.05 * (log_lr + 1.2) ** 2
                    rows.append(dict(model=model, norm=f"n{n}", lr=10 ** log_lr, batch_size=60, seed=seed,
                                     final_acc=0.1 * q1[n] + 0.07 * q2[n] + hump + rng.normal(0, 0.005),
                                     early_train_loss=-(0.1 * q1[n] + hump) + rng.normal(0, 0.005),
                                     drift_mean_linear=-q2[n] + rng.normal(0, 0.3)))
    table = pd.DataFrame(rows)
    table["drift_var_linear"] = table["early_train_loss"] + rng.normal(0, 1e-4, len(table))
    for c in p.MEASURES:
        if c.name not in table:
            table[c.name] = np.nan
    v, reason = verdict(table, "drift_mean_linear")
    assert v == p.PREDICTS and "partial τ" in reason, reason
    v, reason = verdict(table, "drift_var_linear")
    assert v == p.PROXY and "includes 0" in reason, reason


def test_a_measure_that_only_sees_the_edge_of_stability_is_a_proxy_of_it():
    # sharpness x lr orders the norms at each lr as the norms' quality does (the edge carries the signal);
    # a measure that is a blurred copy of it is a proxy of the edge, and sharpness itself (the same order as
    # the edge at a fixed lr) is not made a proxy of its own scale.
    table = world(models=("mlp", "cnn"), norms=6, lrs=6)
    rng = np.random.default_rng(2)
    table["edge"] = table["lr"] * np.exp(table["drift_mean_linear"])
    table["grad_jitter"] = table["edge"] * np.exp(rng.normal(0, 0.3, len(table)))
    table["sharpness"] = table["edge"] / table["lr"]
    _, verdicts, problem = p.analyse(table, 0.1, **FAST)
    assert problem is None
    rows = verdicts.set_index(["measure", "outcome"])
    row = rows.loc[("grad_jitter", "final_acc")]
    assert row["subset"] == p.CALM                     # decided at every lr, not on a subset chosen by sharpness
    assert row["verdict"] == p.PROXY and row["rival"] == "edge", row["reason"]
    assert rows.loc[("sharpness", "final_acc"), "verdict"] == p.PREDICTS, rows.loc[("sharpness", "final_acc"), "reason"]


def test_a_measure_that_is_the_norm_family_is_a_proxy_of_it():
    # Two families of four norms; the family sets most of the quality. A measure that reads only the family
    # (as eval-mode drift of batch-statistics norms does) ranks accuracy but not beyond the family label.
    table = world(models=("mlp", "cnn"), norms=8, lrs=4)
    family = table["norm"].str[1:].astype(int) < 4
    table["final_acc"] = table["final_acc"] + 0.5 * family
    table["early_train_loss"] = -table["final_acc"] + np.random.default_rng(3).normal(0, 0.3, len(table))
    table["batch_stats"] = family.astype(float)
    table["drift_var_norm_eval"] = family + np.random.default_rng(4).normal(0, 0.01, len(table))
    v, reason = verdict(table, "drift_var_norm_eval")
    assert v == p.PROXY, reason
    v, reason = verdict(table.assign(batch_stats=np.nan), "drift_var_norm_eval")
    assert v == p.PREDICTS, reason                      # without the family as a confounder it would "predict"


def test_a_measure_whose_direction_flips_with_the_architecture_does_not_predict():
    table = world(models=("mlp", "cnn", "resmlp"), norms=6, lrs=4)
    flip = table["model"] == "resmlp"
    table["grad_ics_rel"] = np.where(flip, -table["drift_mean_linear"], table["drift_mean_linear"])
    s = p.measure_stats(table, CONTEXT, "grad_ics_rel", "final_acc", **FAST)
    assert p.interval_ranks(s.tau_norm, s.label_p) == "yes" and [m for m, _, _ in s.against] == ["resmlp, 60"]
    v, reason = verdict(table, "grad_ics_rel")
    assert v == p.NO and "across architectures" in reason, reason
    v, reason = verdict(table, "drift_mean_linear")
    assert v == p.PREDICTS, reason


def test_a_value_fixed_per_configuration_is_not_read_as_ranking_by_the_seed_bootstrap():
    # One model, two lrs, four norms: a random value per configuration orders a cell's few norms by luck,
    # and the seed bootstrap (which holds configurations fixed) gives it a narrow interval; the norm-label
    # permutation null does not let it rank.
    table = world(models=("mlp",), norms=4, lrs=2, seed=5)
    configs = table.groupby(["norm", "lr"]).ngroup().to_numpy()
    for seed in range(200):
        values = np.random.default_rng(seed).normal(size=configs.max() + 1)
        table["sharpness"] = values[configs]
        s = p.measure_stats(table, CONTEXT, "sharpness", "final_acc", **FAST)
        if p.interval_ranks(s.tau_norm) == "yes":
            break
    else:
        pytest.fail("no random labelling ranked by the bootstrap alone")
    assert s.label_p >= p.LABEL_ALPHA and p.interval_ranks(s.tau_norm, s.label_p) == "open"
    v, reason = verdict(table, "sharpness")
    assert v == p.INCONCLUSIVE and "permutation" in reason, reason
    truth = p.measure_stats(world(models=("mlp",), norms=8, lrs=2, seed=5), CONTEXT, "drift_mean_linear",
                            "final_acc", **FAST)
    assert truth.label_p < p.LABEL_ALPHA                  # a measure that ranks eight norms passes it


def test_the_label_null_is_uniform_for_a_random_measure():
    table = world(models=("mlp", "cnn"), norms=5, lrs=3)
    configs = table.groupby(["model", "norm", "lr"]).ngroup().to_numpy()
    ps = []
    for seed in range(40):
        table["sharpness"] = np.random.default_rng(100 + seed).normal(size=configs.max() + 1)[configs]
        ps.append(ranks.label_null(table, CONTEXT + ["lr"], "norm", "sharpness", "final_acc", permutations=200))
    ps = np.array(ps)
    assert np.mean(ps < 0.05) <= 0.12               # a valid test: about 5% (ties make it conservative)
    assert 0.3 < np.median(ps) < 0.9 and ps.min() < 0.3   # and not a constant


def test_divergence_is_decided_on_runs_still_finite_at_the_windows_end():
    table = world(models=("mlp",), norms=3, lrs=2)
    table["alive"] = 1.0
    early = table.index[(table["norm"] == "n0") & (table["seed"] == 0)]
    table.loc[early, ["alive", "diverged"]] = [0.0, 1.0]         # n0 blew up inside the window, in one seed
    masks = p.subsets(table)
    n0 = (table["norm"] == "n0").to_numpy()
    assert not masks[p.LIVE][n0].any() and masks[p.LIVE][~n0].all()
    assert not masks[p.CALM][n0].any()
    assert p.DECIDED_ON["diverged"] == p.LIVE and p.DECIDED_ON["final_acc"] == p.CALM


def test_a_positive_control_need_only_rank_not_beat_the_confounders():
    table = world(models=("mlp", "cnn"), norms=6, lrs=6)
    found = {("early_train_loss", "final_acc"): p.measure_stats(table, CONTEXT, "early_train_loss", "final_acc", **FAST)}
    verdicts = pd.DataFrame([dict(measure="early_train_loss", outcome="final_acc", verdict=p.PROXY),
                             dict(measure="shuffled", outcome="final_acc", verdict=p.NO)])
    assert p.machinery(verdicts, table, found) is None          # a proxy that ranks: the machinery sees it
    reversed_ = table.assign(early_train_loss=-table["early_train_loss"])    # ranks, but the wrong way
    found = {("early_train_loss", "final_acc"): p.measure_stats(reversed_, CONTEXT, "early_train_loss", "final_acc",
                                                               **FAST)}
    assert "does not rank" in p.machinery(verdicts, table, found)


def test_sign_errors_over_too_few_pairs_do_not_count():
    few = ranks.SignError("cell with 3 pairs", 1.0, 3)
    many = ranks.SignError("cell with 10 pairs", 0.1, 10)
    s = p.Stats(n_runs=10, tau_norm=None, tau_lr=None, tau_raw=None, cmi=None, direction=1.0,
                sign=[few, many], outcome_varies=True, sign_lr=[])
    assert s.worst is many and s.sign_mean == pytest.approx(0.1)


# Every candidate the study reports, named: the same machinery decides each by its own column, so each
# is shown to come out "predicts" where its column ranks the norms and not where it is noise.
CANDIDATES = ["drift_mean_linear", "drift_var_linear", "drift_mean_norm_eval", "drift_var_norm_eval",
              "grad_ics_rel", "grad_ics_cos", "loss_band_rel", "grad_pred_rel", "beta_eff_lr", "sharpness",
              "grad_jitter", "effective_step", "early_grad_norm", "initial_sharpness_lr"]


@pytest.fixture(scope="module")
def ranked_world():
    return world()


@pytest.mark.parametrize("name", CANDIDATES)
def test_each_candidate_predicts_where_it_ranks_the_norms_and_not_where_it_is_noise(ranked_world, name):
    assert {c.name for c in p.MEASURES} >= set(CANDIDATES)
    table = ranked_world.copy()
    table[name] = table["drift_mean_linear"]                   # ranks the norms at every fixed lr
    v, reason = verdict(table, name)
    assert v == p.PREDICTS, reason
    table[name] = np.random.default_rng(7).normal(size=len(table))   # noise
    v, reason = verdict(table, name)
    assert v not in (p.PREDICTS, p.ON_AVERAGE), reason


def test_a_constant_averaged_over_different_seed_counts_is_a_tie_not_an_order():
    # log10(0.316...) averaged over 3 seeds and over 2 differs in the last bit: no τ, not ±1.
    v = math.log10(10 ** -0.5)
    three, two = np.mean([v, v, v]), (v + v) / 2
    assert ranks.order(three, two) == 0 and ranks.order(v, v + 1e-6) == -1
    rows = [dict(model="m", lr=0.3, norm=n, seed=s, x=v, y=float(i)) for i, n in enumerate("abc")
            for s in range(3 if n != "b" else 2)]
    g = ranks.granulated(pd.DataFrame(rows), ["model", "lr"], "norm", "x", "y", replicates=20)
    assert math.isnan(g.value)


def test_the_edge_subsets_keep_whole_configurations():
    table = world(models=("mlp",), norms=3, lrs=2)
    table["edge"] = 0.5
    one = table.index[(table["norm"] == "n0") & (table["seed"] == 1)]
    table.loc[one, "edge"] = 3.0                          # one seed of n0's configurations at the edge
    table.loc[table.index[(table["norm"] == "n1") & (table["seed"] == 2)][:1], "diverged"] = 1.0
    masks = p.subsets(table)
    n0, n1 = (table["norm"] == "n0").to_numpy(), (table["norm"] == "n1").to_numpy()
    assert not masks[p.BELOW][n0].any() and not masks[p.AT][n0].any()     # straddles: in neither
    lr0 = np.isclose(table["lr"], table["lr"].min())
    assert masks[p.BELOW][n1].all() and not masks[p.STABLE][n1 & lr0].any()   # a diverged seed takes its config
    assert masks[p.STABLE][n1 & ~lr0].all()


def test_the_run_table_reads_family_liveness_a_per_model_target_and_a_per_configuration_control(tmp_path):
    from dataclasses import replace

    from ics_cli.analyse.predictor_table import run_table
    from ics_cli.store.runs import runs_under

    runs = runs_under(write_runs(tmp_path))
    # The batch-norm runs become a second model (depth 3): each model is held to its own target.
    runs = [replace(r, config={**r.config, "config": {**r.config["config"], "depth": 3}})
            if r.config["config"]["norm"] == "batch" else r for r in runs]
    table = run_table(runs, 0.5).set_index(["norm", "lr", "seed"])
    # none: best configuration (lr 0.1) mean 0.82, target 0.738, first reached at step 30 by seed 0; a single
    # target for the grid (0.9 × 0.95, batch's best) would censor it at 2 × 40 steps.
    assert table.loc[("none", 0.1, 0), "steps_to_target"] == 30
    assert table.loc[("batch", 0.1, 0), "steps_to_target"] == 20          # batch: 0.9 × 0.95 = 0.855
    assert table.loc[("none", 0.1, 0), "batch_stats"] == 0 and table.loc[("batch", 0.1, 0), "batch_stats"] == 1
    # The run that diverged at step 30 was finite at the end of a window of 20 steps, not of 40.
    assert table.loc[("none", 1.0, 1), "diverged"] == 1 and table.loc[("none", 1.0, 1), "alive"] == 1
    assert run_table(runs, 1.0).set_index(["norm", "lr", "seed"]).loc[("none", 1.0, 1), "alive"] == 0
    assert (table.loc[("none", 0.1, 2), "alive"], table.loc[("batch", 1.0, 0), "alive"]) == (1, 1)
    # shuffled_config: one value per configuration, the configurations' means handed to other configurations.
    flat = table.reset_index()
    per_config = flat.groupby(["norm", "lr"])["shuffled_config"].nunique()
    assert (per_config == 1).all()
    means = flat.groupby(["norm", "lr"])["early_train_loss"].mean()
    given = flat.groupby(["norm", "lr"])["shuffled_config"].first()
    assert sorted(np.round(given, 9)) == sorted(np.round(means, 9)) and not np.allclose(given, means[given.index])
