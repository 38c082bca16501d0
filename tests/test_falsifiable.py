"""Every claim of every study can fail: each is fed a world where it is false (FAIL) and one where it
is true (PASS).

Trained claims read run folders written with chosen numbers (tests/synthetic.py); exact claims are fed
modules that break the promise (a registry entry swapped, a batch norm with the wrong eps) or
batches on which the claim holds. A claim that passes on every world proves nothing; this file is
what shows none of ours does.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest
import torch

from ics_cli.net import norms
from ics_cli.config import RunConfig
from ics_cli.studies import REGISTRY, claims, exact, ioffe2015, note, note_lr
from ics_cli.train import train

from synthetic import HIDDEN, context, write_run

SEEDS = range(5)


def jitter(seed: int) -> float:
    """A small, seed-dependent wobble so intervals have a width (values are never all equal)."""
    return 0.004 * ((seed * 7) % 5 - 2)


def test_every_claim_of_every_study_is_covered_here():
    # Here, or in a study's own test file (tests/test_<study>.py), named test_<claim id>_...
    names = set(globals())
    for path in Path(__file__).parent.glob("test_*.py"):
        names |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    covered = {name[len("test_"):].split("_")[0].upper() for name in names if name.startswith("test_")}
    # An id with a dash (N8-mlp) is covered by the name without it (test_n8mlp_...), or by a test of its
    # stem (test_s6_..., parametrized over the models and conventions of S6-mlp, S6-dln-project, ...).
    ids = {c.id.upper() for study in REGISTRY.values() for c in study.claims}
    missing = {i for i in ids if i.replace("-", "") not in covered and i.split("-")[0] not in covered}
    assert not missing, f"claims without a falsifiability test: {sorted(missing)}"


# --------------------------------------------------------------------------- ioffe2015


def fig1(tmp_path, bn_acc, base_acc, **kw):
    """Group fig1: per seed, a batch and a none run with the given test-accuracy curves."""
    paths = []
    for seed in SEEDS:
        for norm, acc in (("batch", bn_acc), ("none", base_acc)):
            extra = {k: v(norm, seed) for k, v in kw.items()}
            paths.append(write_run(tmp_path / "runs", norm=norm, seed=seed, test_acc=acc(seed), **extra))
    return context(tmp_path, {ioffe2015.GROUP: paths})


CURVE = [0.1, 0.5, 0.7, 0.8, 0.85, 0.88, 0.9, 0.91, 0.92, 0.93, 0.94]   # steps 0..1000


@pytest.mark.parametrize("gap, verdict", [(+0.02, "PASS"), (-0.05, "FAIL")])
def test_i1_non_inferiority(tmp_path, gap, verdict):
    """I1: BN 2 points above the baseline passes; 5 points below (beyond the 0.01 margin) fails."""
    m = ioffe2015.measure_i1(fig1(tmp_path, lambda s: [a + gap + jitter(s) for a in CURVE],
                                  lambda s: [a + jitter(s + 1) for a in CURVE]))
    assert m.verdict == verdict and m.n_seeds == 5
    assert m.value == pytest.approx(gap + np.mean([jitter(s) - jitter(s + 1) for s in SEEDS]), abs=1e-9)


def test_i1_a_gap_inside_the_margin_is_not_a_failure(tmp_path):
    m = ioffe2015.measure_i1(fig1(tmp_path, lambda s: [a - 0.003 + jitter(s) for a in CURVE],
                                  lambda s: [a + jitter(s + 1) for a in CURVE]))
    assert m.verdict in ("PASS", "INCONCLUSIVE")


def reach(step_index: int, n: int = 11, final: float = 0.95) -> list[float]:
    """A curve at 0.5 that jumps to `final` at logged step `step_index`."""
    return [0.5 if k < step_index else final for k in range(n)]


@pytest.mark.parametrize("bn_at, verdict", [(1, "PASS"), (8, "FAIL")])
def test_i2_steps_to_target(tmp_path, bn_at, verdict):
    """I2: BN reaching the target 8x sooner passes; reaching it at the same step fails."""
    # Baseline reaches 95% of its final accuracy at logged step 8 (800 steps), every seed.
    m = ioffe2015.measure_i2(fig1(tmp_path, lambda s: reach(bn_at), lambda s: reach(8)))
    assert m.verdict == verdict
    assert m.value == pytest.approx(bn_at / 8)


def p50_world(moving: str):
    def units(norm, seed):
        p50 = [0.3 * k * (1 + 0.1 * seed) if norm == moving else 0.01 * (k % 2) for k in range(len(CURVE))]
        spread = [2.0 + (0.2 * k if norm == moving else 0.0) for k in range(len(CURVE))]
        return {("hidden3", "norm", 0): {"p50": p50, "p15": [p - s / 2 for p, s in zip(p50, spread)],
                                         "p85": [p + s / 2 for p, s in zip(p50, spread)]}}
    return units


@pytest.mark.parametrize("moving, verdict", [("none", "PASS"), ("batch", "FAIL")])
def test_i3_sigmoid_input_stability(tmp_path, moving, verdict):
    """I3: percentiles that move without BN and stay with it pass; the reverse fails."""
    ctx = fig1(tmp_path, lambda s: CURVE, lambda s: CURVE, units=p50_world(moving))
    assert ioffe2015.measure_i3(ctx).verdict == verdict


def drift_world(drifting: str, sites=("linear", "norm_eval")):
    def layers(norm, seed):
        big = norm == drifting
        value = [math.nan] + [(0.5 if big else 0.05) * (1 + 0.1 * seed)] * (len(CURVE) - 1)
        return {(layer, site): {"drift_mean_scaled": value} for layer in HIDDEN for site in sites}
    return layers


@pytest.mark.parametrize("drifting, verdict", [("none", "PASS"), ("batch", "FAIL")])
def test_i4_scale_free_drift(tmp_path, drifting, verdict):
    ctx = fig1(tmp_path, lambda s: CURVE, lambda s: CURVE, layers=drift_world(drifting))
    assert ioffe2015.measure_i4(ctx).verdict == verdict


def test_i4_ignores_the_norm_site_whose_drift_is_true_by_construction(tmp_path):
    """BN's `norm` site drifting less than the baseline's (β only) must not make I4 pass."""
    def layers(norm, seed):
        out = drift_world("batch")(norm, seed)
        small = [math.nan] + [0.001] * (len(CURVE) - 1)
        if norm == "batch":
            out.update({(layer, "norm"): {"drift_mean_scaled": small} for layer in HIDDEN})
        return out
    ctx = fig1(tmp_path, lambda s: CURVE, lambda s: CURVE, layers=layers)
    assert ioffe2015.measure_i4(ctx).verdict == "FAIL"


# --------------------------------------------------------------------------- note: trained claims


def shared(tmp_path, norms_=("none", "batch", "batch-nograd"), **series):
    """One group of runs per seed and norm; each keyword maps (norm, seed) to a write_run argument."""
    paths = []
    for seed in SEEDS:
        for norm in norms_:
            kw = {k: f(norm, seed) for k, f in series.items()}
            kw.setdefault("test_acc", CURVE)
            paths.append(write_run(tmp_path / "runs", norm=norm, seed=seed, **kw))
    return paths


def n1_context(tmp_path, variances, shift):
    n = len(CURVE)

    def layers(norm, seed):
        return {(layer, "linear"): {"var": [v * (1 + 0.05 * seed)] * n,
                                    "drift_mean_scaled_init": [0.0] * (n - 1) + [shift + jitter(seed)]}
                for layer, v in zip(HIDDEN, variances)}
    return context(tmp_path, {"shared_lr": shared(tmp_path, norms_=("none",), layers=layers)})


@pytest.mark.parametrize("variances, verdict", [((4.0, 1.0, 0.5), "PASS"), ((1.0, 1.0, 1.0), "FAIL")])
def test_n1a_layer_statistics_differ(tmp_path, variances, verdict):
    m = note.measure_n1a(n1_context(tmp_path, variances, 0.8))
    assert m.verdict == verdict and m.log


@pytest.mark.parametrize("shift, verdict", [(0.8, "PASS"), (0.02, "FAIL")])
def test_n1b_layer_statistics_shift(tmp_path, shift, verdict):
    m = note.measure_n1b(n1_context(tmp_path, (4.0, 1.0, 0.5), shift))
    assert m.verdict == verdict and m.value == pytest.approx(shift, abs=0.01)


@pytest.mark.parametrize("nograd_acc, verdict", [(0.5, "PASS"), (0.93, "FAIL")])
def test_n3_training_breaks(tmp_path, nograd_acc, verdict):
    def acc(norm, seed):
        final = (nograd_acc if norm == "batch-nograd" else 0.94) + jitter(seed)
        return CURVE[:-1] + [final]
    ctx = context(tmp_path, {"shared_lr": shared(tmp_path, test_acc=acc)})
    m = note.measure_n3(ctx)
    assert m.verdict == verdict
    assert m.value == pytest.approx(nograd_acc - 0.94, abs=1e-9)


def test_n3_a_diverged_run_counts_at_chance(tmp_path):
    paths = shared(tmp_path, norms_=("batch",))
    for seed in SEEDS:
        paths.append(write_run(tmp_path / "runs", norm="batch-nograd", seed=seed, test_acc=CURVE,
                               status="diverged"))
    m = note.measure_n3(context(tmp_path, {"shared_lr": paths}))
    assert m.value == pytest.approx(0.1 - CURVE[-1]) and m.verdict == "PASS"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Real runs with saved models on the synthetic dataset: batch norm and layer norm, three seeds."""
    out = tmp_path_factory.mktemp("trained")
    paths = {}
    for norm in ("batch", "layer"):
        paths[norm] = [train(RunConfig(dataset="synthetic", norm=norm, seed=seed, steps=60, log_every=30,
                                       lr=0.5, device="cpu", out=str(out))).path for seed in range(3)]
    return out, paths


