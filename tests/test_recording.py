"""Facts about what a run records and when: the two probe sources, the cadences, the eval-mode site
derived without a pass, buffered blocks, and wall-clock checkpoints that resume to the same bytes.

Runs use the tiny `synthetic` dataset (512 train images of 1x8x8, 10 classes; 8 steps per epoch).
"""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from ics_cli.net import data, models
from ics_cli import metrics
from ics_cli.store import runs as store
from ics_cli.config import RunConfig, validate
from ics_cli.train import batches

from helpers import run, strip_elapsed


# --------------------------------------------------------------------------- --probe train

def _model_at(out, step: int, **kw):
    """The model after `step` updates (model.pt of a run that stops there: same trajectory)."""
    res = run(out / f"at{step}", steps=step, **kw)
    cfg = validate(RunConfig(dataset="synthetic", **kw))
    ds = data.load("synthetic")
    torch.manual_seed(0)
    model = models.build(cfg, ds.shape, ds.num_classes)
    model.load_state_dict(torch.load(res.path / "model.pt", weights_only=True))
    return model, ds


def _independent_stats(model, x):
    """Per-unit mean and variance of every site of `model` on x, by plain hooks: an eval-mode pass
    (running statistics) for norm_eval, a training-mode pass for linear/norm/act."""
    seen = {}

    def keep(name):
        return lambda m, i, out: seen.__setitem__(name, out.detach().clone())

    model = copy.deepcopy(model)
    # Eval mode first: the training-mode pass below updates the copy's running statistics.
    hooks = [b.norm.register_forward_hook(keep((li, "norm_eval"))) for li, b in enumerate(model.blocks.values())]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for li, b in enumerate(model.blocks.values()):
        for s in ("linear", "norm", "act"):
            getattr(b, s).register_forward_hook(keep((li, s)))
    model.train()
    with torch.no_grad():
        model(x)
    return {k: torch.var_mean(v.double(), dim=0, correction=0) for k, v in seen.items()}


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_probe_train_statistics_are_those_of_the_steps_own_training_batch(tmp_path, norm):
    kw = dict(norm=norm, seed=3, width=12, track_units=12)
    res = run(tmp_path / "run", steps=12, log_every=5, probe="train", **kw)
    units = store.read_table(res.path, "units")
    assert sorted(units.step.unique()) == [0, 5, 10, 12]
    ds = data.load("synthetic")
    gen = torch.Generator().manual_seed(3)
    order = batches(len(ds.x_train), 60, gen)
    batch_of = [next(order) for _ in range(13)]     # batch_of[s]: the batch of update s + 1
    for step in (5, 12):                            # 12: the last step, whose batch is never trained on
        model, _ = _model_at(tmp_path, step, **kw)
        want = _independent_stats(model, ds.x_train[batch_of[step]])
        got = units[units.step == step]
        for (li, site), (var, mean) in want.items():
            rows = got[(got.layer == f"hidden{li + 1}") & (got.site == site)].sort_values("unit")
            np.testing.assert_allclose(rows["mean"], mean.numpy(), rtol=1e-4, atol=1e-5, err_msg=site)
            np.testing.assert_allclose(rows["var"], var.numpy(), rtol=1e-3, atol=1e-6, err_msg=site)


def test_probe_train_is_not_the_fixed_probe(tmp_path):
    """The two sources differ (else one of them is not what it says); training is the same."""
    a = run(tmp_path / "a", norm="batch", steps=10, log_every=5, probe="train").path
    b = run(tmp_path / "b", norm="batch", steps=10, log_every=5, probe="fixed").path
    ua, ub = store.read_table(a, "units"), store.read_table(b, "units")
    lin = lambda u: u[(u.site == "linear") & (u.step == 5)]["mean"].to_numpy()  # noqa: E731
    assert not np.allclose(lin(ua), lin(ub))
    assert (a / "grads.csv").read_bytes() == (b / "grads.csv").read_bytes()


@pytest.mark.parametrize("probe", ["fixed", "train"])
def test_probing_every_step_leaves_the_trajectory_unchanged(tmp_path, probe):
    kw = dict(norm="batch", steps=24, seed=2, probe=probe, eval_every=8)
    often = run(tmp_path / "often", log_every=1, **kw).path
    rarely = run(tmp_path / "rarely", log_every=8, **kw).path
    assert (often / "grads.csv").read_bytes() != b""
    # Gradient norms on every step: the same rows except the weight norms and update ratios that
    # only log steps measure.
    go, gr = pd.read_csv(often / "grads.csv"), pd.read_csv(rarely / "grads.csv")
    pd.testing.assert_series_equal(go.grad_norm, gr.grad_norm, check_exact=True)
    assert strip_elapsed(often / "metrics.csv") == strip_elapsed(rarely / "metrics.csv")
    assert (often / "model.pt").read_bytes() == (rarely / "model.pt").read_bytes()
    uo, ur = store.read_table(often, "units"), store.read_table(rarely, "units")
    pd.testing.assert_frame_equal(uo[uo.step.isin({0, 8, 16, 24})].reset_index(drop=True), ur,
                                  check_exact=True)


# --------------------------------------------------------------------------- site statistics

