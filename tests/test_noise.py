"""Facts about --noise santurkar (ics_cli/noise.py): Santurkar et al.'s Algorithm 1 statistics, where
it applies (training passes only), its own random stream, and what probes and resumes do to it.

Runs use the tiny `synthetic` dataset (512 train images of 1x8x8, 10 classes).
"""

import pandas as pd
import pytest
import torch
from scipy import stats

from ics_cli.net import models, noise
from ics_cli.config import RunConfig, validate
from ics_cli.probes import ActivationRecorder
from ics_cli.train import evaluate, train

from helpers import runner, strip_elapsed

run = runner(noise="santurkar")


def scale_shift(module, shape):
    """(s, m) of one training draw, read from the outputs: m = f(0), then s = f(1) - f(0) by replay."""
    m = module(torch.zeros(shape))
    module.mode = "replay"
    s = module(torch.ones(shape)) - m
    module.mode = "train"
    return s, m


# --------------------------------------------------------------------------- Algorithm 1's statistics

@pytest.fixture(scope="module")
def draws():
    """400 training draws of one layer of 8 units over 1024 samples: (s, m), each (400, 1024, 8)."""
    module = noise.Santurkar(seed=3, layer=2).train()
    pairs = [scale_shift(module, (1024, 8)) for _ in range(400)]
    assert module.draws == 400
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def test_each_unit_gets_a_shift_mean_uniform_in_minus_half_half(draws):
    _, m = draws
    # Per element m ~ U(mu - 0.1, mu + 0.1): all of a unit's values in one step lie in a band of width
    # 0.2 and fill it; its midpoint is mu (to ~0.2/1024).
    lo, hi = m.amin(1), m.amax(1)                       # (draws, units)
    assert (hi - lo).max() <= 0.2 + 1e-6 and (hi - lo).min() > 0.19
    mu = ((lo + hi) / 2).flatten().double()
    assert mu.min() >= -0.5 - 1e-3 and mu.max() <= 0.5 + 1e-3
    assert stats.kstest(mu.numpy(), stats.uniform(-0.5, 1).cdf).pvalue > 1e-3
    # The spread around mu is uniform: standard deviation 0.2 / sqrt(12).
    spread = (m - (lo + hi)[:, None] / 2).flatten()
    assert spread.std().item() == pytest.approx(0.2 / 12**0.5, rel=0.01)


def test_each_unit_gets_a_scale_mean_uniform_in_one_to_one_and_a_quarter_with_normal_spread(draws):
    s, _ = draws
    sigma = s.double().mean(1)                          # (draws, units): sigma_j to ~0.1/32
    assert sigma.min() >= 1 - 0.015 and sigma.max() <= 1.25 + 0.015
    # A unit's sigma hides 1/32 of Gaussian error: compare with U(1, 1.25) smeared by the same amount.
    assert stats.kstest(sigma.flatten().numpy(), stats.uniform(1, 0.25).cdf).pvalue > 1e-3
    assert sigma.max() - sigma.min() > 0.24              # the whole range is used
    residual = (s.double() - sigma[:, None]).flatten()
    assert residual.std().item() == pytest.approx(0.1, rel=0.01)       # N(sigma, 0.1^2)
    sample = residual[::97].numpy() / 0.1
    assert stats.kstest(sample, "norm").pvalue > 1e-3


def test_units_and_steps_draw_independently(draws):
    s, m = draws
    mu = (m.amin(1) + m.amax(1)) / 2                     # (draws, units)
    sigma = s.mean(1)
    assert abs(torch.corrcoef(mu.T).fill_diagonal_(0)).max() < 0.2       # across units
    assert abs(torch.corrcoef(torch.stack([mu[1:, 0], mu[:-1, 0]]))[0, 1]) < 0.2   # across steps
    assert abs(torch.corrcoef(torch.stack([mu.flatten(), sigma.flatten()]))[0, 1]) < 0.1


def test_the_noise_is_s_times_a_plus_m_elementwise():
    module = noise.Santurkar(seed=0, layer=1).train()
    s, m = scale_shift(module, (16, 5))
    a = torch.randn(16, 5)
    module.mode = "replay"
    torch.testing.assert_close(module(a), s * a + m)


