"""ba2016: every claim fed a world where it is false (FAIL) and one where it is true (PASS).

Run folders are written with chosen final test accuracies (tests/synthetic.py) and, here, a chosen
training-loss series in metrics.csv (a level, a decaying start and seed noise of a chosen size), at
batch 4 and 128 per norm and seed. Test names start with the claim id.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ics_cli.net import data
from ics_cli.studies import REGISTRY, ba2016 as ba

from synthetic import context, edit_config, write_run

SEEDS = range(5)
ROWS = 40                                   # metrics rows after step 0


def test_every_claim_is_covered_here():
    covered = {name[len("test_"):].split("_")[0].upper() for name in globals() if name.startswith("test_")}
    ids = {c.id.upper() for c in ba.CLAIMS}
    assert ids <= covered, f"claims without a falsifiability test: {sorted(ids - covered)}"
    assert REGISTRY["ba2016"] is ba.STUDY


def run_with(root: Path, *, norm: str, seed: int, batch_size: int, err: float, level: float,
             noise: float, train_mode: bool = False) -> Path:
    """A finished MLP run: final test error `err`; the eval-mode training loss (`train_loss_eval`, what L3
    and L4 read) = level × (1 + 2 e^(−k/5)) + noise × N(0, 1) at metrics row k (row 0, before any update,
    blank); the train-mode `train_loss` a constant 9, so a claim reading it would see no difference."""
    folder = write_run(Path(root) / f"{norm}-bs{batch_size}", norm=norm, seed=seed, log_every=100,
                       test_acc=[0.1] + [1 - err] * ROWS)
    edit_config(folder, batch_size=batch_size)
    metrics = pd.read_csv(folder / "metrics.csv")
    k = np.arange(len(metrics), dtype=float)
    z = np.random.default_rng([seed, batch_size, ba.NORMS.index(norm)]).standard_normal(len(metrics))
    loss = level * (1 + 2 * np.exp(-k / 5)) + noise * z
    loss[0] = math.nan
    metrics[ba.TRAIN_LOSS] = loss
    metrics["train_loss"] = 9.0
    if train_mode:                   # the series in the update's own loss instead (L3t, L4t)
        metrics["train_loss"], metrics[ba.TRAIN_LOSS] = loss, 9.0
    metrics.to_csv(folder / "metrics.csv", index=False)
    return folder


# per norm: (error at batch 4, error at batch 128, late loss level at 4, loss noise at 4)
PAPER_LIKE = {"none": (0.035, 0.03, 0.05, 0.002), "layer": (0.03, 0.031, 0.04, 0.002),
              "batch": (0.06, 0.029, 0.3, 0.03)}


def world(tmp_path, train_mode=False, **changes):
    """PAPER_LIKE, with any norm's tuple replaced by `changes[norm]` (`train_mode`: the loss series in
    `train_loss`, the eval-mode loss constant)."""
    spec = {**PAPER_LIKE, **changes}
    paths = {ba.SMALL: [], ba.LARGE: []}
    for norm, (err4, err128, level, noise) in spec.items():
        for s in SEEDS:
            jitter = float(np.random.default_rng([s, ba.NORMS.index(norm)]).uniform(-0.002, 0.002))
            paths[ba.SMALL].append(run_with(tmp_path / "runs", norm=norm, seed=s, batch_size=ba.SMALL,
                                            err=err4 + jitter, level=level, noise=noise, train_mode=train_mode))
            paths[ba.LARGE].append(run_with(tmp_path / "runs", norm=norm, seed=s, batch_size=ba.LARGE,
                                            err=err128 - jitter, level=0.1, noise=0.005))
    return context(tmp_path, {ba.GROUP[b]: p for b, p in paths.items()})


# --------------------------------------------------------------------------- L1, L2: test error at batch 4


@pytest.mark.parametrize("ln4, verdict", [
    (0.03, "PASS"),          # better than no normalization
    (0.04, "PASS"),          # half a point worse: inside the non-inferiority margin
    (0.06, "FAIL"),          # 2.5 points worse
])
def test_l1_layer_norm_no_worse_than_none_at_batch_4(tmp_path, ln4, verdict):
    m = ba.measure_l1(world(tmp_path, layer=(ln4, 0.031, 0.04, 0.002)))
    assert m.verdict == verdict and m.n_seeds == 5


@pytest.mark.parametrize("bn4, verdict", [(0.06, "PASS"), (0.03, "FAIL")])
def test_l2_batch_norm_worse_than_none_at_batch_4(tmp_path, bn4, verdict):
    m = ba.measure_l2(world(tmp_path, batch=(bn4, 0.029, 0.3, 0.03)))
    assert m.verdict == verdict and m.value == pytest.approx(bn4 - 0.035, abs=0.004)


# --------------------------------------------------------------------------- L3, L4: training loss at batch 4


@pytest.mark.parametrize("batch, verdict", [
    ((0.06, 0.029, 0.3, 0.03), "PASS"),
    ((0.06, 0.029, 0.03, 0.002), "FAIL"),      # BN's loss the lowest
    ((0.06, 0.029, 0.045, 0.002), "FAIL"),     # between none's and LN's: not above both
])
def test_l3_batch_norm_training_loss_the_highest(tmp_path, batch, verdict):
    assert ba.measure_l3(world(tmp_path, batch=batch)).verdict == verdict


@pytest.mark.parametrize("batch, verdict", [
    ((0.06, 0.029, 0.3, 0.03), "PASS"),
    ((0.06, 0.029, 0.3, 0.0005), "FAIL"),      # high but smooth: L4 is not L3 restated
])
def test_l4_batch_norm_training_loss_the_noisiest(tmp_path, batch, verdict):
    m = ba.measure_l4(world(tmp_path, batch=batch))
    assert m.verdict == verdict
    assert ba.measure_l3(world(tmp_path / "again", batch=batch)).verdict == "PASS"


@pytest.mark.parametrize("batch, verdict", [((0.06, 0.029, 0.3, 0.03), "PASS"), ((0.06, 0.029, 0.01, 0.0005), "FAIL")])
def test_l3t_reads_the_train_mode_loss(tmp_path, batch, verdict):
    assert ba.measure_l3t(world(tmp_path, train_mode=True, batch=batch)).verdict == verdict
    assert ba.measure_l3t(world(tmp_path / "eval", batch=batch)).verdict == "FAIL"     # its loss constant there


@pytest.mark.parametrize("batch, verdict", [((0.06, 0.029, 0.3, 0.03), "PASS"), ((0.06, 0.029, 0.3, 0.0005), "FAIL")])
def test_l4t_reads_the_train_mode_loss(tmp_path, batch, verdict):
    assert ba.measure_l4t(world(tmp_path, train_mode=True, batch=batch)).verdict == verdict


def test_l4_noisiness_is_the_jitter_around_the_trend():
    trend = pd.Series(np.linspace(1.0, 0.1, 30))
    assert ba.noisiness(trend) == pytest.approx(0.0, abs=1e-12)            # a trend is not noise
    z = pd.Series(np.random.default_rng(0).standard_normal(400))
    # Gaussian noise around a trend: about its std (a little less: the window's median follows it a bit)
    assert 0.75 < ba.noisiness(pd.Series(np.linspace(1.0, 0.1, 400)) + 0.05 * z) / 0.05 < 1.0
    assert ba.noisiness(0.3 + 0.05 * z) == pytest.approx(ba.noisiness(0.01 + 0.05 * z))  # not the level
    assert math.isnan(ba.noisiness(pd.Series([1.0, 2.0, 3.0])))


def test_l3_late_rows_are_the_second_half(tmp_path):
    folder = run_with(tmp_path, norm="none", seed=0, batch_size=4, err=0.03, level=0.1, noise=0.0)
    (run,) = context(tmp_path, {"g": [folder]}).groups["g"]
    rows = ba.late_rows(run)
    assert len(rows) == ROWS // 2                                     # steps 2100 ... 4000 of 4000
    assert ba.late_loss(run) == pytest.approx(float(rows.mean()))


# --------------------------------------------------------------------------- L5: close at batch 128


@pytest.mark.parametrize("bn128, verdict", [(0.029, "PASS"), (0.06, "FAIL"), (0.0, "FAIL")])
def test_l5_all_close_at_batch_128(tmp_path, bn128, verdict):
    assert ba.measure_l5(world(tmp_path, batch=(0.06, bn128, 0.3, 0.03))).verdict == verdict


# --------------------------------------------------------------------------- protocol and figures


def test_plan_is_one_protocol_for_every_norm():
    """Same epochs at both batch sizes, one Adam lr without scaling, rows every ~400 images, and every
    norm with the same values."""
    train_size = data.sizes(ba.COMMON.dataset)[0]
    for quick in (False, True):
        p = ba.QUICK if quick else ba.FULL
        groups = ba.plan(quick)
        assert set(groups) == {ba.GROUP[ba.SMALL], ba.GROUP[ba.LARGE]}
        for b in (ba.SMALL, ba.LARGE):
            configs = groups[ba.GROUP[b]].configs()
            assert {c.norm for c in configs} == set(ba.NORMS) and {c.seed for c in configs} == set(p["seeds"])
            for c in configs:
                assert c.batch_size == b and c.steps == math.ceil(p["epochs"] * train_size / b)
                assert c.optimizer == "adam" and c.scaled_lr == c.lr == ba.COMMON.lr
                assert c.eval_every == c.log_every == round(ba.ROW_SAMPLES / b)
            assert len({replace(c, norm="x") for c in configs}) == len(p["seeds"])
    assert len(ba.FULL["seeds"]) >= 5


def test_figures_are_drawn_from_the_tables(tmp_path):
    drawn = ba.draw(world(tmp_path), tmp_path / "figures")
    assert [p.name for p, _ in drawn] == ["fig6_train_loss.png", "fig6_test_error.png"]
    assert all(p.stat().st_size > 10_000 for p, _ in drawn)
