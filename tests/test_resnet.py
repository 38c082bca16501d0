"""Facts about the CIFAR ResNet (`--model resnet`, He et al. 2016, Sec. 4.2): 6n + 2 weighted layers in
three stages of w, 2w, 4w channels, parameter-free option-A shortcuts, a forward pass that is a real
residual net, and the recording of layers of unequal widths (buffers padded to the widest layer, each
layer's statistics over its own units, units-table rows only for the units a layer has).
"""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ics_cli.net import models, norms, shapes
from ics_cli.config import RunConfig, param_count, validate
from ics_cli.errors import ConfigError
from ics_cli.probes import SITES, ActivationRecorder
from ics_cli.store import logs
from ics_cli.store.units import read_units

from helpers import run

CNN_NORMS = [n for n, v in norms.REGISTRY.items() if v.cnn]
CIFAR = (3, 32, 32)


def build(shape=CIFAR, classes=10, **kw):
    cfg = validate(RunConfig(**{"model": "resnet", "dataset": "synthetic", **kw}))
    torch.manual_seed(0)
    return cfg, models.build(cfg, shape, classes)


def convs(net) -> list[nn.Conv2d]:
    return [b.linear for b in net.blocks.values()]


# --------------------------------------------------------------------------- layout

@pytest.mark.parametrize("depth, n", [(20, 3), (56, 9), (110, 18)])
def test_depth_counts_6n_plus_2_weighted_layers(depth, n):
    cfg, net = build(depth=depth)
    assert shapes.resnet_blocks(depth) == n
    layers = models.weighted_layers(net)
    assert len(layers) == depth == 6 * n + 2
    assert list(layers) == [f"hidden{i}" for i in range(1, 6 * n + 2)] + ["output"]
    assert param_count(cfg, CIFAR, 10) == sum(p.numel() for p in net.parameters())


def test_the_papers_parameter_counts():
    """He et al. 2016, Table 6: ResNet-20 0.27M, ResNet-110 1.7M parameters (with batch norm)."""
    assert round(param_count(validate(RunConfig(model="resnet", norm="batch")), CIFAR) / 1e4) == 27
    assert round(param_count(validate(RunConfig(model="resnet", norm="batch", depth=110)), CIFAR) / 1e5) == 17


@pytest.mark.parametrize("depth", [2, 7, 9, 21, 100])
def test_other_depths_are_refused_naming_6n_plus_2(depth):
    with pytest.raises(ConfigError, match=rf"--depth {depth}: --model resnet has 6n\+2 .* 8, 14, 20, 32, 44, 56, 110"):
        validate(RunConfig(model="resnet", depth=depth))


def test_defaults_are_resnet_20_of_16_channels_with_relu():
    cfg = validate(RunConfig(model="resnet"))
    assert (cfg.depth, cfg.width, cfg.activation) == (20, 16, "relu")


def test_stage_widths_strides_and_the_maps_each_norm_sees():
    cfg, net = build(depth=20, width=16, norm="batch")
    cs = convs(net)
    assert [c.out_channels for c in cs] == [16] * 7 + [32] * 6 + [64] * 6
    assert [c.in_channels for c in cs] == [3] + [16] * 7 + [32] * 6 + [64] * 5
    assert [i for i, c in enumerate(cs, 1) if c.stride == (2, 2)] == [8, 14]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in cs)
    assert net.output.in_features == 64
    seen = []
    for b in net.blocks.values():
        b.norm.register_forward_hook(lambda m, i, out: seen.append(tuple(out.shape[1:])))
    assert net(torch.randn(2, *CIFAR)).shape == (2, 10)
    assert [s[1:] for s in seen] == shapes.conv_maps(cfg, CIFAR) == [(32, 32)] * 7 + [(16, 16)] * 6 + [(8, 8)] * 6
    assert [s[0] for s in seen] == [c.out_channels for c in cs]
    assert shapes.conv_maps(cfg, (1, 28, 28)) == [(28, 28)] * 7 + [(14, 14)] * 6 + [(7, 7)] * 6


