"""ioffe2017: every claim fed a world where it is false (FAIL) and one where it is true (PASS).

Run folders are written with chosen final accuracies (tests/synthetic.py, with the batch options of
issue 11 set in config.json here): per seed an i.i.d. BN baseline, and BN and batch renorm in the
small or non-i.i.d. setting of each group. Test names start with the claim id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ics_cli.studies import REGISTRY, ioffe2017 as io

from synthetic import context, edit_config, write_run

SEEDS = range(5)
CURVE = [0.1, 0.6, 0.8, 0.9]


def test_every_claim_is_covered_here():
    covered = {name[len("test_"):].split("_")[0].upper() for name in globals() if name.startswith("test_")}
    ids = {c.id.upper() for c in io.CLAIMS}
    assert ids == {f"R{k}" for k in range(1, 7)}
    assert ids <= covered, f"claims without a falsifiability test: {sorted(ids - covered)}"
    assert REGISTRY["ioffe2017"] is io.STUDY


def batch_run(root: Path, *, norm: str, seed: int, final: float, status: str = "completed", **options) -> Path:
    """A finished run whose config.json holds `options` (micro_batch, batch_sampler, batch_size, ...)."""
    folder = Path(root) / "-".join(f"{k}{v}" for k, v in sorted(options.items()))
    path = write_run(folder, norm=norm, seed=seed, model="cnn", test_acc=CURVE[:-1] + [final], status=status)
    return edit_config(path, **options)


# A small wobble per arm (BN i.i.d., BN, batch renorm) and seed, each of mean 0 over the seeds, so
# every interval has a width and a claim on the edge straddles its threshold.
WOBBLE = [[0, 0.002, -0.002, 0.001, -0.001], [0.001, -0.001, 0, 0.002, -0.002], [-0.002, 0.001, 0.002, -0.001, 0]]


def wobble(seed: int, arm: int) -> float:
    return WOBBLE[arm][seed]


def world(tmp_path, group: str, iid: float, bn: float, br: float, diverged: set = frozenset(), seeds=SEEDS):
    """One group: per seed BN i.i.d. at `iid`, BN and batch renorm in the group's setting at `bn`, `br`."""
    base, small = io._settings(group)
    paths = []
    for seed in seeds:
        paths.append(batch_run(tmp_path / "runs", norm="batch", seed=seed, final=iid + wobble(seed, 0), **base))
        for arm, (norm, acc) in enumerate((("batch", bn), ("batch-renorm", br)), 1):
            status = "diverged" if (norm, seed) in diverged else "completed"
            paths.append(batch_run(tmp_path / "runs", norm=norm, seed=seed, final=acc + wobble(seed, arm),
                                   status=status, **small))
    return context(tmp_path, {group: paths})


GROUPS = {"micro": ("R1", "R2"), "paired20": ("R3", "R4"), "paired10": ("R5", "R6")}


def claim(claim_id: str):
    return next(c for c in io.CLAIMS if c.id == claim_id)


def check_drop(tmp_path, claim_id: str, bn: float, verdict: str):
    group = next(g for g, ids in GROUPS.items() if claim_id in ids)
    m = claim(claim_id).measure(world(tmp_path, group, iid=0.97, bn=bn, br=0.96))
    assert m.verdict == verdict and m.n_seeds == 5
    assert m.value == pytest.approx(0.97 - bn, abs=0.003)


def check_recovery(tmp_path, claim_id: str, br: float, verdict: str):
    group = next(g for g, ids in GROUPS.items() if claim_id in ids)
    m = claim(claim_id).measure(world(tmp_path, group, iid=0.97, bn=0.91, br=br))
    assert m.verdict == verdict
    assert m.value == pytest.approx(br - 0.91 - io.RECOVER * 0.06, abs=0.003)


DROPS = [(0.91, "PASS"), (0.98, "FAIL"), (0.97, "INCONCLUSIVE")]
RECOVERIES = [(0.96, "PASS"),          # 5 of the 6 points back
              (0.92, "FAIL"),          # 1 of 6: batch renorm barely helps
              (0.94, "INCONCLUSIVE")]  # exactly half: the interval straddles 0


@pytest.mark.parametrize("bn, verdict", DROPS)
def test_r1_micro_batches_drop_bn_accuracy(tmp_path, bn, verdict):
    check_drop(tmp_path, "R1", bn, verdict)


@pytest.mark.parametrize("br, verdict", RECOVERIES)
def test_r2_batch_renorm_recovers_the_micro_batch_drop(tmp_path, br, verdict):
    check_recovery(tmp_path, "R2", br, verdict)


