"""Facts about the loss landscape along the gradient (ics_cli/quantities/landscape.py, Santurkar 2018
Sec. 3.2) and the step-size grids (grids.py).

The reference is linear regression with a quadratic loss, L(θ) = mean((X̃θ − y)²) with X̃ = [X, 1]
(weight and bias): its Hessian H = 2/n X̃ᵀX̃ is constant, so L(θ − ηg) = L − η‖g‖² + η²/2 gᵀHg exactly,
∇L(θ) − ∇L(θ − ηg) = ηHg, grad_diff = η‖Hg‖ and beta = ‖Hg‖/‖g‖ whatever η.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ics_cli.net import models
from ics_cli import quantities
from ics_cli.cli import main
from ics_cli.config import RunConfig, validate
from ics_cli.errors import ConfigError
from ics_cli.quantities import grids
from ics_cli.quantities.landscape import Landscape
from ics_cli.quantities.relative_loss import RelativeLoss
from ics_cli.train import train

from expect import error_line
from helpers import strip_elapsed

N, D = 40, 6


def squared(out, y):
    return ((out.squeeze(-1) - y) ** 2).mean()


def regression(seed=0):
    """(model, X, y, θ as numpy [w..., b], X̃): a float64 linear model at a random point."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=gen, dtype=torch.float64)
    y = torch.randn(N, generator=gen, dtype=torch.float64)
    model = nn.Linear(D, 1, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, D, generator=gen, dtype=torch.float64))
        model.bias.fill_(0.3)
    theta = np.concatenate([model.weight.detach().numpy().ravel(), model.bias.detach().numpy()])
    xt = np.hstack([x.numpy(), np.ones((N, 1))])
    return model, x, y, theta, xt


def measured(etas: str, lr: float, seed=0):
    model, x, y, theta, xt = regression(seed)
    cfg = RunConfig(landscape_every=1, landscape_etas=etas, steps=10)
    rows = Landscape(cfg, model).measure(quantities.Probe(model, x, y, squared, 3, lr))
    return pd.DataFrame(rows, columns=Landscape.columns), theta, xt, y.numpy()


def test_every_column_is_the_closed_form_of_a_quadratic():
    table, theta, xt, y = measured("0.5,1,2,4,30", lr=0.05)
    hess = 2 / N * xt.T @ xt
    g = 2 / N * xt.T @ (xt @ theta - y)
    loss0 = np.mean((xt @ theta - y) ** 2)
    assert table.step.tolist() == [3] * 5
    assert table.eta_mult.tolist() == [0.5, 1, 2, 4, 30]
    np.testing.assert_allclose(table.eta, 0.05 * table.eta_mult, rtol=1e-15)
    eta = table.eta.to_numpy()
    np.testing.assert_allclose(table.loss0, loss0, rtol=1e-12)
    # The loss along the gradient: computed directly, and as the exact quadratic in η.
    direct = [np.mean((xt @ (theta - e * g) - y) ** 2) for e in eta]
    quadratic = loss0 - eta * (g @ g) + eta ** 2 / 2 * (g @ hess @ g)
    np.testing.assert_allclose(table.loss, direct, rtol=1e-12)
    np.testing.assert_allclose(table.loss, quadratic, rtol=1e-10)
    np.testing.assert_allclose(table.grad_norm, np.linalg.norm(g), rtol=1e-12)
    hg = np.linalg.norm(hess @ g)
    np.testing.assert_allclose(table.grad_diff, eta * hg, rtol=1e-10)
    np.testing.assert_allclose(table.beta, hg / np.linalg.norm(g), rtol=1e-10)
    # Not a vacuous comparison: the loss first falls, then (η = 30 lr) rises above L(θ).
    assert table.loss.iloc[0] < loss0 < table.loss.iloc[-1]


def test_beta_of_a_quadratic_is_the_same_at_every_eta_and_bounded_by_the_top_eigenvalue():
    table, theta, xt, y = measured("0.01:30:9", lr=0.1, seed=1)
    assert len(table) == 9
    assert np.ptp(table.beta) <= 1e-10 * table.beta.iloc[0]
    top = np.linalg.eigvalsh(2 / N * xt.T @ xt)[-1]
    assert 0 < table.beta.iloc[0] <= top * (1 + 1e-12)
    # and the landscape's band, as compare derives it, is the min/max of those losses
    assert table.loss.min() < table.loss0.iloc[0]


def test_the_landscape_agrees_with_the_relative_loss_at_the_same_step():
    """η = m·lr and α = m·lr are the same point θ − ηg: both tables give the same loss."""
    model, x, y, _, _ = regression(2)
    probe = quantities.Probe(model, x, y, squared, 0, 0.25)
    land = Landscape(RunConfig(landscape_every=1, landscape_etas="1,2,4"), model).measure(probe)
    rel = RelativeLoss(RunConfig(relative_loss_every=1, relative_alphas="0.25,0.5,1"), model).measure(probe)
    assert [r[4] for r in land] == pytest.approx([r[3] for r in rel], rel=1e-12)


def bn_net():
    cfg = validate(RunConfig(dataset="synthetic", norm="batch", depth=2, width=16, activation="relu"))
    torch.manual_seed(0)
    return models.build(cfg, (1, 8, 8), 10)


