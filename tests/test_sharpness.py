"""Sharpness (ics_cli/quantities/sharpness.py): power iteration on Hessian-vector products finds the
top eigenvalue of a Hessian known in closed form, and of a small network's full Hessian; its first
start comes from its own stream; its warm start survives a checkpoint, so a resumed run records the
same bytes; measuring changes nothing.
"""

import io

import numpy as np
import pytest
import torch
from torch import nn

from ics_cli.net import data, models
from ics_cli.config import RunConfig, validate
from ics_cli.quantities import Probe
from ics_cli.quantities.sharpness import Sharpness
from ics_cli.train import train

N, D, C = 40, 6, 2


def mse(out, y):
    return ((out - y) ** 2).mean()


def regression(seed=0):
    """Inputs with very different scales per feature, so the top eigenvalue stands apart."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g) * torch.tensor([3.0, 1.5, 1.0, 0.7, 0.5, 0.2])
    return x, torch.randn(N, C, generator=g)


def sharpness(model, x, y, loss_fn=mse, iters=30, q=None, lr=0.1, step=0):
    q = q or Sharpness(RunConfig(sharpness_every=1, sharpness_iters=iters, seed=3), model)
    return q.measure(Probe(model, x, y, loss_fn, step=step, lr=lr))[0], q


def test_linear_regression_sharpness_is_the_top_eigenvalue_of_its_hessian():
    """L = mean over samples and outputs of (Wx + b − y)²: H = I_C ⊗ 2 X̃ᵀX̃ / (N C), X̃ = [X, 1]."""
    x, y = regression()
    torch.manual_seed(0)
    model = nn.Linear(D, C)
    xt = np.hstack([x.double().numpy(), np.ones((N, 1))])
    top = np.linalg.eigvalsh(2 * xt.T @ xt / (N * C)).max()
    (step, value, lr, value_lr, iterations, rel), _ = sharpness(model, x, y, lr=0.1, step=5)
    assert (step, lr, iterations) == (5, 0.1, 30)
    assert value == pytest.approx(top, rel=1e-5)
    assert value_lr == pytest.approx(top * 0.1, rel=1e-5)
    assert 0 <= rel < 1e-5
    # the quadratic's H does not depend on θ or y: a moved model has the same sharpness
    with torch.no_grad():
        model.weight.add_(5.0)
    assert sharpness(model, x, y)[0][1] == pytest.approx(top, rel=1e-5)


def test_the_eigenvalue_found_is_the_largest_in_magnitude_even_if_negative():
    x, y = regression()
    model = nn.Linear(D, C)
    xt = np.hstack([x.double().numpy(), np.ones((N, 1))])
    top = np.linalg.eigvalsh(2 * xt.T @ xt / (N * C)).max()
    value = sharpness(model, x, y, loss_fn=lambda out, t: -mse(out, t))[0][1]
    assert value == pytest.approx(-top, rel=1e-5)


def test_a_small_network_matches_its_full_hessian():
    """A tanh MLP with batch norm: the Hessian of every parameter at once, by reverse-over-reverse
    autograd (torch.func.hessian, forward-over-reverse, gets the weight block wrong through batch norm
    in torch 2.14)."""
    ds = data.load("synthetic")
    cfg = validate(RunConfig(dataset="synthetic", norm="batch", activation="tanh", width=4, depth=2))
    torch.manual_seed(0)
    model = models.build(cfg, (1, 1, 6), 3).double()
    x, y = ds.x_train[:32, :, 0, :6].double().unsqueeze(1), ds.y_train[:32] % 3
    loss_fn = nn.functional.cross_entropy
    probe = Probe(model, x, y, loss_fn, step=0, lr=0.1)
    names = list(probe.before)
    shapes = [probe.before[k].shape for k in names]
    sizes = [probe.before[k].numel() for k in names]

    def loss_of(vector):
        return probe.loss({k: v.reshape(s) for k, v, s in zip(names, vector.split(sizes), shapes)})

    theta = torch.cat([probe.before[k].reshape(-1) for k in names])
    eig = np.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, theta).numpy())
    expected = eig[np.abs(eig).argmax()]
    (_, value, _, _, _, rel), _ = sharpness(model, x, y, loss_fn=loss_fn, iters=50)
    assert value == pytest.approx(expected, rel=1e-4)
    assert rel < 1e-6


# --------------------------------------------------------------------------- the start vector and the warm start


def test_the_first_start_is_its_own_stream_and_the_global_one_is_untouched():
    x, y = regression()
    model = nn.Linear(D, C)
    rows = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        rng = torch.get_rng_state()
        rows.append(sharpness(model, x, y, iters=2)[0])
        assert torch.equal(torch.get_rng_state(), rng)
    assert rows[0] == rows[1]
    other = Sharpness(RunConfig(sharpness_every=1, sharpness_iters=2, seed=4), model)
    assert sharpness(model, x, y, q=other)[0] != rows[0]


def test_the_warm_start_carries_on_and_round_trips_through_a_checkpoint():
    x, y = regression()
    model = nn.Linear(D, C)
    _, q = sharpness(model, x, y, iters=3)
    assert q.state()["v"].norm().item() == pytest.approx(1.0)
    buf = io.BytesIO()
    torch.save(q.state(), buf)
    buf.seek(0)
    resumed = Sharpness(q.cfg, model)
    resumed.load_state(torch.load(buf, weights_only=True))
    assert sharpness(model, x, y, q=resumed)[0] == sharpness(model, x, y, q=q)[0]
    # and it matters: a cold start gives another value after 3 iterations
    assert sharpness(model, x, y, iters=3)[0] != sharpness(model, x, y, q=resumed)[0]
    assert Sharpness(q.cfg, model).state() == {}


def test_a_resumed_run_records_the_same_sharpness_bytes(tmp_path):
    kw = dict(dataset="synthetic", steps=12, log_every=4, norm="batch", width=16, sharpness_every=4,
              sharpness_iters=3, device="cpu", checkpoint_every=0)
    unbroken = train(RunConfig(out=str(tmp_path / "a"), **kw)).path

    def stop(step):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(RunConfig(out=str(tmp_path / "b"), **kw), on_step=stop)
    resumed = train(RunConfig(out=str(tmp_path / "b"), **kw)).path
    text = (unbroken / "sharpness.csv").read_text()
    assert [ln.split(",")[0] for ln in text.splitlines()] == ["step", "0", "4", "8"]
    assert (resumed / "sharpness.csv").read_text() == text


# --------------------------------------------------------------------------- measuring changes nothing


def test_measuring_changes_no_parameter_buffer_gradient_or_random_stream():
    ds = data.load("synthetic")
    cfg = validate(RunConfig(dataset="synthetic", norm="batch", activation="relu", width=16, depth=3,
                             sharpness_every=1, sharpness_iters=5))
    torch.manual_seed(0)
    model = models.build(cfg, ds.shape, ds.num_classes)
    x, y = ds.x_train[:60], ds.y_train[:60]
    loss_fn = nn.functional.cross_entropy
    loss_fn(model(x), y).backward()                 # running statistics moved, .grad set
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    rng = torch.get_rng_state()
    (_, value, *_), _ = sharpness(model, x, y, loss_fn=loss_fn, q=Sharpness(cfg, model))
    assert value > 0
    for k, v in model.state_dict().items():        # parameters, running mean/var, num_batches_tracked
        assert torch.equal(v, state[k]), k
    for k, p in model.named_parameters():
        assert torch.equal(p.grad, grads[k]), k
    assert torch.equal(torch.get_rng_state(), rng)
