"""bjorck2018: every claim fed a world where it is false (FAIL) and one where it is true (PASS).

Run folders are written with chosen numbers (tests/synthetic.py): relative losses at initialization
for B1, per-layer activation statistics for B2, final accuracies and divergence over an lr grid for
B3 and B4. Test names start with the claim id, as in test_falsifiable.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ics_cli.studies import REGISTRY, bjorck2018 as bj

from synthetic import HIDDEN, context, write_relative_loss, write_run

SEEDS = range(5)
ALPHAS = [10 ** (k / 4) for k in range(-24, 5)]           # the protocol's grid, 1e-6 ... 10
CURVE = [0.1, 0.5, 0.7, 0.8, 0.85, 0.88, 0.9, 0.91, 0.92, 0.93, 0.94]


def test_every_claim_is_covered_here():
    covered = {name[len("test_"):].split("_")[0].upper() for name in globals() if name.startswith("test_")}
    ids = {c.id.upper().replace("-", "") for c in bj.CLAIMS}     # B1-cifar: test_b1cifar_...
    assert ids <= covered, f"claims without a falsifiability test: {sorted(ids - covered)}"
    assert REGISTRY["bjorck2018"] is bj.STUDY


# --------------------------------------------------------------------------- B1: relative loss at init


def rel_world(at: float | None, seed: int) -> dict[float, float]:
    """A relative-loss curve over ALPHAS that crosses 10³ at the first α ≥ `at` (never if None)."""
    wobble = 1 + 0.01 * seed
    return {a: (5e3 * wobble * a / at if at is not None and a >= at * 0.999 else 1.0 + a * wobble)
            for a in ALPHAS}


def init_group(tmp_path, model: str, at: dict[str, float | None]):
    paths = []
    for seed in SEEDS:
        for norm in ("none", "batch"):
            p = write_run(tmp_path / "runs", norm=norm, seed=seed, model=model, test_acc=[0.1, 0.1], log_every=1)
            paths.append(write_relative_loss(p, rel_world(at[norm], seed)))
    return paths


def b1_context(tmp_path, resmlp: dict, mlp: dict | None = None, cifar: dict | None = None):
    groups = {bj.INIT["resmlp"]: init_group(tmp_path / "res", "resmlp", resmlp)}
    if cifar is not None:        # the ResNet's relative losses, written as resmlp folders: the claim reads no model
        groups[bj.CIFAR] = init_group(tmp_path / "cifar", "resmlp", cifar)
    if mlp is not None:
        groups[bj.INIT["mlp"]] = init_group(tmp_path / "plain", "mlp", mlp)
    return context(tmp_path, groups)


@pytest.mark.parametrize("none_at, bn_at, verdict", [
    (1e-4, 1.0, "PASS"),          # 10⁴× apart
    (1e-4, None, "PASS"),         # BN never blows up on the grid: the ratio's upper end is infinite
    (1e-3, 1e-3, "FAIL"),         # same step size
    (1e-3, 3.16e-3, "FAIL"),      # only 3× apart: even the bracket's upper end is below 10
    (1e-3, 1e-2, "INCONCLUSIVE"),  # 10× apart on a quarter-decade grid: the bracket straddles 10
])
def test_b1_blowup_at_smaller_steps_without_bn(tmp_path, none_at, bn_at, verdict):
    m = bj.measure_b1(b1_context(tmp_path, {"none": none_at, "batch": bn_at}))
    assert m.verdict == verdict and m.n_seeds == 5


@pytest.mark.parametrize("none_at, bn_at, verdict", [(1e-4, None, "PASS"), (1e-3, 1e-3, "FAIL")])
def test_b1cifar_blowup_on_the_resnet(tmp_path, none_at, bn_at, verdict):
    """B1-cifar reads its own group: the residual MLP's worlds do not decide it."""
    ctx = b1_context(tmp_path, {"none": 1e-3, "batch": 1e-3}, cifar={"none": none_at, "batch": bn_at})
    m = bj.measure_b1_cifar(ctx)
    assert m.verdict == verdict and m.log


def test_b1_blowup_bracket():
    class R:                                    # a run whose relative_loss table is given
        def __init__(self, rows):
            import pandas as pd
            self.frame = pd.DataFrame(rows, columns=["step", "alpha", "loss0", "loss", "rel_loss"])
            self.path = type("P", (), {"name": "r"})()

        def table(self, name):
            return self.frame
    # crosses at the third α: bracket [second, third]
    assert bj.blowup(R([[0, 0.1, 1, 1, 1], [0, 1, 1, 2, 2], [0, 10, 1, 2e3, 2e3]])) == (10, 1, 10)
    # a non-finite loss counts as a blow-up, even where the ratio is blank (NaN)
    assert bj.blowup(R([[0, 0.1, 1, 1, 1], [0, 1, 1, math.nan, math.nan]])) == (1, 0.1, 1)
    # blown at the first α: the lower end is 0; never: [largest α, inf); rows of later steps ignored
    assert bj.blowup(R([[0, 0.1, 1, math.inf, math.inf]])) == (0.1, 0.0, 0.1)
    assert bj.blowup(R([[0, 0.1, 1, 1, 1], [0, 1, 1, 1, 1], [5, 0.1, 1, 1e9, 1e9]])) == (1, 1, math.inf)