def test_n6_test_batch_size_matters_only_with_batch_statistics(trained):
    out, paths = trained
    m = note.measure_n6(context(out, {"shared_lr": paths["batch"]}))
    assert m.verdict == "PASS" and m.value > 0
    # Layer norm normalizes each sample by itself: the test batch cannot matter, the claim must fail.
    m = note.measure_n6(context(out, {"shared_lr": paths["layer"]}), norm="layer")
    assert (m.value, m.ci_low, m.ci_high, m.verdict) == (0.0, 0.0, 0.0, "FAIL")


GRID = [0.316, 0.562, 1.0, 1.78, 3.16, 5.62, 10.0, 17.8]


def lr_world(tmp_path, top: dict[str, float], bisect: bool = True):
    """lr_sweep: a run is good (0.94) up to the norm's top lr, diverged above it; with `bisect`, the
    midpoint runs that bisection asks for, answered by the same rule, until no bracket is open."""
    def one(folder, norm, seed, lr):
        ok = lr <= top[norm] * 1.0001
        return write_run(folder, norm=norm, seed=seed, lr=lr, test_acc=CURVE if ok else CURVE[:3],
                         status="completed" if ok else "diverged")
    grid = [one(tmp_path / "runs", norm, seed, lr) for seed in range(3) for norm in ("none", "batch") for lr in GRID]
    ctx = context(tmp_path, {"lr_sweep": grid, note_lr.BISECT_GROUP: []})
    for _ in range(note_lr.MAX_ROUNDS if bisect else 0):
        todo = [(norm, s, b[2]) for norm in ("none", "batch")
                for s, b in note_lr.brackets(ctx.groups["lr_sweep"], ctx.groups[note_lr.BISECT_GROUP], norm).items()
                if b[2] is not None]
        new = [one(tmp_path / "bisect", norm, s, lr) for norm, s, lr in todo]
        ctx.groups[note_lr.BISECT_GROUP] += context(tmp_path, {"x": new}).groups["x"]
    return ctx


