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
    ids = {c.id.upper() for c in st.CLAIMS}
    assert ids <= covered, f"claims without a falsifiability test: {sorted(ids - covered)}"
    assert REGISTRY["santurkar2018"] is st.STUDY


# --------------------------------------------------------------------------- S1-S3: noisy batch norm


def accuracy_world(tmp_path, noisy_bn, bn, standard, noisy_none=lambda s: RISING):
    mlp = group(tmp_path, "mlp", {"batch": lambda s, lr: {"test_acc": bn(s)},
                                  "none": lambda s, lr: {"test_acc": standard(s)}})
    noisy = group(tmp_path, "noisy", {"batch": lambda s, lr: {"test_acc": noisy_bn(s)},
                                      "none": lambda s, lr: {"test_acc": noisy_none(s)}})
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


# --------------------------------------------------------------------------- S4-S5: gradient ICS


def ics_rows(l2: float, cos: float, seed: int, layers=HIDDEN) -> list[list]:
    """grad_ics.csv: every layer after the first gets ‖G − G′‖ = l2 and cos; the first has G′ = G."""
    rows = []
    for k, step in enumerate(STEPS[:-1]):
        wobble = 1 + 0.05 * ((seed + k) % 3)
        for i, layer in enumerate(layers):
            rows.append([step, layer, 1.0, 0.0, 1.0] if i == 0 else
                        [step, layer, 1.0, l2 * wobble, min(1.0, cos + 0.001 * ((seed + k) % 3))])
    return rows


@pytest.mark.parametrize("bn, standard, verdict", [((0.2, 0.9), (0.1, 0.99), "PASS"),
                                                   ((0.02, 0.999), (0.2, 0.9), "FAIL")])
def test_s4_gradient_ics_not_lower_with_bn(tmp_path, bn, standard, verdict):
    mlp = group(tmp_path, "mlp", {"batch": lambda s, lr: {"tables": {"grad_ics": ics_rows(*bn, s)}},
                                  "none": lambda s, lr: {"tables": {"grad_ics": ics_rows(*standard, s + 1)}}})
    assert st.measure_s4(context(tmp_path, {st.MLP_GROUP: mlp})).verdict == verdict


def test_s4_ignores_the_first_layer(tmp_path):
    """hidden1's G′ = G (nothing before it moves): a huge value written there must not count."""
    def rows(l2, seed):
        r = ics_rows(l2, 0.95, seed)
        return [[s, layer, g, 100.0 if layer == "hidden1" else v, c] for s, layer, g, v, c in r]
    mlp = group(tmp_path, "mlp", {"batch": lambda s, lr: {"tables": {"grad_ics": rows(0.01, s)}},
                                  "none": lambda s, lr: {"tables": {"grad_ics": rows(0.1, s)}}})
    assert st.measure_s4(context(tmp_path, {st.MLP_GROUP: mlp})).verdict == "FAIL"


def dln_world(tmp_path, cos_std: float, cos_bn: float, loss_std: float = 3.8, loss_bn: float = 1.7,
              landscape=None):
    """The DLN group at both lrs. The final training loss is written through test_acc (synthetic
    metrics have train_loss = 2 (1 − acc)); sharpness × lr 2 for BN, 0.2 without."""
    def run(norm, cos, loss):
        def make(seed, lr):
            acc = [0.0] * (N - 1) + [1 - loss * (1 + 0.02 * seed) / 2]
            sharp = [[s, (2.0 if norm == "batch" else 0.2) / lr, math.nan, lr, 2.0 if norm == "batch" else 0.2, 10,
                      1e-3]
                     for s in STEPS]
            tables = {"grad_ics": ics_rows(0.1, cos, seed, layers=("hidden1", "hidden2", "hidden17")),
                      "sharpness": sharp}
            if landscape:
                tables["landscape"] = landscape(norm, seed, lr)
            return {"test_acc": acc, "tables": tables}
        return make
    paths = group(tmp_path, "dln", {"none": run("none", cos_std, loss_std), "batch": run("batch", cos_bn, loss_bn)},
                  lrs=st.DLN_LRS)
    return context(tmp_path, {st.DLN_GROUP: paths})


@pytest.mark.parametrize("measure", [st.measure_s5a, st.measure_s5b], ids=["s5a", "s5b"])
def test_s5a_and_s5b_dln_cosine_and_loss(tmp_path, measure):
    assert measure(dln_world(tmp_path / "true", 0.995, -0.5)).verdict == "PASS"
    # The standard net's cos far from 1 (as at the edge of stability): FAIL.
    assert measure(dln_world(tmp_path / "eos", -0.5, -0.5)).verdict == "FAIL"
    # cos as the paper says, but BN ends at the higher loss: FAIL.
    m = measure(dln_world(tmp_path / "loss", 0.995, -0.5, loss_std=1.0, loss_bn=3.0))
    assert m.verdict == "FAIL" and "sharpness × lr" in m.seen