@pytest.mark.parametrize("none_at, verdict", [(None, "PASS"), (1.78, "PASS"), (1e-3, "FAIL")])
def test_b1c_plain_mlp_contrast(tmp_path, none_at, verdict):
    """B1c: the plain MLP without BN blows up only at large steps (PASS), or at tiny ones (FAIL)."""
    ctx = b1_context(tmp_path, {"none": 1e-4, "batch": 1.0}, {"none": none_at, "batch": None})
    assert bj.measure_b1c(ctx).verdict == verdict


# --------------------------------------------------------------------------- B2: activations vs depth


def depth_world(rate: float):
    """Every hidden layer's channel |mean| and std at the linear site grow by 10**rate per layer."""
    def layers(norm, seed):
        out = {}
        for k, layer in enumerate(HIDDEN, 1):
            scale = 10 ** (rate * k) * (1 + 0.003 * seed * k)
            out[(layer, bj.SITE)] = {"unit_mean_abs": [0.3 * scale] * 2, "unit_var_mean": [scale ** 2] * 2}
        return out
    return layers


def b2_context(tmp_path, model: str, rates: dict[str, float]):
    paths = [write_run(tmp_path / "runs", norm=norm, seed=seed, model=model, test_acc=[0.1, 0.1],
                       log_every=1, layers=depth_world(rates[norm])(norm, seed))
             for seed in SEEDS for norm in ("none", "batch")]
    return context(tmp_path, {bj.INIT[model]: paths})


def test_slopes_are_decades_per_layer(tmp_path):
    ctx = b2_context(tmp_path, "resmlp", {"none": 0.15, "batch": 0.0})
    run = ctx.by_seed(bj.INIT["resmlp"], norm="none")[0]
    assert bj.slopes(run) == pytest.approx((0.15, 0.15))


@pytest.mark.parametrize("rate, verdict", [(0.15, "PASS"), (0.0, "FAIL"), (-0.03, "FAIL")])
def test_b2a_growth_without_bn(tmp_path, rate, verdict):
    """B2a: growth with depth without BN PASSes; flat or shrinking activations FAIL."""
    m = bj.measure_b2a(b2_context(tmp_path, "resmlp", {"none": rate, "batch": 0.0}))
    assert m.verdict == verdict


@pytest.mark.parametrize("rate, verdict", [(0.0, "PASS"), (0.06, "PASS"), (0.15, "FAIL"), (0.2, "FAIL")])
def test_b2b_less_growth_with_bn_than_without(tmp_path, rate, verdict):
    """B2b: BN's slope below the slope without BN (0.15) PASSes; as steep or steeper FAILs."""
    m = bj.measure_b2b(b2_context(tmp_path, "resmlp", {"none": 0.15, "batch": rate}))
    assert m.verdict == verdict


def sqrt_world(extra: float):
    """Channel |mean| and std grow like sqrt(layer) × 10**(extra · layer): √depth plus an excess slope."""
    def layers(norm, seed):
        return {(layer, bj.SITE): {"unit_mean_abs": [0.3 * math.sqrt(k) * 10 ** (extra * k) * (1 + 0.002 * seed)] * 2,
                                   "unit_var_mean": [k * 10 ** (2 * extra * k) * (1 + 0.002 * seed)] * 2}
                for k, layer in enumerate(HIDDEN, 1)}
    return layers


@pytest.mark.parametrize("extra, verdict", [(0.0, "PASS"), (0.01, "PASS"), (0.03, "FAIL"), (0.15, "FAIL")])
def test_b2bsqrt_no_faster_than_the_construction(tmp_path, extra, verdict):
    """B2b-sqrt: √depth growth (the construction) PASSes; a factor well beyond 2 over 20 layers FAILs."""
    paths = [write_run(tmp_path / "runs", norm="batch", seed=s, model="resmlp", test_acc=[0.1, 0.1],
                       log_every=1, layers=sqrt_world(extra)("batch", s)) for s in SEEDS]
    m = bj.measure_b2b_sqrt(context(tmp_path, {bj.INIT["resmlp"]: paths}))
    assert m.verdict == verdict and m.value == pytest.approx(extra, abs=0.002)


