"""santurkar2018: every claim fed a world where it holds (PASS) and one where it does not (FAIL), and the
study run end to end on a tiny protocol.

Worlds are run folders written with chosen numbers (tests/synthetic.py): metrics and layers.csv through
`write_run`, the second view's tables (grad_ics, landscape, sharpness) through `write_quantity`.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ics_cli.figures import draw
from ics_cli.studies import REGISTRY, run_study, santurkar2018 as st

from synthetic import HIDDEN, context, write_quantity, write_run

SEEDS = range(5)
N = 11                                   # logged steps 0, 100, ..., 1000
STEPS = [100 * k for k in range(N)]
RISING = [0.1, 0.5, 0.7, 0.8, 0.85, 0.88, 0.9, 0.91, 0.92, 0.93, 0.94]
SLOW = [0.1, 0.2, 0.3, 0.45, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92]


def jitter(seed: int) -> float:
    return 0.004 * ((seed * 7) % 5 - 2)


def group(tmp_path, name: str, spec: dict, lrs=(0.5,)) -> list:
    """Runs of one group: spec maps norm -> function (seed, lr) -> write_run keyword arguments, plus an
    optional 'tables' entry: {quantity name: rows} written beside the run."""
    paths = []
    for lr in lrs:
        for norm, make in spec.items():
            for seed in SEEDS:
                kw = make(seed, lr)
                tables = kw.pop("tables", {})
                kw.setdefault("test_acc", RISING)
                path = write_run(tmp_path / name, norm=norm, seed=seed, lr=lr, **kw)
                for table, rows in tables.items():
                    write_quantity(path, table, rows)
                paths.append(path)
    return paths


def test_every_claim_is_covered_here():
    covered = {name[len("test_"):].split("_")[0].upper() for name in globals() if name.startswith("test_")}
    ids = {c.id.split("-")[0].upper() for c in st.CLAIMS}      # S4-stable, S5a-literal, S6-mlp, ...
    assert ids <= covered, f"claims without a falsifiability test: {sorted(ids - covered)}"
    assert REGISTRY["santurkar2018"] is st.STUDY


# --------------------------------------------------------------------------- S1-S3: noisy batch norm


def eval_acc(paths, shift: float = 0.0, only=None) -> None:
    """train_acc_eval (eval mode, noise off) = the training pass's accuracy + shift, in each run's metrics.csv
    (synthetic runs leave it blank); only: the norm whose runs get the shift (others get shift 0)."""
    for path in paths:
        m = pd.read_csv(path / "metrics.csv")
        norm = "batch" if "-batch-" in path.name else "none"
        m["train_acc_eval"] = m["train_acc"] + (shift if only in (None, norm) else 0.0)
        m.to_csv(path / "metrics.csv", index=False)


def accuracy_world(tmp_path, noisy_bn, bn, standard, noisy_none=lambda s: RISING, noise_off_gain=0.0):
    """noise_off_gain: how much higher noisy BN's eval-mode (noise off) accuracy is than its training pass's."""
    mlp = group(tmp_path, "mlp", {"batch": lambda s, lr: {"test_acc": bn(s)},
                                  "none": lambda s, lr: {"test_acc": standard(s)}})
    noisy = group(tmp_path, "noisy", {"batch": lambda s, lr: {"test_acc": noisy_bn(s)},
                                      "none": lambda s, lr: {"test_acc": noisy_none(s)}})
    eval_acc(mlp)
    eval_acc(noisy, noise_off_gain, only="batch")
    return context(tmp_path, {st.MLP_GROUP: mlp, st.NOISY_GROUP: noisy})


def shifted(curve, by, seed):
    return [min(1.0, a + by + jitter(seed)) for a in curve]


@pytest.mark.parametrize("noisy_gap, verdict", [(0.0, "PASS"), (-0.10, "FAIL")])
def test_s1_noisy_bn_trains_like_bn(tmp_path, noisy_gap, verdict):
    """Noisy BN on BN's curve (above the slow standard net) passes; 10 points below BN fails."""
    ctx = accuracy_world(tmp_path, lambda s: shifted(RISING, noisy_gap, s), lambda s: shifted(RISING, 0, s + 1),
                         lambda s: shifted(SLOW, 0, s + 2))
    m = st.measure_s1(ctx)
    assert m.verdict == verdict and m.n_seeds == 5