def test_s5b_reads_only_its_own_learning_rate(tmp_path):
    """A world that holds at 1e-6 and fails at 1e-7 passes S5a and fails S5b."""
    def rows(norm, seed, lr):
        cos = 0.995 if norm == "none" else (-0.5 if lr == st.DLN_LRS[0] else 0.99)
        return ics_rows(0.1, cos, seed, layers=("hidden1", "hidden2"))
    ctx = dln_world(tmp_path, 0.995, -0.5)
    for run in ctx.groups[st.DLN_GROUP]:
        cfg = run.config["config"]
        write_quantity(run.path, "grad_ics", rows(cfg["norm"], cfg["seed"], cfg["lr"]))
    assert st.measure_s5a(ctx).verdict == "PASS" and st.measure_s5b(ctx).verdict == "FAIL"


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
    """smooth_norm: part name -> the norm that is smooth there (the other is rough)."""
    def make(part, norm):
        return lambda seed, lr: {"tables": {"landscape": landscape_rows(
            smooth_norm[part if part != "dln" else f"dln{lr:g}"] == norm, seed, lr)}}
    mlp = group(tmp_path, "mlp", {n: make("mlp", n) for n in ("none", "batch")})
    dln = group(tmp_path, "dln", {n: make("dln", n) for n in ("none", "batch")}, lrs=st.DLN_LRS)
    return context(tmp_path, {st.MLP_GROUP: mlp, st.DLN_GROUP: dln})


SMOOTH_BN = {"mlp": "batch", "dln1e-06": "batch", "dln1e-07": "batch"}
ROUGH_BN = {"mlp": "none", "dln1e-06": "none", "dln1e-07": "none"}


@pytest.mark.parametrize("measure", [st.measure_s6, st.measure_s7, st.measure_s8], ids=["s6", "s7", "s8"])
def test_s6_s7_s8_landscape_smoother_with_bn(tmp_path, measure):
    assert measure(landscape_world(tmp_path / "smooth", SMOOTH_BN)).verdict == "PASS"
    assert measure(landscape_world(tmp_path / "rough", ROUGH_BN)).verdict == "FAIL"
    # Every part must hold: BN rough on the DLN at 1e-6 only fails the claim.
    assert measure(landscape_world(tmp_path / "one", {**SMOOTH_BN, "dln1e-06": "none"})).verdict == "FAIL"


def test_s7_needs_five_times_not_just_smaller(tmp_path):
    """A gradient change half the standard net's (smaller, not 5x smaller) fails S7 but passes S6."""
    def half(smooth, seed, lr):
        rows = landscape_rows(False, seed, lr)
        return [[s, m, e, l0, (1.0 + (loss - 1.0) / 2) if smooth else loss, g, d / 2 if smooth else d, b]
                for s, m, e, l0, loss, g, d, b in rows]
    mlp = group(tmp_path, "mlp", {n: (lambda n: lambda s, lr: {"tables": {"landscape": half(n == "batch", s, lr)}})(n)
                                  for n in ("none", "batch")})
    dln = group(tmp_path, "dln", {n: (lambda n: lambda s, lr: {"tables": {"landscape": half(n == "batch", s, lr)}})(n)
                                  for n in ("none", "batch")}, lrs=st.DLN_LRS)
    ctx = context(tmp_path, {st.MLP_GROUP: mlp, st.DLN_GROUP: dln})
    assert st.measure_s7(ctx).verdict == "FAIL" and st.measure_s6(ctx).verdict == "PASS"


def test_s8_an_unprobed_run_is_inconclusive_not_a_pass(tmp_path):
    mlp = group(tmp_path, "mlp", {"none": lambda s, lr: {}, "batch": lambda s, lr: {}})
    assert st.measure_s8(context(tmp_path, {st.MLP_GROUP: mlp})).verdict == "INCONCLUSIVE"


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
    assert set(v["verdict"]) == {"INCONCLUSIVE"}          # one seed: no interval
    # The measurements exist (not "Not measured") for the claims the tiny runs can feed.
    measured = v.set_index("claim_id")["measured"]
    assert all(math.isfinite(measured[c]) for c in ("S1", "S2", "S3", "S4", "S5a", "S5b", "S6", "S7"))
    figures = sorted(p.name for p in (tmp_path / "study" / "figures").iterdir())
    assert figures == ["fig2_noisy_bn.png", "fig3_grad_ics.png", "fig4_landscape.png"]
    readme = (tmp_path / "study" / "README.md").read_text()
    assert "DLN loss convention" in readme and "S5a" in readme
    from ics_cli.studies import redraw
    assert len(redraw(tmp_path / "study")) == 3
    assert isinstance(pd.read_csv(tmp_path / "study" / "verdicts.csv"), pd.DataFrame)
