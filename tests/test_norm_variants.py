"""Facts about the three variants of issue 11: batch renorm (Ioffe 2017), ghost batch norm (Hoffer et
al. 2017) and RMSNorm (Zhang & Sennrich 2019).

Each expected value is computed independently of the module under test: by torch's own batch norm on
the same (or chunked) input, or by the paper's formula written out in float64 numpy.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ics_cli.net import models, norms
from ics_cli.net.batchnorms import BatchRenorm, GhostBatchNorm, RenormSchedule, RMSNorm, last_ghost
from ics_cli.cli import main
from ics_cli.config import RunConfig, validate
from ics_cli.probes import batch_stats_without_update
from ics_cli.train import train

from expect import refused

EPS = 1e-5
TRAIN = ["train", "--dataset", "synthetic", "--steps", "3", "--log-every", "10", "--quiet"]


def batch_norm(c: int, conv: bool) -> nn.Module:
    torch.manual_seed(7)
    ref = (nn.BatchNorm2d if conv else nn.BatchNorm1d)(c, eps=EPS, momentum=0.1).double()
    with torch.no_grad():
        ref.weight.copy_(torch.rand(c) + 0.5)
        ref.bias.copy_(torch.randn(c))
    return ref


def like(ref: nn.Module, module: nn.Module) -> nn.Module:
    """`module` with ref's γ, β and running statistics, in float64."""
    module = module.double()
    module.load_state_dict(ref.state_dict())
    return module


def inputs(shape, seed: int, k: int = 0) -> torch.Tensor:
    """A float64 batch whose units have different offsets and scales (k shifts the distribution)."""
    gen = torch.Generator().manual_seed(seed)
    c = shape[1]
    unit = (1, c) + (1,) * (len(shape) - 2)
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * (torch.linspace(0.5, 2, c).view(unit) + k)
            + torch.arange(c, dtype=torch.float64).view(unit) - k)


def forward_backward(module: nn.Module, x0: torch.Tensor, r: torch.Tensor):
    """Output, and the gradients of sum(output * r) w.r.t. the input, γ and β."""
    x = x0.clone().requires_grad_(True)
    y = module(x)
    (y * r).sum().backward()
    return y.detach(), x.grad, module.weight.grad.clone(), module.bias.grad.clone()


def assert_same(got, want):
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def state(module: nn.Module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


SHAPES = {False: (12, 5), True: (6, 5, 3, 2)}


# --------------------------------------------------------------------------- batch renorm


@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("schedule, step", [
    (RenormSchedule(rmax=3.0, dmax=5.0, warmup=10, rmax_at=40, dmax_at=25), 4),    # inside the warm-up
    (RenormSchedule(rmax=1.0, dmax=0.0, warmup=0, rmax_at=0, dmax_at=0), 100),     # bounds 1 and 0 for good
], ids=["warm-up", "rmax=1,dmax=0"])
def test_batch_renorm_with_r_1_and_d_0_is_batch_norm(conv, schedule, step):
    c, shape = 5, SHAPES[conv]
    ref = batch_norm(c, conv)
    ren = like(ref, BatchRenorm(c, schedule, eps=EPS, momentum=0.1))
    ren.set_step(step)
    for k in range(4):
        # After the first forwards the running statistics differ from the batch's: a renorm that let
        # r or d differ from 1 and 0 here would differ from batch norm.
        x, r = inputs(shape, seed=k, k=k), inputs(shape, seed=100 + k)
        ref.zero_grad(), ren.zero_grad()
        assert_same(forward_backward(ren, x, r), forward_backward(ref, x, r))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ren, name), getattr(ref, name), rtol=1e-12, atol=1e-12)
    assert int(ren.num_batches_tracked) == 4
    ref.eval(), ren.eval()
    x = inputs(shape, seed=9, k=2)
    torch.testing.assert_close(ren(x), ref(x), rtol=1e-12, atol=1e-12)