def test_s1_decides_on_the_noise_off_accuracy(tmp_path):
    """Noisy BN 10 points below BN in its training pass (noise on) but level with BN with the noise off
    (eval mode): S1 reads the network, not the noise, and passes; the noise-on value is reported."""
    ctx = accuracy_world(tmp_path, lambda s: shifted(RISING, -0.10, s), lambda s: shifted(RISING, 0, s + 1),
                         lambda s: shifted(SLOW, 0, s + 2), noise_off_gain=0.10)
    m = st.measure_s1(ctx)
    assert m.verdict == "PASS" and "noise on" in m.seen


def test_s1_fails_when_the_standard_net_is_faster_early(tmp_path):
    ctx = accuracy_world(tmp_path, lambda s: shifted(SLOW, 0, s), lambda s: shifted(SLOW, 0, s + 1),
                         lambda s: shifted(RISING, 0, s + 2))
    assert st.measure_s1(ctx).verdict == "FAIL"


def moment_world(tmp_path, noisy_drift: float, standard_drift: float):
    def layers(value, seed):
        series = [math.nan] + [value * (1 + 0.1 * seed)] * (N - 1)
        return {(layer, site): {"drift_mean": series, "drift_var": series} for layer in HIDDEN
                for site in ("linear", "norm", "act")}
    mlp = group(tmp_path, "mlp", {"none": lambda s, lr: {"layers": layers(standard_drift, s)}})
    noisy = group(tmp_path, "noisy", {"batch": lambda s, lr: {"layers": layers(noisy_drift, s + 1)}})
    return context(tmp_path, {st.MLP_GROUP: mlp, st.NOISY_GROUP: noisy})


@pytest.mark.parametrize("noisy, standard, verdict", [(0.5, 0.05, "PASS"), (0.05, 0.5, "FAIL")])
def test_s2_noisy_bn_moves_more(tmp_path, noisy, standard, verdict):
    assert st.measure_s2(moment_world(tmp_path, noisy, standard)).verdict == verdict


def test_s2_reads_the_act_site_only(tmp_path):
    """Noisy BN's `act` moments still; only its `linear` site moves: the claim must fail."""
    def layers(site_values, seed):
        return {(layer, site): {"drift_mean": [math.nan] + [v * (1 + 0.1 * seed)] * (N - 1),
                                "drift_var": [math.nan] + [v * (1 + 0.1 * seed)] * (N - 1)}
                for layer in HIDDEN for site, v in site_values.items()}
    mlp = group(tmp_path, "mlp", {"none": lambda s, lr: {"layers": layers({"act": 0.5, "linear": 0.5}, s)}})
    noisy = group(tmp_path, "noisy", {"batch": lambda s, lr: {"layers": layers({"act": 0.05, "linear": 5.0}, s)}})
    assert st.measure_s2(context(tmp_path, {st.MLP_GROUP: mlp, st.NOISY_GROUP: noisy})).verdict == "FAIL"


@pytest.mark.parametrize("noisy_final, verdict", [(0.5, "PASS"), (0.93, "FAIL")])
def test_s3_noise_without_bn_hurts(tmp_path, noisy_final, verdict):
    ctx = accuracy_world(tmp_path, lambda s: RISING, lambda s: RISING, lambda s: shifted(RISING, 0, s),
                         noisy_none=lambda s: RISING[:8] + [noisy_final + jitter(s)] * 3)
    m = st.measure_s3(ctx)
    assert m.verdict == verdict


def test_s3_a_diverged_noisy_run_counts_at_chance(tmp_path):
    mlp = group(tmp_path, "mlp", {"none": lambda s, lr: {"test_acc": shifted(RISING, 0, s)}})
    noisy = group(tmp_path, "noisy", {"none": lambda s, lr: {"test_acc": RISING[:4], "status": "diverged"}})
    m = st.measure_s3(context(tmp_path, {st.MLP_GROUP: mlp, st.NOISY_GROUP: noisy}))
    assert m.verdict == "PASS" and m.value == pytest.approx(st.CHANCE - (RISING[-2] + RISING[-1]) / 2)   # the jitters sum to 0


# --------------------------------------------------------------------------- S4: gradient ICS on the MLP