@pytest.mark.parametrize("bn, verdict", DROPS)
def test_r3_paired_batches_of_20_drop_bn_accuracy(tmp_path, bn, verdict):
    check_drop(tmp_path, "R3", bn, verdict)


@pytest.mark.parametrize("br, verdict", RECOVERIES)
def test_r4_batch_renorm_recovers_the_paired_20_drop(tmp_path, br, verdict):
    check_recovery(tmp_path, "R4", br, verdict)


@pytest.mark.parametrize("bn, verdict", DROPS)
def test_r5_paired_batches_of_10_drop_bn_accuracy(tmp_path, bn, verdict):
    check_drop(tmp_path, "R5", bn, verdict)


@pytest.mark.parametrize("br, verdict", RECOVERIES)
def test_r6_batch_renorm_recovers_the_paired_10_drop(tmp_path, br, verdict):
    check_recovery(tmp_path, "R6", br, verdict)


def test_r2_a_diverged_batch_renorm_run_counts_at_chance(tmp_path):
    """Batch renorm recovers everything on four seeds but diverges on the fifth: that seed's contrast is
    0.1 − 0.91 − 0.03, far below zero, and the claim can no longer pass."""
    ctx = world(tmp_path, "micro", iid=0.97, bn=0.91, br=0.97, diverged={("batch-renorm", 3)})
    m = io.measure_recovery(ctx, "micro")
    assert m.verdict == "INCONCLUSIVE"
    assert m.value == pytest.approx((4 * 0.03 + (0.1 - 0.91 - 0.03)) / 5, abs=0.003)


def test_r1_reads_the_runs_of_its_own_setting(tmp_path):
    """The baseline is BN at batch 60 without micro-batches, and the comparison BN with micro-batches
    of 4: swapping the two configurations turns a drop into a gain."""
    ctx = world(tmp_path, "micro", iid=0.97, bn=0.91, br=0.96)
    acc = io.accuracies(ctx, "micro")
    assert min(acc["iid"].values()) > 0.96 and max(acc["batch"].values()) < 0.92
    assert set(acc) == {"iid", "batch", "batch-renorm"} and all(len(v) == 5 for v in acc.values())


def test_plan_matches_bn_and_batch_renorm_in_every_setting():
    """In each group the small or non-i.i.d. runs differ only in the norm, and the i.i.d. baseline
    only in the option under test; every run has the same lr, steps and evaluation cadence."""
    for quick in (False, True):
        groups = io.plan(quick)
        assert list(groups) == ["micro", "paired20", "paired10"]
        p = io.QUICK if quick else io.FULL
        for name, grid in groups.items():
            configs = grid.configs()
            assert {c.lr for c in configs} == {io.COMMON.lr} and {c.steps for c in configs} == {p["steps"]}
            assert all(c.eval_every == c.log_every == p["log_every"] and c.bn_eval == "ema" for c in configs)
            assert all(c.model == "cnn" and c.track_units == 1 for c in configs)
            base, small = io._settings(name)
            iid = [c for c in configs if all(getattr(c, k) == v for k, v in base.items())]
            rest = [c for c in configs if all(getattr(c, k) == v for k, v in small.items())]
            assert {c.norm for c in iid} == {"batch"} and {c.norm for c in rest} == set(io.NORMS)
            assert len(iid) + len(rest) == len(configs) == 3 * len(p["seeds"])
        micro = [c for c in groups["micro"].configs() if c.micro_batch]
        assert {c.micro_batch for c in micro} == {4} and {c.batch_size for c in micro} == {60}
        assert {c.batch_size for c in groups["paired10"].configs()} == {10}


def test_figure_is_drawn_from_the_group_tables(tmp_path):
    """One panel per setting, drawn from each group's saved curves (what `ics plot` redraws from)."""
    ctx = world(tmp_path, "micro", iid=0.97, bn=0.91, br=0.96, seeds=range(2))
    for group in ("paired20", "paired10"):
        ctx.groups.update(world(tmp_path / group, group, iid=0.97, bn=0.91, br=0.96, seeds=range(2)).groups)
    for group in io.SETTINGS:
        ctx.tables(group)
    ctx.save_tables()
    (path, caption), = io.draw(ctx, tmp_path / "figures")
    assert path.is_file() and path.stat().st_size > 10_000 and caption.startswith("R1–R6")
    from ics_cli.studies.context import Context
    redrawn, = io.draw(Context(out=ctx.out, quick=False), tmp_path / "again")
    assert redrawn[0].read_bytes() == path.read_bytes()