def test_conv_layers_draw_per_channel_with_height_and_width_as_batch():
    module = noise.Santurkar(seed=1, layer=1).train()
    s, m = scale_shift(module, (16, 6, 8, 8))
    per_channel = m.transpose(0, 1).flatten(1)           # (channels, N*H*W)
    width = per_channel.amax(1) - per_channel.amin(1)
    assert (width <= 0.2 + 1e-6).all() and (width > 0.18).all()          # one mu per channel
    mids = (per_channel.amax(1) + per_channel.amin(1)) / 2
    assert mids.max() - mids.min() > 0.2                 # channels differ
    sigma = s.mean((0, 2, 3))
    assert ((s - sigma.view(1, -1, 1, 1)).std() - 0.1).abs() < 0.01


# --------------------------------------------------------------------------- modes and the stream

def test_eval_mode_adds_no_noise_and_draws_nothing():
    module = noise.Santurkar(seed=0, layer=1).eval()
    a = torch.randn(8, 4)
    assert torch.equal(module(a), a) and module.draws == 0


def test_replay_gives_the_last_training_draw_exactly_and_draws_nothing():
    module = noise.Santurkar(seed=0, layer=1).train()
    a = torch.randn(8, 4)
    first = module(a)
    module.mode = "replay"
    assert torch.equal(module(a), first) and torch.equal(module(a), first)
    assert module.draws == 1
    with pytest.raises(RuntimeError, match="same shape"):
        module(torch.randn(3, 4))
    module.mode = "train"
    assert not torch.equal(module(a), first) and module.draws == 2


def test_probe_mode_is_noisy_but_leaves_the_training_stream_where_it_was():
    probed, plain = noise.Santurkar(seed=4, layer=3).train(), noise.Santurkar(seed=4, layer=3).train()
    a = torch.randn(8, 4)
    plain(a), probed(a)
    probed.mode = "probe"
    b = probed(a)
    assert (b - a).abs().max() > 0.05                 # noisy
    assert probed.draws == 1
    probed.mode = "train"
    assert torch.equal(probed(a), plain(a))           # the next training draw is the unprobed one's


def test_the_stream_is_its_own_a_function_of_seed_layer_and_draw():
    a = torch.randn(8, 4)
    rng = torch.get_rng_state()
    one, same = noise.Santurkar(seed=5, layer=2).train(), noise.Santurkar(seed=5, layer=2).train()
    other_layer, other_seed = noise.Santurkar(seed=5, layer=3).train(), noise.Santurkar(seed=6, layer=2).train()
    x = one(a)
    assert torch.equal(x, same(a))
    assert not torch.equal(x, other_layer(a)) and not torch.equal(x, other_seed(a))
    assert torch.equal(torch.get_rng_state(), rng)       # the global generator untouched
    # The draw counter is the whole state, and it travels in the state_dict.
    restored = noise.Santurkar(seed=5, layer=2).train()
    restored.load_state_dict(one.state_dict())
    assert restored.draws == 1 and torch.equal(restored(a), one(a))


# --------------------------------------------------------------------------- in the model

def _model(**kw):
    cfg = validate(RunConfig(dataset="synthetic", noise="santurkar", **kw))
    torch.manual_seed(0)
    return models.build(cfg, (1, 8, 8), 10)


def test_every_hidden_layer_has_the_noise_after_its_norm_and_the_norm_site_records_it():
    x = torch.randn(256, 1, 8, 8)
    model = _model(norm="batch", depth=3)
    assert all(isinstance(b.norm, noise.Noisy) for b in model.blocks.values())
    assert [m.layer for m in noise.modules(model)] == [1, 2, 3]
    stats = ActivationRecorder(model, 4, batch_stats=True).measure(x)
    # Batch norm's unit means are exactly beta = 0; with the noise they are the units' mu ~ U(-0.5, 0.5).
    norm_means = stats["mean"][:, 1]
    assert abs(norm_means).max() > 0.2
    # norm_eval, an eval-mode pass: no noise, running statistics at init (mean 0, var 1): in the
    # first layer (the same input in both passes) the means of the linear site.
    torch.testing.assert_close(stats["mean"][0, 3], stats["mean"][0, 0], atol=1e-4, rtol=1e-4)
    assert all(m.draws == 0 for m in noise.modules(model))        # the probe drew nothing
    clean = models.build(validate(RunConfig(dataset="synthetic", norm="batch", depth=3)), (1, 8, 8), 10)
    clean_stats = ActivationRecorder(clean, 4, batch_stats=True).measure(x)
    assert abs(clean_stats["mean"][:, 1]).max() < 1e-5


