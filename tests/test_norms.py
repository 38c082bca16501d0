"""Facts about the normalization variants: what each one normalizes, and what a run records at step 0.

Every expected number here is computed independently of the library: the normalization formula is
written out below from the table in ics_cli/norms.py (which axes one set of statistics reduces
over), and the step-0 statistics come from rebuilding the run's model and pushing its probe batch
through the layers by hand in float64 numpy.
"""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ics_cli.net import batchnorms, data, models, norms
from ics_cli.store import runs as store
from ics_cli.config import RunConfig, validate
from ics_cli.train import PROBE_SEED_OFFSET, train

EPS = 1e-5


# --------------------------------------------------------------------------- reference formulas


def grouped(z: np.ndarray, norm: str, groups: int) -> tuple[np.ndarray, tuple]:
    """z (reshaped for group norm) and the axes one normalized group reduces over, per the table."""
    n, c, spatial = z.shape[0], z.shape[1], tuple(range(2, z.ndim))
    if norm in ("batch", "batch-nograd"):
        return z, (0,) + spatial
    if norm == "layer":
        return z, (1,) + spatial
    if norm == "instance":
        return z, spatial
    if norm == "group":
        zz = z.reshape(n, groups, c // groups, *z.shape[2:])
        return zz, tuple(range(2, zz.ndim))
    raise AssertionError(norm)


def reference_norm(z: np.ndarray, norm: str, eps: float, groups: int, gamma=None, beta=None) -> np.ndarray:
    """(z - E z) / sqrt(Var z + eps) * gamma + beta, E and Var over the axes the variant promises.

    batch: N (and H, W) per unit; layer: C (and H, W) per sample; instance: H, W per sample and
    channel; group: C/G (and H, W) per sample and group. Population variance, as in the papers.
    """
    if norm == "none":
        return z
    c, spatial = z.shape[1], tuple(range(2, z.ndim))
    zz, axes = grouped(z, norm, groups)
    mean = zz.mean(axis=axes, keepdims=True)
    var = zz.var(axis=axes, keepdims=True)
    y = ((zz - mean) / np.sqrt(var + eps)).reshape(z.shape)
    shape = (1, c) + (1,) * len(spatial)
    if gamma is not None:
        y = y * gamma.reshape(shape) + beta.reshape(shape)
    return y


def group_stats(y: np.ndarray, norm: str, groups: int):
    """Mean and population variance of every normalized group of y (flattened)."""
    y, axes = grouped(y, norm, groups)
    return y.mean(axis=axes).ravel(), y.var(axis=axes).ravel()


ACT = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "relu": lambda v: np.maximum(v, 0), "tanh": np.tanh}


def hand_forward(model, cfg, x: np.ndarray) -> dict:
    """Every site of every hidden layer on input x, in float64, using only the model's parameters.

    `norm_eval` follows a second, eval-mode path: at init batch norm's running statistics are
    mean 0 and variance 1, so it computes γ z / sqrt(1 + eps) + β; every other norm computes the
    same as in training mode.
    """
    sites = {}
    h = h_eval = x.reshape(len(x), -1) if cfg.model == "mlp" else x
    for i in range(1, cfg.depth + 1):
        block = getattr(model, f"hidden{i}")
        w = block.linear.weight.detach().double()
        b = None if block.linear.bias is None else block.linear.bias.detach().double()

        def linear(h):
            if cfg.model == "mlp":
                return h @ w.numpy().T + (0 if b is None else b.numpy())
            return F.conv2d(torch.from_numpy(h), w, b, stride=block.linear.stride,
                            padding=block.linear.padding).numpy()
        gamma = beta = None
        if getattr(block.norm, "weight", None) is not None:
            gamma = block.norm.weight.detach().double().numpy()
            beta = block.norm.bias.detach().double().numpy()
        z, z_eval = linear(h), linear(h_eval)
        y = reference_norm(z, cfg.norm, cfg.eps, cfg.groups, gamma, beta)
        if cfg.norm.startswith("batch"):
            shape = (1, -1) + (1,) * (z.ndim - 2)
            y_eval = z_eval / np.sqrt(1 + cfg.eps) * gamma.reshape(shape) + beta.reshape(shape)
        else:
            y_eval = reference_norm(z_eval, cfg.norm, cfg.eps, cfg.groups, gamma, beta)
        a = ACT[cfg.activation](y)
        sites[f"hidden{i}", "linear"], sites[f"hidden{i}", "norm"], sites[f"hidden{i}", "act"] = z, y, a
        sites[f"hidden{i}", "norm_eval"] = y_eval
        h, h_eval = a, ACT[cfg.activation](y_eval)
    return sites