def renorm_case(conv: bool):
    """A renorm with final bounds r_max = 2, d_max = 1 and running statistics set by hand so that the
    five units see: no clipping; r clipped above; r clipped below; d clipped above; d clipped below."""
    c, shape = 5, SHAPES[conv]
    x = inputs(shape, seed=3)
    axes = (0,) + tuple(range(2, x.dim()))
    mean, var = x.mean(axes), x.var(axes, unbiased=False)
    sigma_b = torch.sqrt(var + EPS)
    # Population sigma per unit relative to sigma_B: r = sigma_B / sigma = 1.5, 3, 0.25, 1, 1.
    sigma = sigma_b / torch.tensor([1.5, 3.0, 0.25, 1.0, 1.0], dtype=torch.float64)
    # Population mean: d = (mu_B - mu) / sigma = 0.5, 0, 0, 2.5, -4.
    mu = mean - torch.tensor([0.5, 0.0, 0.0, 2.5, -4.0], dtype=torch.float64) * sigma
    ren = BatchRenorm(c, RenormSchedule(rmax=2.0, dmax=1.0, warmup=0, rmax_at=0, dmax_at=0),
                      eps=EPS, momentum=0.1).double()
    with torch.no_grad():
        ren.running_mean.copy_(mu)
        ren.running_var.copy_(sigma ** 2 - EPS)
        ren.weight.copy_(torch.tensor([1.0, 0.5, 2.0, 1.5, 0.8]))
        ren.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0, 1.0]))
    ren.set_step(1)
    return ren, x