def ics_rows(l2: float, cos: float, seed: int, layers=HIDDEN, steps=None, rel=None) -> list[list]:
    """grad_ics.csv: every layer after the first gets ‖G − G′‖ = l2, cos and ‖G − G′‖/‖G‖ = rel(step) (default
    l2, with ‖G‖ = 1); the first has G′ = G."""
    rows = []
    for k, step in enumerate(steps or STEPS[:-1]):
        wobble = 1 + 0.05 * ((seed + k) % 3)
        r = (rel(step) if rel else l2) * wobble
        for i, layer in enumerate(layers):
            rows.append([step, layer, 1.0, 0.0, 1.0, 0.0] if i == 0 else
                        [step, layer, 1.0, l2 * wobble, min(1.0, cos + 0.001 * ((seed + k) % 3)), r])
    return rows


def sharp_rows(value, lr: float, steps=None) -> list[list]:
    """sharpness.csv with sharpness × lr = value(step)."""
    return [[s, value(s) / lr, math.nan, lr, value(s), 20, 1e-3] for s in (steps or STEPS)]


def mlp_ics_world(tmp_path, rel_none, rel_bn, sharp_none, sharp_bn):
    """The MLP group: relative gradient ICS and sharpness × lr per step, as functions of the step."""
    def make(rel, sharp):
        return lambda s, lr: {"tables": {"grad_ics": ics_rows(0.1, 0.9, s, rel=rel), "sharpness": sharp_rows(sharp, lr)}}
    mlp = group(tmp_path, "mlp", {"none": make(rel_none, sharp_none), "batch": make(rel_bn, sharp_bn)})
    return context(tmp_path, {st.MLP_GROUP: mlp})


EARLY = 300        # the standard net sits above the edge of stability before this step


def test_s4_decides_where_both_nets_are_below_the_edge(tmp_path):
    """Issue 24's world: the standard net above the edge early (sharpness × lr 2.8) with a large relative
    ICS there, both at 1.3 later with equal ICS: S4-stable passes (ratio ≈ 1), the edge phase reads 'lower'."""
    ctx = mlp_ics_world(tmp_path, rel_none=lambda t: 1.0 if t < EARLY else 0.1, rel_bn=lambda t: 0.1,
                        sharp_none=lambda t: 2.8 if t < EARLY else 1.3, sharp_bn=lambda t: 0.6 if t < EARLY else 1.3)
    stable, edge = st.measure_s4(ctx), st.measure_s4_edge(ctx)
    assert stable.verdict == "PASS" and stable.value == pytest.approx(1.0, rel=0.1)
    assert edge.verdict == "FAIL" and edge.value < 0.2
    design = {c.id: c.design for c in st.CLAIMS}
    assert design["S4-edge"] and not design["S4-stable"]


def test_s4_fails_when_bn_shift_is_lower_below_the_edge(tmp_path):
    ctx = mlp_ics_world(tmp_path, rel_none=lambda t: 0.3, rel_bn=lambda t: 0.05,
                        sharp_none=lambda t: 1.0, sharp_bn=lambda t: 1.0)
    assert st.measure_s4(ctx).verdict == "FAIL"


def test_s4_reads_the_relative_shift_not_the_raw_l2(tmp_path):
    """BN's raw ‖G − G′‖ ten times smaller (smaller gradients) but the same relative shift: PASS."""
    def make(l2):
        return lambda s, lr: {"tables": {"grad_ics": ics_rows(l2, 0.9, s, rel=lambda t: 0.1),
                                         "sharpness": sharp_rows(lambda t: 1.0, lr)}}
    mlp = group(tmp_path, "mlp", {"none": make(1.0), "batch": make(0.1)})
    assert st.measure_s4(context(tmp_path, {st.MLP_GROUP: mlp})).verdict == "PASS"


def test_s4_ignores_the_first_layer(tmp_path):
    """hidden1's G′ = G (nothing before it moves): a huge value written there must not count."""
    def rows(rel, seed):
        r = ics_rows(0.1, 0.95, seed, rel=lambda t: rel)
        return [[s, layer, g, v, c, 100.0 if layer == "hidden1" else q] for s, layer, g, v, c, q in r]
    mlp = group(tmp_path, "mlp", {"batch": lambda s, lr: {"tables": {"grad_ics": rows(0.01, s),
                                                                     "sharpness": sharp_rows(lambda t: 1.0, lr)}},
                                  "none": lambda s, lr: {"tables": {"grad_ics": rows(0.1, s),
                                                                    "sharpness": sharp_rows(lambda t: 1.0, lr)}}})
    assert st.measure_s4(context(tmp_path, {st.MLP_GROUP: mlp})).verdict == "FAIL"