def unit_axes(a: np.ndarray) -> tuple:
    return (0,) + tuple(range(2, a.ndim))


def rebuild(cfg: RunConfig):
    """The run's model at step 0 and its probe batch, rebuilt from the seed as the issue specifies."""
    ds = data.load(cfg.dataset)
    cfg = validate(cfg).resolved(len(ds.x_train))
    torch.manual_seed(cfg.seed)
    model = models.build(cfg, ds.shape, ds.num_classes)
    gen = torch.Generator().manual_seed(cfg.seed + PROBE_SEED_OFFSET)
    idx = torch.randperm(len(ds.x_train), generator=gen)[:cfg.probe_size]
    return cfg, model, ds.x_train[idx].double().numpy()


# --------------------------------------------------------------------------- the modules themselves

MODULE_CASES = [("mlp", "batch"), ("mlp", "batch-nograd"), ("mlp", "layer"), ("mlp", "group"),
                ("cnn", "batch"), ("cnn", "batch-nograd"), ("cnn", "layer"), ("cnn", "instance"),
                ("cnn", "group")]


@pytest.mark.parametrize("model, norm", MODULE_CASES)
def test_each_normalized_group_has_mean_0_and_variance_1(model, norm):
    """Each set of statistics the variant promises is standardized: mean 0, variance v / (v + eps)."""
    cfg = RunConfig(model=model, norm=norm, groups=4, eps=EPS)
    conv, c = model == "cnn", 8
    torch.manual_seed(1)
    shape = (16, c, 5, 3) if conv else (16, c)
    # Offsets and scales differ per unit and per sample, so no variant is normalized by accident.
    x = (torch.randn(shape) * torch.linspace(0.5, 3, c).view((1, c) + (1,) * (len(shape) - 2))
         + torch.arange(c, dtype=torch.float32).view((1, c) + (1,) * (len(shape) - 2))
         + torch.linspace(-2, 2, 16).view((16,) + (1,) * (len(shape) - 1)))
    module = norms.build(norm, c, conv, cfg).train()
    with torch.no_grad():
        y = module(x).double().numpy()
    x64 = x.double().numpy()

    np.testing.assert_allclose(y, reference_norm(x64, norm, EPS, 4), rtol=1e-5, atol=1e-5)
    mean, var = group_stats(y, norm, 4)
    _, var_in = group_stats(x64, norm, 4)
    np.testing.assert_allclose(mean, 0, atol=1e-5)
    np.testing.assert_allclose(var, var_in / (var_in + EPS), rtol=1e-5)
    assert np.all(var <= 1 + 1e-6)
    # Coarser axes are NOT standardized: batch norm leaves per-sample means alone, layer and group
    # norm leave per-unit means alone (the input has different offsets on both). Instance norm's
    # groups are the finest, so every coarser mean is 0 and there is nothing to contrast.
    if norm != "instance":
        other = "layer" if norm.startswith("batch") else "batch"
        other_mean, _ = group_stats(y, other, 4)
        assert np.abs(other_mean).max() > 0.1


# --------------------------------------------------------------------------- step 0 of a real run

RUN_CASES = [("mlp", "none"), ("mlp", "batch"), ("mlp", "batch-nograd"), ("mlp", "layer"), ("mlp", "group"),
             ("cnn", "batch"), ("cnn", "layer"), ("cnn", "instance"), ("cnn", "group")]


@pytest.fixture(scope="module")
def step0_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("step0")
    runs = {}
    for model, norm in RUN_CASES:
        # depth 2 on the cnn: 8x8 -> 4x4 -> 2x2, so every instance-norm group holds several values.
        cfg = RunConfig(dataset="synthetic", model=model, norm=norm, depth=2 if model == "cnn" else 3,
                        width=None, steps=1, log_every=1, probe_size=200, track_units=3, seed=3,
                        out=str(out))
        res = train(cfg)
        runs[model, norm] = (cfg, pd.read_csv(res.path / "layers.csv"), store.read_table(res.path, "units"))
    return runs