def test_b2bsqrt_one_growing_part_fails_the_claim(tmp_path):
    """√depth standard deviations do not save the claim if the channel means grow geometrically."""
    def layers(norm, seed):
        return {(layer, bj.SITE): {"unit_mean_abs": [10 ** (0.3 * k) * (1 + 0.01 * seed)] * 2,
                                   "unit_var_mean": [k * (1.0 + 0.01 * seed)] * 2}
                for k, layer in enumerate(HIDDEN, 1)}
    paths = [write_run(tmp_path / "runs", norm="batch", seed=s, model="resmlp", test_acc=[0.1, 0.1],
                       log_every=1, layers=layers("batch", s)) for s in SEEDS]
    m = bj.measure_b2b_sqrt(context(tmp_path, {bj.INIT["resmlp"]: paths}))
    null = bj.sqrt_depth_slope(np.arange(1, len(HIDDEN) + 1, dtype=float))
    assert m.verdict == "FAIL" and m.value == pytest.approx(0.3 - null, abs=0.01)


@pytest.mark.parametrize("rate, verdict", [(-0.03, "PASS"), (0.0, "PASS"), (0.15, "FAIL")])
def test_b2c_plain_mlp_contrast(tmp_path, rate, verdict):
    """B2c: a plain MLP whose activations do not grow PASSes; one that grows FAILs."""
    m = bj.measure_b2c(b2_context(tmp_path, "mlp", {"none": rate, "batch": 0.0}))
    assert m.verdict == verdict


# --------------------------------------------------------------------------- B3, B4: the lr sweep

GRID = bj.LR_GRID


def lr_world(tmp_path, top: dict[str, float], acc: dict[str, float] | None = None, seeds=SEEDS,
             top_by_seed=None):
    """lr_sweep: a run trains to `acc[norm]` (+ a seed wobble) up to the norm's top lr, diverges above."""
    acc = acc or {"none": 0.94, "batch": 0.94}
    paths = []
    for seed in seeds:
        for norm in ("none", "batch"):
            limit = (top_by_seed or {}).get((norm, seed), top[norm])
            for lr in GRID:
                ok = lr <= limit * 1.0001
                final = acc[norm] + (0.004 * ((seed * 7) % 5 - 2) if norm == "batch" else 0.0)
                paths.append(write_run(tmp_path / "runs", norm=norm, seed=seed, lr=lr, model="resmlp",
                                       test_acc=CURVE[:-1] + [final] if ok else CURVE[:3],
                                       status="completed" if ok else "diverged"))
    return context(tmp_path, {bj.SWEEP: paths})


@pytest.mark.parametrize("none_top, bn_top, verdict", [
    (1e-3, 0.1, "PASS"), (1e-3, 3.16, "PASS"), (1e-3, 1e-3, "FAIL"), (1e-3, 1e-2, "INCONCLUSIVE")])
def test_b3_largest_stable_lr(tmp_path, none_top, bn_top, verdict):
    m = bj.measure_b3(lr_world(tmp_path, {"none": none_top, "batch": bn_top}))
    assert m.verdict == verdict and m.value == pytest.approx(bn_top / none_top, rel=0.01)


@pytest.mark.parametrize("none_top, bn_top, verdict", [
    (1e-4, 0.1, "PASS"), (1e-3, 1e-3, "FAIL"), (1e-3, 1e-2, "INCONCLUSIVE")])
def test_b3div_largest_lr_that_does_not_diverge(tmp_path, none_top, bn_top, verdict):
    """B3-div: the ratio of the largest lrs that do not diverge, even where the network without BN never
    reaches the accuracy floor (it ends at 0.2 here): B3 then has only a bound, B3-div a measurement."""
    ctx = lr_world(tmp_path, {"none": none_top, "batch": bn_top}, acc={"none": 0.2, "batch": 0.94})
    m = bj.measure_b3_div(ctx)
    assert m.verdict == verdict and m.value == pytest.approx(bn_top / none_top, rel=0.01)
    assert math.isinf(bj.measure_b3(ctx).ci_high)       # with the floor: no stable lr without BN


def test_b3_stable_needs_learning_not_only_finishing():
    class Run:
        def __init__(self, acc, status="completed"):
            self.status, self.summary = status, {"final": {"test_acc": acc}}
    # 0.11 at every lr: nothing was learned, nothing is stable (no lr: [0, smallest lr])
    assert bj.largest_stable({1e-3: Run(0.11), 1e-2: Run(0.11)}) == (1e-3, 0.0, 1e-3)
    # below 0.9 x the best is not stable even without divergence; the bracket ends at the next lr
    assert bj.largest_stable({1e-3: Run(0.9), 1e-2: Run(0.95), 1e-1: Run(0.6)}) == (1e-2, 1e-2, 1e-1)
    assert bj.largest_stable({1e-3: Run(0.9), 1e-2: Run(0.95, "diverged")}) == (1e-3, 1e-3, 1e-2)
    assert bj.largest_stable({1e-3: Run(0.9), 1e-2: Run(0.95)}) == (1e-2, 1e-2, math.inf)


