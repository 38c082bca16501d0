"""Facts about one training run (ics_cli.train): what the hooks see, that probing changes nothing,
that a seed fixes the bytes, that divergence and interruption are results, and that drift, gradient
norms and update ratios are the quantities their formulas define.

Runs use the tiny `synthetic` dataset (512 train images of 1x8x8, 10 classes): with the default
batch of 60 one epoch is 8 steps.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ics_cli.net import data, models
from ics_cli import metrics
from ics_cli.store import runs as store
from ics_cli import train as train_mod
from ics_cli.config import RunConfig, validate
from ics_cli.probes import SITES, ActivationRecorder
from ics_cli.train import evaluate

from helpers import csv_lines, run, strip_elapsed

STEPS_PER_EPOCH = 512 // 60          # 8: the default batch of 60, the remainder dropped


def rows_at(path, steps) -> list[str]:
    """The CSV lines whose step (first column) is in `steps`, in file order."""
    return [ln for ln in csv_lines(path)[1:] if int(ln.split(",", 1)[0]) in steps]


def table(path) -> pd.DataFrame:
    return pd.read_csv(path)


# --------------------------------------------------------------------------- what the hooks see


@pytest.fixture(scope="module")
def shaped_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("shaped")
    res = run(out, depth=4, width=12, track_units=3, steps=20, log_every=10, seed=5)
    return res, table(res.path / "layers.csv"), store.read_table(res.path, "units")


def test_every_layer_and_site_is_recorded_at_every_log_step(shaped_run):
    res, layers, units = shaped_run
    assert res.summary["status"] == "completed"
    assert sorted(layers.step.unique()) == [0, 10, 20]
    names = [f"hidden{i}" for i in range(1, 5)]
    for step, g in layers.groupby("step"):
        assert len(g) == 4 * 4
        assert sorted(zip(g.layer, g.site)) == sorted((n, s) for n in names for s in SITES)
    for (step, layer, site), g in units.groupby(["step", "layer", "site"]):
        assert sorted(g.unit) == list(range(12))
    assert len(units) == 3 * 4 * 4 * 12


def test_percentiles_only_for_tracked_units_and_ordered(shaped_run):
    _, _, units = shaped_run
    tracked, untracked = units[units.unit < 3], units[units.unit >= 3]
    q = tracked[["p15", "p50", "p85"]]
    assert q.notna().all().all()
    assert untracked[["p15", "p50", "p85"]].isna().all().all()
    assert ((q.p15 <= q.p50) & (q.p50 <= q.p85)).all()
    # A sigmoid's output lies in (0, 1): its unit means and percentiles at the `act` site do too.
    act = units[units.site == "act"]
    assert act["mean"].between(0, 1).all()
    assert act[act.unit < 3][["p15", "p50", "p85"]].stack().between(0, 1).all()


def test_without_a_norm_the_norm_site_equals_the_linear_site(shaped_run, tmp_path):
    _, layers, units = shaped_run
    stats = ["mean", "var", "unit_mean_abs", "unit_var_mean", "drift_mean", "drift_var",
             "drift_mean_init", "drift_var_init", "drift_mean_scaled", "drift_mean_scaled_init", "dead_units"]
    lin = layers[layers.site == "linear"].reset_index(drop=True)
    ustats = ["step", "layer", "unit", "mean", "var", "p15", "p50", "p85"]
    # Without batch statistics, eval mode computes the same as training mode: norm_eval = norm too.
    for site in ("norm", "norm_eval"):
        pd.testing.assert_frame_equal(lin[stats], layers[layers.site == site].reset_index(drop=True)[stats],
                                      check_exact=True)
        pd.testing.assert_frame_equal(units[units.site == "linear"][ustats].reset_index(drop=True),
                                      units[units.site == site][ustats].reset_index(drop=True), check_exact=True)
    # With a norm, the two sites differ (so the equality above is a fact about `none`).
    res = run(tmp_path, norm="batch", depth=4, width=12, track_units=3, steps=1, seed=5)
    lb = table(res.path / "layers.csv")
    assert not np.allclose(lb[lb.site == "linear"]["mean"], lb[lb.site == "norm"]["mean"])


def test_batch_norm_site_means_are_beta_in_training_mode_but_not_in_eval_mode(tmp_path):
    """Why `norm` drift says nothing about batch norm: over the probe, each unit's mean there is β.

    In eval mode (running statistics) it is γ (probe mean − running mean) / running std + β, which
    moves as the running statistics lag behind the network: a quantity that can change.
    """
    res = run(tmp_path, norm="batch", steps=30, log_every=10, seed=3)
    units = store.read_table(res.path, "units")
    beta = torch.load(res.path / "model.pt", weights_only=True)
    last = units[units.step == 30]
    for i in range(1, 4):
        b = beta[f"hidden{i}.norm.bias"].numpy()
        train_mean = last[(last.layer == f"hidden{i}") & (last.site == "norm")].sort_values("unit")["mean"]
        eval_mean = last[(last.layer == f"hidden{i}") & (last.site == "norm_eval")].sort_values("unit")["mean"]
        np.testing.assert_allclose(train_mean.to_numpy(), b, atol=1e-5)
        assert np.abs(eval_mean.to_numpy() - b).max() > 1e-3


# --------------------------------------------------------------------------- probing changes nothing


def _bn_model(norm="batch"):
    ds = data.load("synthetic")
    cfg = validate(RunConfig(dataset="synthetic", norm=norm, width=16, depth=2))
    torch.manual_seed(0)
    model = models.build(cfg, ds.shape, ds.num_classes)
    model.train()
    with torch.no_grad():
        model(ds.x_train[:100])     # running statistics away from their initial (0, 1)
    return model, ds


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same_state(model, before):
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k


@pytest.mark.parametrize("norm", ["batch", "batch-nograd"])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("probe", ["record", "evaluate-batchstats", "evaluate"])
def test_a_probe_has_no_side_effects(norm, mode, probe):
    model, ds = _bn_model(norm)
    recorder = ActivationRecorder(model, track_units=4, batch_stats=True)
    model.train(mode == "train")
    before = _snapshot(model)
    rng = torch.get_rng_state()
    if probe == "record":
        recorder.measure(ds.x_train[100:300])
    else:
        evaluate(model, ds.x_test, ds.y_test, chunk=60, batch_stats=probe == "evaluate-batchstats")
    _assert_same_state(model, before)          # parameters, running mean/var, num_batches_tracked
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())
    assert all(m.training == (mode == "train") for m in model.modules())


def test_the_side_effect_check_can_see_a_running_statistics_update():
    model, ds = _bn_model()
    before = _snapshot(model)
    with torch.no_grad():
        model(ds.x_train[100:300])
    with pytest.raises(AssertionError):
        _assert_same_state(model, before)


def test_the_probe_uses_batch_statistics_even_in_eval_mode():
    """Running statistics far from the probe's own must not leak into what the probe records."""
    model, ds = _bn_model()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.fill_(5.0)
            m.running_var.fill_(0.01)
    model.eval()
    stats = ActivationRecorder(model, track_units=0, batch_stats=True).measure(ds.x_train[:256])
    norm_means = stats["mean"][:, SITES.index("norm")]
    assert norm_means.shape == (2, 16)
    assert np.abs(norm_means).max() < 1e-5


