"""Facts about regression: the gaussian-linear data, the deep linear network, the squared-error loss,
and a run whose accuracy is blank read by compare and plot with the loss-based rule."""

import math

import pandas as pd
import pytest
import torch

from ics_cli.analyse import compare
from ics_cli.net import data, models, tasks
from ics_cli.figures import plots
from ics_cli.figures import draw
from ics_cli import train
from ics_cli.config import RunConfig, validate
from ics_cli.errors import ConfigError
from ics_cli.store.runs import find_runs, read_run

DLN = dict(model="dln", dataset="gaussian-linear", activation="identity", batch_size=1000, device="cpu",
           optimizer="sgd", log_every=10, eval_every=10, checkpoint_every=0.0)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors on several threads of busy cores run many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_gaussian_linear_is_y_equals_a_x_with_a_fixed_seed():
    ds = data.load("gaussian-linear")
    gen = torch.Generator().manual_seed(data.GAUSSIAN_LINEAR_SEED)   # A, train x, test x, in that order
    a = torch.randn(10, 10, generator=gen)
    x_train, x_test = torch.randn(1000, 10, generator=gen), torch.randn(1000, 10, generator=gen)
    assert (ds.task, ds.num_classes, ds.shape) == ("regress", 10, (10, 1, 1))
    assert ds.x_train.shape == (1000, 10, 1, 1) and ds.y_train.shape == (1000, 10)
    assert torch.equal(ds.x_train.flatten(1), x_train) and torch.equal(ds.x_test.flatten(1), x_test)
    assert torch.equal(ds.y_train, x_train @ a.T) and torch.equal(ds.y_test, x_test @ a.T)
    torch.manual_seed(123)      # the run's seed does not reach the data
    data.clear_cache()
    assert torch.equal(data.load("gaussian-linear").y_train, ds.y_train)


def test_dln_is_25_bias_free_10x10_linear_layers_whose_product_is_the_network():
    cfg = validate(RunConfig(**{**DLN, "norm": "none"}))
    torch.manual_seed(0)
    net = models.build(cfg, (10, 1, 1), 10)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 25 and len(net.blocks) == 24
    assert all(m.weight.shape == (10, 10) and m.bias is None for m in linears)
    assert not any(isinstance(m, (torch.nn.ReLU, torch.nn.Sigmoid, torch.nn.Tanh)) for m in net.modules())
    product = torch.eye(10, dtype=torch.float64)
    for m in linears:                                     # hidden1 ... hidden24, then output
        product = m.weight.double() @ product
    x = torch.randn(7, 10, 1, 1)
    assert torch.allclose(net(x).double(), x.flatten(1).double() @ product.T, rtol=1e-4, atol=1e-6)
    # Glorot uniform, gain 1: |w| <= sqrt(6 / (10 + 10))
    assert max(m.weight.abs().max().item() for m in linears) <= math.sqrt(6 / 20)
    bn = models.build(validate(RunConfig(**{**DLN, "norm": "batch"})), (10, 1, 1), 10)
    assert all(isinstance(b.norm, torch.nn.BatchNorm1d) for b in bn.blocks.values())


@pytest.mark.parametrize("change, words", [
    (dict(dataset="mnist-5k"), "needs --dataset gaussian-linear"),
    (dict(activation="relu"), "--activation identity"),
    (dict(model="cnn"), "not images"),
])
def test_dln_and_gaussian_linear_refuse_what_does_not_fit(change, words):
    with pytest.raises(ConfigError, match=words):
        validate(RunConfig(**{**DLN, **change}))