def test_without_a_norm_the_noise_is_there_and_norm_eval_is_measured_clean():
    model = _model(norm="none", depth=2)
    stats = ActivationRecorder(model, 4, batch_stats=False).measure(torch.randn(64, 1, 8, 8))
    assert not (stats["mean"][:, 1] == stats["mean"][:, 0]).all()       # norm = linear + noise
    torch.testing.assert_close(stats["mean"][0, 3], stats["mean"][0, 0])  # norm_eval = linear


def test_batch_stats_evaluation_has_no_noise_and_draws_nothing():
    model = _model(norm="batch", depth=2)
    x, y = torch.randn(100, 1, 8, 8), torch.randint(0, 10, (100,))
    first = evaluate(model, x, y, chunk=50, batch_stats=True)
    assert torch.equal(first, evaluate(model, x, y, chunk=50, batch_stats=True))
    assert all(m.draws == 0 for m in noise.modules(model))
    for m in noise.modules(model):                       # the same net without its noise
        m.mode = "off"
    model.train()
    with torch.no_grad():
        logits = torch.cat([model(x[:50]), model(x[50:])])
    assert first[1].item() == (logits.argmax(1) == y).double().mean().item()


# --------------------------------------------------------------------------- in a run

def test_the_activation_probe_takes_nothing_from_the_training_noise(tmp_path):
    """Probed at every step, every 8 steps, or from the training pass: the same training trajectory."""
    kw = dict(norm="batch", steps=12, eval_every=4)
    dense = run(tmp_path / "dense", log_every=1, **kw).path
    sparse = run(tmp_path / "sparse", log_every=8, **kw).path
    from_train = run(tmp_path / "train", log_every=1, probe="train", **kw).path
    for other in (sparse, from_train):
        # grad_norm on every step (weight norms and update ratios only on log steps).
        assert pd.read_csv(dense / "grads.csv").grad_norm.tolist() == pd.read_csv(other / "grads.csv").grad_norm.tolist()
        assert strip_elapsed(dense / "metrics.csv") == strip_elapsed(other / "metrics.csv")
    saved = torch.load(dense / "model.pt", weights_only=True)
    assert saved["hidden1.norm.noise._extra_state"] == {"draws": 12}       # one draw per step


def test_the_noise_changes_the_run(tmp_path):
    noisy = run(tmp_path / "noisy", norm="batch", steps=4, log_every=4).path
    clean = train(RunConfig(dataset="synthetic", out=str(tmp_path / "clean"), norm="batch", steps=4,
                            log_every=4)).path
    assert (noisy / "grads.csv").read_bytes() != (clean / "grads.csv").read_bytes()


@pytest.mark.parametrize("probe", ["fixed", "train"])
def test_a_noisy_run_stopped_after_a_checkpoint_resumes_to_the_same_bytes(tmp_path, probe):
    kw = dict(norm="batch", steps=16, log_every=2, eval_every=4, seed=6, probe=probe)
    unbroken = run(tmp_path / "unbroken", **kw).path

    def interrupt(step):
        if step == 7:
            raise KeyboardInterrupt

    # checkpoint_every=0: a checkpoint after every step, the last after step 7.
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "broken", on_step=interrupt, checkpoint_every=0, **kw)
    resumed = run(tmp_path / "broken", **kw)
    assert resumed.summary["status"] == "completed"
    for name in ("layers.csv", "grads.csv", "units.parquet"):
        assert (resumed.path / name).read_bytes() == (unbroken / name).read_bytes(), name
    assert strip_elapsed(resumed.path / "metrics.csv") == strip_elapsed(unbroken / "metrics.csv")
    assert len(pd.read_csv(unbroken / "layers.csv").step.unique()) == 9