# --------------------------------------------------------------------------- the same seed, the same bytes


def test_same_seed_same_bytes_different_seed_different_bytes(tmp_path):
    kw = dict(norm="batch", steps=20, log_every=5)
    a = run(tmp_path / "a", seed=4, **kw).path
    b = run(tmp_path / "b", seed=4, **kw).path
    c = run(tmp_path / "c", seed=5, **kw).path
    for name in ("layers.csv", "grads.csv", "units.parquet"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
        assert (a / name).read_bytes() != (c / name).read_bytes(), name
    ma, mb = table(a / "metrics.csv"), table(b / "metrics.csv")
    assert list(ma.columns) == list(mb.columns) and "elapsed_s" in ma.columns
    assert csv_lines(a / "metrics.csv")[0].endswith(",elapsed_s")
    assert strip_elapsed(a / "metrics.csv") == strip_elapsed(b / "metrics.csv")
    assert strip_elapsed(a / "metrics.csv") != strip_elapsed(c / "metrics.csv")


# --------------------------------------------------------------------------- divergence is a result


def test_a_huge_learning_rate_diverges_and_keeps_what_was_recorded(tmp_path):
    kw = dict(activation="relu", steps=20, log_every=5, seed=1)
    bad = run(tmp_path, lr=1e4, **kw)
    good = run(tmp_path, lr=0.05, **kw)
    assert good.summary["status"] == "completed" and good.summary["diverged_at_step"] is None
    s = bad.summary
    assert s["status"] == "diverged"
    assert isinstance(s["diverged_at_step"], int) and 1 <= s["diverged_at_step"] < 20
    assert s["steps_done"] == s["diverged_at_step"]
    assert not (bad.path / "checkpoint.pt").exists()
    m = table(bad.path / "metrics.csv")
    assert m.step.iloc[0] == 0 and m.step.iloc[-1] == s["diverged_at_step"]
    # Step 0 comes before any update, so it cannot depend on the learning rate: same bytes as the good run.
    assert rows_at(bad.path / "layers.csv", {0}) == rows_at(good.path / "layers.csv", {0})
    assert len(rows_at(bad.path / "layers.csv", {0})) > 0
    ub, ug = store.read_table(bad.path, "units"), store.read_table(good.path, "units")
    pd.testing.assert_frame_equal(ub[ub.step == 0], ug[ug.step == 0], check_exact=True)
    layers0 = table(bad.path / "layers.csv").query("step == 0")
    assert np.isfinite(layers0[["mean", "var"]].to_numpy()).all()


def test_the_diverging_batch_is_not_in_the_logged_training_loss(tmp_path):
    """train_loss is the mean over the updates made since the last log; the batch that diverged made none.

    Rebuild the run by hand: the last row's train_loss must be the mean of the losses of the updates
    between the previous log step and the divergence (NaN when there were none).
    """
    kw = dict(activation="relu", steps=20, log_every=100, eval_every=100, seed=1, lr=30.0)
    res = run(tmp_path, **kw)
    s = res.summary
    assert s["status"] == "diverged"
    k = s["diverged_at_step"]
    cfg = validate(RunConfig(dataset="synthetic", device="cpu", **kw))
    ds = data.load("synthetic")
    torch.manual_seed(cfg.seed)
    model = models.build(cfg, ds.shape, ds.num_classes).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses = []
    for step, idx in zip(range(k + 1), train_mod.batches(len(ds.x_train), cfg.batch_size, gen)):
        loss = F.cross_entropy(model(ds.x_train[idx]), ds.y_train[idx])
        losses.append(loss.item())
        if step == k:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    m = table(res.path / "metrics.csv")
    assert m.step.tolist() == [0, k]
    assert m.train_loss.iloc[-1] == pytest.approx(np.mean(losses[:k]), rel=1e-5)
    assert s["final"]["train_loss"] == pytest.approx(np.mean(losses[:k]), rel=1e-5)
    assert m.train_loss.iloc[-1] < losses[k]     # the diverging loss would have raised it


# --------------------------------------------------------------------------- interruption and resumption

def test_a_finished_run_is_not_rerun(tmp_path):
    first = run(tmp_path, steps=5, log_every=5)
    before = {p.name: p.read_bytes() for p in first.path.iterdir()}
    again = run(tmp_path, steps=5, log_every=5)
    assert again.skipped and again.path == first.path
    assert {p.name: p.read_bytes() for p in again.path.iterdir()} == before


# --------------------------------------------------------------------------- drift


def test_drift_by_hand_on_explicit_tensors():
    # unit 0: mean 0 -> 1, var 1 -> e^2 ; unit 1: mean 2 -> 1, var 4 -> 4
    mean_a, mean_b = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])
    var_a, var_b = torch.tensor([1.0, 4.0]), torch.tensor([math.e ** 2, 4.0])
    d = metrics.drift(mean_a, var_a, mean_b, var_b)
    scaled = (1 / math.sqrt((1 + math.e ** 2) / 2) + 1 / 2) / 2
    assert d.tolist() == pytest.approx([(1 + 1) / 2, (2 + 0) / 2, scaled], abs=1e-6)
    # Leading dimensions (layers, sites) are kept; only units are reduced.
    big = metrics.drift(torch.zeros(2, 3, 5), torch.ones(2, 3, 5), torch.ones(2, 3, 5), torch.full((2, 3, 5), 2.0))
    assert big.shape == (2, 3, 3)
    assert torch.allclose(big, torch.tensor([1.0, math.log(2), 1 / math.sqrt(1.5)]).expand(2, 3, 3))