def test_regression_loss_is_the_sum_over_samples_of_the_mean_squared_error_over_outputs():
    out = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    y = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 1.0]])
    hand = (1 + 4) / 2 + (1 + 4) / 2 + (0 + 4) / 2        # per sample: mean over the 2 outputs
    assert tasks.loss("regress", out, y).item() == pytest.approx(hand)
    assert tasks.loss("regress", out, y, reduction="sum").item() == pytest.approx(hand)
    assert tasks.sample_sum("regress", hand, 3) == hand and tasks.sample_sum("classify", 0.5, 4) == 2.0
    assert torch.isnan(tasks.correct_sum("regress", out, y))


def test_a_dln_run_has_blank_accuracy_and_a_finite_loss(tmp_path):
    cfg = RunConfig(**{**DLN, "norm": "batch", "lr": 1e-6, "steps": 20, "out": str(tmp_path)})
    result = train.train(cfg)
    m = pd.read_csv(result.path / "metrics.csv")
    assert list(m["step"]) == [0, 10, 20]
    for col in ("train_acc", "test_acc", "test_acc_batchstats"):
        assert m[col].isna().all(), col
    assert m["test_loss"].notna().all() and (m["test_loss"] > 0).all()
    assert m["test_loss"].iloc[-1] < m["test_loss"].iloc[0]
    assert result.summary["final"]["test_acc"] is None and math.isfinite(result.summary["final"]["test_loss"])
    # train_loss is per sample, like test_loss: not the batch's summed objective (1000x larger)
    assert m["train_loss"].iloc[-1] == pytest.approx(m["test_loss"].iloc[-1], rel=0.5)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A tiny regression sweep: a 4-layer DLN, none vs batch, two lrs, two seeds, 20 steps."""
    root = tmp_path_factory.mktemp("regress")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for norm in ("none", "batch"):
        for lr in (1e-5, 1e-4):
            for seed in (0, 1):
                train.train(RunConfig(**{**DLN, "depth": 4, "norm": norm, "lr": lr, "seed": seed, "steps": 20,
                                         "out": str(root)}))
    torch.set_num_threads(threads)
    return root


def test_compare_scores_a_regression_by_its_loss_drop(sweep):
    runs = find_runs(sweep)
    tables = compare.build(runs)
    r = tables["runs"]
    assert (r["scored_by"] == "final_loss_drop").all() and r["final_test_acc"].isna().all()
    for _, row in r.iterrows():
        m = read_run(row["path"]).table("metrics").sort_values("step")
        assert row["final_loss_drop"] == pytest.approx(1 - m["test_loss"].iloc[-1] / m["test_loss"].iloc[0])
    tol = tables["lr_tolerance"]
    assert len(tol) == 2 and (tol["scored_by"] == "final_loss_drop").all()
    curve = tables["lr_curve"]
    for _, t in tol.iterrows():
        mine = curve[curve["norm"] == t["norm"]]
        assert t["best_acc"] == pytest.approx(mine["final_loss_drop_mean"].max())
        assert t["best_lr"] == mine.loc[mine["final_loss_drop_mean"].idxmax(), "lr"]
        assert t["threshold"] == pytest.approx(compare.DEFAULT_TOLERANCE * t["best_acc"])
        assert t["n_good_lrs"] >= 1
    s = tables["summary"]
    top = s["best_loss_drop_mean"].max()
    assert s["target"].iloc[0] == pytest.approx(compare.DEFAULT_TARGET_FRACTION * top)
    assert s["steps_to_target_mean"].notna().any()
    b = tables["best_lr"]
    assert b["final_loss_drop_mean"].notna().all() and b["final_test_acc_mean"].isna().all()
    h = compare.headline(tables)
    assert h["final_loss_drop_mean"].notna().all() and h["final_test_acc_mean"].isna().all()


def test_plots_draw_a_regression_sweep(sweep, tmp_path):
    tables = compare.build(find_runs(sweep))
    paths = plots.accuracy_loss(tables, tmp_path) + plots.lr_tolerance(tables, tmp_path)
    assert sorted(p.name for p in paths) == ["accuracy_loss.png", "lr_tolerance.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert draw.draw_all(tables, tmp_path / "all")
