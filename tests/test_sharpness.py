"""Sharpness (ics_cli/quantities/sharpness.py): Lanczos on Hessian-vector products finds the largest
and the smallest eigenvalue of a Hessian known in closed form, and of a small network's full Hessian,
the algebraic extremes (a negative curvature of larger magnitude is λ_min, never the sharpness, where
power iteration reports it); `--sharpness-method power` is the plain power iteration earlier runs
recorded; the first start comes from its own stream; the warm start survives a checkpoint, so a
resumed run records the same bytes; measuring changes nothing.
"""

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from ics_cli.net import data, models
from ics_cli.config import RunConfig, validate
from ics_cli.quantities import Probe
from ics_cli.quantities.sharpness import Sharpness, hvp_fn, lanczos
from ics_cli.train import train

N, D, C = 40, 6, 2


def mse(out, y):
    return ((out - y) ** 2).mean()


def regression(seed=0):
    """Inputs with very different scales per feature, so the top eigenvalue stands apart."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g) * torch.tensor([3.0, 1.5, 1.0, 0.7, 0.5, 0.2])
    return x, torch.randn(N, C, generator=g)


def regression_spectrum(x):
    """L = mean over samples and outputs of (Wx + b − y)²: H = I_C ⊗ 2 X̃ᵀX̃ / (N C), X̃ = [X, 1]."""
    xt = np.hstack([x.double().numpy(), np.ones((N, 1))])
    return np.linalg.eigvalsh(2 * xt.T @ xt / (N * C))


def config(iters=30, method="lanczos", seed=3):
    return RunConfig(sharpness_every=1, sharpness_iters=iters, seed=seed, sharpness_method=method)


def sharpness(model, x, y, loss_fn=mse, iters=30, q=None, lr=0.1, step=0, method="lanczos"):
    q = q or Sharpness(config(iters, method), model)
    return q.measure(Probe(model, x, y, loss_fn, step=step, lr=lr))[0], q


class Quadratic(nn.Module):
    """θ alone (float64): with `quadratic(A)` as the loss, L = ½ θᵀAθ and H = A everywhere."""

    def __init__(self, n):
        super().__init__()
        self.theta = nn.Parameter(torch.linspace(-1.0, 1.0, n, dtype=torch.float64))

    def forward(self, x):
        return self.theta


def quadratic(a):
    return lambda theta, y: 0.5 * theta @ a @ theta


def with_spectrum(eigenvalues, seed=0):
    """A symmetric matrix with these eigenvalues, in a random orthonormal basis; and that basis."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64))
    return basis @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ basis.T, basis


def measure_quadratic(a, iters, method="lanczos", q=None, step=0):
    model = Quadratic(a.shape[0])
    none = torch.zeros(1)
    return sharpness(model, none, none, loss_fn=quadratic(a), iters=iters, q=q, step=step, method=method)


# --------------------------------------------------------------------------- the extremes of known spectra


def test_a_negative_curvature_of_larger_magnitude_is_lambda_min_not_the_sharpness():
    """eig(A) = −5, −1, 0.5, 1, 1.5, 2: Lanczos reads λ_max = 2 and λ_min = −5 (exact: 6 steps span R⁶);
    power iteration, the largest magnitude, reads −5 as the sharpness."""
    a, _ = with_spectrum([-5.0, -1.0, 0.5, 1.0, 1.5, 2.0])
    (step, top, bottom, lr, top_lr, iterations, rel), q = measure_quadratic(a, iters=20)
    assert (step, lr, iterations) == (0, 0.1, 6)           # R⁶ is spanned after 6 products: no more made
    assert top == pytest.approx(2.0, abs=1e-12) and bottom == pytest.approx(-5.0, abs=1e-12)
    assert top_lr == pytest.approx(0.2, abs=1e-12)
    assert 0 <= rel < 1e-3
    # the next measurement starts at the top eigenvector itself, an invariant space of its own: λ_min
    # is still found (Lanczos goes on from the random start)
    again = measure_quadratic(a, iters=20, q=q, step=1)[0]
    assert again[1:3] == [pytest.approx(2.0, abs=1e-12), pytest.approx(-5.0, abs=1e-12)]
    power = measure_quadratic(a, iters=60, method="power")[0]
    assert power[1] == pytest.approx(-5.0, abs=1e-9) and math.isnan(power[2])
    assert power[4] == pytest.approx(-0.5, abs=1e-9) and power[5] == 60