def test_drift_is_scale_free_and_leaves_dead_units_out():
    mean_a, var_a = torch.tensor([0.0, 1.0, 5.0]), torch.tensor([1.0, 4.0, 0.0])
    mean_b, var_b = torch.tensor([0.5, 2.0, 5.0]), torch.tensor([1.0, 4.0, 3.0])
    # Unit 2 is dead at a (variance 0): out of drift_var and drift_mean_scaled, still in drift_mean.
    assert metrics.dead(var_a).tolist() == [False, False, True]
    d = metrics.drift(mean_a, var_a, mean_b, var_b)
    assert d.tolist() == pytest.approx([(0.5 + 1 + 0) / 3, 0.0, (0.5 + 0.5) / 2], abs=1e-6)
    # The same network at 1000x the scale: raw drift x1000, the scaled drift and drift_var unchanged.
    k = 1000.0
    dk = metrics.drift(mean_a * k, var_a * k * k, mean_b * k, var_b * k * k)
    assert dk[0].item() == pytest.approx(d[0].item() * k, rel=1e-5)
    assert dk[1:].tolist() == pytest.approx(d[1:].tolist(), abs=1e-5)
    # Every unit dead: nothing to average, NaN rather than a number made of rounding.
    assert torch.isnan(metrics.drift(mean_a, torch.zeros(3), mean_b, torch.zeros(3))[1:]).all()