@pytest.mark.parametrize("model, norm", RUN_CASES)
def test_step0_statistics_match_an_independent_forward_pass(step0_runs, model, norm):
    cfg, layers, units = step0_runs[model, norm]
    cfg, net, probe = rebuild(cfg)
    sites = hand_forward(net, cfg, probe)
    units0, layers0 = units[units.step == 0], layers[layers.step == 0]
    assert len(layers0) == cfg.depth * 4
    for (layer, site), a in sites.items():
        u = units0[(units0.layer == layer) & (units0.site == site)].sort_values("unit")
        axes = unit_axes(a)
        assert u.unit.tolist() == list(range(a.shape[1]))
        np.testing.assert_allclose(u["mean"], a.mean(axis=axes), rtol=1e-5, atol=1e-5, err_msg=f"{layer} {site}")
        np.testing.assert_allclose(u["var"], a.var(axis=axes), rtol=1e-5, atol=1e-7, err_msg=f"{layer} {site}")
        cols = np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)[:cfg.track_units]
        expected_q = np.quantile(cols, [0.15, 0.5, 0.85], axis=1).T
        got_q = u[["p15", "p50", "p85"]].to_numpy()[:cfg.track_units]
        np.testing.assert_allclose(got_q, expected_q, rtol=1e-5, atol=1e-5, err_msg=f"{layer} {site}")

        [row] = layers0[(layers0.layer == layer) & (layers0.site == site)].to_dict("records")
        unit_mean, unit_var = a.mean(axis=axes), a.var(axis=axes)
        assert row["mean"] == pytest.approx(a.mean(), rel=1e-5, abs=1e-5)
        assert row["var"] == pytest.approx(a.var(), rel=1e-5, abs=1e-7)
        assert row["unit_mean_abs"] == pytest.approx(np.abs(unit_mean).mean(), rel=1e-5, abs=1e-5)
        assert row["unit_var_mean"] == pytest.approx(unit_var.mean(), rel=1e-5, abs=1e-7)
        assert row["drift_mean_init"] == 0 and row["drift_var_init"] == 0
        assert row["drift_mean_scaled_init"] == 0 and row["dead_units"] == 0
        assert np.isnan(row["drift_mean"]) and np.isnan(row["drift_var"]) and np.isnan(row["drift_mean_scaled"])


@pytest.mark.parametrize("model, norm", [c for c in RUN_CASES if c[1] != "none"])
def test_recorded_norm_site_is_standardized_at_init(step0_runs, model, norm):
    """At init (gamma 1, beta 0) the recorded `norm` site has mean 0 and variance just below 1."""
    cfg, layers, units = step0_runs[model, norm]
    norm_rows = layers[(layers.step == 0) & (layers.site == "norm")]
    assert len(norm_rows) == cfg.depth
    assert (norm_rows["mean"].abs() < 1e-5).all()
    assert (norm_rows["var"] <= 1 + 1e-5).all() and (norm_rows["var"] > 0.9).all()
    if norm.startswith("batch"):
        # Per unit: exactly the batch-norm promise, var_out = var_in / (var_in + eps), read off the record.
        u = units[units.step == 0]
        lin = u[u.site == "linear"].sort_values(["layer", "unit"])
        out = u[u.site == "norm"].sort_values(["layer", "unit"])
        assert (out["mean"].abs() < 1e-5).all()
        np.testing.assert_allclose(out["var"].to_numpy(),
                                   lin["var"].to_numpy() / (lin["var"].to_numpy() + cfg.eps), rtol=1e-5)


def test_without_a_norm_the_linear_site_is_not_standardized(step0_runs):
    """The check above can fail: with no normalization the same net's `norm` site is far from (0, 1)."""
    _, layers, _ = step0_runs["mlp", "none"]
    norm_rows = layers[(layers.step == 0) & (layers.site == "norm")]
    assert ((norm_rows["mean"].abs() > 1e-3) | ((norm_rows["var"] - 1).abs() > 0.1)).any()


# --------------------------------------------------------------------------- the acceptance check