@pytest.mark.parametrize("none_top, bn_top, verdict", [
    (1.0, 10.0, "PASS"), (1.0, 1.0, "FAIL"), (1.0, 3.16, "FAIL"), (1.0, 7.0, "PASS"), (1.0, 4.5, "FAIL")])
def test_n7_learning_rate_tolerance(tmp_path, none_top, bn_top, verdict):
    """Bisection decides ratios the grid's ×1.78 brackets cannot: 7× and 4.5× against the 5× bar."""
    m = note.measure_n7(lr_world(tmp_path, {"none": none_top, "batch": bn_top}))
    assert m.verdict == verdict and m.log
    # The interval carries the bisected brackets' width (≤ ×1.16 per network), never less.
    assert m.ci_low <= bn_top / none_top * 1.001 <= m.ci_high * 1.16 ** 2


def test_n7_the_grid_alone_cannot_decide_what_bisection_decides(tmp_path):
    m = note.measure_n7(lr_world(tmp_path, {"none": 1.0, "batch": 7.0}, bisect=False))
    assert m.verdict == "INCONCLUSIVE"          # grid brackets [5.62, 10] / [1, 1.78] straddle 5


def test_n7_bisection_halves_a_bracket_in_log_lr():
    runs = {0.1: FakeRun(0.9), 1.0: FakeRun(0.95), 1.78: FakeRun(0.2)}
    assert note_lr.bisect(runs, {}) == (1.0, 1.78, 1.33)
    # 1.33 stable: [1.33, 1.78], next 1.54; 1.54 unstable: [1.33, 1.54], ×1.16 wide: done
    assert note_lr.bisect(runs, {1.33: FakeRun(0.94), 1.54: FakeRun(0.5)}) == (1.33, 1.54, None)
    # the bar is the grid's best (0.95 × 0.9), even where a bisection run scores higher
    assert note_lr.bisect(runs, {1.33: FakeRun(0.99), 1.54: FakeRun(0.86)})[:2] == (1.54, 1.78)


