"""`ics.watch` (ics_cli/user): your model, your loop, the run folder `ics train` writes.

Facts: on the built-in MLP the API records the same bytes as `ics train` for the same seed and batch
order; the detector finds (linear, norm, act) sites in torchvision's ResNet-18, an nn.Sequential and a
transformer block, and refuses what it cannot place in one line; a probe changes nothing it observes;
the examples' run folders go through `ics compare` and `ics report`; README's example runs as written.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import ics_cli as ics
from ics_cli import train as train_mod
from ics_cli.config import RunConfig
from ics_cli.errors import IcsError
from ics_cli.net import models, sampling
from ics_cli.store import runs as store

from expect import run_doc_example

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"


def mlp(inplace: bool = False) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(inplace=inplace),
                         nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(inplace=inplace), nn.Linear(16, 10))


def loop(model, out, steps=6, **kw):
    """A plain SGD loop on random 8x8 images under ics.watch; the run folder."""
    gen = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(steps, 20, 1, 8, 8, generator=gen), torch.randint(0, 10, (steps, 20), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with ics.watch(model, out=out, optimizer=opt, **kw) as w:
        for x, y in zip(xs, ys):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            w.step(loss=loss, x=x, y=y, out=logits)
            opt.step()
    return Path(out)


# --------------------------------------------------------------------------- the same numbers


def test_the_api_records_the_bytes_ics_train_records(tmp_path):
    cfg = RunConfig(dataset="synthetic", norm="batch", depth=3, width=12, steps=23, log_every=5, eval_every=10,
                    seed=3, device="cpu", out=str(tmp_path / "train"))
    res = train_mod.train(cfg)
    # The same run by hand, as train() builds it: seed, model, optimizer, probe batch, batch order.
    cfg, ds, device = train_mod.prepare(cfg)
    torch.manual_seed(cfg.seed)
    model = models.build(cfg, ds.shape, ds.num_classes).to(device)
    opt = train_mod.make_optimizer(cfg, model.parameters())
    gen = torch.Generator().manual_seed(cfg.seed)
    chosen = torch.randperm(len(ds.x_train), generator=torch.Generator().manual_seed(
        cfg.seed + train_mod.PROBE_SEED_OFFSET))[:cfg.probe_size]
    batches = sampling.sampler(cfg, ds.y_train, ds.num_classes, gen, skip=0)
    model.train()
    with ics.watch(model, out=tmp_path / "api", every=cfg.log_every, probe=ds.x_train[chosen], steps=cfg.steps,
                   optimizer=opt, seed=cfg.seed) as w:
        for _ in range(cfg.steps):
            idx = next(batches)
            x, y = ds.x_train[idx], ds.y_train[idx]
            opt.zero_grad(set_to_none=True)
            logits, loss = sampling.forward_backward(model, x, y, ds.task, cfg.micro_batch)
            w.step(loss=loss, x=x, y=y, out=logits)
            opt.step()
    for name in ("layers.csv", "grads.csv", "train.csv"):
        assert (tmp_path / "api" / name).read_bytes() == (res.path / name).read_bytes(), name
    pd.testing.assert_frame_equal(store.read_table(tmp_path / "api", "units"), store.read_table(res.path, "units"))
    config = json.loads((tmp_path / "api" / "config.json").read_text())["config"]
    assert (config["norm"], config["lr"], config["batch_size"], config["seed"]) == ("batch", 0.5, 60, 3)


# --------------------------------------------------------------------------- the sites


def test_a_sequential_mlp_is_found_as_hidden_layers_and_a_head(tmp_path):
    run = loop(mlp(), tmp_path / "r", every=2, probe=torch.randn(32, 1, 8, 8))
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["sites"] == [{"layer": "hidden1", "linear": "1", "norm": "2", "act": "3"},
                               {"layer": "hidden2", "linear": "4", "norm": "5", "act": "6"},
                               {"layer": "output", "linear": "7", "norm": None, "act": None}]
    assert config["norm"] == "batch" and config["model"] == "Sequential" and config["steps"] == 6
    layers = pd.read_csv(run / "layers.csv")
    assert sorted(layers.step.unique()) == [0, 2, 4, 6]
    assert set(layers.layer) == {"hidden1", "hidden2"}
    # batch norm's promise at the norm site (γ=1, β=0 at step 0): each unit mean 0, variance 1.
    norm0 = layers[(layers.step == 0) & (layers.site == "norm")]
    assert norm0["unit_mean_abs"].max() < 1e-5 and (norm0["unit_var_mean"] - 1).abs().max() < 1e-3
    grads = pd.read_csv(run / "grads.csv")
    assert set(grads.layer) == {"hidden1", "hidden2", "output"} and sorted(grads.step.unique()) == list(range(1, 7))
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_detection_passes_a_few_samples_and_the_whole_batch_when_calls_depend_on_it():
    """Which module takes which tensor does not depend on the batch size: the detection pass takes the
    batch's first sites.TRACE samples; a model that calls a module only on some batches gets the whole."""
    from ics_cli.user import sites

    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.extra = mlp(), nn.Linear(10, 10)

        def forward(self, x):
            out = self.body(x)
            return self.extra(out) if len(x) > sites.TRACE else out

    seen = []
    model = Gated()
    model.body[1].register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    sites.view(model.body, torch.randn(64, 1, 8, 8))
    assert seen == [sites.TRACE]
    found = sites.view(model, torch.randn(64, 1, 8, 8))
    assert seen == [sites.TRACE, sites.TRACE, 64]
    assert found.describe()[-1] == {"layer": "output", "linear": "extra", "norm": None, "act": None}