def test_the_shortcut_subsamples_and_pads_zero_channels():
    x = torch.randn(2, 3, 5, 5)
    assert models.shortcut(x, 3, 1) is x
    y = models.shortcut(x, 7, 2)
    assert y.shape == (2, 7, 3, 3)
    torch.testing.assert_close(y[:, :3], x[:, :, ::2, ::2], rtol=0, atol=0)
    assert (y[:, 3:] == 0).all()


@pytest.mark.parametrize("noise_name", ["none", "santurkar"])
@pytest.mark.parametrize("norm", CNN_NORMS)
def test_param_count_is_the_built_models_the_shortcuts_have_none(norm, noise_name):
    cfg, net = build((3, 16, 16), 7, norm=norm, noise=noise_name, depth=14, width=4, groups=2)
    assert param_count(cfg, (3, 16, 16), 7) == sum(p.numel() for p in net.parameters())
    assert {name.split(".")[0] for name, _ in net.named_parameters()} <= set(net.blocks) | {"output"}
    has_bias = [c.bias is not None for c in convs(net)]
    assert has_bias == [not norms.get(norm).affine] * len(has_bias)


# --------------------------------------------------------------------------- forward

@pytest.mark.parametrize("norm", ["none", "batch"])
def test_with_every_conv_after_the_stem_zeroed_the_input_reaches_the_head_only_by_the_shortcuts(norm):
    """Each block's branch is then 0 (a norm of zeros is β = 0), so every block passes its input on:
    the head sees the stem's output subsampled by 4 and zero-padded from w to 4w channels."""
    cfg, net = build((3, 16, 16), width=4, depth=14, norm=norm)
    stem, *rest = convs(net)
    with torch.no_grad():
        for c in rest:
            c.weight.zero_()
        x = torch.randn(5, 3, 16, 16)
        h = torch.relu(net.hidden1.norm(stem(x)))[:, :, ::4, ::4]
        expected = net.output(nn.functional.pad(h, (0, 0, 0, 0, 0, 12)).mean((2, 3)))
        torch.testing.assert_close(net(x), expected)
        net.hidden1.linear.weight.zero_()
        assert net(x).std(0).max() == 0                       # then nothing of x is left


@pytest.mark.parametrize("norm", ["none", "batch", "group"])
def test_forward_is_conv_norm_act_conv_norm_plus_shortcut_act(norm):
    cfg, net = build((3, 8, 8), width=4, depth=8, norm=norm, groups=2)
    net.eval()
    b = list(net.blocks.values())
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        h = torch.relu(b[0].norm(b[0].linear(x)))
        for A, B, width, stride in [(b[1], b[2], 4, 1), (b[3], b[4], 8, 2), (b[5], b[6], 16, 2)]:
            branch = B.norm(B.linear(torch.relu(A.norm(A.linear(h)))))
            skip = h[:, :, ::stride, ::stride]
            h = torch.relu(branch + torch.cat([skip, skip.new_zeros(3, width - skip.shape[1], *skip.shape[2:])], 1))
        torch.testing.assert_close(net(x), net.output(h.mean((2, 3))))
        torch.testing.assert_close(net.hidden(x), h)
        torch.testing.assert_close(net.hidden(z1=b[0].linear(x)), h)


# --------------------------------------------------------------------------- recording unequal widths