@pytest.fixture(scope="module")
def mnist_step0(tmp_path_factory):
    out = tmp_path_factory.mktemp("mnist")
    tables = {}
    for norm in ("none", "batch", "layer"):
        res = train(RunConfig(dataset="mnist-5k", norm=norm, steps=1, log_every=1, out=str(out)))
        layers = pd.read_csv(res.path / "layers.csv")
        tables[norm] = layers[(layers.step == 0) & (layers.site == "norm")]
    return tables


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_mnist5k_default_mlp_norm_site_is_standardized_at_step_0(mnist_step0, norm):
    rows = mnist_step0[norm]
    assert rows.layer.tolist() == ["hidden1", "hidden2", "hidden3"]
    assert (rows["mean"].abs() < 0.05).all(), rows
    assert ((rows["var"] > 0.9) & (rows["var"] <= 1.001)).all(), rows


def test_mnist5k_acceptance_check_rejects_the_unnormalized_net(mnist_step0):
    rows = mnist_step0["none"]
    ok = (rows["mean"].abs() < 0.05) & (rows["var"] > 0.9) & (rows["var"] <= 1.001)
    assert not ok.all()


# --------------------------------------------------------------------------- batch norm without the gradient


def _pair(conv: bool, c: int = 6):
    torch.manual_seed(7)
    ref = (nn.BatchNorm2d if conv else nn.BatchNorm1d)(c, eps=EPS, momentum=0.1)
    nog = batchnorms.BatchNormNoGrad(c, eps=EPS, momentum=0.1)
    with torch.no_grad():
        ref.weight.copy_(torch.rand(c) + 0.5)
        ref.bias.copy_(torch.randn(c))
    nog.load_state_dict(ref.state_dict())
    return ref, nog


@pytest.mark.parametrize("conv", [False, True])
def test_batch_nograd_forward_and_running_stats_equal_torch_batch_norm(conv):
    ref, nog = _pair(conv)
    gen = torch.Generator().manual_seed(0)
    shape = (12, 6, 3, 4) if conv else (12, 6)
    for k in range(4):
        x = torch.randn(shape, generator=gen) * (k + 1) + k
        torch.testing.assert_close(nog(x), ref(x), rtol=1e-5, atol=1e-5)
    for name in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(nog, name), getattr(ref, name), rtol=1e-6, atol=1e-6)
    assert int(nog.num_batches_tracked) == int(ref.num_batches_tracked) == 4
    # The running statistics really moved (else the comparison above would prove nothing).
    assert not torch.allclose(ref.running_mean, torch.zeros(6))
    ref.eval(), nog.eval()
    x = torch.randn(shape, generator=gen) + 3
    torch.testing.assert_close(nog(x), ref(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("conv", [False, True])
def test_batch_nograd_input_gradient_treats_batch_statistics_as_constants(conv):
    ref, nog = _pair(conv)
    gen = torch.Generator().manual_seed(1)
    shape = (10, 6, 2, 3) if conv else (10, 6)
    x0 = torch.randn(shape, generator=gen, dtype=torch.float64) * 2 + 1
    r = torch.randn(shape, generator=gen, dtype=torch.float64)
    ref, nog = ref.double(), nog.double()

    grads = {}
    for name, module in (("ref", ref), ("nog", nog)):
        x = x0.clone().requires_grad_(True)
        (module(x) * r).sum().backward()
        grads[name] = (x.grad.numpy(), module.weight.grad.numpy(), module.bias.grad.numpy())

    xn, rn = x0.numpy(), r.numpy()
    axes = (0,) + tuple(range(2, xn.ndim))
    bshape = (1, -1) + (1,) * (xn.ndim - 2)
    mean, var = xn.mean(axis=axes, keepdims=True), xn.var(axis=axes, keepdims=True)
    gamma = nog.weight.detach().numpy().reshape(bshape)
    xhat = (xn - mean) / np.sqrt(var + EPS)
    detached = rn * gamma / np.sqrt(var + EPS)
    full = gamma / np.sqrt(var + EPS) * (rn - rn.mean(axis=axes, keepdims=True)
                                         - xhat * (rn * xhat).mean(axis=axes, keepdims=True))

    np.testing.assert_allclose(grads["nog"][0], detached, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["ref"][0], full, rtol=1e-9, atol=1e-12)
    assert np.abs(grads["nog"][0] - grads["ref"][0]).max() > 0.1
    # gamma and beta get the same gradient either way: they never touch the batch statistics.
    np.testing.assert_allclose(grads["nog"][1], (rn * xhat).sum(axis=axes), rtol=1e-9)
    np.testing.assert_allclose(grads["nog"][1], grads["ref"][1], rtol=1e-9)
    np.testing.assert_allclose(grads["nog"][2], grads["ref"][2], rtol=1e-9)