def test_inplace_relu_does_not_overwrite_the_norm_site(tmp_path):
    a = pd.read_csv(loop(mlp(inplace=False), tmp_path / "a", every=3, probe=torch.randn(32, 1, 8, 8)) / "layers.csv")
    b = pd.read_csv(loop(mlp(inplace=True), tmp_path / "b", every=3, probe=torch.randn(32, 1, 8, 8)) / "layers.csv")
    pd.testing.assert_frame_equal(a, b)
    at0 = a[(a.step == 0) & (a.site == "norm")]
    assert (at0["mean"].abs() < 1e-5).all()      # batch norm's output at γ=1, β=0, not the ReLU's


def test_probing_changes_nothing_it_observes(tmp_path):
    """Running statistics and the trained weights are the same whether the run is recorded or not."""
    plain = mlp()
    gen = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(6, 20, 1, 8, 8, generator=gen), torch.randint(0, 10, (6, 20), generator=gen)
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    for x, y in zip(xs, ys):
        loss = nn.functional.cross_entropy(plain(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    watched = mlp()
    loop(watched, tmp_path / "r", every=1, probe=torch.randn(32, 1, 8, 8), quantities=["grad_ics", "landscape"],
         loss_fn=nn.functional.cross_entropy)
    for (k, a), (_, b) in zip(plain.state_dict().items(), watched.state_dict().items()):
        assert torch.equal(a, b), k


def test_second_view_on_a_user_model(tmp_path):
    run = loop(mlp(), tmp_path / "r", every=3, probe=torch.randn(32, 1, 8, 8),
               quantities={"grad_ics": 2, "relative_loss": 3}, loss_fn=nn.functional.cross_entropy)
    g = pd.read_csv(run / "grad_ics.csv")
    assert sorted(g.step.unique()) == [0, 2, 4] and set(g.layer) == {"hidden1", "hidden2"}
    assert (g[g.layer == "hidden1"].ics_l2 == 0).all() and (g[g.layer == "hidden2"].ics_l2 > 0).all()
    assert sorted(pd.read_csv(run / "relative_loss.csv").step.unique()) == [0, 3]


def test_without_a_probe_the_training_batches_are_probed(tmp_path):
    layers = pd.read_csv(loop(mlp(), tmp_path / "r", every=4) / "layers.csv")
    assert sorted(layers.step.unique()) == [0, 4, 6]


@pytest.mark.parametrize("kw, message", [
    (dict(layers=["9"]), "layers names '9', which is not a module"),
    (dict(layers=["2"]), "layers names '2', a BatchNorm1d: a layer is a Linear"),
    (dict(quantities=["grad_ics"]), "need loss_fn"),
    (dict(quantities=["curvature"]), "quantities has 'curvature'"),
])
def test_bad_input_is_one_line(tmp_path, kw, message):
    with pytest.raises(IcsError, match=re.escape(message)):
        loop(mlp(), tmp_path / "r", probe=torch.randn(8, 1, 8, 8), **kw)


def test_a_refusal_on_entering_leaves_the_folder_free(tmp_path):
    """A model refused when the block opens (kept alive, as a notebook keeps the last traceback) holds
    neither the folder's lock nor a hook: the corrected call records into the same folder."""
    model = mlp()
    with pytest.raises(IcsError, match="layers names '9'") as refused:
        with ics.watch(model, out=tmp_path / "r", probe=torch.randn(8, 1, 8, 8), layers=["9"]):
            pass
    assert refused.value.__traceback__ is not None and not model._forward_pre_hooks
    run = loop(model, tmp_path / "r", every=3, probe=torch.randn(8, 1, 8, 8))
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_a_norm_no_layer_feeds_is_refused_by_name_and_layers_override(tmp_path):
    torch.manual_seed(0)
    pre_norm = nn.Sequential(nn.Flatten(), nn.LayerNorm(64), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    with pytest.raises(IcsError, match=re.escape("cannot place normalization '1' (LayerNorm)")):
        loop(pre_norm, tmp_path / "a", probe=torch.randn(8, 1, 8, 8))
    run = loop(pre_norm, tmp_path / "b", every=3, probe=torch.randn(8, 1, 8, 8), layers=["2", "4"])
    config = json.loads((run / "config.json").read_text())["config"]
    assert [s["linear"] for s in config["sites"]] == ["2", "4"] and config["sites"][0]["act"] == "3"


def test_torch_transformer_layer_is_recorded_by_named_layers(tmp_path):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.1, batch_first=True)
    with pytest.raises(IcsError, match="cannot place normalization 'norm1'"):
        with ics.watch(layer, out=tmp_path / "a", probe=torch.randn(4, 5, 16)):
            pass
    probe = torch.randn(4, 5, 16)
    rng = torch.get_rng_state()
    with ics.watch(layer, out=tmp_path / "b", probe=probe, layers=["linear1", "linear2"]):
        pass
    assert torch.equal(rng, torch.get_rng_state())      # probe passes draw dropout from a stream of their own
    layers = pd.read_csv(tmp_path / "b" / "layers.csv")
    assert set(layers.layer) == {"hidden1", "hidden2"}


# --------------------------------------------------------------------------- the examples


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    import mlp_mnist
    import transformer_tokens

    out = tmp_path_factory.mktemp("examples")
    runs = {"mlp": mlp_mnist.main(str(out / "runs" / "mlp-bn"), steps=30, every=10),
            "mlp-none": mlp_mnist.main(str(out / "runs" / "mlp-none"), steps=30, every=10, norm=False),
            "transformer": transformer_tokens.main(str(out / "runs" / "transformer"), steps=12, every=6)}
    if CIFAR.is_dir():
        import resnet18_cifar
        runs["resnet18"] = resnet18_cifar.main(str(out / "runs" / "resnet18"), steps=2, data=CIFAR, batch=8,
                                               every=2, quantities=(), probe_size=16)
    return out, runs


def test_resnet18_on_cifar(examples):
    if "resnet18" not in examples[1]:
        pytest.skip(f"CIFAR-10's binary version is not at {CIFAR}")
    run = examples[1]["resnet18"]
    config = json.loads((run / "config.json").read_text())["config"]
    sites = config["sites"]
    assert len(sites) == 21 and sites[-1] == {"layer": "output", "linear": "fc", "norm": None, "act": None}
    assert sites[0] == {"layer": "hidden1", "linear": "conv1", "norm": "bn1", "act": "relu"}
    assert {"layer": "hidden3", "linear": "layer1.0.conv2", "norm": "layer1.0.bn2", "act": None} in sites
    assert config["model"] == "resnet18" and config["norm"] == "batch"
    layers = pd.read_csv(run / "layers.csv")
    assert sorted(layers.step.unique()) == [0, 2] and layers.layer.nunique() == 20
    # A layer with an act (the shared ReLU's first call) is never negative there; one without
    # (conv2, whose ReLU comes after the residual sum) repeats its norm site.
    with_act = [s["layer"] for s in sites if s["act"]]
    act, norm = (layers[layers.site == s].set_index(["step", "layer"])["mean"] for s in ("act", "norm"))
    assert (act[act.index.get_level_values(1).isin(with_act)] > 0).all()
    without = ~act.index.get_level_values(1).isin(with_act)
    assert act[without].equals(norm[without])


def test_transformer_tokens_are_samples(examples):
    run = examples[1]["transformer"]
    config = json.loads((run / "config.json").read_text())["config"]
    assert [s["linear"] for s in config["sites"]] == ["block.q", "block.k", "block.v", "block.o", "block.up",
                                                      "block.down", "head"]
    assert config["sites"][4] == {"layer": "hidden5", "linear": "block.up", "norm": "block.norm", "act": "block.act"}
    assert config["norm"] == "layer"
    units = store.read_table(run, "units")
    assert units[(units.layer == "hidden5")].unit.max() == 255      # 4 x 64 units, tokens as samples
    layers = pd.read_csv(run / "layers.csv")
    h5 = layers[(layers.layer == "hidden5") & (layers.site == "norm")]
    assert (h5["unit_var_mean"] > 0).all() and (h5["mean"].abs() < 0.05).all()


def test_compare_reads_every_example_and_report_draws_two(examples):
    from ics_cli.analyse import compare
    from ics_cli.cli import app

    out, runs = examples
    tables = compare.build(store.find_runs(out / "runs"))         # the tables `ics compare` writes
    drift = tables["drift"]
    assert {"Sequential", "TinyTransformer"} <= set(drift.model) and {"batch", "none", "layer"} <= set(drift.norm)
    assert len(tables["summary"]) == len(runs)
    if "resnet18" in runs:
        assert (drift.model == "resnet18").sum() == 20 * 4
    # The CLI end to end (figures included) on the two MLPs: `ics compare`, then `ics report`.
    mlps = [str(runs["mlp"]), str(runs["mlp-none"])]
    cli = CliRunner()
    result = cli.invoke(app, ["compare", *mlps, "--out", str(out / "compare")])
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(out / "compare" / "drift.csv").norm) == {"batch", "none"}
    result = cli.invoke(app, ["report", str(out / "compare"), "--out", str(out / "report.html"), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "hidden2" in (out / "report.html").read_text()


# --------------------------------------------------------------------------- the README and help


def test_readme_example_runs_as_written(tmp_path):
    run = run_doc_example(ROOT / "README.md", "## Your own model", tmp_path, "mine.py")
    assert (run / "layers.csv").is_file() and (run / "units.parquet").is_file()


def test_help_documents_the_api():
    done = subprocess.run([sys.executable, "-c", "import ics_cli as ics; help(ics.watch)"], capture_output=True,
                          text=True, timeout=120)
    assert "Record what `ics train` records" in done.stdout and "loss_fn" in done.stdout
