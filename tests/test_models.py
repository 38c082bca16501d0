"""Facts about the networks (ics_cli/models.py): layouts, parameter counts, the residual MLP's growth of
activations with depth (Bjorck et al. 2018), VGG on the CIFAR-10 on-disk format, deep MLPs with every
norm, and per-step drift (--log-every 1) recorded for every hidden layer of every model and variant.
"""

import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ics_cli import config
from ics_cli.net import data, models, noise, norms, shapes
from ics_cli.config import MODELS, RunConfig, param_count, validate
from ics_cli.errors import ConfigError
from ics_cli.probes import ActivationRecorder
from ics_cli.train import train
from test_data import fake_split

MLP_NORMS = [n for n, v in norms.REGISTRY.items() if v.mlp]
CNN_NORMS = [n for n, v in norms.REGISTRY.items() if v.cnn]


def build(shape=(1, 8, 8), classes=10, **kw):
    cfg = validate(RunConfig(**kw))
    torch.manual_seed(0)
    return cfg, models.build(cfg, shape, classes)


def drift_every_step(run_dir, depth: int, steps: int) -> None:
    """layers.csv has drift rows for every hidden layer and site at every step 1..steps."""
    layers = pd.read_csv(run_dir / "layers.csv")
    moved = layers[layers.step > 0]
    assert sorted(moved.step.unique()) == list(range(1, steps + 1))
    assert sorted(moved.layer.unique(), key=lambda n: int(n[6:])) == [f"hidden{i}" for i in range(1, depth + 1)]
    assert len(moved) == steps * depth * 4                               # 4 sites each
    assert moved.drift_mean.notna().all()
    # drift_var is blank only where no unit is alive at both steps (metrics.drift): a collapsed layer.
    dead_before = layers.groupby(["layer", "site"]).dead_units.shift(1)[moved.index]
    assert (moved.drift_var.notna() | (moved.dead_units > 0) | (dead_before > 0)).all()


# --------------------------------------------------------------------------- parameter counts

CASES = ([("mlp", n, (1, 8, 8)) for n in MLP_NORMS] + [("resmlp", n, (1, 8, 8)) for n in MLP_NORMS]
         + [("cnn", n, (3, 16, 16)) for n in CNN_NORMS] + [("vgg", n, (3, 32, 32)) for n in CNN_NORMS])


@pytest.mark.parametrize("noise_name", ["none", "santurkar"])
@pytest.mark.parametrize("model, norm, shape", CASES)
def test_param_count_is_the_built_models(model, norm, shape, noise_name):
    cfg, net = build(shape, 7, model=model, norm=norm, noise=noise_name, width=8, depth=4 if model != "vgg" else 10)
    assert param_count(cfg, shape, 7) == sum(p.numel() for p in net.parameters())


@pytest.mark.skipif("dln" not in models.BUILDERS, reason="no dln builder yet")
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_param_count_of_the_dln(norm):
    cfg = validate(RunConfig(model="dln", dataset="gaussian-linear", activation="identity", norm=norm))
    net = models.build(cfg, (10, 1, 1), 10)
    assert param_count(cfg, (10, 1, 1), 10) == sum(p.numel() for p in net.parameters())


def test_every_model_has_a_builder_and_every_activation_a_module():
    assert set(MODELS) - {"dln"} <= set(models.BUILDERS)
    assert set(config.ACTIVATIONS) == set(models.ACTIVATIONS)


# --------------------------------------------------------------------------- resmlp

@pytest.mark.parametrize("norm", MLP_NORMS)
def test_resmlp_projects_then_adds_identity_skips(norm):
    cfg, net = build(model="resmlp", norm=norm, depth=5, width=12, activation="relu")
    blocks = list(net.blocks.values())
    assert list(net.blocks) == [f"hidden{i}" for i in range(1, 6)]
    assert blocks[0].linear.weight.shape == (12, 64) and not blocks[0].residual
    assert all(b.residual and b.linear.weight.shape == (12, 12) for b in blocks[1:])
    x = torch.randn(6, 1, 8, 8)
    net.eval()
    with torch.no_grad():
        h = blocks[0](x.flatten(1))
        for b in blocks[1:]:                             # x <- relu(x + norm(W x + b))
            h = torch.relu(h + b.norm(b.linear(h)))
        torch.testing.assert_close(net(x), net.output(h))
    assert net(x).shape == (6, 10)