def test_fewer_steps_than_parameters_give_inner_bounds_that_converge_to_the_extremes():
    """60 eigenvalues spread over [−3, 4]: each Ritz value lies inside [λ_min, λ_max], and more
    steps bring the extremes closer (Lanczos finds the ends of the spectrum first)."""
    spectrum = np.concatenate([[-3.0], np.linspace(-1.0, 2.0, 58), [4.0]])
    a, _ = with_spectrum(list(spectrum), seed=1)
    errors = []
    for iters in (4, 8, 30):
        _, top, bottom, _, _, iterations, _ = measure_quadratic(a, iters=iters)[0]
        assert iterations == iters
        assert -3.0 - 1e-12 <= bottom <= top <= 4.0 + 1e-12
        errors.append((4.0 - top, bottom + 3.0))
    assert errors[2][0] < errors[1][0] < errors[0][0] and errors[2][1] < errors[1][1] < errors[0][1]
    assert errors[2] < (1e-8, 1e-8)


def test_a_warm_start_at_an_eigenvector_goes_on_from_the_random_start():
    """From an exact eigenvector Krylov space is that vector alone (β = 0 at once): without a vector
    to go on from, λ_min would read λ_max."""
    a, basis = with_spectrum([-5.0, -1.0, 0.5, 1.0, 1.5, 2.0])
    eigenvector = basis[:, 5].clone()
    values, prev, vector, made = lanczos(lambda v: a @ v, eigenvector, 20)
    assert list(values) == [pytest.approx(2.0)] and made == 1 and math.isnan(prev)
    restart = torch.ones(6, dtype=torch.float64) / 6 ** 0.5
    values, _, vector, made = lanczos(lambda v: a @ v, eigenvector, 20, restart)
    assert made == 6 and values[[0, -1]] == pytest.approx([-5.0, 2.0], abs=1e-12)
    assert abs(vector @ eigenvector) == pytest.approx(1.0, abs=1e-12)


def test_repeated_eigenvalues_end_in_a_breakdown_with_the_extremes_exact():
    """eig = 1, 1, 2, 2, −3 from a start in no eigenspace: three distinct eigenvalues, so the Krylov
    space is invariant after three products; Lanczos stops there (the random start lies in it)."""
    a = torch.diag(torch.tensor([1.0, 1.0, 2.0, 2.0, -3.0], dtype=torch.float64))
    start = torch.ones(5, dtype=torch.float64) / 5 ** 0.5
    values, prev, _, made = lanczos(lambda v: a @ v, start, 20, start)
    assert made == 3 and values == pytest.approx([-3.0, 1.0, 2.0], abs=1e-12)
    assert prev < 2.0


def test_a_hessian_vector_product_that_is_not_finite_records_nan():
    model = Quadratic(4)
    nan_loss = lambda theta, y: (theta ** 2).sum() * math.inf     # H v = ±inf or NaN
    none = torch.zeros(1)
    (step, top, bottom, lr, top_lr, iterations, rel), q = sharpness(model, none, none, loss_fn=nan_loss, iters=7)
    assert step == 0 and iterations == 1 and lr == 0.1
    assert all(math.isnan(v) for v in (top, bottom, top_lr, rel))
    # the next measurement starts where this one did: the random first start
    assert torch.equal(q.state()["v"], q.random(4))


# --------------------------------------------------------------------------- networks


def test_linear_regression_sharpness_is_the_top_eigenvalue_of_its_hessian():
    x, y = regression()
    torch.manual_seed(0)
    model = nn.Linear(D, C)
    spectrum = regression_spectrum(x)
    (step, value, low, lr, value_lr, iterations, rel), _ = sharpness(model, x, y, lr=0.1, step=5)
    assert (step, lr, iterations) == (5, 0.1, D * C + C)    # the parameter count: R¹⁴ is spanned
    assert value == pytest.approx(spectrum.max(), rel=1e-5)
    assert low == pytest.approx(spectrum.min(), abs=1e-5 * spectrum.max())
    assert value_lr == pytest.approx(spectrum.max() * 0.1, rel=1e-5)
    assert 0 <= rel < 1e-5
    # the quadratic's H does not depend on θ or y: a moved model has the same sharpness
    with torch.no_grad():
        model.weight.add_(5.0)
    assert sharpness(model, x, y)[0][1] == pytest.approx(spectrum.max(), rel=1e-5)


def test_a_negative_definite_hessian_lanczos_reads_its_top_power_its_largest_magnitude():
    """L = −mse: eig(H) = −eig(regression): λ_max = −min, λ_min = −max; power iteration reads −max."""
    x, y = regression()
    model = nn.Linear(D, C)
    spectrum = regression_spectrum(x)
    row = sharpness(model, x, y, loss_fn=lambda out, t: -mse(out, t))[0]
    assert row[1] == pytest.approx(-spectrum.min(), abs=1e-5 * spectrum.max())
    assert row[2] == pytest.approx(-spectrum.max(), rel=1e-5)
    power = sharpness(model, x, y, loss_fn=lambda out, t: -mse(out, t), method="power")[0]
    assert power[1] == pytest.approx(-spectrum.max(), rel=1e-5) and math.isnan(power[2])


