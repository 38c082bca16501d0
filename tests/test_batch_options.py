"""Facts about what "batch" means in a run (issue 11): micro-batches, the paired sampler, test-time
statistics (--bn-eval ema|precise|batch), FrozenBN (--freeze-bn-at) and --lr-scaling.

Runs use the tiny `synthetic` dataset (512 train images of 1x8x8, 10 classes, 256 test images).
"""

import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from ics_cli.net import data, models, norms, population, sampling
from ics_cli.config import RunConfig, validate
from ics_cli.train import evaluate, load_model, make_optimizer

from expect import refused
from helpers import runner, strip_elapsed

run = runner(log_every=4, eval_every=4)


def built(norm="none", seed=0, model="mlp", **kw):
    """A model as a run builds it (seed, init), in training mode, with the synthetic data."""
    ds = data.load("synthetic")
    cfg = validate(RunConfig(dataset="synthetic", norm=norm, model=model, device="cpu", seed=seed, **kw))
    torch.manual_seed(seed)
    return models.build(cfg, ds.shape, ds.num_classes).train(), ds


def grads_of(model, x, y, micro, task="classify"):
    model.zero_grad(set_to_none=True)
    logits, loss = sampling.forward_backward(model, x, y, task, micro)
    return logits, loss, {k: p.grad.clone() for k, p in model.named_parameters()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- micro-batches


@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_micro_batch_accumulation_is_the_full_batch_gradient_without_batch_statistics(model_name):
    model, ds = built("none", model=model_name)
    x, y = ds.x_train[:60], ds.y_train[:60]
    logits_full, loss_full, full = grads_of(model, x, y, None)
    logits_micro, loss_micro, micro = grads_of(model, x, y, 4)
    assert torch.allclose(logits_full, logits_micro, atol=1e-6)
    assert loss_micro.item() == pytest.approx(loss_full.item(), rel=1e-6)
    for k in full:
        assert torch.allclose(full[k], micro[k], rtol=1e-4, atol=1e-7), k


def test_micro_batch_accumulation_of_a_regression_sums_the_slices():
    """A regression's batch loss is the sum of its per-sample losses: each slice enters with weight 1."""
    ds = data.load("gaussian-linear")
    cfg = validate(RunConfig(dataset="gaussian-linear", model="dln", depth=3, activation="identity",
                             device="cpu"))
    torch.manual_seed(0)
    model = models.build(cfg, ds.shape, ds.num_classes)
    x, y = ds.x_train[:40], ds.y_train[:40]
    _, loss_full, full = grads_of(model, x, y, None, "regress")
    _, loss_micro, micro = grads_of(model, x, y, 8, "regress")
    assert loss_micro.item() == pytest.approx(loss_full.item(), rel=1e-5)
    for k in full:
        assert torch.allclose(full[k], micro[k], rtol=1e-4, atol=1e-6), k


def test_micro_batches_of_batch_norm_normalize_each_slice_over_itself():
    model, ds = built("batch")
    x, y = ds.x_train[:60], ds.y_train[:60]
    whole = copy.deepcopy(model)
    logits_full, _, full = grads_of(whole, x, y, None)
    logits_micro, _, micro = grads_of(model, x, y, 4)
    assert not torch.allclose(logits_full, logits_micro, atol=1e-3)
    assert not torch.allclose(full["hidden1.linear.weight"], micro["hidden1.linear.weight"], atol=1e-5)
    # One running-statistics update per slice: 15 of them.
    assert model.hidden1.norm.num_batches_tracked.item() == 15
    # The first slice alone, through a fresh copy: the same logits (its statistics are its own).
    fresh, _ = built("batch")
    assert torch.allclose(fresh(x[:4]), logits_micro[:4], atol=1e-6)


@pytest.mark.skipif("ghost-batch" not in norms.REGISTRY, reason="ghost-batch norm not in the registry")
def test_micro_batched_batch_norm_equals_ghost_batch_norm_with_ghosts_of_the_micro_batch():
    bn, ds = built("batch")
    ghost, _ = built("ghost-batch", ghost_size=4)
    ghost.load_state_dict(bn.state_dict())
    x, y = ds.x_train[:60], ds.y_train[:60]
    logits_micro, loss_micro, micro = grads_of(bn, x, y, 4)
    logits_ghost, loss_ghost, g = grads_of(ghost, x, y, None)
    assert torch.allclose(logits_micro, logits_ghost, atol=1e-5)
    assert loss_micro.item() == pytest.approx(loss_ghost.item(), rel=1e-5)
    for k in micro:
        assert torch.allclose(micro[k], g[k], rtol=1e-3, atol=1e-6), k


def test_a_micro_batched_run_of_a_net_without_norm_makes_the_full_batch_update(tmp_path):
    kw = dict(norm="none", steps=1, log_every=1, eval_every=1)
    plain = torch.load(run(tmp_path / "plain", **kw).path / "model.pt", weights_only=True)
    micro = torch.load(run(tmp_path / "micro", micro_batch=6, **kw).path / "model.pt", weights_only=True)
    init, _ = built("none")
    assert any(not torch.equal(plain[k], v) for k, v in init.state_dict().items())   # it did update
    for k in plain:
        assert torch.allclose(plain[k], micro[k], rtol=1e-5, atol=1e-7), k


def test_a_micro_batched_run_records_the_whole_batch_loss_and_updates_per_slice(tmp_path):
    res = run(tmp_path, norm="batch", micro_batch=10, steps=4, log_every=4, eval_every=4)
    m = pd.read_csv(res.path / "metrics.csv")
    state = torch.load(res.path / "model.pt", weights_only=True)
    assert state["hidden1.norm.num_batches_tracked"].item() == 4 * 6      # 6 slices per update
    # Rebuild the 4 updates by hand: the logged train loss is the mean of the whole batches' losses.
    model, ds = built("batch")
    opt = make_optimizer(validate(RunConfig(dataset="synthetic")), model.parameters())
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _, idx in zip(range(4), sampling.batches(len(ds.x_train), 60, gen)):
        opt.zero_grad()
        total = 0.0
        for part in idx.split(10):
            loss = F.cross_entropy(model(ds.x_train[part]), ds.y_train[part]) * len(part) / len(idx)
            loss.backward()
            total += loss.item()
        losses.append(total)
        opt.step()
    assert m.train_loss.iloc[-1] == pytest.approx(sum(losses) / 4, rel=1e-5)
    for k, v in model.state_dict().items():
        assert torch.allclose(v.float(), state[k].float(), rtol=1e-4, atol=1e-6), k


# --------------------------------------------------------------------------- the paired sampler


def test_a_paired_batch_holds_half_its_size_in_distinct_classes_with_exactly_two_images_each():
    y = data.load("synthetic").y_train
    gen = torch.Generator().manual_seed(3)
    for size in (2, 8, 20):
        for _, idx in zip(range(50), sampling.paired(y, size, 10, gen)):
            assert len(idx) == size and len(set(idx.tolist())) == size      # distinct images
            classes, counts = torch.unique(y[idx], return_counts=True)
            assert len(classes) == size // 2 and counts.tolist() == [2] * (size // 2)
            assert (y[idx[0::2]] == y[idx[1::2]]).all()                       # pairs sit together


def test_the_paired_sampler_draws_every_image_of_a_class_and_only_that_class():
    y = torch.tensor([0, 1, 1, 0, 2, 2, 2, 0, 1])          # 3 images of each class, scattered
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _, idx in zip(range(300), sampling.paired(y, 4, 3, gen)):
        assert len(set(y[idx].tolist())) == 2
        seen |= set(idx.tolist())
    assert seen == set(range(9))


def test_the_paired_sampler_is_fixed_by_its_seed_and_skip_continues_the_stream():
    y = data.load("synthetic").y_train

    def stream(seed, skip=0, n=12):
        gen = torch.Generator().manual_seed(seed)
        return [idx.tolist() for _, idx in zip(range(n), sampling.paired(y, 20, 10, gen, skip=skip))]

    a, b, c = stream(1), stream(1), stream(2)
    assert a == b and a != c
    assert stream(1, skip=5, n=7) == a[5:]


def test_a_two_class_batch_holds_two_classes_with_half_the_batch_each_side_by_side():
    y = data.load("synthetic").y_train
    gen = torch.Generator().manual_seed(3)
    seen = set()
    for size in (2, 8, 32):
        for _, idx in zip(range(50), sampling.few_classes(y, size, 2, 10, gen)):
            assert len(idx) == size and len(set(idx.tolist())) == size      # distinct images
            classes, counts = torch.unique(y[idx], return_counts=True)
            assert len(classes) == 2 and counts.tolist() == [size // 2] * 2
            half = size // 2
            assert len(set(y[idx[:half]].tolist())) == 1 and len(set(y[idx[half:]].tolist())) == 1
            seen |= set(torch.unique(y[idx]).tolist())
    assert seen == set(range(10))                                              # every class is drawn


def test_the_two_class_sampler_draws_every_image_of_a_class_is_fixed_by_its_seed_and_skip_continues():
    y = torch.tensor([0, 1, 1, 0, 2, 2, 2, 0, 1, 0])       # classes of 4, 3 and 3 images, scattered
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _, idx in zip(range(300), sampling.few_classes(y, 4, 2, 3, gen)):
        assert len(set(y[idx].tolist())) == 2
        seen |= set(idx.tolist())
    assert seen == set(range(10))
    labels = data.load("synthetic").y_train

    def stream(seed, skip=0, n=12):
        gen = torch.Generator().manual_seed(seed)
        return [idx.tolist() for _, idx in zip(range(n), sampling.few_classes(labels, 20, 2, 10, gen, skip=skip))]

    a, b, c = stream(1), stream(1), stream(2)
    assert a == b and a != c
    assert stream(1, skip=5, n=7) == a[5:]


def test_a_two_class_run_resumed_after_a_checkpoint_has_the_bytes_of_an_unbroken_one_and_iid_keeps_its_hash(tmp_path):
    kw = dict(norm="batch", batch_sampler="two-class", batch_size=20, steps=12, seed=2)
    unbroken = run(tmp_path / "unbroken", **kw).path
    resumed = resume_after(tmp_path / "broken", 7, **kw)
    same_bytes(unbroken, resumed)
    assert RunConfig(batch_sampler="iid").hash() == RunConfig().hash() != RunConfig(batch_sampler="two-class").hash()


def test_a_paired_run_resumed_after_a_checkpoint_has_the_bytes_of_an_unbroken_one(tmp_path):
    kw = dict(norm="batch", batch_sampler="paired", batch_size=20, steps=12, seed=2)
    unbroken = run(tmp_path / "unbroken", **kw).path
    iid = run(tmp_path / "iid", **{**kw, "batch_sampler": "iid"}).path
    assert (unbroken / "grads.csv").read_bytes() != (iid / "grads.csv").read_bytes()
    resumed = resume_after(tmp_path / "broken", 7, **kw)
    same_bytes(unbroken, resumed)


# --------------------------------------------------------------------------- PreciseBN


def test_precise_bn_statistics_are_the_mean_of_batch_means_and_unbiased_batch_variances():
    model, ds = built("batch", width=6)
    x = ds.x_train[:40]
    # Give the running statistics values of their own, so that restoring them can be seen.
    for m in population.batch_norms(model).values():
        m.running_mean.fill_(0.3)
        m.running_var.fill_(2.0)
    before = copy.deepcopy(model.state_dict())
    stats = population.estimate(model, x.split(10))
    assert same_state(before, model.state_dict())            # parameters and buffers untouched
    assert all(m.momentum == 0.1 for m in population.batch_norms(model).values())
    with torch.no_grad():
        lin1, bn1 = model.hidden1.linear, model.hidden1.norm
        z1 = [lin1(b.flatten(1)) for b in x.split(10)]
        mean1 = sum(z.mean(0) for z in z1) / 4
        var1 = sum(z.var(0, unbiased=True) for z in z1) / 4
        # Layer 2's input comes from layer 1 normalized with each batch's own statistics.
        z2 = []
        for z in z1:
            h = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + bn1.eps) * bn1.weight + bn1.bias
            z2.append(model.hidden2.linear(torch.sigmoid(h)))
        mean2 = sum(z.mean(0) for z in z2) / 4
        var2 = sum(z.var(0, unbiased=True) for z in z2) / 4
    assert torch.allclose(stats["hidden1.norm"][0], mean1, atol=1e-5)
    assert torch.allclose(stats["hidden1.norm"][1], var1, rtol=1e-5)
    assert torch.allclose(stats["hidden2.norm"][0], mean2, atol=1e-5)
    assert torch.allclose(stats["hidden2.norm"][1], var2, rtol=1e-5)
    # The whole set's variance is not the mean of the batch variances: equal weight per batch.
    assert not torch.allclose(torch.cat(z1).var(0), var1, rtol=1e-3)


def test_evaluation_with_precise_statistics_restores_the_running_statistics():
    model, ds = built("batch")
    model(ds.x_train[:60])                                        # some EMA of its own
    before = copy.deepcopy(model.state_dict())
    stats = population.estimate(model, ds.x_train[:120].split(60))
    with population.using(model, stats):
        assert torch.equal(model.hidden1.norm.running_mean, stats["hidden1.norm"][0])
        precise = evaluate(model, ds.x_test, ds.y_test)
    assert same_state(before, model.state_dict()) and model.training
    ema = evaluate(model, ds.x_test, ds.y_test)
    assert not torch.equal(precise, ema)


def test_precise_images_are_whole_normalization_batches_of_a_seeded_permutation():
    x = data.load("synthetic").x_train
    a, b = population.Precise(x, 130, 60, seed=4), population.Precise(x, 130, 60, seed=4)
    assert len(a.idx) == 120 and len(set(a.idx.tolist())) == 120
    assert torch.equal(a.idx, b.idx)
    assert not torch.equal(a.idx, population.Precise(x, 130, 60, seed=5).idx)
    assert [len(v) for v in a.batches()] == [60, 60]


def test_a_precise_run_trains_exactly_like_an_ema_run_and_evaluates_differently(tmp_path):
    kw = dict(norm="batch", steps=12, seed=1)
    ema = run(tmp_path / "ema", **kw).path
    precise = run(tmp_path / "precise", bn_eval="precise", precise_samples=120, **kw).path
    me, mp = pd.read_csv(ema / "metrics.csv"), pd.read_csv(precise / "metrics.csv")
    pd.testing.assert_series_equal(me.train_loss, mp.train_loss, check_exact=True)
    pd.testing.assert_series_equal(me.test_loss_batchstats, mp.test_loss_batchstats, check_exact=True)
    assert (ema / "model.pt").read_bytes() == (precise / "model.pt").read_bytes()
    for name in ("layers.csv", "grads.csv"):
        assert (ema / name).read_bytes() == (precise / name).read_bytes(), name
    assert me.test_acc.tolist() != mp.test_acc.tolist()
    assert all(me.test_loss != mp.test_loss)
    # The last row is the trained model evaluated with PreciseBN's statistics of its 120 images.
    cfg, model, ds = load_model(precise)
    stats = population.Precise(ds.x_train, 120, 60, cfg.seed).estimate(model)
    with population.using(model, stats):
        loss, acc = evaluate(model, ds.x_test, ds.y_test).tolist()
    assert mp.test_loss.iloc[-1] == pytest.approx(loss, rel=1e-6)
    assert mp.test_acc.iloc[-1] == pytest.approx(acc)


@pytest.mark.parametrize("micro", [None, 10])
def test_bn_eval_batch_evaluates_with_the_test_batches_of_the_normalization_batch(tmp_path, micro):
    res = run(tmp_path, norm="batch", steps=8, bn_eval="batch", micro_batch=micro)
    m = pd.read_csv(res.path / "metrics.csv")
    assert m.test_loss.tolist() == m.test_loss_batchstats.tolist()
    cfg, model, ds = load_model(res.path)
    loss, acc = evaluate(model, ds.x_test, ds.y_test, chunk=micro or 60, batch_stats=True).tolist()
    assert m.test_loss.iloc[-1] == pytest.approx(loss, rel=1e-6)
    other = evaluate(model, ds.x_test, ds.y_test, chunk=30 if micro else 10, batch_stats=True)[0].item()
    assert m.test_loss.iloc[-1] != pytest.approx(other, rel=1e-6)


# --------------------------------------------------------------------------- FrozenBN


def test_a_frozen_model_normalizes_with_its_running_statistics_whatever_train_is_called():
    model, ds = built("batch")
    x = ds.x_train[:60]
    model(x)
    population.freeze(model)
    for toggle in (model.eval, model.train, lambda: evaluate(model, ds.x_test, ds.y_test),
                   lambda: evaluate(model, ds.x_test, ds.y_test, batch_stats=True)):
        toggle()
    model.train()
    bn = model.hidden1.norm
    assert model.training and not bn.training
    before = copy.deepcopy(model.state_dict())
    seen = {}
    bn.register_forward_hook(lambda m, i, o: seen.update(z=i[0], out=o))
    model(x).sum().backward()
    assert same_state(before, model.state_dict())                  # no running-statistics update
    expected = F.batch_norm(seen["z"], bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    assert torch.allclose(seen["out"], expected, atol=1e-6)
    assert bn.weight.grad is not None                               # gamma and beta still train
    # Batch-statistics evaluation still uses the test batches' own statistics.
    with population.thawed(model):
        model.train()
        assert bn.training
    assert model.training and not bn.training
    unfrozen = copy.deepcopy(model)
    unfrozen.frozen_norms = False
    assert torch.equal(evaluate(model, ds.x_test, ds.y_test, batch_stats=True),
                       evaluate(unfrozen, ds.x_test, ds.y_test, batch_stats=True))


def test_freeze_step_is_the_ceiling_of_the_fraction_of_the_run():
    def step(f, steps):
        return population.freeze_step(RunConfig(freeze_bn_at=f, steps=steps))

    assert step(0.7, 10) == 7 and step(0.8, 10) == 8 and step(0.75, 10) == 8 and step(0.01, 10) == 1
    assert population.freeze_step(RunConfig(steps=10)) is None


@pytest.mark.parametrize("bn_eval", ["ema", "precise"])
def test_a_frozen_run_trains_with_the_population_statistics_of_the_freeze_step(tmp_path, monkeypatch, bn_eval):
    """Freeze at step 6 of 12: the training forwards after it normalize with the running statistics,
    which stay those of step 6: the EMA of a 6-step run, or PreciseBN's statistics of its model."""
    kw = dict(norm="batch", seed=3, bn_eval=bn_eval, precise_samples=120)
    cfg, short, ds = load_model(run(tmp_path / "short", steps=6, **kw).path)
    expected = (short.hidden2.norm.running_mean if bn_eval == "ema" else
                population.Precise(ds.x_train, 120, 60, cfg.seed).estimate(short)["hidden2.norm"][0])

    checks, built_models, real_build = [], [], models.build

    def hook(module, inputs, out):
        if torch.is_grad_enabled():           # a training forward (probes and evaluations have no grad)
            ref = F.batch_norm(inputs[0], module.running_mean, module.running_var, module.weight, module.bias,
                               False, 0.0, module.eps)
            checks.append(torch.allclose(out, ref, atol=1e-6))

    def build(*args):
        built_models.append(real_build(*args))
        built_models[-1].hidden2.norm.register_forward_hook(hook)
        return built_models[-1]

    monkeypatch.setattr(models, "build", build)
    running = {}
    res = run(tmp_path / "frozen", steps=12, freeze_bn_at=0.5, **kw,
              on_step=lambda s: running.update({s: built_models[0].hidden2.norm.running_mean.clone()}))
    assert population.frozen(built_models[0])
    assert checks == [False] * 6 + [True] * 6
    assert not torch.equal(running[1], running[5])                    # before the freeze they move
    assert all(torch.equal(running[s], running[12]) for s in range(7, 12))
    final = torch.load(res.path / "model.pt", weights_only=True)
    assert torch.allclose(final["hidden2.norm.running_mean"], expected, atol=1e-6)
    assert final["hidden2.norm.num_batches_tracked"].item() == 6


@pytest.mark.parametrize("stop, bn_eval", [(6, "precise"), (9, "precise"), (9, "ema")])
def test_a_frozen_run_resumed_after_a_checkpoint_has_the_bytes_of_an_unbroken_one(tmp_path, stop, bn_eval,
                                                                                  reference_run):
    """Stopped at the freeze step (6) or after it, and resumed: the same bytes as an unbroken run."""
    kw = dict(norm="batch", steps=12, seed=6, freeze_bn_at=0.5, bn_eval=bn_eval, precise_samples=120,
              log_every=2, eval_every=3)
    unbroken = reference_run(**kw)
    resumed = resume_after(tmp_path / "broken", stop, **kw)
    same_bytes(unbroken, resumed)


# --------------------------------------------------------------------------- learning rate, step


def test_linear_lr_scaling_multiplies_the_lr_by_batch_over_base(tmp_path):
    cfg = validate(RunConfig(lr=0.2, batch_size=120, lr_scaling="linear", lr_base_batch=30))
    model, _ = built("none")
    assert make_optimizer(cfg, model.parameters()).param_groups[0]["lr"] == pytest.approx(0.8)
    assert make_optimizer(validate(RunConfig(lr=0.2, batch_size=120)), model.parameters()).param_groups[0]["lr"] == 0.2
    m = pd.read_csv(run(tmp_path, lr=0.1, batch_size=120, lr_scaling="linear", steps=2).path / "metrics.csv")
    assert m.lr.tolist() == [pytest.approx(0.2)] * 2


def test_every_pass_sees_the_number_of_updates_done(tmp_path, monkeypatch):
    """Batch renorm's schedule reads the step: the training forward of update s + 1 and the probe of
    step s (after s updates) both see s."""
    from ics_cli.net.batchnorms import BatchRenorm

    seen, forward = [], BatchRenorm.forward

    def spy(self, x):
        if self is first[0]:
            seen.append(("train" if self.track_running_stats and self.training else "other", self.step))
        return forward(self, x)

    first = []
    build = models.build

    def built_model(*a, **k):
        model = build(*a, **k)
        first.append(next(m for m in model.modules() if isinstance(m, BatchRenorm)))
        return model

    monkeypatch.setattr(BatchRenorm, "forward", spy)
    monkeypatch.setattr(models, "build", built_model)
    run(tmp_path, norm="batch-renorm", steps=5, log_every=1, eval_every=10)
    assert [s for kind, s in seen if kind == "train"] == [0, 1, 2, 3, 4]
    assert sorted({s for kind, s in seen if kind == "other"}) == [0, 1, 2, 3, 4, 5]   # probe of each step


# --------------------------------------------------------------------------- bad input


TRAIN = ["train", "--dataset", "synthetic", "--steps", "3", "--log-every", "10", "--quiet"]


@pytest.mark.parametrize("args, needles", [
    (["--micro-batch", "7"], ["--micro-batch 7", "--batch-size 60", "1, 2, 3, 4, 5, 6, 10"]),
    (["--micro-batch", "4", "--ics-every", "2"], ["--micro-batch", "--ics-every"]),
    (["--micro-batch", "4", "--probe", "train"], ["--micro-batch", "--probe train"]),
    (["--micro-batch", "4", "--noise", "santurkar", "--norm", "batch"], ["--micro-batch", "--noise santurkar"]),
    (["--batch-sampler", "paired", "--batch-size", "21"], ["paired", "--batch-size 21", "odd"]),
    (["--batch-sampler", "paired", "--batch-size", "40"], ["paired", "--batch-size 40", "20"]),
    (["--batch-sampler", "paired", "--dataset", "gaussian-linear", "--model", "dln", "--activation",
      "identity", "--batch-size", "10"], ["paired", "regression"]),
    (["--norm", "batch", "--bn-eval", "precise", "--precise-samples", "513"], ["--precise-samples 513", "512"]),
    (["--norm", "batch", "--bn-eval", "precise", "--precise-samples", "30"], ["--precise-samples 30", "60"]),
    (["--bn-eval", "median"], ["--bn-eval"]),
    (["--batch-sampler", "classes"], ["--batch-sampler"]),
    (["--batch-sampler", "two-class", "--batch-size", "21"], ["two-class", "--batch-size 21", "odd"]),
    (["--batch-sampler", "two-class", "--dataset", "gaussian-linear", "--model", "dln", "--activation",
      "identity", "--batch-size", "10"], ["two-class", "regression"]),
])
def test_impossible_batch_options_exit_2_with_one_line(tmp_path, capsys, args, needles):
    refused(capsys, [*TRAIN, *args], tmp_path / "runs", *needles)


def test_a_class_with_fewer_than_two_images_is_refused_for_paired_batches():
    from ics_cli.config import check_data
    from ics_cli.errors import ConfigError

    cfg = validate(RunConfig(dataset="synthetic", batch_sampler="paired", batch_size=4))
    check_data(cfg, 512, 256, (1, 8, 8), 10, class_counts=[51] * 9 + [53])
    with pytest.raises(ConfigError, match="class\\(es\\) 3 .*fewer than 2"):
        check_data(cfg, 512, 256, (1, 8, 8), 10, class_counts=[56, 56, 56, 1, 56, 56, 56, 56, 56, 63])


def test_a_class_with_fewer_images_than_half_a_batch_is_refused_for_two_class_batches():
    from ics_cli.config import check_data
    from ics_cli.errors import ConfigError

    cfg = validate(RunConfig(dataset="synthetic", batch_sampler="two-class", batch_size=32))
    check_data(cfg, 512, 256, (1, 8, 8), 10, class_counts=[51] * 9 + [53])
    with pytest.raises(ConfigError, match="class\\(es\\) 3 .*fewer than 16"):
        check_data(cfg, 512, 256, (1, 8, 8), 10, class_counts=[56, 56, 56, 15, 56, 56, 56, 56, 56, 63])


def test_the_new_options_are_in_train_and_sweep_help():
    from typer.testing import CliRunner

    from ics_cli.cli import app

    for command in ("train", "sweep"):
        text = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        for option in ("--micro-batch", "--batch-sampler", "--bn-eval", "--precise-samples", "--freeze-bn-at",
                       "--lr-scaling", "--lr-base-batch", "--ghost-size", "--renorm-rmax"):
            assert option in text, (command, option)
        assert "ema, precise, batch" in text and "iid, paired, two-class" in text and "none, linear" in text


# --------------------------------------------------------------------------- helpers


def resume_after(out, stop: int, **kw):
    """A run with a checkpoint after every step, stopped after update `stop` and resumed."""

    def interrupt(step):
        if step == stop:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(out, on_step=interrupt, checkpoint_every=0, **kw)
    resumed = run(out, **kw)
    assert resumed.summary["status"] == "completed"
    return resumed.path


def same_bytes(unbroken, resumed) -> None:
    for name in ("layers.csv", "grads.csv", "units.parquet", "model.pt"):
        assert (resumed / name).read_bytes() == (unbroken / name).read_bytes(), name
    assert strip_elapsed(resumed / "metrics.csv") == strip_elapsed(unbroken / "metrics.csv")