def test_n7_plan_sweeps_five_seeds_and_records_sharpness_where_nets_share_an_lr():
    groups = note.plan(False)
    seeds = {name: {c.seed for c in g.configs()} for name, g in groups.items()}
    assert seeds["lr_sweep"] == set(note.FULL["seeds"][:5]) and seeds["shared_lr"] == set(note.FULL["seeds"])
    assert all(c.sharpness_every > 0 for name in ("shared_lr", "cnn") for c in groups[name].configs())
    assert 10 ** (0.25 / 4) <= note_lr.RESOLUTION < 10 ** (0.25 / 2)     # two rounds halve a grid step twice


def test_n7_a_low_accuracy_lr_is_not_stable_even_without_divergence(tmp_path):
    assert note.largest_stable({0.1: FakeRun(0.9), 1.0: FakeRun(0.95), 10.0: FakeRun(0.5)}) == (1.0, 10.0)
    assert note.largest_stable({0.1: FakeRun(0.9), 1.0: FakeRun(0.95)}) == (1.0, math.inf)


class FakeRun:
    status = "completed"

    def __init__(self, acc):
        self.summary = {"final": {"test_acc": acc}}


def grad_world(noisy: str):
    def grads(norm, seed):
        n = len(CURVE) - 1
        decay = [2.0 * 0.8 ** k for k in range(n)]       # a smooth decay is not instability
        if norm == noisy:
            decay = [g * (3.0 if (k + seed) % 2 else 0.4) for k, g in enumerate(decay)]
        return {layer: decay for layer in (*HIDDEN, "output")}
    return grads


def n8_context(tmp_path, noisy_mlp: str, noisy_cnn: str):
    mlp = shared(tmp_path / "mlp", norms_=("none", "batch"), grads=grad_world(noisy_mlp))
    cnn = shared(tmp_path / "cnn", norms_=("none", "batch"), grads=grad_world(noisy_cnn))
    return context(tmp_path, {"shared_lr": mlp, "cnn": cnn})


@pytest.mark.parametrize("noisy, verdict", [("none", "PASS"), ("batch", "FAIL")])
def test_n8mlp_steadier_gradients(tmp_path, noisy, verdict):
    """Each row reads its own network: the CNN's gradients (the other way round) do not decide it."""
    other = "batch" if noisy == "none" else "none"
    m = note.measure_n8_mlp(n8_context(tmp_path, noisy, other))
    assert m.verdict == verdict and "sharpness × lr" in m.seen


@pytest.mark.parametrize("noisy, verdict", [("none", "PASS"), ("batch", "FAIL")])
def test_n8cnn_steadier_gradients(tmp_path, noisy, verdict):
    other = "batch" if noisy == "none" else "none"
    assert note.measure_n8_cnn(n8_context(tmp_path, other, noisy)).verdict == verdict


@pytest.mark.parametrize("none_at, variants_at, verdict", [(8, 2, "PASS"), (2, 8, "FAIL"), (2, None, "FAIL")])
def test_n10_faster_training_at_a_matched_lr(tmp_path, none_at, variants_at, verdict):
    """Logged step at which test accuracy reaches the target (None: never, a censored count)."""
    def acc(norm, seed):
        at = none_at if norm == "none" else variants_at
        return reach(at) if at is not None else [0.5] * 11
    paths = shared(tmp_path, norms_=tuple(note.CNN_NORMS), test_acc=acc)
    assert note.measure_n10(context(tmp_path, {"cnn": paths})).verdict == verdict


# --------------------------------------------------------------------------- note: exact claims


def swap(monkeypatch, name: str, builder_of: str) -> None:
    """Make registry entry `name` build what `builder_of` builds (a norm that breaks its promise)."""
    entry = norms.REGISTRY[name]
    monkeypatch.setitem(norms.REGISTRY, name, replace(entry, build=norms.REGISTRY[builder_of].build))