# --------------------------------------------------------------------------- S5: the DLN, both conventions


def claim(cid: str):
    return next(c for c in st.CLAIMS if c.id == cid)


def dln_world(tmp_path, project: dict, literal: dict, landscape=None):
    """The DLN groups: `project` maps lr -> (cos_std, cos_bn, loss_std, loss_bn) for the project's runs at
    lr 1e-6 and 1e-7; `literal` the same for the literal convention's own runs (lr 1e-6). The final training
    loss is written through test_acc (synthetic metrics have train_loss = 2 (1 − acc))."""
    def run(norm, values):
        def make(seed, lr):
            cos_std, cos_bn, loss_std, loss_bn = values[lr]
            c, loss = (cos_bn, loss_bn) if norm == "batch" else (cos_std, loss_std)
            acc = [0.0] * (N - 1) + [1 - loss * (1 + 0.02 * seed) / 2]
            tables = {"grad_ics": ics_rows(0.1, c, seed, layers=("hidden1", "hidden2", "hidden17")),
                      "sharpness": sharp_rows(lambda t: 2.0 if norm == "batch" else 0.2, lr)}
            if landscape:
                tables["landscape"] = landscape(norm, seed, lr)
            return {"test_acc": acc, "tables": tables}
        return make
    proj = group(tmp_path / "p", "dln", {n: run(n, project) for n in ("none", "batch")}, lrs=st.DLN_LRS)
    lit = group(tmp_path / "l", "dln-literal", {n: run(n, literal) for n in ("none", "batch")}, lrs=st.LITERAL_LRS)
    return context(tmp_path, {st.DLN_GROUP: proj, st.LITERAL_GROUP: lit})


HOLDS, EOS_FAILS = (0.995, -0.5, 3.8, 1.7), (-0.5, -0.5, 3.8, 1.7)


def test_s5a_flips_with_the_convention_and_says_so(tmp_path):
    """cos as the paper says under the project's convention, both nets flipping under the literal one:
    S5a-project PASS, S5a-literal FAIL, each sentence naming the other convention's verdict."""
    ctx = dln_world(tmp_path, {1e-6: HOLDS, 1e-7: HOLDS}, {1e-6: EOS_FAILS})
    p, l = claim("S5a-project").measure(ctx), claim("S5a-literal").measure(ctx)
    assert p.verdict == "PASS" and l.verdict == "FAIL"
    assert "Convention-dependent" in p.seen and "Convention-dependent" in l.seen and "sharpness × lr" in p.seen


def test_s5b_literal_reads_the_project_runs_at_ten_times_the_lr(tmp_path):
    """The literal convention at 1e-7 takes the steps of the project's at 1e-6: a world that holds at
    project 1e-6 and fails at project 1e-7 passes S5b-literal and fails S5b-project."""
    ctx = dln_world(tmp_path, {1e-6: HOLDS, 1e-7: EOS_FAILS}, {1e-6: EOS_FAILS})
    assert claim("S5b-literal").measure(ctx).verdict == "PASS"
    assert claim("S5b-project").measure(ctx).verdict == "FAIL"
    assert claim("S5b-literal").design        # the same runs as S5a-project: not counted twice


def test_s5c_batch_norm_reaches_the_lower_loss(tmp_path):
    ctx = dln_world(tmp_path / "a", {1e-6: HOLDS, 1e-7: HOLDS}, {1e-6: HOLDS})
    assert claim("S5c-project").measure(ctx).verdict == "PASS"
    higher = (0.995, -0.5, 1.0, 3.0)
    ctx = dln_world(tmp_path / "b", {1e-6: HOLDS, 1e-7: higher}, {1e-6: HOLDS})
    # 1e-7 fails under the project's convention; the literal one reads project 1e-6 and literal 1e-6.
    assert claim("S5c-project").measure(ctx).verdict == "FAIL"
    assert claim("S5c-literal").measure(ctx).verdict == "PASS"