def test_measuring_changes_no_parameter_no_batch_norm_buffer_no_grad_and_no_rng():
    model = bn_net()
    model.train()
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    out = model(x)                                   # the step's own pass: BN's buffers move once
    nn.functional.cross_entropy(out, y).backward()
    params = {k: p.detach().clone() for k, p in model.named_parameters()}
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    assert any(k.endswith("num_batches_tracked") for k in buffers)
    rng = torch.get_rng_state()
    cfg = RunConfig(landscape_every=1, relative_loss_every=1)
    probe = quantities.Probe(model, x, y, nn.functional.cross_entropy, 0, 0.5)
    rows = Landscape(cfg, model).measure(probe) + RelativeLoss(cfg, model).measure(probe)
    assert len(rows) == 4 + 11
    assert all(torch.equal(p, params[k]) for k, p in model.named_parameters())
    assert all(torch.equal(p.grad, grads[k]) for k, p in model.named_parameters())
    assert all(torch.equal(b, buffers[k]) for k, b in model.named_buffers())
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training


def test_measuring_uses_batch_statistics_in_training_mode():
    """Under BN the probe's loss0 is the training pass's loss (batch statistics), even if the model
    was left in eval mode."""
    model = bn_net()
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    model.train()
    want = nn.functional.cross_entropy(model(x), y).item()
    model.eval()
    probe = quantities.Probe(model, x, y, nn.functional.cross_entropy, 0, 0.5)
    [row, *_] = Landscape(RunConfig(landscape_every=1), model).measure(probe)
    assert row[3] == pytest.approx(want, rel=1e-6)
    assert not model.training


# --------------------------------------------------------------------------- grids

@pytest.mark.parametrize("text, want", [
    ("0.5,1,2,4", [0.5, 1, 2, 4]),
    (" 2 , 0.01 ", [2, 0.01]),
    ("3", [3]),
    ("1e-5:1:11", [10 ** (k / 2 - 5) for k in range(11)]),
    ("0.01:30:2", [0.01, 30]),
])
def test_grids_parse(text, want):
    got = grids.parse(text)
    assert got == pytest.approx(want, rel=1e-12) and all(type(v) is float for v in got)


def test_a_log_grid_keeps_its_ends_exact():
    got = grids.parse("3e-5:0.7:7")
    assert got[0] == 3e-5 and got[-1] == 0.7
    assert np.allclose(np.diff(np.log(got)), np.log(0.7 / 3e-5) / 6)


BAD = ["0,1", "-1", "1,,2", "a,b", "inf", "nan", "", "1:0.1:5", "1e-5:1", "1e-5:1:1", "1e-5:1:x",
       "1e-5:1:65", ",".join(["1"] * 2), ",".join(str(i + 1) for i in range(65)), "1:2:3:4", "0:1:5"]


@pytest.mark.parametrize("text", BAD)
@pytest.mark.parametrize("field, option", [("landscape_etas", "--landscape-etas"),
                                           ("relative_alphas", "--relative-alphas")])
def test_a_bad_grid_is_one_line_naming_the_option_the_value_and_the_forms(text, field, option):
    with pytest.raises(ConfigError) as e:
        validate(RunConfig(dataset="synthetic", **{field: text}))
    message = str(e.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{option} {text!r}:") and "comma list" in message and "LOW:HIGH:N" in message


def test_the_cli_refuses_a_zero_step_size_with_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "runs"
    rc = main(["train", "--dataset", "synthetic", "--steps", "3", "--landscape-every", "1",
               "--landscape-etas", "0,1", "--quiet", "--out", str(out)])
    error_line(rc, capsys, "--landscape-etas", "'0,1'")
    assert not out.exists()


# --------------------------------------------------------------------------- in a run

def test_a_run_writes_the_landscape_and_relative_loss_tables_and_changes_nothing_else(tmp_path):
    base = dict(dataset="synthetic", steps=12, log_every=4)
    plain = train(RunConfig(**base, out=str(tmp_path / "plain")))
    probed = train(RunConfig(**base, landscape_every=4, relative_loss_every=100,
                             out=str(tmp_path / "probed")))
    land = pd.read_csv(probed.path / "landscape.csv")
    assert list(land.columns) == list(Landscape.columns)
    assert land.step.tolist() == [0] * 4 + [4] * 4 + [8] * 4
    assert land.eta_mult.tolist() == [0.5, 1, 2, 4] * 3
    assert np.allclose(land.eta, 0.5 * land.eta_mult)           # lr 0.5
    rel = pd.read_csv(probed.path / "relative_loss.csv")
    assert list(rel.columns) == list(RelativeLoss.columns)
    assert rel.step.tolist() == [0] * 11
    assert rel.alpha.to_numpy() == pytest.approx(np.geomspace(1e-5, 1, 11), rel=1e-8)
    # loss0 at step 0 is the first training batch's loss, the first metrics row's train loss is an
    # average over the first interval, so compare the two tables with each other instead
    assert rel.loss0.iloc[0] == pytest.approx(land.loss0.iloc[0], rel=1e-7)
    for name in ("grads.csv", "layers.csv", "model.pt"):
        assert (plain.path / name).read_bytes() == (probed.path / name).read_bytes(), name
    assert strip_elapsed(plain.path / "metrics.csv") == strip_elapsed(probed.path / "metrics.csv")
