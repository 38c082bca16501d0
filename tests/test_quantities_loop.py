"""Facts about how the loop runs the second view's quantities (ics_cli/quantities): each on its own
cadence, none changing what the run computes, and a resumed run recording the same bytes.

Runs use the tiny `synthetic` dataset (512 train images of 1x8x8, 10 classes; 8 steps per epoch).
"""

import pandas as pd
import pytest
import torch

from ics_cli import quantities
from ics_cli.store import runs as store
from ics_cli.config import RunConfig, validate
from ics_cli.errors import ConfigError
from ics_cli.train import train

from helpers import runner, strip_elapsed

ALL = dict(ics_every=3, landscape_every=4, relative_loss_every=5, sharpness_every=4, sharpness_iters=3)
TABLES = ("metrics.csv", "grads.csv", "layers.csv")
run = runner(log_every=4, eval_every=4)


def same_run(a, b) -> None:
    for name in TABLES:
        got, want = (strip_elapsed(p / name) if name == "metrics.csv" else (p / name).read_bytes()
                     for p in (a, b))
        assert got == want, name
    assert (a / "units.parquet").read_bytes() == (b / "units.parquet").read_bytes()
    sa, sb = (torch.load(p / "model.pt", weights_only=True) for p in (a, b))
    assert equal(sa, sb)


def equal(a, b) -> bool:
    """Two saved states hold the same values (tensors, numbers, nested dicts)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("kw", [dict(norm="batch"), dict(norm="none", probe="train"),
                                dict(norm="batch", noise="santurkar", optimizer="adam", lr=0.01)],
                         ids=["batch", "none-train-probe", "noisy-batch-adam"])
def test_measuring_changes_nothing_the_run_computes(tmp_path, kw):
    """Every quantity on, at its own cadence: the trajectory, the activation statistics, the gradient
    norms and the trained weights are those of the run without them (BN's running statistics, the
    noise stream and every RNG untouched)."""
    plain = run(tmp_path / "plain", steps=13, seed=2, **kw)
    probed = run(tmp_path / "probed", steps=13, seed=2, **ALL, **kw)
    assert plain.summary["steps_done"] == probed.summary["steps_done"] == 13
    same_run(plain.path, probed.path)
    for q in quantities.REGISTRY.values():
        table = store.read_table(probed.path, q.name)
        every = ALL[q.every_field]
        assert sorted(table.step.unique()) == list(range(0, 13, every)), q.name
        assert list(table.columns) == list(q.columns)
    assert not any((plain.path / f"{q}.csv").exists() for q in quantities.REGISTRY)


def test_a_resumed_run_records_the_same_quantity_bytes(tmp_path):
    """Checkpoints after every step (checkpoint_every=0), stopped at step 7 by a 'kill' and resumed:
    every quantity table (sharpness' warm start included) equals the unbroken run's."""
    whole = run(tmp_path / "whole", steps=12, norm="batch", **ALL)

    class Kill(Exception):
        pass

    def stop(step):
        if step == 7:
            raise Kill

    cfg = RunConfig(dataset="synthetic", out=str(tmp_path / "broken"), log_every=4, eval_every=4, steps=12,
                    norm="batch", checkpoint_every=0.0, **ALL)
    with pytest.raises(Kill):
        train(cfg, on_step=stop)
    resumed = train(cfg)
    for q in quantities.REGISTRY:
        assert (whole.path / f"{q}.csv").read_bytes() == (resumed.path / f"{q}.csv").read_bytes(), q
    same_run(whole.path, resumed.path)


def test_each_quantity_has_its_cadence_option_and_a_table():
    for q in quantities.REGISTRY.values():
        assert q.columns[0] == "step" and set(q.keys) <= set(q.columns)
        assert hasattr(RunConfig, q.every_field) and q.option == "--" + q.every_field.replace("_", "-")
    with pytest.raises(ConfigError, match="--ics-every"):
        validate(RunConfig(ics_every=-1))


def test_a_diverged_step_measures_nothing(tmp_path):
    """The step a run diverges at has no update, so nothing of the second view is recorded for it."""
    res = run(tmp_path / "d", steps=40, lr=1e4, activation="relu", ics_every=1, landscape_every=1)
    assert res.summary["status"] == "diverged"
    at = res.summary["diverged_at_step"]
    for name in ("grad_ics", "landscape"):
        steps = pd.Series(store.read_table(res.path, name).step.unique())
        assert list(steps) == list(range(at)), name


@pytest.mark.parametrize("probe", ["fixed", "train"])
def test_rows_flushed_after_a_checkpoint_are_not_recorded_twice(tmp_path, monkeypatch, probe):
    """A checkpoint at step 6, then a flush (gradient buffer of one row: every update) that writes the
    rows measured on update 7's batch (step 6), then a kill: the resumed run measures step 6 again,
    and every table still equals the unbroken run's (no row twice)."""
    import functools

    from ics_cli import train as train_mod
    from ics_cli.probes import GradientRecorder

    monkeypatch.setattr(train_mod, "GradientRecorder", functools.partial(GradientRecorder, block=1))
    kw = dict(dataset="synthetic", log_every=2, eval_every=4, steps=12, norm="batch", probe=probe,
              **ALL)
    whole = train(RunConfig(out=str(tmp_path / "whole"), **kw))
    clock = {"offset": 0.0}
    real = train_mod.time.perf_counter
    monkeypatch.setattr(train_mod.time, "perf_counter", lambda: real() + clock["offset"])

    class Kill(Exception):
        pass

    def on_step(step):
        if step == 5:
            clock["offset"] += 1e6       # the next step's wall-clock checkpoint falls due: step 6
        if step == 8:
            raise Kill

    cfg = RunConfig(out=str(tmp_path / "broken"), checkpoint_every=1e5, **kw)
    with pytest.raises(Kill):
        train(cfg, on_step=on_step)
    ck = torch.load(next((tmp_path / "broken").iterdir()) / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 6
    resumed = train(cfg)
    for q in quantities.REGISTRY:
        assert (whole.path / f"{q}.csv").read_bytes() == (resumed.path / f"{q}.csv").read_bytes(), q
    same_run(whole.path, resumed.path)
