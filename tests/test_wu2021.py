"""wu2021: every claim fed a world where it is false (FAIL) and one where it is true (PASS).

Run folders are written with chosen test-accuracy curves (tests/synthetic.py, with the options of
issue 11 set in config.json and the batch-statistics accuracy in metrics.csv here): EMA and PreciseBN
runs at the high lr for P1 and P2, and runs at each normalization batch, with and without FrozenBN,
for P3 to P5. Test names start with the claim id.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ics_cli.studies import REGISTRY, wu2021 as wu

from synthetic import context, edit_config, write_run

SEEDS = range(5)
# Mean-zero wobbles per seed, one row per arm, so intervals have a width.
WOBBLE = [[0, 0.002, -0.002, 0.001, -0.001], [0.001, -0.001, 0, 0.002, -0.002], [-0.002, 0.001, 0.002, -0.001, 0]]


def test_every_claim_is_covered_here():
    covered = {name[len("test_"):].split("_")[0].upper() for name in globals() if name.startswith("test_")}
    ids = {c.id.upper() for c in wu.CLAIMS}
    assert ids == {f"P{k}" for k in range(1, 6)}
    assert ids <= covered, f"claims without a falsifiability test: {sorted(ids - covered)}"
    assert REGISTRY["wu2021"] is wu.STUDY


def option_run(root: Path, *, seed: int, test_acc: list[float], batchstats: list[float] | None = None,
               log_every: int = 10, model: str = "mlp", status: str = "completed", **options) -> Path:
    """A finished BN run whose config.json holds `options` and whose metrics.csv holds the given test
    accuracy (and batch-statistics accuracy) per evaluation."""
    folder = Path(root) / ("-".join(f"{k}{v}" for k, v in sorted(options.items())) or "plain")
    path = write_run(folder, norm="batch", seed=seed, model=model, test_acc=test_acc, log_every=log_every,
                     status=status, batchstats=batchstats)
    return edit_config(path, **options)


# --------------------------------------------------------------------------- P1, P2: EMA vs PreciseBN

DESCENT = [0.1, 0.5, 0.8, 0.9, 0.92, 0.93]          # steps 0..50: the first half, the same for both


def plateau(level: float, jump: float, seed: int, arm: int) -> list[float]:
    """Steps 60..100: accuracy `level` (+ a seed wobble), + and − `jump` in turn, then level (mean: level)."""
    return [level + WOBBLE[arm][seed] + j for j in (jump, -jump, jump, -jump, 0.0)]


def ema_world(tmp_path, ema: tuple[float, float], precise: tuple[float, float], seeds=SEEDS):
    """Per seed an EMA and a PreciseBN run: second-half accuracy level and step-to-step jump of each."""
    paths = []
    for seed in seeds:
        for arm, (bn_eval, (level, jump)) in enumerate((("ema", ema), ("precise", precise))):
            paths.append(option_run(tmp_path / "runs", seed=seed, bn_eval=bn_eval, lr=wu.HIGH_LR,
                                    test_acc=DESCENT + plateau(level, jump, seed, arm)))
    return context(tmp_path, {wu.EMA_GROUP: paths})


@pytest.mark.parametrize("ema, precise, verdict", [
    ((0.90, 0.01), (0.94, 0.002), "PASS"),      # PreciseBN 4 points better
    ((0.94, 0.01), (0.90, 0.002), "FAIL"),      # PreciseBN 4 points worse
    ((0.92, 0.01), (0.92, 0.002), "INCONCLUSIVE"),   # the same level: the interval straddles 0
])
def test_p1_precise_error_at_most_the_emas(tmp_path, ema, precise, verdict):
    m = wu.measure_p1(ema_world(tmp_path, ema, precise))
    assert m.verdict == verdict and m.n_seeds == 5
    assert m.value == pytest.approx(ema[0] - precise[0], abs=1e-9)


def test_p1_uses_only_the_second_half(tmp_path):
    """A PreciseBN run that is far worse early on but better in the second half passes."""
    paths = []
    for seed in SEEDS:
        paths.append(option_run(tmp_path / "runs", seed=seed, bn_eval="ema",
                                test_acc=DESCENT + plateau(0.90, 0.0, seed, 0)))
        paths.append(option_run(tmp_path / "runs", seed=seed, bn_eval="precise",
                                test_acc=[0.1] * 6 + plateau(0.94, 0.0, seed, 1)))
    m = wu.measure_p1(context(tmp_path, {wu.EMA_GROUP: paths}))
    assert m.verdict == "PASS" and m.value == pytest.approx(-0.04, abs=1e-9)


@pytest.mark.parametrize("ema_jump, precise_jump, verdict", [
    (0.02, 0.005, "PASS"),        # PreciseBN jumps a quarter as much
    (0.005, 0.02, "FAIL"),        # PreciseBN jumps four times as much
])
def test_p2_precise_varies_less(tmp_path, ema_jump, precise_jump, verdict):
    m = wu.measure_p2(ema_world(tmp_path, (0.92, ema_jump), (0.92, precise_jump)))
    assert m.verdict == verdict
    assert m.value == pytest.approx(precise_jump / ema_jump, rel=0.3)


def test_p2_variation_is_the_mean_absolute_change():
    class Run:
        config = {"config": {"steps": 100}}
        path = Path("r")
        status = "completed"

        def table(self, name):
            import pandas as pd
            return pd.DataFrame({"step": range(0, 110, 10),
                                 "test_acc": [0.1] * 6 + [0.9, 0.92, 0.9, 0.95, 0.95]})
    # second half: steps 60..100, errors 0.1, 0.08, 0.1, 0.05, 0.05: changes 0.02, 0.02, 0.05, 0
    assert wu.variation(Run()) == pytest.approx(0.0225)
    assert wu.mean_error(Run()) == pytest.approx(0.076)


# --------------------------------------------------------------------------- P3-P5: normalization batch


def batch_world(tmp_path, errors: dict[int, tuple[float, float]], frozen: float | None = None,
                diverged: set = frozenset(), seeds=SEEDS):
    """Per seed and normalization batch, final errors (population, batch statistics); at batch 2 also a
    FrozenBN run whose population error is `frozen`."""
    paths = []

    def add(seed, nb, pop, batch, **extra):
        status = "diverged" if (nb, bool(extra), seed) in diverged else "completed"
        paths.append(option_run(tmp_path / "runs", seed=seed, model="cnn", log_every=50, status=status,
                                micro_batch=wu._micro(nb), batch_size=wu.CNN.batch_size, bn_eval="precise",
                                test_acc=[0.1, 0.5, 1 - pop], batchstats=[0.1, 0.5, 1 - batch], **extra))
    for seed in seeds:
        for nb, (pop, batch) in errors.items():
            add(seed, nb, pop + WOBBLE[0][seed], batch + WOBBLE[1][seed])
        if frozen is not None:
            add(seed, wu.SMALL, frozen + WOBBLE[2][seed], 0.5, freeze_bn_at=wu.FREEZE_AT)
    return context(tmp_path, {wu.BATCH_GROUP: paths})


@pytest.mark.parametrize("pop, batch, verdict", [(0.12, 0.06, "PASS"), (0.05, 0.08, "FAIL"),
                                                 (0.07, 0.07, "INCONCLUSIVE")])
def test_p3_population_statistics_worse_at_batch_2(tmp_path, pop, batch, verdict):
    m = wu.measure_p3(batch_world(tmp_path, {2: (pop, batch), 16: (0.03, 0.05)}))
    assert m.verdict == verdict and m.value == pytest.approx(pop - batch, abs=1e-9)


@pytest.mark.parametrize("at16, at32, verdict", [
    ((0.03, 0.05), (0.02, 0.03), "PASS"),       # population statistics better at both
    ((0.05, 0.03), (0.02, 0.03), "FAIL"),       # still worse at 16: the order has not flipped there
    ((0.03, 0.05), (0.04, 0.03), "FAIL"),       # worse again at 32
])
def test_p4_population_statistics_win_at_16_and_above(tmp_path, at16, at32, verdict):
    """P4 fails where population statistics are not better at 16 or at 32, and passes where they are at both."""
    m = wu.measure_p4(batch_world(tmp_path, {2: (0.12, 0.06), 16: at16, 32: at32}))
    assert m.verdict == verdict


@pytest.mark.parametrize("frozen, verdict", [
    (0.07, "PASS"),            # 5 of the 6 points of the gap closed
    (0.115, "FAIL"),           # half a point of 6 closed
    (0.09, "INCONCLUSIVE"),    # exactly half: the interval straddles 0
])
def test_p5_frozen_bn_closes_most_of_the_gap(tmp_path, frozen, verdict):
    m = wu.measure_p5(batch_world(tmp_path, {2: (0.12, 0.06)}, frozen=frozen))
    assert m.verdict == verdict
    assert m.value == pytest.approx(0.12 - frozen - wu.CLOSE * 0.06, abs=1e-9)


def test_p5_a_diverged_frozen_run_counts_at_chance(tmp_path):
    """FrozenBN closes everything on four seeds but diverges on the fifth (error 0.9 at chance)."""
    m = wu.measure_p5(batch_world(tmp_path, {2: (0.12, 0.06)}, frozen=0.06, diverged={(2, True, 4)}))
    assert m.verdict == "INCONCLUSIVE"
    assert m.value == pytest.approx((4 * 0.03 + (0.12 - 0.9 - 0.03)) / 5, abs=0.002)


# --------------------------------------------------------------------------- the protocol


REAL_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.mark.parametrize("quick", [True, False])
def test_plan_one_training_per_seed_for_ema_and_precise(quick, monkeypatch):
    """The EMA and PreciseBN runs of a seed differ only in --bn-eval; the normalization-batch runs only in
    --micro-batch (and FrozenBN at 2, after the last lr decay); every micro-batch divides the batch."""
    if not quick:
        if not (REAL_DATA / "cifar10").is_dir():
            pytest.skip("the full protocol's CNN trains on CIFAR-10, absent here (../shared/data/cifar10)")
        monkeypatch.setenv("ICS_DATA_DIR", str(REAL_DATA))
    groups = wu.plan(quick)
    p = wu.QUICK if quick else wu.FULL
    high = groups[wu.EMA_GROUP].configs()
    assert len(high) == 2 * len(p["seeds"])
    by_seed = {}
    for c in high:
        d = c.to_dict()
        by_seed.setdefault(d.pop("seed"), {})[d.pop("bn_eval")] = d
    assert all(set(v) == {"ema", "precise"} and v["ema"] == v["precise"] for v in by_seed.values())
    assert all(c.lr == wu.HIGH_LR and c.norm == "batch" and c.eval_every == c.log_every for c in high)
    assert {c.dataset for c in high} == {"mnist-5k"}
    cnn = groups[wu.BATCH_GROUP].configs()
    assert {c.dataset for c in cnn} == {"mnist-5k" if quick else "cifar10"}
    assert len(cnn) == (len(wu.NORM_BATCHES) + 1) * len(p["seeds"])
    assert {c.norm_batch for c in cnn} == set(wu.NORM_BATCHES)
    assert all(c.batch_size == wu.CNN.batch_size and c.batch_size % c.norm_batch == 0 for c in cnn)
    assert all(c.bn_eval == "precise" and c.lr == wu.CNN.lr and c.steps == p["cnn_steps"] for c in cnn)
    assert all(c.lr_schedule == "step" and c.eval_every == c.steps for c in cnn)
    frozen = [c for c in cnn if c.freeze_bn_at is not None]
    assert {(c.norm_batch, c.freeze_bn_at) for c in frozen} == {(wu.SMALL, wu.FREEZE_AT)}
    assert all(c.freeze_bn_at > max(float(m) for m in c.lr_milestones.split(",")) for c in frozen)
    assert len(frozen) == len(p["seeds"])
    # FrozenBN and its partner differ only in the freeze (and the batch-statistics pass P5 does not read)
    for c in frozen:
        partner = next(d for d in cnn if d.seed == c.seed and d.norm_batch == wu.SMALL and d.freeze_bn_at is None)
        assert replace(c, freeze_bn_at=None, eval_batchstats=True) == partner
    assert np.all([c.track_units == 1 for c in high + cnn])


def test_figures_are_drawn_from_the_group_tables(tmp_path):
    """EMA vs PreciseBN curves and error vs normalization batch, drawn again from the saved tables alone."""
    from ics_cli.studies.context import Context
    ctx = ema_world(tmp_path / "ema", (0.90, 0.01), (0.94, 0.002), seeds=range(2))
    ctx.groups.update(batch_world(tmp_path / "nb", {2: (0.12, 0.06), 4: (0.08, 0.06), 16: (0.03, 0.05),
                                                    32: (0.02, 0.03)}, frozen=0.07, seeds=range(2)).groups)
    ctx.out = tmp_path
    for group in (wu.EMA_GROUP, wu.BATCH_GROUP):
        ctx.tables(group)
    ctx.save_tables()
    drawn = wu.draw(ctx, tmp_path / "figures")
    assert [p.name for p, _ in drawn] == ["ema_vs_precise.png", "norm_batch.png"]
    again = wu.draw(Context(out=tmp_path, quick=False), tmp_path / "again")
    assert [p.read_bytes() for p, _ in again] == [p.read_bytes() for p, _ in drawn]