def test_regress_loss_sum_is_ten_times_the_mean_and_takes_the_same_steps():
    """The literal loss is OUTPUTS × the project's, so its gradient is too: lr η under `sum` is 10η under `mean`."""
    import torch
    from ics_cli.net import tasks

    torch.manual_seed(0)
    w = torch.randn(10, 10, requires_grad=True)
    x, y = torch.randn(50, 10), torch.randn(50, 10)
    grads = {}
    for task in ("regress", "regress-sum"):
        loss = tasks.loss(task, x @ w, y)
        grads[task] = (loss.item(), torch.autograd.grad(loss, w)[0])
    assert grads["regress-sum"][0] == pytest.approx(10 * grads["regress"][0], rel=1e-5)
    assert torch.allclose(1e-7 * grads["regress-sum"][1], 1e-6 * grads["regress"][1], rtol=1e-5)
    assert tasks.task_for("regress", "sum") == "regress-sum" and tasks.task_for("classify", "sum") == "classify"


def test_regress_loss_keeps_older_runs_hash():
    """--regress-loss mean (the default) is what every earlier run computed: same hash; sum is a new run;
    on a classification the option changes nothing, so it is not hashed either."""
    from ics_cli.config import RunConfig

    base = RunConfig(dataset="gaussian-linear", model="dln", activation="identity", lr=1e-6)
    assert replace_cfg(base, regress_loss="mean").hash() == base.hash()
    assert replace_cfg(base, regress_loss="sum").hash() != base.hash()
    mlp = RunConfig()
    assert replace_cfg(mlp, regress_loss="sum").hash() == mlp.hash()


def replace_cfg(cfg, **kw):
    from dataclasses import replace
    return replace(cfg, **kw)


# --------------------------------------------------------------------------- S6-S8: the landscape


ETAS = (0.5, 1.0, 2.0, 4.0)


def landscape_rows(smooth: bool, seed: int, lr: float) -> list[list]:
    """landscape.csv: a smooth net (narrow loss band, tiny gradient change, steady β) or a rough one."""
    rows = []
    for k, step in enumerate(STEPS[:-1]):
        w = 1 + 0.03 * ((seed + k) % 4)
        for m in ETAS:
            if smooth:
                loss, diff, beta = 1.0 + 0.01 * m * w, 0.01 * m * w, 1.0 * w
            else:
                loss, diff, beta = 1.0 + m * w, 1.0 * m * w, (1.0 if k % 2 else 8.0) * w
            rows.append([step, m, m * lr, 1.0, loss, 1.0, diff, beta])
    return rows


def landscape_world(tmp_path, smooth_norm: dict):
    """smooth_norm: part ('mlp', 'dln1e-06', 'dln1e-07', 'literal1e-06') -> the norm that is smooth there."""
    def make(part, norm):
        def rows(seed, lr):
            key = part if part == "mlp" else f"{part}{lr:g}"
            return {"tables": {"landscape": landscape_rows(smooth_norm[key] == norm, seed, lr)}}
        return rows
    mlp = group(tmp_path, "mlp", {n: make("mlp", n) for n in ("none", "batch")})
    dln = group(tmp_path, "dln", {n: make("dln", n) for n in ("none", "batch")}, lrs=st.DLN_LRS)
    lit = group(tmp_path, "dln-literal", {n: make("literal", n) for n in ("none", "batch")}, lrs=st.LITERAL_LRS)
    return context(tmp_path, {st.MLP_GROUP: mlp, st.DLN_GROUP: dln, st.LITERAL_GROUP: lit})


SMOOTH_BN = {"mlp": "batch", "dln1e-06": "batch", "dln1e-07": "batch", "literal1e-06": "batch"}
ROUGH_BN = {k: "none" for k in SMOOTH_BN}