@pytest.mark.parametrize("bn_acc, verdict", [(0.94, "PASS"), (0.99, "FAIL"), (0.85, "FAIL"),
                                             (0.965, "INCONCLUSIVE")])
def test_b4_equal_accuracy_at_a_matched_small_lr(tmp_path, bn_acc, verdict):
    """At the lr the network without BN tolerates, BN ends at bn_acc against 0.94 without."""
    ctx = lr_world(tmp_path, {"none": 1e-3, "batch": 0.1}, acc={"none": 0.94, "batch": bn_acc})
    m = bj.measure_b4(ctx)
    assert m.verdict == verdict and m.value == pytest.approx(bn_acc - 0.94, abs=1e-9)


@pytest.mark.parametrize("bn_acc, verdict", [(0.2, "PASS"), (0.5, "FAIL")])
def test_b4_testable_where_no_lr_clears_the_floor(tmp_path, bn_acc, verdict):
    """Without BN the network learns to 0.2 at most: B4 still compares the two at the lr it survives."""
    ctx = lr_world(tmp_path, {"none": 1e-4, "batch": 0.1}, acc={"none": 0.2, "batch": bn_acc})
    m = bj.measure_b4(ctx)
    assert m.verdict == verdict and "lr 0.0001" in m.seen and "sharpness × lr" in m.seen


def test_b4_the_lr_is_chosen_on_the_other_seeds(tmp_path):
    """Seed 0 alone tolerates a larger lr without BN: it is tested at the others' lr (1e-3), and the
    others at the lr all of their others tolerate."""
    ctx = lr_world(tmp_path, {"none": 1e-3, "batch": 0.1}, top_by_seed={("none", 0): 0.1})
    lrs = bj.matched_lrs(bj.sweep_runs(ctx, "none"))
    assert lrs == {0: pytest.approx(1e-3), **{s: pytest.approx(1e-3) for s in range(1, 5)}}
    # a diverged run at the matched lr counts at chance
    ctx = lr_world(tmp_path / "b", {"none": 1e-3, "batch": 0.1}, top_by_seed={("none", 2): 3.16e-4})
    assert bj.matched_lrs(bj.sweep_runs(ctx, "none"))[0] == pytest.approx(3.16e-4)
    m = bj.measure_b4(ctx)      # seed 2 is tested at 1e-3, where it diverged without BN: 0.94 vs 0.1
    assert m.verdict == "INCONCLUSIVE" and m.value == pytest.approx((0.94 - 0.1) / 5, abs=0.01)


SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def test_plan_is_one_protocol_for_both_norms(monkeypatch):
    """Every group runs both norms with the same values; the init groups stop after one step and
    record the relative loss at step 0 only; the sweep's grid is the protocol's."""
    for quick in (True, False):
        if not quick:       # the full plan holds the CIFAR-10 ResNet: its configs read the data's sizes
            if not (SHARED / "cifar10").is_dir():
                pytest.skip(f"the full plan needs CIFAR-10 in {SHARED} (beside every CI checkout)")
            monkeypatch.setenv("ICS_DATA_DIR", str(SHARED))
        groups = bj.plan(quick)
        assert set(groups) == {bj.SWEEP, *bj.INIT.values(), *([] if quick else [bj.CIFAR])}
        for name, grid in groups.items():
            configs = grid.configs()
            by_norm = {}
            for cfg in configs:
                d = cfg.to_dict()
                by_norm.setdefault(d.pop("norm"), set()).add(tuple(sorted((k, str(v)) for k, v in d.items())))
            assert set(by_norm) == {"none", "batch"} and by_norm["none"] == by_norm["batch"]
            if name in bj.INIT.values():
                assert all(c.steps == 1 and c.relative_loss_every >= c.steps and c.depth == 20 for c in configs)
            if name == bj.CIFAR:        # the paper's setting on real data: full protocol only, two seeds
                assert {c.dataset for c in configs} == {"cifar10"} and {c.model for c in configs} == {"resnet"}
                assert {c.seed for c in configs} == set(bj.FULL["seeds"][:2])
        assert sorted(groups[bj.SWEEP].lrs) == (bj.QUICK if quick else bj.FULL)["lrs"]