def _act_means(model: str, norm: str) -> np.ndarray:
    """Mean over units of each hidden layer's act-site unit mean at initialization (ReLU, He init)."""
    ds = data.load("mnist-5k")
    _, net = build(ds.shape, model=model, norm=norm, depth=20, activation="relu", init="kaiming")
    stats = ActivationRecorder(net, 4, batch_stats=norm == "batch").measure(ds.x_train[:256])
    return stats["mean"][:, 2].mean(-1), stats["var"][:, 2].mean(-1) ** 0.5


def test_resmlp_activations_grow_with_depth_without_bn_and_stay_near_flat_with_it():
    """Bjorck et al. 2018 Fig. 3 at initialization, on the residual stream (the act site): without a
    norm each block multiplies it (measured: mean 0.5 -> ~1.6e3 over 20 layers); with batch norm each
    block adds about one unit of variance (0.4 -> ~3). The plain MLP, the labelled contrast: no growth."""
    mean, std = _act_means("resmlp", "none")
    assert mean[-1] / mean[0] > 100 and std[-1] / std[0] > 100
    assert (np.diff(np.log(mean)) > 0).all()            # grows at every layer
    mean, std = _act_means("resmlp", "batch")
    assert mean[-1] / mean[0] < 10 and std[-1] / std[0] < 10
    mean, std = _act_means("mlp", "none")
    assert mean[-1] / mean[0] < 2 and std[-1] / std[0] < 2


def test_resmlp_needs_a_residual_block():
    with pytest.raises(ConfigError, match="resmlp needs at least 2"):
        validate(RunConfig(model="resmlp", depth=1))


# --------------------------------------------------------------------------- vgg

def test_vgg_a_layout_and_feature_maps():
    cfg, net = build((3, 32, 32), model="vgg", norm="batch", width=8, activation="relu")
    assert len(net.blocks) == 8
    pooled = [i for i, b in enumerate(net.blocks.values(), 1) if isinstance(b.pool, nn.MaxPool2d)]
    assert pooled == [1, 2, 4, 6, 8]                    # stages of 1, 1, 2, 2, 2 convs
    assert all(b.linear.kernel_size == (3, 3) and b.linear.stride == (1, 1) for b in net.blocks.values())
    seen = []
    for b in net.blocks.values():
        b.norm.register_forward_hook(lambda m, i, out: seen.append(tuple(out.shape[2:])))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert seen == shapes.conv_maps(cfg, (3, 32, 32)) == [(32, 32), (16, 16), (8, 8), (8, 8), (4, 4), (4, 4),
                                                          (2, 2), (2, 2)]


def test_vgg_configurations_and_image_sizes():
    assert [len(build((3, 32, 32), model="vgg", depth=d, width=4)[1].blocks) for d in (8, 10, 13, 16)] == [8, 10, 13, 16]
    with pytest.raises(ConfigError, match="--depth 9: --model vgg .* 8, 10, 13, 16"):
        validate(RunConfig(model="vgg", depth=9))
    cfg = validate(RunConfig(model="vgg"))
    shapes.check_input(cfg, (3, 32, 32))
    shapes.check_input(cfg, (1, 28, 28))                 # 28 -> 14 -> 7 -> 4 -> 2 (pools round up)
    assert models.build(cfg, (1, 28, 28), 10)(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ConfigError, match="on 16x16 images the last stage's maps are 1x1"):
        shapes.check_input(cfg, (3, 16, 16))
    with pytest.raises(ConfigError, match="--groups 5 does not divide the width 32"):
        validate(RunConfig(model="vgg", norm="group", groups=5))
    with pytest.raises(ConfigError, match="--norm instance is undefined on the resmlp"):
        validate(RunConfig(model="resmlp", norm="instance"))


