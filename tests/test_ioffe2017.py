"""ioffe2017: every claim fed a world where it is false (FAIL) and one where it is true (PASS).

Run folders are written with chosen late accuracies (tests/synthetic.py, with the batch options of
issue 11 set in config.json here): per seed an i.i.d. BN baseline, and BN and batch renorm in the
small or non-i.i.d. setting of each group. The claims read the mean of the evaluations in the last
20% of the updates, so each curve ends with two evaluations at the chosen value after an early
stretch that must not count. Test names start with the claim id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ics_cli.studies import REGISTRY, ioffe2017 as io

from synthetic import context, edit_config, write_quantity, write_run

SEEDS = range(5)
CURVE = [0.1, 0.3, 0.5, 0.2]     # steps 0-300: before the last 20% of the run (steps 400, 500)


def test_every_claim_is_covered_here():
    covered = {name[len("test_"):].split("_")[0].upper() for name in globals() if name.startswith("test_")}
    ids = {c.id.upper() for c in io.CLAIMS}
    assert ids == {f"R{k}" for k in range(1, 5)}
    assert ids <= covered, f"claims without a falsifiability test: {sorted(ids - covered)}"
    assert REGISTRY["ioffe2017"] is io.STUDY


def batch_run(root: Path, *, norm: str, seed: int, final: float, status: str = "completed",
              sharpness: float | None = None, **options) -> Path:
    """A finished run whose config.json holds `options` (micro_batch, batch_sampler, ...), whose last two
    evaluations (the last 20% of its 500 steps) are at `final`, with sharpness × lr `sharpness` at steps
    100 and 200 (and 50 at step 0, which the claims leave out) when given."""
    folder = Path(root) / "-".join(f"{k}{v}" for k, v in sorted(options.items()))
    path = write_run(folder, norm=norm, seed=seed, model="cnn", test_acc=CURVE + [final, final], status=status)
    if sharpness is not None:
        write_quantity(path, "sharpness", [[s, v / 0.5, v / 0.5, 0.5, v, 20, 0.0]
                                           for s, v in ((0, 50.0), (100, sharpness), (200, sharpness))])
    return edit_config(path, **options)


# A small wobble per arm (BN i.i.d., BN, batch renorm) and seed, each of mean 0 over the seeds, so
# every interval has a width and a claim on the edge straddles its threshold.
WOBBLE = [[0, 0.002, -0.002, 0.001, -0.001], [0.001, -0.001, 0, 0.002, -0.002], [-0.002, 0.001, 0.002, -0.001, 0]]


def wobble(seed: int, arm: int) -> float:
    return WOBBLE[arm][seed]


def world(tmp_path, group: str, iid: float, bn: float, br: float, diverged: set = frozenset(), seeds=SEEDS,
          sharpness: dict | None = None):
    """One group: per seed BN i.i.d. at `iid`, BN and batch renorm in the group's setting at `bn`, `br`
    (their sharpness × lr from `sharpness`, by norm, where given)."""
    sharpness = sharpness or {}
    base, small = io._settings(group)
    paths = []
    for seed in seeds:
        paths.append(batch_run(tmp_path / "runs", norm="batch", seed=seed, final=iid + wobble(seed, 0),
                               sharpness=sharpness.get("iid"), **base))
        for arm, (norm, acc) in enumerate((("batch", bn), ("batch-renorm", br)), 1):
            status = "diverged" if (norm, seed) in diverged else "completed"
            paths.append(batch_run(tmp_path / "runs", norm=norm, seed=seed, final=acc + wobble(seed, arm),
                                   status=status, sharpness=sharpness.get(norm), **small))
    return context(tmp_path, {group: paths})


GROUPS = {"micro": ("R1", "R2"), "two-class": ("R3", "R4")}


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
def test_r3_two_class_batches_drop_bn_accuracy(tmp_path, bn, verdict):
    check_drop(tmp_path, "R3", bn, verdict)


@pytest.mark.parametrize("br, verdict", RECOVERIES)
def test_r4_batch_renorm_recovers_the_two_class_drop(tmp_path, br, verdict):
    check_recovery(tmp_path, "R4", br, verdict)


def test_r2_a_diverged_batch_renorm_run_counts_at_chance(tmp_path):
    """Batch renorm recovers everything on four seeds but diverges on the fifth: that seed's contrast is
    0.1 − 0.91 − 0.03, far below zero, and the claim can no longer pass."""
    ctx = world(tmp_path, "micro", iid=0.97, bn=0.91, br=0.97, diverged={("batch-renorm", 3)})
    m = io.measure_recovery(ctx, "micro")
    assert m.verdict == "INCONCLUSIVE"
    assert m.value == pytest.approx((4 * 0.03 + (0.1 - 0.91 - 0.03)) / 5, abs=0.003)


def test_r1_reads_the_runs_of_its_own_setting(tmp_path):
    """The baseline is BN at batch 32 without micro-batches, and the comparison BN with micro-batches
    of 4: swapping the two configurations turns a drop into a gain."""
    ctx = world(tmp_path, "micro", iid=0.97, bn=0.91, br=0.96)
    acc = io.accuracies(ctx, "micro")
    assert min(acc["iid"].values()) > 0.96 and max(acc["batch"].values()) < 0.92
    assert set(acc) == {"iid", "batch", "batch-renorm"} and all(len(v) == 5 for v in acc.values())


def test_r3_scores_the_mean_of_the_late_evaluations_not_the_last_one(tmp_path):
    """BN's last two evaluations are 0.88 and 0.94 (mean 0.91), and an early one is 0.99: the drop is
    0.97 − 0.91, neither 0.97 − 0.94 (the last evaluation alone) nor pulled by the early 0.99."""
    base, small = io._settings("two-class")
    paths = []
    for seed in SEEDS:
        paths.append(edit_config(write_run(tmp_path / "iid", norm="batch", seed=seed, model="cnn",
                                           test_acc=[0.1, 0.5, 0.6, 0.7, 0.97, 0.97 + wobble(seed, 0)]), **base))
        for norm in io.NORMS:
            paths.append(edit_config(write_run(tmp_path / norm, norm=norm, seed=seed, model="cnn",
                                               test_acc=[0.1, 0.99, 0.6, 0.7, 0.88, 0.94 + wobble(seed, 1)]),
                                     **small))
    m = io.measure_drop(context(tmp_path, {"two-class": paths}), "two-class")
    assert m.value == pytest.approx(0.97 - 0.91, abs=0.002) and m.verdict == "PASS"


def test_r3_reports_sharpness_times_lr_of_the_three_nets_and_r1_says_micro_batches_are_not_probed(tmp_path):
    """Sharpness × lr is the mean of the probes after step 0 (step 0's 50 left out), per arm."""
    ctx = world(tmp_path, "two-class", iid=0.97, bn=0.91, br=0.96,
                sharpness={"iid": 1.5, "batch": 0.25, "batch-renorm": 0.75})
    seen = io.measure_drop(ctx, "two-class").seen
    assert "BN i.i.d. 1.5, BN 0.25, batch renorm 0.75" in seen
    seen = io.measure_recovery(world(tmp_path / "micro", "micro", iid=0.97, bn=0.91, br=0.96,
                                     sharpness={"iid": 1.5}), "micro").seen
    assert "BN i.i.d. 1.5, BN not recorded, batch renorm not recorded" in seen and "cannot be probed" in seen


SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.mark.parametrize("quick", [False, True])
def test_plan_matches_bn_and_batch_renorm_in_every_setting(quick, monkeypatch):
    """In each group the small or non-i.i.d. runs differ only in the norm, and the i.i.d. baseline
    only in the option under test; every run has the same lr, schedule, steps and evaluation cadence,
    and both groups share one i.i.d. baseline (the same configurations)."""
    if not quick:     # the full plan reads CIFAR-10's sizes
        if not (SHARED / "cifar10").is_dir():
            pytest.skip(f"the full plan needs CIFAR-10 in {SHARED} (beside every CI checkout)")
        monkeypatch.setenv("ICS_DATA_DIR", str(SHARED))
    groups = io.plan(quick)
    assert list(groups) == ["micro", "two-class"]
    p = io.QUICK if quick else io.FULL
    every = p["steps"] // io.EVALS
    for name, grid in groups.items():
        configs = grid.configs()
        assert {c.lr for c in configs} == {io.COMMON.lr} and {c.steps for c in configs} == {p["steps"]}
        assert {c.lr_schedule for c in configs} == {"step"} and {c.batch_size for c in configs} == {32}
        assert all(c.eval_every == c.log_every == every and c.bn_eval == "ema" for c in configs)
        assert all(c.model == "cnn" and c.track_units == 1 for c in configs)
        assert {c.dataset for c in configs} == {"mnist-5k" if quick else "cifar10"}
        base, small = io._settings(name)
        iid = [c for c in configs if all(getattr(c, k) == v for k, v in base.items())]
        rest = [c for c in configs if all(getattr(c, k) == v for k, v in small.items())]
        assert {c.norm for c in iid} == {"batch"} and {c.norm for c in rest} == set(io.NORMS)
        assert len(iid) + len(rest) == len(configs) == 3 * len(p["seeds"])
        # sharpness in the first half, wherever the run can be probed (not through micro-batches)
        assert all(c.sharpness_every > 0 and c.second_view_until == 0.5 for c in iid)
        assert all((c.sharpness_every > 0) == (name == "two-class") for c in rest)
    baselines = [{c.hash() for c in grid.configs() if c.batch_sampler == "iid" and not c.micro_batch}
                 for grid in groups.values()]
    assert baselines[0] == baselines[1]
    assert {c.micro_batch for c in groups["micro"].configs() if c.micro_batch} == {4}
    assert {c.batch_sampler for c in groups["two-class"].configs()} == {"iid", "two-class"}


def test_figure_is_drawn_from_the_group_tables(tmp_path):
    """One panel per setting and one of sharpness × lr, drawn from each group's saved tables (what
    `ics plot` redraws from)."""
    ctx = world(tmp_path, "micro", iid=0.97, bn=0.91, br=0.96, seeds=range(2))
    ctx.groups.update(world(tmp_path / "few", "two-class", iid=0.97, bn=0.91, br=0.96, seeds=range(2),
                            sharpness={"iid": 1.5, "batch": 0.25, "batch-renorm": 0.75}).groups)
    for group in io.SETTINGS:
        ctx.tables(group)
    ctx.save_tables()
    (path, caption), = io.draw(ctx, tmp_path / "figures")
    assert path.is_file() and path.stat().st_size > 10_000 and caption.startswith("R1–R4")
    from ics_cli.studies.context import Context
    redrawn, = io.draw(Context(out=ctx.out, quick=False), tmp_path / "again")
    assert redrawn[0].read_bytes() == path.read_bytes()


def test_without_sharpness_the_figure_has_no_empty_panel(tmp_path):
    import matplotlib.pyplot as plt

    ctx = world(tmp_path, "micro", iid=0.97, bn=0.91, br=0.96, seeds=range(2))
    ctx.groups.update(world(tmp_path / "few", "two-class", iid=0.97, bn=0.91, br=0.96, seeds=range(2)).groups)
    shown = []
    real = plt.Figure.savefig

    def spy(self, *args, **kwargs):
        shown.append([ax for ax in self.axes if ax.has_data()])
        shown.append(self.axes)
        return real(self, *args, **kwargs)
    plt.Figure.savefig = spy
    try:
        (path, caption), = io.draw(ctx, tmp_path / "figures")
    finally:
        plt.Figure.savefig = real
    with_data, axes = shown
    assert len(axes) == len(io.SETTINGS) == len(with_data)      # one panel per setting, none empty
    assert "sharpness" not in caption