@pytest.mark.parametrize("key, rows", [
    ("S6", ["S6-mlp", "S6-dln-project", "S6-dln-literal"]),
    ("S7", ["S7-mlp", "S7-dln-project", "S7-dln-literal"]),
    ("S8", ["S8-mlp", "S8-dln-project", "S8-dln-literal"]),
])
def test_s6_s7_s8_landscape_smoother_with_bn(tmp_path, key, rows):
    smooth = landscape_world(tmp_path / "smooth", SMOOTH_BN)
    assert [claim(r).measure(smooth).verdict for r in rows] == ["PASS"] * 3
    rough = landscape_world(tmp_path / "rough", ROUGH_BN)
    assert [claim(r).measure(rough).verdict for r in rows] == ["FAIL"] * 3
    # One row per model: the MLP passes beside a failing DLN; the literal convention's own runs rough
    # flip only its row, which says it is convention-dependent.
    mixed = landscape_world(tmp_path / "mixed", {**SMOOTH_BN, "literal1e-06": "none"})
    got = {r: claim(r).measure(mixed) for r in rows}
    assert [got[r].verdict for r in rows] == ["PASS", "PASS", "FAIL"]
    assert "Convention-dependent" in got[f"{key}-dln-literal"].seen


def test_s7_needs_five_times_not_just_smaller(tmp_path):
    """A gradient change half the standard net's (smaller, not 5x smaller) fails S7 but passes S6."""
    def half(smooth, seed, lr):
        rows = landscape_rows(False, seed, lr)
        return [[s, m, e, l0, (1.0 + (loss - 1.0) / 2) if smooth else loss, g, d / 2 if smooth else d, b]
                for s, m, e, l0, loss, g, d, b in rows]
    mlp = group(tmp_path, "mlp", {n: (lambda n: lambda s, lr: {"tables": {"landscape": half(n == "batch", s, lr)}})(n)
                                  for n in ("none", "batch")})
    ctx = context(tmp_path, {st.MLP_GROUP: mlp})
    assert claim("S7-mlp").measure(ctx).verdict == "FAIL" and claim("S6-mlp").measure(ctx).verdict == "PASS"


def test_s8_an_unprobed_run_is_inconclusive_not_a_pass(tmp_path):
    mlp = group(tmp_path, "mlp", {"none": lambda s, lr: {}, "batch": lambda s, lr: {}})
    assert claim("S8-mlp").measure(context(tmp_path, {st.MLP_GROUP: mlp})).verdict == "INCONCLUSIVE"


# --------------------------------------------------------------------------- end to end


def test_the_study_runs_end_to_end_on_a_tiny_protocol(tmp_path, monkeypatch):
    """Real runs of every group (a few steps), every claim measured, the figures drawn and redrawn."""
    # The compare figures of all runs (24 DLN layers) are tested elsewhere and cost most of a minute.
    monkeypatch.setattr(draw, "draw_all", lambda *a, **k: [])
    monkeypatch.setitem(st.QUICK, "mlp_steps", 30)
    monkeypatch.setitem(st.QUICK, "eval_every", 5)       # the first 20% of 30 updates: one window
    monkeypatch.setitem(st.QUICK, "dln_steps", 60)
    monkeypatch.setitem(st.QUICK, "dln_log_every", 30)
    result = run_study("santurkar2018", tmp_path / "study", quick=True, seeds=[0], jobs=1)
    v = result.verdicts
    assert list(v["claim_id"]) == [c.id for c in st.CLAIMS]
    assert set(v["verdict"]) <= {"INCONCLUSIVE", "DESIGN CHECK"}          # one seed: no interval
    # The measurements exist (not "Not measured") for the claims the tiny runs can feed.
    measured = v.set_index("claim_id")["measured"]
    assert all(math.isfinite(measured[c]) for c in ("S1", "S2", "S3", "S5a-project", "S5a-literal", "S5b-project",
                                                    "S5c-literal", "S6-mlp", "S6-dln-literal", "S7-mlp"))
    figures = sorted(p.name for p in (tmp_path / "study" / "figures").iterdir())
    assert figures == ["fig2_noisy_bn.png", "fig3_grad_ics.png", "fig4_landscape.png"]
    readme = (tmp_path / "study" / "README.md").read_text()
    assert "DLN loss convention" in readme and "S5a-literal" in readme
    saved = {p.name for p in (tmp_path / "study" / "tables" / "mlp").iterdir()}
    assert saved <= {f"{t}.csv" for t in ("runs", "summary", "curves", "layer_curves", "grad_ics_curves",
                                          "sharpness_curves", "landscape_curves")}    # lean: what the figures read
    from ics_cli.studies import redraw
    assert len(redraw(tmp_path / "study")) == 3
    assert isinstance(pd.read_csv(tmp_path / "study" / "verdicts.csv"), pd.DataFrame)
