"""Gradient-based ICS (ics_cli/quantities/grad_ics.py, Santurkar et al. 2018 Def. 2.1): the rows are
the hand-computed G and G′ of a tiny linear network, the first layer has no shift, measuring changes
nothing, and a run records the table on its cadence without changing anything else it writes.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ics_cli.net import data, models
from ics_cli.config import RunConfig, validate
from ics_cli.quantities import Probe
from ics_cli.quantities.grad_ics import GradICS, shifted, weight_grad
from ics_cli.train import train

N, D, C, WIDTH = 8, 5, 3, 4


def mse(out, y):
    return ((out - y) ** 2).mean()


def linear_net(depth=3, norm="none", seed=0):
    cfg = validate(RunConfig(dataset="synthetic", activation="identity", norm=norm, depth=depth,
                             width=WIDTH, init="gaussian", init_std=0.5, ics_every=1))
    torch.manual_seed(seed)
    model = models.build(cfg, (1, 1, D), C)
    with torch.no_grad():       # nonzero biases, so a wrong bias in the shifted pass shows
        for k, p in model.named_parameters():
            if k.endswith("bias"):
                p.normal_(0.0, 0.3)
    return cfg, model


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, 1, 1, D, generator=g), torch.randn(N, C, generator=g)


def measured(model, cfg, x, y, lr):
    """GradICS rows of one SGD step on (x, y) with `lr`, made the way the training loop makes it."""
    q = GradICS(cfg, model)
    loss = mse(model(x), y)
    model.zero_grad()
    loss.backward()
    probe = Probe(model, x, y, mse, step=7, lr=lr)
    rows = q.measure(probe)
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    probe.updated()
    return rows + q.after_update(probe)


# --------------------------------------------------------------------------- by hand, in numpy


def np_params(model):
    """[(W, b)] of hidden1..K then the head, as float64 arrays."""
    layers = list(model.blocks.values()) + [model.output]
    return [(m.linear.weight if hasattr(m, "linear") else m.weight,
             m.linear.bias if hasattr(m, "linear") else m.bias) for m in layers]


def np_grads(params, x, y):
    """∇_W and ∇_b of mean((f(x) − y)²) for f = the affine maps `params` composed: backprop by hand."""
    acts = [x]
    for W, b in params:
        acts.append(acts[-1] @ W.T + b)
    delta = 2 * (acts[-1] - y) / y.size
    grads = []
    for j in reversed(range(len(params))):
        W, _ = params[j]
        grads.append((delta.T @ acts[j], delta.sum(0)))
        delta = delta @ W
    return grads[::-1]


def hand_rows(model, x, y, lr):
    params = [(W.detach().double().numpy(), b.detach().double().numpy()) for W, b in np_params(model)]
    x, y = x.reshape(N, D).double().numpy(), y.double().numpy()
    grads = np_grads(params, x, y)
    after = [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(params, grads)]
    rows = []
    for i in range(len(params) - 1):                 # hidden layers only
        G = grads[i][0]
        Gp = np_grads(after[:i] + params[i:], x, y)[i][0]
        cos = (G * Gp).sum() / (np.linalg.norm(G) * np.linalg.norm(Gp))
        rows.append((np.linalg.norm(G), np.linalg.norm(G - Gp), cos))
    return rows


@pytest.mark.parametrize("depth", [2, 3])
def test_rows_are_the_hand_computed_gradient_shift_of_a_linear_net(depth):
    cfg, model = linear_net(depth)
    x, y = batch()
    lr = 0.2
    expected = hand_rows(model, x, y, lr)
    rows = measured(model, cfg, x, y, lr)
    assert [r[:2] for r in rows] == [[7, f"hidden{i}"] for i in range(1, depth + 1)]
    for (_, layer, g, l2, cos, rel), (eg, el2, ecos) in zip(rows, expected):
        assert g == pytest.approx(eg, rel=1e-5), layer
        assert l2 == pytest.approx(el2, rel=1e-3, abs=1e-7), layer
        assert cos == pytest.approx(ecos, abs=1e-5), layer
        assert rel == pytest.approx(el2 / eg, rel=1e-3, abs=1e-7), layer     # scale-free: ‖G − G′‖ / ‖G‖
    # the shift is real from hidden2 on (the test could not pass with G′ = G there)
    assert all(el2 > 1e-2 * eg for eg, el2, _ in expected[1:])
    assert all(ecos < 1 - 1e-4 for _, _, ecos in expected[1:])


def test_the_first_layer_has_no_shift_and_its_row_is_norm_zero_one():
    cfg, model = linear_net(3)
    x, y = batch()
    expected = hand_rows(model, x, y, 0.2)
    first = measured(model, cfg, x, y, 0.2)[0]
    assert first[1:] == ["hidden1", pytest.approx(expected[0][0], rel=1e-5), 0.0, 1.0, 0.0]
    assert expected[0][1] == 0.0            # by hand too: nothing comes before hidden1


def test_the_shifted_gradient_with_nothing_moved_is_the_gradient():
    """G′ of hidden1 (no earlier layer moved) computed the general way is G, bit for bit."""
    cfg, model = linear_net(3)
    x, y = batch()
    probe = Probe(model, x, y, mse, step=0, lr=0.2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)                 # θ_{t+1} far away: hidden1's G′ must not see it
    probe.updated()
    key = "hidden1.linear.weight"
    assert torch.equal(weight_grad(probe, shifted(probe, []), key), probe.grad()[key])
    assert not torch.equal(weight_grad(probe, shifted(probe, ["hidden1"]), "hidden2.linear.weight"),
                           probe.grad()["hidden2.linear.weight"])


def test_without_an_update_there_is_no_shift():
    cfg, model = linear_net(3, norm="batch")
    x, y = batch()
    for _, _, g, l2, cos, rel in measured(model, cfg, x, y, lr=0.0):
        assert g > 0 and l2 == pytest.approx(0.0, abs=1e-6 * g) and cos == pytest.approx(1.0, abs=1e-6)
        assert rel == pytest.approx(0.0, abs=1e-6)


def test_a_zero_gradient_gives_a_nan_cosine():
    cfg, model = linear_net(2)
    with torch.no_grad():
        model.output.weight.zero_()     # nothing reaches the hidden layers' gradients
    x, y = batch()
    for _, _, g, l2, cos, rel in measured(model, cfg, x, y, lr=0.2):
        assert g == 0.0 and l2 == 0.0 and np.isnan(cos) and np.isnan(rel)


# --------------------------------------------------------------------------- measuring changes nothing


def test_measuring_changes_no_parameter_buffer_gradient_or_random_stream():
    ds = data.load("synthetic")
    cfg = validate(RunConfig(dataset="synthetic", norm="batch", activation="relu", width=16, depth=3,
                             ics_every=1))
    torch.manual_seed(0)
    model = models.build(cfg, ds.shape, ds.num_classes)
    x, y = ds.x_train[:60], ds.y_train[:60]
    loss_fn = nn.functional.cross_entropy
    loss_fn(model(x), y).backward()                 # running statistics moved, .grad set
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    rng = torch.get_rng_state()
    q = GradICS(cfg, model)
    probe = Probe(model, x, y, loss_fn, step=0, lr=0.5)
    q.measure(probe)
    probe.after = {k: v + 0.01 for k, v in probe.before.items()}    # an update, made outside the model
    rows = q.after_update(probe)
    assert len(rows) == 3 and rows[2][3] > 0
    for k, v in model.state_dict().items():        # parameters, running mean/var, num_batches_tracked
        assert torch.equal(v, state[k]), k
    for k, p in model.named_parameters():
        assert torch.equal(p.grad, grads[k]), k
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training


# --------------------------------------------------------------------------- in a run


def test_a_run_records_the_table_on_its_cadence_and_nothing_else_changes(tmp_path):
    kw = dict(dataset="synthetic", steps=12, log_every=4, norm="batch", width=16, device="cpu")
    plain = train(RunConfig(out=str(tmp_path / "plain"), **kw)).path
    probed = train(RunConfig(out=str(tmp_path / "probed"), ics_every=3, sharpness_every=4, **kw)).path
    ics = pd.read_csv(probed / "grad_ics.csv")
    assert list(ics.columns) == list(GradICS.columns)
    assert list(zip(ics.step, ics.layer)) == [(s, f"hidden{i}") for s in (0, 3, 6, 9) for i in (1, 2, 3)]
    assert (ics[ics.layer == "hidden1"].ics_l2 == 0).all() and (ics[ics.layer == "hidden1"].ics_cos == 1).all()
    assert (ics[ics.layer != "hidden1"].ics_l2 > 0).all()
    assert pd.read_csv(probed / "sharpness.csv").step.tolist() == [0, 4, 8]
    assert not (plain / "grad_ics.csv").exists()
    for name in ("grads.csv", "layers.csv", "model.pt"):
        assert (plain / name).read_bytes() == (probed / name).read_bytes(), name
    strip = [ln.rsplit(",", 1)[0] for ln in (plain / "metrics.csv").read_text().splitlines()]
    assert strip == [ln.rsplit(",", 1)[0] for ln in (probed / "metrics.csv").read_text().splitlines()]