def test_n2_batch_statistics(monkeypatch):
    assert note.measure_n2(None).verdict == "PASS"
    swap(monkeypatch, "batch", "layer")          # normalizes each sample, not each unit
    assert note.measure_n2(None).verdict == "FAIL"


def test_n4a_the_notes_identity(monkeypatch):
    assert note.measure_n4a(None).verdict == "FAIL"       # the note is wrong on real batches
    # On units whose variance v solves v = sqrt(v + eps), gamma = var is gamma = sqrt(var + eps).
    eps = note.MLP.eps
    v = (1 + math.sqrt(1 + 4 * eps)) / 2
    z = torch.randn(60, 100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = (z - z.mean(0)) / z.std(0, unbiased=False) * math.sqrt(v)
    monkeypatch.setattr(note, "_preacts", lambda: [z])
    assert note.measure_n4a(None).verdict == "PASS"


def test_n4b_the_correct_identity(monkeypatch):
    assert note.measure_n4b(None).verdict == "PASS"
    real = exact.batch_norm
    # A batch norm whose eps is not the eps in gamma = sqrt(var + eps): the identity breaks.
    monkeypatch.setattr(exact, "batch_norm", lambda cfg, width: real(replace(cfg, eps=0.1), width))
    assert note.measure_n4b(None).verdict == "FAIL"


def test_n5_bias_is_redundant(monkeypatch):
    assert note.measure_n5(None).verdict == "PASS"
    real = exact.batch_norm
    # In eval mode (running statistics) batch norm does not subtract the batch mean: the bias stays.
    monkeypatch.setattr(exact, "batch_norm", lambda cfg, width: real(cfg, width).eval())
    assert note.measure_n5(None).verdict == "FAIL"


def test_n9_other_variants(monkeypatch):
    assert note.measure_n9(None).verdict == "PASS"
    swap(monkeypatch, "layer", "batch")           # per unit over the batch, not per sample
    assert note.measure_n9(None).verdict == "FAIL"


# --------------------------------------------------------------------------- the statistics


def test_paired_interval_is_scipys_paired_t():
    from scipy import stats
    a = {0: 1.0, 1: 2.0, 2: 4.0, 3: 3.5}
    b = {0: 0.5, 1: 1.0, 2: 1.5, 3: 3.0, 9: 7.0}       # seed 9 has no partner
    iv = claims.paired(a, b)
    d = np.array([0.5, 1.0, 2.5, 0.5])
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert (iv.mean, iv.lo, iv.hi, iv.n) == pytest.approx((d.mean(), d.mean() - half, d.mean() + half, 4))
    wide = claims.paired(a, b, claims.family(4))
    assert wide.lo < iv.lo and wide.hi > iv.hi


def test_ratio_interval_is_positive_and_geometric():
    iv = claims.ratio({0: 1.0, 1: 4.0, 2: 2.0}, {0: 2.0, 1: 2.0, 2: 2.0})
    assert iv.mean == pytest.approx(1.0)     # geometric mean of 0.5, 2, 1
    assert 0 < iv.lo < 1 < iv.hi


def test_bracketed_interval_never_narrower_than_the_grid():
    point = {0: 1.0, 1: 1.0, 2: 1.0}
    iv = claims.bracketed(point, {s: 0.5 for s in point}, {s: 2.0 for s in point})
    assert (iv.mean, iv.lo, iv.hi) == (1.0, 0.5, 2.0)
    iv = claims.bracketed(point, {s: 0.5 for s in point}, {0: 2.0, 1: math.inf, 2: 2.0})
    assert iv.hi == math.inf


def test_bonferroni_family():
    assert claims.family(1) == pytest.approx(0.95) and claims.family(4) == pytest.approx(0.9875)


@pytest.mark.parametrize("lo, hi, op, verdict", [
    (0.1, 0.3, ">", "PASS"), (-0.1, 0.3, ">", "INCONCLUSIVE"), (-0.3, -0.1, ">", "FAIL"),
    (0.0, 0.0, ">=", "PASS"), (0.0, 0.0, "<", "FAIL"), (None, None, "<", "INCONCLUSIVE"),
    (0.2, 0.5, "<=", "PASS"), (0.4, 0.6, "<=", "INCONCLUSIVE"), (0.51, 0.9, "<=", "FAIL")])
def test_verdict_rule(lo, hi, op, verdict):
    threshold = 0.5 if op == "<=" else 0.0
    assert claims.directional(lo, hi, op, threshold) == verdict