def test_site_statistics_from_unit_statistics_equal_direct_ones():
    x = torch.randn(50, 7, 3, 3) * torch.arange(1, 8).view(1, 7, 1, 1) + torch.arange(7).view(1, 7, 1, 1)
    var, mean = torch.var_mean(x, dim=[0, 2, 3], correction=0)
    site = metrics.site_stats(mean, var)
    v, m = torch.var_mean(x, correction=0)
    torch.testing.assert_close(site[:2], torch.stack([m, v]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(site[2:], torch.stack([mean.abs().mean(), var.mean()]))


# --------------------------------------------------------------------------- cadences

def test_each_table_has_its_own_cadence(tmp_path):
    res = run(tmp_path, norm="batch", steps=23, log_every=10, eval_every=4)
    m = pd.read_csv(res.path / "metrics.csv")
    assert list(m.step) == [0, 4, 8, 12, 16, 20, 23]                 # eval steps, plus the last
    layers = pd.read_csv(res.path / "layers.csv")
    assert sorted(layers.step.unique()) == [0, 10, 20, 23]            # log steps, plus the last
    g = pd.read_csv(res.path / "grads.csv")
    assert sorted(g.step.unique()) == list(range(1, 24))              # every step
    assert (g.groupby("step").size() == 4).all()                      # 3 hidden layers + output
    # Weight norms and update ratios: measured on log steps only (blank between).
    measured = sorted(g.dropna().step.unique())
    assert measured == [10, 20, 23]
    # The train loss of a metrics row is the mean over the steps since the previous row.
    assert m.train_loss.iloc[1:].notna().all() and np.isnan(m.train_loss.iloc[0])


def test_train_loss_of_a_row_averages_exactly_the_steps_since_the_previous_row(tmp_path):
    """Two runs that differ only in eval_every: a coarse row is the mean of the fine rows it spans."""
    fine = pd.read_csv(run(tmp_path / "f", steps=12, eval_every=1, log_every=12).path / "metrics.csv")
    coarse = pd.read_csv(run(tmp_path / "c", steps=12, eval_every=4, log_every=12).path / "metrics.csv")
    for a, b in ((0, 4), (4, 8), (8, 12)):
        span = fine[(fine.step > a) & (fine.step <= b)]
        row = coarse[coarse.step == b].iloc[0]
        assert row.train_loss == pytest.approx(span.train_loss.mean(), rel=1e-6)
        assert row.train_acc == pytest.approx(span.train_acc.mean(), rel=1e-8)   # 9 digits written


# --------------------------------------------------------------------------- checkpoints on a clock

RESUME_KW = dict(norm="batch", steps=24, log_every=4, eval_every=6, seed=6)


@pytest.fixture(scope="module")
def unbroken(reference_run):
    return reference_run(**RESUME_KW)


@pytest.mark.parametrize("probe", ["fixed", "train"])
@pytest.mark.parametrize("stop_at", [5, 8, 13])
def test_a_run_stopped_after_a_forced_checkpoint_resumes_to_the_same_bytes(tmp_path, stop_at, probe,
                                                                           reference_run):
    kw = {**RESUME_KW, "probe": probe}
    unbroken = reference_run(**kw)
    ckpts = []

    def interrupt(step):
        ckpts.append(step)
        if step == stop_at:
            raise KeyboardInterrupt

    # checkpoint_every=0: a checkpoint after every step (the clock's job, forced), not after stop_at.
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "broken", on_step=interrupt, checkpoint_every=0, **kw)
    [folder] = [p for p in (tmp_path / "broken").iterdir() if p.is_dir()]
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["step"] == stop_at
    resumed = run(tmp_path / "broken", **kw)
    assert resumed.summary["status"] == "completed" and resumed.path == folder
    for name in ("layers.csv", "grads.csv", "units.parquet"):
        assert (folder / name).read_bytes() == (unbroken / name).read_bytes(), name
    assert strip_elapsed(folder / "metrics.csv") == strip_elapsed(unbroken / "metrics.csv")


def test_a_stopped_run_checkpoints_the_step_it_stopped_at_and_resumes_to_the_same_bytes(tmp_path, unbroken):
    """Stopped at a step boundary (Ctrl-C, a sweep stopping) with no timed checkpoint due: it checkpoints
    that step (checkpoint.Stop), and the rerun resumes there and ends with an unbroken run's bytes."""
    def interrupt(step):
        if step == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, on_step=interrupt, checkpoint_every=3600, **RESUME_KW)
    [folder] = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (folder / "checkpoint.pt").exists()
    resumed = []
    run(tmp_path, on_resume=resumed.append, **RESUME_KW)
    assert resumed == [10]
    for name in ("layers.csv", "grads.csv", "units.parquet"):
        assert (folder / name).read_bytes() == (unbroken / name).read_bytes(), name


def test_a_buffer_smaller_than_the_run_gives_the_same_bytes(tmp_path, unbroken, monkeypatch):
    """Blocks flushed many times (tiny buffers) write what one block at the end writes."""
    from ics_cli import probes

    small_acts, small_grads = probes.ActivationRecorder.__init__, probes.GradientRecorder.__init__
    monkeypatch.setattr(probes.ActivationRecorder, "__init__",
                        lambda self, *a, **k: small_acts(self, *a, **{**k, "block": 2}))
    monkeypatch.setattr(probes.GradientRecorder, "__init__",
                        lambda self, *a, **k: small_grads(self, *a, **{**k, "block": 3}))
    res = run(tmp_path, **RESUME_KW)
    for name in ("layers.csv", "grads.csv", "units.parquet"):
        assert (res.path / name).read_bytes() == (unbroken / name).read_bytes(), name