def _direct(net, x):
    """Each layer's (linear, norm, act) outputs of a training-mode pass, by plain hooks."""
    seen, hooks = {}, []
    for li, b in enumerate(net.blocks.values()):
        for si, site in enumerate(models.SITES):
            hooks.append(getattr(b, site).register_forward_hook(
                lambda m, i, out, k=(li, si): seen.__setitem__(k, out.detach())))
    with torch.no_grad():
        net.train()
        net(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_recording_unequal_widths_gives_each_layer_its_own_units(norm):
    cfg, net = build((1, 8, 8), width=4, depth=8, norm=norm)
    widths = [4] * 3 + [8] * 2 + [16] * 2
    rec = ActivationRecorder(net, track_units=6, batch_stats=norm == "batch")
    assert rec.units == 4                                   # min(track_units, the narrowest width)
    x = torch.randn(32, 1, 8, 8)
    for step in (0, 1):
        rec.probe(x + step)
        rec.record(step)
    steps, stats = rec.flush()
    assert stats["width"].tolist() == [widths, widths]
    mean, var, site = stats["mean"], stats["var"], stats["site"]
    assert mean.shape == (2, 7, len(SITES), 16) and stats["pct"].shape == (2, 7, len(SITES), 4, 3)
    for li, w in enumerate(widths):
        assert np.isfinite(mean[:, li, :, :w]).all() and np.isnan(mean[:, li, :, w:]).all()
        assert np.isfinite(var[:, li, :, :w]).all() and np.isnan(var[:, li, :, w:]).all()
    assert np.isfinite(site[1]).all()                       # every statistic, drifts since the last step too
    # At the first step every column but the drifts since the previous step (none yet).
    assert np.isfinite(site[0][..., [0, 1, 2, 3, 6, 7, 9, 10]]).all() and np.isnan(site[0][..., [4, 5, 8]]).all()
    # Site mean and variance equal the direct ones over the layer's own units.
    direct = _direct(net, x + 1)
    for (li, si), out in direct.items():
        v, m = torch.var_mean(out.double(), correction=0)
        np.testing.assert_allclose(site[1, li, si, :2], [m.item(), v.item()], rtol=1e-4, atol=1e-6)
    block = logs.unit_block(steps, stats, rec.layers)
    table = pd.DataFrame({k: np.asarray(v) for k, v in block.items()})
    counts = table.groupby(["step", "layer", "site"]).size()
    assert len(counts) == 2 * 7 * len(SITES)
    assert all(counts[(step, f"hidden{li + 1}", s)] == w for step in steps
               for li, w in enumerate(widths) for s in SITES)
    assert table["mean"].notna().all() and table["var"].notna().all()
    assert table["p50"].notna().sum() == 2 * 7 * len(SITES) * 4


@pytest.mark.parametrize("norm, probe", [("batch", "train"), ("none", "fixed")])
def test_a_resnet_trains_and_records_every_table(tmp_path, norm, probe):
    res = run(tmp_path, model="resnet", depth=8, width=4, norm=norm, probe=probe, steps=3, log_every=1, eval_every=3,
              probe_size=16, batch_size=16, ics_every=2, relative_loss_every=2, relative_alphas="0.1,1",
              device="cpu")
    assert res.summary["status"] == "completed" and res.summary["steps_done"] == 3
    hidden = [f"hidden{i}" for i in range(1, 8)]
    layers = pd.read_csv(res.path / "layers.csv")
    assert len(layers) == 4 * 7 * len(SITES) and sorted(layers.layer.unique()) == sorted(hidden)
    values = layers.drop(columns=["drift_var", "drift_mean_scaled", "drift_mean_scaled_init", "drift_var_init"])
    assert values[layers.step > 0].notna().all().all()
    units = read_units(res.path)
    widths = dict(zip(hidden, [4] * 3 + [8] * 2 + [16] * 2))
    per_layer = units.groupby(["step", "site", "layer"], observed=True).unit.agg(["size", "max"]).reset_index()
    assert len(per_layer) == 4 * 7 * len(SITES)
    assert (per_layer["size"] == per_layer.layer.map(widths)).all()
    assert (per_layer["max"] == per_layer.layer.map(widths) - 1).all()
    assert units["mean"].notna().all()
    ics = pd.read_csv(res.path / "grad_ics.csv")
    assert sorted(ics.step.unique()) == [0, 2] and list(ics.layer[ics.step == 0]) == hidden
    assert ics.grad_norm.gt(0).all() and ics.ics_l2[ics.layer != "hidden1"].gt(0).all()
    rel = pd.read_csv(res.path / "relative_loss.csv")
    assert sorted(rel.step.unique()) == [0, 2] and rel.notna().all().all()