def test_recorded_drift_follows_from_the_recorded_unit_statistics(tmp_path):
    res = run(tmp_path, norm="batch", activation="relu", steps=30, log_every=10, lr=0.3, seed=8)
    layers, units = table(res.path / "layers.csv"), store.read_table(res.path, "units")
    units = units.sort_values(["layer", "site", "unit", "step"])
    steps = sorted(layers.step.unique())
    assert steps == [0, 10, 20, 30]
    checked = 0
    for (layer, site), g in units.groupby(["layer", "site"]):
        mean = g.pivot(index="step", columns="unit", values="mean").loc[steps].to_numpy()
        var = g.pivot(index="step", columns="unit", values="var").loc[steps].to_numpy()
        logvar = np.log(var)
        assert (var > 1e-6 * var.mean(1, keepdims=True)).all()     # no dead unit in this run
        rec = layers[(layers.layer == layer) & (layers.site == site)].set_index("step").loc[steps]
        for k, step in enumerate(steps):
            r = rec.loc[step]
            assert r.drift_mean_init == pytest.approx(np.abs(mean[k] - mean[0]).mean(), rel=1e-5, abs=1e-6)
            assert r.drift_var_init == pytest.approx(np.abs(logvar[k] - logvar[0]).mean(), rel=1e-5, abs=1e-5)
            scaled0 = np.abs(mean[k] - mean[0]) / np.sqrt((var[k] + var[0]) / 2)
            assert r.drift_mean_scaled_init == pytest.approx(scaled0.mean(), rel=1e-4, abs=1e-6)
            if k == 0:
                assert math.isnan(r.drift_mean) and math.isnan(r.drift_var)
                continue
            assert r.drift_mean == pytest.approx(np.abs(mean[k] - mean[k - 1]).mean(), rel=1e-5, abs=1e-6)
            assert r.drift_var == pytest.approx(np.abs(logvar[k] - logvar[k - 1]).mean(), rel=1e-5, abs=1e-5)
            scaled = np.abs(mean[k] - mean[k - 1]) / np.sqrt((var[k] + var[k - 1]) / 2)
            assert r.drift_mean_scaled == pytest.approx(scaled.mean(), rel=1e-4, abs=1e-6)
            checked += 1
    assert checked == 3 * 4 * 3
    # Training moved the activations: the drifts are not trivially zero.
    assert (layers[layers.step > 0].drift_mean > 0).all()


# --------------------------------------------------------------------------- gradients and updates


def test_step1_gradient_and_update_match_one_sgd_step_by_hand(tmp_path):
    lr = 0.4
    res = run(tmp_path, norm="batch", steps=3, log_every=1, eval_every=1, lr=lr, seed=9)
    grads, mets = table(res.path / "grads.csv"), table(res.path / "metrics.csv")

    # Rebuild the run: same init stream, the first mini-batch of the batch-order stream.
    ds = data.load("synthetic")
    cfg = validate(RunConfig(dataset="synthetic", norm="batch", steps=3, log_every=1, eval_every=1, lr=lr, seed=9))
    torch.manual_seed(cfg.seed)
    model = models.build(cfg, ds.shape, ds.num_classes).train()
    idx = torch.randperm(len(ds.x_train), generator=torch.Generator().manual_seed(cfg.seed))[:cfg.batch_size]
    loss = F.cross_entropy(model(ds.x_train[idx]), ds.y_train[idx])
    loss.backward()
    weights = {f"hidden{i}": getattr(model, f"hidden{i}").linear.weight for i in range(1, 4)}
    weights["output"] = model.output.weight

    g1 = grads[grads.step == 1].set_index("layer")
    assert list(g1.index) == ["hidden1", "hidden2", "hidden3", "output"]
    for name, w in weights.items():
        g, w0 = w.grad.double(), w.detach().double()
        assert g1.loc[name, "grad_norm"] == pytest.approx(g.norm().item(), rel=1e-5)
        assert g1.loc[name, "weight_norm"] == pytest.approx((w0 - lr * g).norm().item(), rel=1e-5)
        assert g1.loc[name, "update_ratio"] == pytest.approx((lr * g.norm() / w0.norm()).item(), rel=1e-3)
    assert mets.loc[mets.step == 1, "train_loss"].item() == pytest.approx(loss.item(), rel=1e-6)

    # Later steps: plain SGD moves W by lr * grad, so update_ratio x |W before| = lr x grad_norm,
    # with |W before| the weight norm logged one step earlier.
    for step in (2, 3):
        now, prev = grads[grads.step == step].set_index("layer"), grads[grads.step == step - 1].set_index("layer")
        np.testing.assert_allclose(now.update_ratio * prev.weight_norm, lr * now.grad_norm, rtol=1e-3)