@pytest.fixture
def cifar(tmp_path, monkeypatch, fresh_cache):
    """A CIFAR-10 folder in the real on-disk format (tests/test_data.py), 5 x 8 training images."""
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    rng = np.random.default_rng(5)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for file, n in [(f"data_batch_{i}", 8) for i in range(1, 6)] + [("test_batch", 10)]:
        x, y = fake_split(rng, n, (3072,))
        with open(folder / file, "wb") as f:
            pickle.dump({"data": x, "labels": y.tolist()}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f, protocol=2)
    return tmp_path


@pytest.mark.parametrize("norm, noise_name, probe", [("batch", "none", "fixed"), ("batch", "santurkar", "train"),
                                                      ("none", "santurkar", "fixed"), ("group", "none", "train")])
def test_vgg_trains_on_cifar10_files_with_drift_at_every_step(cifar, tmp_path, norm, noise_name, probe):
    res = train(RunConfig(dataset="cifar10", data_dir=str(cifar), split="official", model="vgg", norm=norm, noise=noise_name,
                          probe=probe, width=8, batch_size=4, probe_size=8, steps=3, log_every=1, eval_every=3,
                          activation="relu", lr=0.05, out=str(tmp_path / "runs"), device="cpu"))
    assert res.summary["status"] == "completed" and res.summary["steps_done"] == 3
    drift_every_step(res.path, 8, 3)
    assert {"hidden1.linear.weight", "hidden8.linear.weight", "output.weight"} <= set(
        torch.load(res.path / "model.pt", weights_only=True))


# --------------------------------------------------------------------------- deep nets, every norm, per-step drift

@pytest.mark.parametrize("norm", MLP_NORMS)
def test_a_50_layer_mlp_trains_with_every_norm_and_records_every_step(tmp_path, norm):
    res = train(RunConfig(dataset="synthetic", model="mlp", norm=norm, depth=50, width=16, steps=3,
                          log_every=1, eval_every=3, probe_size=32, out=str(tmp_path), device="cpu"))
    assert res.summary["status"] in ("completed", "diverged")
    assert res.summary["steps_done"] == 3
    drift_every_step(res.path, 50, 3)


@pytest.mark.parametrize("probe", ["fixed", "train"])
@pytest.mark.parametrize("kw", [dict(model="resmlp", norm="none", activation="relu", init="kaiming", lr=0.01),
                                dict(model="resmlp", norm="batch", noise="santurkar"),
                                dict(model="resmlp", norm="layer"),
                                dict(model="mlp", norm="none", noise="santurkar"),
                                dict(model="cnn", norm="instance", noise="santurkar", depth=2)])
def test_per_step_moment_changes_for_every_variant(tmp_path, kw, probe):
    """Santurkar Fig. 8's per-step moment changes: drift at --log-every 1, every hidden layer."""
    kw = {"depth": 6, **kw}
    res = train(RunConfig(dataset="synthetic", width=8, steps=3, log_every=1, eval_every=3, probe=probe,
                          probe_size=32, out=str(tmp_path), device="cpu", **kw))
    assert res.summary["steps_done"] == 3
    drift_every_step(res.path, kw["depth"], 3)
    if kw.get("noise") == "santurkar":
        saved = torch.load(res.path / "model.pt", weights_only=True)
        assert saved[f"hidden{kw['depth']}.norm.noise._extra_state"] == {"draws": 3}


def test_noise_sits_in_every_models_norm_slot():
    for model, shape in (("mlp", (1, 8, 8)), ("resmlp", (1, 8, 8)), ("cnn", (1, 8, 8)), ("vgg", (3, 32, 32))):
        _, net = build(shape, model=model, noise="santurkar", width=4)
        assert [type(b.norm) for b in net.blocks.values()] == [noise.Noisy] * len(net.blocks)
        assert [m.layer for m in noise.modules(net)] == list(range(1, len(net.blocks) + 1))