def small_network():
    """A tanh MLP with batch norm in float64 (71 parameters) on 32 samples, and the eigenvalues of its
    full Hessian by reverse-over-reverse autograd (torch.func.hessian, forward-over-reverse, gets the
    weight block wrong through batch norm in torch 2.14)."""
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
    return model, x, y, loss_fn, eig


def test_a_small_network_matches_its_full_hessian():
    model, x, y, loss_fn, eig = small_network()
    n = sum(p.numel() for p in model.parameters())
    assert eig.min() < 0 < eig.max()            # a saddle direction: the two methods' answers differ
    (_, top, bottom, _, _, iterations, rel), _ = sharpness(model, x, y, loss_fn=loss_fn, iters=n + 10)
    # H has a null space (batch norm's scale invariance, softmax's shift invariance): one eigenvalue
    # of several eigenvectors, so the Krylov space is invariant after n − (multiplicity − 1) products
    scale = np.abs(eig).max()
    zeros = int(np.sum(np.abs(eig) < 1e-12 * scale))
    assert zeros > 1 and iterations == n - (zeros - 1)
    assert top == pytest.approx(eig.max(), abs=1e-9 * scale)
    assert bottom == pytest.approx(eig.min(), abs=1e-9 * scale)
    assert rel < 1e-9
    # with fewer products than parameters the extremes are already close, and never outside
    _, top, bottom, *_ = sharpness(model, x, y, loss_fn=loss_fn, iters=25)[0]
    assert eig.min() - 1e-12 <= bottom <= top <= eig.max() + 1e-12
    assert top == pytest.approx(eig.max(), rel=1e-3)
    # power iteration: the eigenvalue of largest magnitude
    (_, value, low, _, _, _, rel), _ = sharpness(model, x, y, loss_fn=loss_fn, iters=50, method="power")
    assert value == pytest.approx(eig[np.abs(eig).argmax()], rel=1e-4) and math.isnan(low)
    assert rel < 1e-6


def test_power_is_the_plain_power_iteration_earlier_runs_recorded():
    """The power row is v ← Hv/‖Hv‖ from the seeded start, bit for bit (earlier runs' bytes)."""
    x, y = regression()
    model = nn.Linear(D, C)
    row, q = sharpness(model, x, y, iters=4, method="power", step=2, lr=0.5)
    hvp = hvp_fn(Probe(model, x, y, mse, step=2, lr=0.5))
    v = q.random(D * C + C)
    quotients = []
    for _ in range(4):
        hv = hvp(v)
        quotients.append((v @ hv).item())
        v = hv / hv.norm()
    rel = abs(quotients[-1] - quotients[-2]) / abs(quotients[-1])
    assert row[:2] + row[3:] == [2, quotients[-1], 0.5, quotients[-1] * 0.5, 4, rel]
    assert torch.equal(q.state()["v"], v)


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
    other = Sharpness(config(iters=2, seed=4), model)
    assert sharpness(model, x, y, q=other)[0] != rows[0]


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_the_warm_start_carries_on_and_round_trips_through_a_checkpoint(method):
    x, y = regression()
    model = nn.Linear(D, C)
    _, q = sharpness(model, x, y, iters=3, method=method)
    assert q.state()["v"].norm().item() == pytest.approx(1.0)
    buf = io.BytesIO()
    torch.save(q.state(), buf)
    buf.seek(0)
    resumed = Sharpness(q.cfg, model)
    resumed.load_state(torch.load(buf, weights_only=True))
    assert sharpness(model, x, y, q=resumed)[0] == sharpness(model, x, y, q=q)[0]
    # and it matters: a cold start gives another value after 3 iterations
    assert sharpness(model, x, y, iters=3, method=method)[0] != sharpness(model, x, y, q=resumed)[0]
    assert Sharpness(q.cfg, model).state() == {}


def test_a_resumed_run_records_the_same_sharpness_bytes(tmp_path):
    """Lanczos' warm start (the top Ritz vector) through a checkpoint: the unit test above covers power's."""
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
    assert text.splitlines()[0] == "step,sharpness,sharpness_min,lr,sharpness_lr,iterations,rel_change"
    assert [ln.split(",")[0] for ln in text.splitlines()] == ["step", "0", "4", "8"]
    assert all(ln.split(",")[2] != "" for ln in text.splitlines()[1:])          # λ_min recorded
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
