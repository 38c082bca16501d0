"""Facts about the relative loss of one gradient step (ics_cli/quantities/relative_loss.py, Bjorck et
al. 2018 Fig. 2): L(θ − α∇L(θ)) / L(θ) on the step's batch, α absolute.

The reference is linear regression, L(θ) = mean((X̃θ − y)²) with X̃ = [X, 1]: with H = 2/n X̃ᵀX̃ and
g = ∇L(θ), L(θ − αg) = L − α‖g‖² + α²/2 gᵀHg exactly.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ics_cli.store import logs as blocks, runs as store
from ics_cli.net import models
from ics_cli import quantities
from ics_cli.config import RunConfig, validate
from ics_cli.errors import ConfigError
from ics_cli.quantities.relative_loss import RelativeLoss, ratio
from ics_cli.train import train

N, D = 50, 4


def squared(out, y):
    return ((out.squeeze(-1) - y) ** 2).mean()


def regression(dtype=torch.float64):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(N, D, generator=gen, dtype=dtype)
    y = torch.randn(N, generator=gen, dtype=dtype)
    model = nn.Linear(D, 1, dtype=dtype)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, D, generator=gen, dtype=dtype))
        model.bias.fill_(-0.2)
    theta = np.concatenate([model.weight.detach().numpy().ravel(), model.bias.detach().numpy()])
    return model, x, y, theta, np.hstack([x.numpy(), np.ones((N, 1))])


def measure(model, x, y, alphas, lr=0.1, step=0, loss_fn=squared):
    q = RelativeLoss(RunConfig(relative_loss_every=1, relative_alphas=alphas, steps=10), model)
    rows = q.measure(quantities.Probe(model, x, y, loss_fn, step, lr))
    return pd.DataFrame(rows, columns=RelativeLoss.columns)


def test_the_relative_loss_is_the_closed_form_at_every_alpha_of_the_default_grid():
    model, x, y, theta, xt = regression()
    table = measure(model, x, y, RunConfig().relative_alphas, step=7)
    yn = y.numpy()
    loss0 = np.mean((xt @ theta - yn) ** 2)
    g = 2 / N * xt.T @ (xt @ theta - yn)
    alpha = np.geomspace(1e-5, 1, 11)
    want = (loss0 - alpha * (g @ g) + alpha ** 2 / 2 * (g @ (2 / N * xt.T @ xt) @ g)) / loss0
    assert table.step.tolist() == [7] * 11
    np.testing.assert_allclose(table.alpha, alpha, rtol=1e-12)
    np.testing.assert_allclose(table.loss0, loss0, rtol=1e-12)
    np.testing.assert_allclose(table.loss, want * loss0, rtol=1e-10)
    np.testing.assert_allclose(table.rel_loss, want, rtol=1e-10)
    # small steps descend (rel_loss just below 1), and the grid reaches where it no longer does
    assert 1 - 1e-3 < table.rel_loss.iloc[0] < 1
    assert table.rel_loss.min() < 0.9 and table.rel_loss.iloc[-1] > table.rel_loss.min()


def test_alpha_is_absolute_not_a_multiple_of_the_learning_rate():
    model, x, y, _, _ = regression()
    a = measure(model, x, y, "0.01,0.1", lr=0.5)
    b = measure(model, x, y, "0.01,0.1", lr=1e-4)
    assert a.equals(b)
    assert a.alpha.tolist() == [0.01, 0.1]


def test_a_loss_that_blows_up_is_recorded_as_inf_or_nan_and_read_back_as_such(tmp_path):
    """float32 linear model, three samples: α = 1e20 overflows the loss (inf); α = 1e39 overflows
    the weights to +inf and −inf, and x = (1, 1) then gives inf − inf (NaN). Both are results."""
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([1.0, -1.0, 0.0])
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    table = measure(model, x, y, "0.1,1e20,1e39")
    assert math.isfinite(table.rel_loss[0]) and table.rel_loss[0] < 1
    assert table.loss[1] == math.inf and table.rel_loss[1] == math.inf
    assert math.isnan(table.loss[2]) and math.isnan(table.rel_loss[2])
    # The run folder's CSV holds them: inf as `inf`, NaN as a blank cell, both read back.
    logs = blocks.RunLogs(tmp_path, fresh=True, extra={RelativeLoss.name: RelativeLoss.columns})
    logs.quantity(RelativeLoss.name, table.values.tolist())
    lines = (tmp_path / "relative_loss.csv").read_text().splitlines()
    assert lines[2].endswith(",inf,inf") and lines[3].endswith(",,")
    back = store.read_table(tmp_path, RelativeLoss.name)
    assert back.rel_loss[1] == math.inf and math.isnan(back.rel_loss[2])
    assert back.alpha.tolist() == [0.1, 1e20, 1e39]


def test_ratio_divides_as_ieee_does():
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) == math.inf and ratio(-1.0, 0.0) == -math.inf
    assert math.isnan(ratio(0.0, 0.0)) and math.isnan(ratio(math.nan, 0.0))
    assert math.isnan(ratio(math.nan, 1.0))
    assert ratio(math.inf, 2.0) == math.inf


def test_measuring_changes_no_parameter_no_batch_norm_buffer_and_no_rng():
    cfg = validate(RunConfig(dataset="synthetic", norm="batch", depth=2, width=16))
    torch.manual_seed(0)
    model = models.build(cfg, (1, 8, 8), 10)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    model.train()
    model(x)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    table = measure(model, x, y, "1e-5:10:6", loss_fn=nn.functional.cross_entropy)
    assert len(table) == 6 and table.rel_loss.notna().all()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_bad_alpha_grid_is_refused_when_the_config_is_built():
    with pytest.raises(ConfigError, match=r"^--relative-alphas '1e-5:0:11': .*> 0"):
        validate(RunConfig(dataset="synthetic", relative_loss_every=1, relative_alphas="1e-5:0:11"))


def test_at_initialization_only_when_the_cadence_exceeds_the_steps(tmp_path):
    res = train(RunConfig(dataset="synthetic", steps=6, log_every=3, relative_loss_every=100,
                          relative_alphas="1e-3:1:4", out=str(tmp_path)))
    table = store.read_table(res.path, "relative_loss")
    assert table.step.tolist() == [0] * 4
    assert table.alpha.to_numpy() == pytest.approx([1e-3, 1e-2, 1e-1, 1], rel=1e-12)
    assert res.summary["status"] == "completed"
    assert (table.loss0 == table.loss0.iloc[0]).all()
    np.testing.assert_allclose(table.rel_loss, table.loss / table.loss0, rtol=1e-7)   # 9 digits each