@pytest.mark.parametrize("conv", [False, True])
def test_batch_renorm_output_is_the_clipped_formula(conv):
    ren, x = renorm_case(conv)
    xn = x.numpy()
    axes = (0,) + tuple(range(2, xn.ndim))
    shape = (1, -1) + (1,) * (xn.ndim - 2)
    mean, var = xn.mean(axis=axes), xn.var(axis=axes)
    sigma_b, sigma = np.sqrt(var + EPS), np.sqrt(ren.running_var.numpy() + EPS)
    r = np.clip(sigma_b / sigma, 1 / 2, 2)
    d = np.clip((mean - ren.running_mean.numpy()) / sigma, -1, 1)
    np.testing.assert_allclose(r, [1.5, 2, 0.5, 1, 1], rtol=1e-9)           # clipped: units 1, 2
    np.testing.assert_allclose(d, [0.5, 0, 0, 1, -1], atol=1e-9)            # clipped: units 3, 4
    gamma, beta = ren.weight.detach().numpy(), ren.bias.detach().numpy()
    want = gamma.reshape(shape) * ((xn - mean.reshape(shape)) / sigma_b.reshape(shape) * r.reshape(shape)
                                   + d.reshape(shape)) + beta.reshape(shape)
    n = xn.size // xn.shape[1]
    mu0, var0 = ren.running_mean.numpy().copy(), ren.running_var.numpy().copy()
    with torch.no_grad():
        got = ren(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # Where nothing is clipped (unit 0) renorm is the population-statistics normalization.
    unit0 = (xn[:, 0] - mu0[0]) / sigma[0] * gamma[0] + beta[0]
    np.testing.assert_allclose(got[:, 0], unit0, rtol=1e-10, atol=1e-10)
    # The moving averages moved after r and d were computed, by torch's rule.
    np.testing.assert_allclose(ren.running_mean.numpy(), 0.9 * mu0 + 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(ren.running_var.numpy(), 0.9 * var0 + 0.1 * var * n / (n - 1), rtol=1e-12)


@pytest.mark.parametrize("conv", [False, True])
def test_batch_renorm_r_and_d_carry_no_gradient(conv):
    ren, x0 = renorm_case(conv)
    g = inputs(tuple(x0.shape), seed=11)
    _, dx, dgamma, dbeta = forward_backward(ren, x0, g)

    xn, gn = x0.numpy(), g.numpy()
    axes = (0,) + tuple(range(2, xn.ndim))
    shape = (1, -1) + (1,) * (xn.ndim - 2)
    mean, var = xn.mean(axis=axes, keepdims=True), xn.var(axis=axes, keepdims=True)
    sigma_b = np.sqrt(var + EPS)
    ren2, _ = renorm_case(conv)      # the forward updated ren's running statistics: r and d saw ren2's
    sigma = np.sqrt(ren2.running_var.numpy() + EPS).reshape(shape)
    r = np.clip(sigma_b / sigma, 0.5, 2)
    d = np.clip((mean - ren2.running_mean.numpy().reshape(shape)) / sigma, -1, 1)
    gamma = ren.weight.detach().numpy().reshape(shape)
    xhat = (xn - mean) / sigma_b
    # y = γ (xhat r + d) + β with r, d constants: the batch-norm backward, scaled by r.
    want_dx = gamma * r / sigma_b * (gn - gn.mean(axis=axes, keepdims=True)
                                     - xhat * (gn * xhat).mean(axis=axes, keepdims=True))
    np.testing.assert_allclose(dx.numpy(), want_dx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dgamma.numpy(), (gn * (xhat * r + d)).sum(axis=axes), rtol=1e-9)
    np.testing.assert_allclose(dbeta.numpy(), gn.sum(axis=axes), rtol=1e-9)

    # The check can fail: letting the gradient flow through r and d gives a different input gradient.
    x = x0.clone().requires_grad_(True)
    a = tuple(axes)
    m, v = x.mean(a, keepdim=True), x.var(a, unbiased=False, keepdim=True)
    sb = torch.sqrt(v + EPS)
    s, mu = torch.from_numpy(sigma), ren2.running_mean.view(shape)
    y = (x - m) / sb * (sb / s).clamp(0.5, 2) + ((m - mu) / s).clamp(-1, 1)
    (y * ren.weight.detach().view(shape) * g).sum().backward()
    assert np.abs(x.grad.numpy() - want_dx).max() > 1e-3


@pytest.mark.parametrize("conv", [False, True])
def test_plain_batch_norm_turns_the_correction_off(conv):
    """Inside norms.plain_batch_norm a renorm whose r and d clip is batch norm on the batch's own
    statistics; outside it, the correction is back."""
    ren, x = renorm_case(conv)
    ref = like(ren, (nn.BatchNorm2d if conv else nn.BatchNorm1d)(5, eps=EPS, momentum=0.1))
    net = nn.Sequential(ren)
    corrected = copy.deepcopy(ren)(x).detach()
    with norms.plain_batch_norm(net):
        torch.testing.assert_close(ren(x), ref(x), rtol=1e-12, atol=1e-12)
    assert ren.correct
    assert (corrected - ref(x).detach()).abs().max() > 0.1


def test_renorm_bounds_follow_the_scaled_schedule():
    # 1600 steps: warm-up 1600/16 = 100, d_max final at 5 x 1600/16 = 500, r_max final at 1600/2 = 800.
    cfg = RunConfig(norm="batch-renorm", steps=1600)
    assert norms.renorm_schedule(cfg) == RenormSchedule(rmax=3.0, dmax=5.0, warmup=100, rmax_at=800, dmax_at=500)
    assert norms.renorm_bounds(cfg, 0) == (1.0, 0.0)
    assert norms.renorm_bounds(cfg, 100) == (1.0, 0.0)                  # the ramps start from 1 and 0
    r, d = norms.renorm_bounds(cfg, 450)                                 # mid-ramp of r_max
    assert r == pytest.approx(1 + 2 * 350 / 700) and r == pytest.approx(2.0)
    assert d == pytest.approx(5 * 350 / 400)
    r, d = norms.renorm_bounds(cfg, 600)                                 # d_max done, r_max still ramping
    assert r == pytest.approx(1 + 2 * 500 / 700) and d == 5.0
    assert norms.renorm_bounds(cfg, 800) == (3.0, 5.0)
    assert norms.renorm_bounds(cfg, 5000) == (3.0, 5.0)
    # The same proportions on another run length; given steps and bounds override the defaults.
    assert norms.renorm_schedule(RunConfig(norm="batch-renorm", steps=320)) == RenormSchedule(
        rmax=3.0, dmax=5.0, warmup=20, rmax_at=160, dmax_at=100)
    given = RunConfig(norm="batch-renorm", steps=320, renorm_warmup=0, renorm_rmax_at=10, renorm_dmax_at=0,
                      renorm_rmax=2.0, renorm_dmax=1.0)
    assert norms.renorm_bounds(given, 0) == (1.0, 1.0)                  # d_max: no ramp at all
    assert norms.renorm_bounds(given, 5) == (1.5, 1.0)
    assert norms.renorm_bounds(given, 10) == (2.0, 1.0)


def test_the_built_renorm_follows_set_step():
    cfg = validate(RunConfig(norm="batch-renorm", steps=1600, width=4, depth=2))
    net = models.build(cfg, (1, 4, 4), 10)
    layers = [m for m in net.modules() if isinstance(m, BatchRenorm)]
    assert len(layers) == 2
    norms.set_step(net, 450)
    assert all(m.step == 450 and m.schedule.bounds(m.step) == norms.renorm_bounds(cfg, 450) for m in layers)


# --------------------------------------------------------------------------- ghost batch norm


def ghost_pair(c: int, conv: bool, ghost: int):
    ref = batch_norm(c, conv)
    return ref, like(ref, GhostBatchNorm(c, ghost, eps=EPS, momentum=0.1))


@pytest.mark.parametrize("conv", [False, True])
def test_ghost_batch_with_one_ghost_is_batch_norm(conv):
    c, shape = 5, SHAPES[conv]
    ref, gbn = ghost_pair(c, conv, ghost=shape[0])
    for k in range(3):
        x, r = inputs(shape, seed=k, k=k), inputs(shape, seed=50 + k)
        ref.zero_grad(), gbn.zero_grad()
        assert_same(forward_backward(gbn, x, r), forward_backward(ref, x, r))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(gbn, name), getattr(ref, name), rtol=1e-12, atol=1e-12)
    gbn.eval(), ref.eval()
    x = inputs(shape, seed=9, k=1)
    torch.testing.assert_close(gbn(x), ref(x), rtol=1e-12, atol=1e-12)


def chunked_reference(ref: nn.Module, x: torch.Tensor, r: torch.Tensor, sizes: list[int]):
    """Batch norm (training mode) on each chunk separately, with ref's γ and β: the output, the
    gradients of sum(output * r), and each chunk's mean and unbiased variance."""
    xs = x.clone().requires_grad_(True)
    w, b = ref.weight.detach().clone().requires_grad_(True), ref.bias.detach().clone().requires_grad_(True)
    outs, means, variances = [], [], []
    for chunk in torch.split(xs, sizes):
        outs.append(F.batch_norm(chunk, None, None, w, b, True, 0.0, EPS))
        axes = [0] + list(range(2, chunk.dim()))
        means.append(chunk.detach().mean(axes))
        variances.append(chunk.detach().var(axes, unbiased=True))
    y = torch.cat(outs)
    (y * r).sum().backward()
    return (y.detach(), xs.grad, w.grad, b.grad), torch.stack(means), torch.stack(variances)


@pytest.mark.parametrize("conv, n, ghost, sizes", [
    (False, 12, 4, [4, 4, 4]),        # k ghosts
    (True, 6, 2, [2, 2, 2]),
    (False, 10, 4, [4, 4, 2]),        # a last, smaller ghost
    (False, 9, 4, [4, 5]),            # its one sample joins the ghost before (MLP)
    (True, 9, 4, [4, 4, 1]),          # on a CNN one sample still has H x W values
    (False, 3, 4, [3]),               # a batch smaller than a ghost is one ghost
])
def test_ghost_batch_is_batch_norm_on_each_ghost(conv, n, ghost, sizes):
    c = 5
    shape = (n, c, 3, 2) if conv else (n, c)
    ref, gbn = ghost_pair(c, conv, ghost)
    mean0, var0 = gbn.running_mean.clone(), gbn.running_var.clone()
    x, r = inputs(shape, seed=1, k=1), inputs(shape, seed=2)
    want, means, variances = chunked_reference(ref, x, r, sizes)
    assert_same(forward_backward(gbn, x, r), want)
    # One update per forward, with the equal-weight average over the ghosts.
    torch.testing.assert_close(gbn.running_mean, 0.9 * mean0 + 0.1 * means.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gbn.running_var, 0.9 * var0 + 0.1 * variances.mean(0), rtol=1e-12, atol=1e-12)
    assert int(gbn.num_batches_tracked) == 1
    # With momentum 1 (what PreciseBN sets) the running statistics are exactly that average.
    gbn.momentum = 1.0
    gbn(x)
    torch.testing.assert_close(gbn.running_mean, means.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gbn.running_var, variances.mean(0), rtol=1e-12, atol=1e-12)


def test_last_ghost_rule():
    assert last_ghost(12, 4) == 12                  # divides: no smaller ghost
    assert last_ghost(10, 4) == 8                   # ghosts 4, 4, 2
    assert last_ghost(9, 4) == 4                    # 4, then 4 + 1 merged (MLP: one value per channel)
    assert last_ghost(9, 4, per_sample=4) == 8      # CNN 2x2 maps: the single sample keeps its own ghost
    assert last_ghost(1, 4) == 0 and last_ghost(3, 4) == 0


# --------------------------------------------------------------------------- RMSNorm


def test_rms_norm_of_a_known_vector():
    rms = RMSNorm(2, eps=EPS).double()
    x = torch.tensor([[3.0, 4.0], [-1.0, 1.0]], dtype=torch.float64)
    want = torch.tensor([[3.0, 4.0]], dtype=torch.float64) / np.sqrt(12.5 + EPS)
    torch.testing.assert_close(rms(x)[:1], want, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        rms.weight.copy_(torch.tensor([2.0, 0.5]))
    y = rms(x).detach()
    torch.testing.assert_close(y[0], torch.tensor([6.0, 2.0], dtype=torch.float64) / np.sqrt(12.5 + EPS))
    torch.testing.assert_close(y[1], torch.tensor([-2.0, 0.5], dtype=torch.float64) / np.sqrt(1 + EPS))
    torch.testing.assert_close(rms.eval()(x), y)      # no batch statistics: eval mode is the same
    assert y[0].mean() != 0                          # not centred


def test_rms_norm_on_a_cnn_map_is_per_sample_over_c_h_w():
    x = inputs((3, 4, 2, 5), seed=4, k=1)
    rms = RMSNorm(4, eps=EPS).double()
    gain = np.array([1.0, 2.0, 0.5, -1.0])
    with torch.no_grad():
        rms.weight.copy_(torch.from_numpy(gain))
    xn = x.numpy()
    ms = (xn ** 2).mean(axis=(1, 2, 3), keepdims=True)
    want = gain.reshape(1, -1, 1, 1) * xn / np.sqrt(ms + EPS)
    np.testing.assert_allclose(rms(x).detach().numpy(), want, rtol=1e-12)
    # The per-sample mean square before the gain is 1 (up to eps), whatever the sample's scale.
    with torch.no_grad():
        rms.weight.fill_(1.0)
    y = rms(x * torch.tensor([1.0, 10.0, 0.1], dtype=torch.float64).view(3, 1, 1, 1)).detach().numpy()
    np.testing.assert_allclose((y ** 2).mean(axis=(1, 2, 3)), 1.0, rtol=1e-3)


def test_rms_keeps_the_bias_and_has_a_gain_only():
    cfg = validate(RunConfig(norm="rms", width=6, depth=2))
    net = models.build(cfg, (1, 4, 4), 10)
    block = net.hidden1
    assert block.linear.bias is not None
    assert [n for n, _ in block.norm.named_parameters()] == ["weight"]


# --------------------------------------------------------------------------- probes change nothing


@pytest.mark.parametrize("norm", ["batch-renorm", "ghost-batch"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_batch_stats_without_update_changes_no_state(norm, model):
    cfg = validate(RunConfig(norm=norm, model=model, width=6, depth=2, steps=64, ghost_size=4))
    torch.manual_seed(0)
    net = models.build(cfg, (1, 8, 8), 10)
    x = torch.randn(10, 1, 8, 8)
    for m in net.modules():          # running statistics far from the batch's: r and d clip
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.fill_(0.5)
                m.running_var.fill_(4.0)
    norms.set_step(net, 60)
    before = state(net)
    twin = copy.deepcopy(net).train()
    with batch_stats_without_update(net):
        y = net(x)
    after = state(net)
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    # It is the training computation: the same output as a real training forward, which does update.
    torch.testing.assert_close(y, twin(x), rtol=0, atol=0)
    assert not torch.equal(state(twin)[next(k for k in before if k.endswith("running_mean"))],
                           before[next(k for k in before if k.endswith("running_mean"))])


# --------------------------------------------------------------------------- the command line


def test_ics_norms_lists_the_new_variants(capsys):
    assert main(["norms"]) == 0
    out = capsys.readouterr().out
    for name in ("batch-renorm", "ghost-batch", "rms"):
        assert name in out


@pytest.mark.parametrize("args, needles", [
    (["--norm", "ghost-batch", "--ghost-size", "7"],
     ["--ghost-size 7", "--batch-size 60", "allowed: 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60"]),
    (["--norm", "ghost-batch", "--ghost-size", "1"], ["--ghost-size 1", "allowed: 2, 3"]),
    (["--norm", "batch-renorm", "--batch-size", "1"], ["--batch-size 1", "batch-renorm", "at least 2"]),
    (["--norm", "ghost-batch", "--batch-size", "1", "--ghost-size", "1"], ["--batch-size 1"]),
    (["--norm", "layer", "--bn-eval", "precise"],
     ["--bn-eval precise", "layer", "batch, batch-nograd, batch-renorm, ghost-batch"]),
    (["--norm", "rms", "--bn-eval", "batch"], ["--bn-eval batch", "ghost-batch"]),
    (["--norm", "none", "--freeze-bn-at", "0.8"], ["--freeze-bn-at 0.8", "--norm none", "batch-renorm"]),
    (["--norm", "ghost-batch", "--model", "cnn", "--batch-size", "8", "--ghost-size", "3"],
     ["--ghost-size 3", "allowed: 1, 2, 4, 8"]),
])
def test_bad_combinations_exit_2_with_one_line(tmp_path, capsys, args, needles):
    refused(capsys, TRAIN + args, tmp_path / "runs", *needles)


def test_the_norm_batch_is_the_micro_batch(tmp_path, capsys):
    refused(capsys, TRAIN + ["--norm", "batch-renorm", "--micro-batch", "1"], tmp_path / "a", "--micro-batch 1")
    refused(capsys, TRAIN + ["--norm", "ghost-batch", "--micro-batch", "6", "--ghost-size", "4"], tmp_path / "b",
            "--ghost-size 4", "--micro-batch 6", "allowed: 2, 3, 6")


def test_a_cnn_ghost_needs_two_values_per_channel():
    # synthetic 8x8 with depth 3: the last map is 1x1, so a ghost of one sample has one value.
    from ics_cli.config import check_data
    from ics_cli.errors import ConfigError

    cfg = validate(RunConfig(dataset="synthetic", model="cnn", norm="ghost-batch", ghost_size=1, steps=3))
    with pytest.raises(ConfigError, match="--ghost-size 1.*1x1"):
        check_data(cfg, 512, 512, (1, 8, 8))
    ok = validate(RunConfig(dataset="synthetic", model="cnn", norm="ghost-batch", ghost_size=1, depth=2, steps=3))
    check_data(ok, 512, 512, (1, 8, 8))           # 2x2 maps: four values per ghost and channel


# --------------------------------------------------------------------------- real runs


@pytest.mark.parametrize("norm", ["batch-renorm", "ghost-batch", "rms"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_a_short_run_with_each_variant_finishes(tmp_path, model, norm):
    cfg = RunConfig(dataset="synthetic", model=model, norm=norm, depth=2, width=8, steps=20, log_every=10,
                    eval_every=10, probe_size=64, track_units=2, batch_size=30, ghost_size=5, out=str(tmp_path))
    res = train(cfg)
    assert res.summary["status"] == "completed"
    final = res.summary["final"]
    assert np.isfinite(final["train_loss"]) and np.isfinite(final["test_loss"])


def test_test_time_batch_statistics_of_renorm_are_the_batch_s_own():
    """evaluate(batch_stats=True) and PreciseBN's passes normalize batch renorm by each batch alone:
    with running statistics far from the batch's and the ramps done, they equal plain batch norm's."""
    from ics_cli.net import population
    from ics_cli.train import evaluate

    cfg = validate(RunConfig(dataset="synthetic", norm="batch-renorm", steps=16, renorm_warmup=0,
                             renorm_rmax_at=1, renorm_dmax_at=1))
    plain = validate(RunConfig(dataset="synthetic", norm="batch", steps=16))
    torch.manual_seed(0)
    renorm = models.build(cfg, (1, 8, 8), 10)
    torch.manual_seed(0)
    bn = models.build(plain, (1, 8, 8), 10)
    bn.load_state_dict(renorm.state_dict())
    for m in renorm.modules():
        if isinstance(m, BatchRenorm):
            m.running_mean.fill_(3.0)
            m.running_var.fill_(9.0)
    norms.set_step(renorm, 10)
    x, y = torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.arange(40) % 10
    got = evaluate(renorm, x, y, chunk=8, batch_stats=True)
    want = evaluate(bn, x, y, chunk=8, batch_stats=True)
    assert torch.allclose(got, want, atol=1e-6)
    # ... while a training pass of the same batch does apply r and d, so the comparison can fail
    renorm.train(), bn.train()
    with batch_stats_without_update(renorm), batch_stats_without_update(bn):
        assert not torch.allclose(renorm(x[:8]), bn(x[:8]), atol=1e-3)
    stats = population.estimate(renorm, x.split(8))
    first = next(m for m in renorm.modules() if isinstance(m, BatchRenorm))
    inputs = [renorm.hidden1.linear(renorm.inputs(c)).detach() for c in x.split(8)]
    mean = torch.stack([i.mean(0) for i in inputs]).mean(0)
    name = next(n for n, m in renorm.named_modules() if m is first)
    assert torch.allclose(stats[name][0], mean, atol=1e-5)
