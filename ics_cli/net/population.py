"""Population statistics of the batch-statistics norms: PreciseBN and FrozenBN (Wu & Johnson 2021).

A batch-statistics norm (every torch `_BatchNorm`, the variants of ics_cli/net/norms.py included) keeps
running statistics, an EMA of its batch statistics, and normalizes with them in eval mode.

PreciseBN (`--bn-eval precise`, `estimate`, `Precise`): the population statistics recomputed on the
frozen model, as fvcore's `update_bn_stats` does: train-mode forward passes without gradients over
fixed batches of training images, each module's momentum set to 1 so that after each pass its
running statistics are that pass's batch statistics (mean, unbiased variance), averaged over the
batches with equal weight (a cumulative average; the variance is the mean of the batch variances,
fvcore's `_MeanOfBatchVarianceEstimator`). Batch renorm runs without its correction in these passes
(r = 1, d = 0): each pass's statistics are then those of the batch, not pulled towards the running
ones (norms.plain_batch_norm). Noise modules (--noise) are off in these passes, as at
test time. Nothing of the model changes: parameters are untouched and every running statistic,
batch count and momentum is restored, so a run's trajectory does not depend on --bn-eval.
The batches (`Precise`): the first `precise_samples` images, rounded down to whole normalization
batches, of a permutation of the training set from the run's own stream (seed + SEED_OFFSET), in
batches of the normalization batch; the same images at every evaluation.

FrozenBN (`--freeze-bn-at`, `freeze`): from the freeze step on, every batch-statistics norm runs in
eval mode in training too (it normalizes with its running statistics and no longer updates them)
while everything else trains. `models.Net.train` keeps them in eval mode through every later
`train()` / `eval()` call; `thawed` lifts that for passes that ask for batch statistics.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from . import noise, schedule
from . import norms as norms_

SEED_OFFSET = 3_000_017      # PreciseBN's image stream, apart from init, batches, probe and noise

Stats = dict[str, tuple[torch.Tensor, torch.Tensor]]    # module name -> (mean, variance)


def batch_norms(model: nn.Module) -> dict[str, _BatchNorm]:
    """Every batch-statistics norm of `model`, by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, _BatchNorm)}


def estimate(model: nn.Module, batches: Iterable[torch.Tensor]) -> Stats:
    """PreciseBN's population statistics of every batch-statistics norm over `batches`.

    mean = the average of the batches' means, var = the average of their unbiased variances (equal
    weight per batch). The model is left exactly as it was.
    """
    norms = batch_norms(model)
    acc = {name: (torch.zeros_like(m.running_mean), torch.zeros_like(m.running_var)) for name, m in norms.items()}
    momenta = {name: m.momentum for name, m in norms.items()}
    with restored(model), thawed(model), norms_.plain_batch_norm(model), torch.no_grad(), noise.mode(model, "off"):
        was_training = model.training
        for m in norms.values():
            m.momentum = 1.0        # running statistics := this pass's batch statistics
        model.train()
        try:
            for k, x in enumerate(batches):
                model(x)
                for name, m in norms.items():
                    mean, var = acc[name]
                    mean += (m.running_mean - mean) / (k + 1)
                    var += (m.running_var - var) / (k + 1)
        finally:
            for name, m in norms.items():
                m.momentum = momenta[name]
            model.train(was_training)
    return acc


@contextmanager
def restored(model: nn.Module):
    """Every running statistic and batch count of `model` as it was on entry, once the block ends."""
    saved = {name: [b.clone() for b in _buffers(m)] for name, m in batch_norms(model).items()}
    try:
        yield
    finally:
        for name, m in batch_norms(model).items():
            for b, old in zip(_buffers(m), saved[name]):
                b.copy_(old)


@contextmanager
def using(model: nn.Module, stats: Stats):
    """Running statistics replaced by `stats` inside the block (evaluation with PreciseBN's), then
    restored exactly."""
    with restored(model):
        keep(model, stats)
        yield


def keep(model: nn.Module, stats: Stats) -> None:
    """Make `stats` the running statistics of `model` (FrozenBN under PreciseBN, at the freeze step)."""
    norms = batch_norms(model)
    with torch.no_grad():
        for name, (mean, var) in stats.items():
            norms[name].running_mean.copy_(mean)
            norms[name].running_var.copy_(var)


def freeze_step(cfg) -> int | None:
    """The step from which FrozenBN holds: ceil(freeze_bn_at x steps), the product rounded to 9
    decimals first (0.7 x 10 is 7, not 7.000000000000001)."""
    return None if cfg.freeze_bn_at is None else schedule.step_at(cfg.freeze_bn_at, cfg.steps)


def freeze(model: nn.Module) -> None:
    """FrozenBN: every batch-statistics norm in eval mode from now on, whatever train() is called."""
    model.frozen_norms = True
    model.train(model.training)


def frozen(model: nn.Module) -> bool:
    return getattr(model, "frozen_norms", False)


@contextmanager
def thawed(model: nn.Module):
    """Inside the block, train() puts frozen norms in training mode again (passes that ask for batch
    statistics: PreciseBN, test evaluation with batch statistics); frozen again after it."""
    if not frozen(model):
        yield
        return
    model.frozen_norms = False
    try:
        yield
    finally:
        freeze(model)


class Precise:
    """PreciseBN's fixed images: the first `samples` (whole batches of `batch`) of a permutation of
    the training set `x_train` drawn from the stream seed + SEED_OFFSET."""

    def __init__(self, x_train: torch.Tensor, samples: int, batch: int, seed: int):
        gen = torch.Generator().manual_seed(seed + SEED_OFFSET)
        n = samples // batch * batch
        self.idx = torch.randperm(len(x_train), generator=gen)[:n].to(x_train.device)
        self.x, self.batch = x_train, batch

    def batches(self) -> Iterable[torch.Tensor]:
        return (self.x[i] for i in self.idx.split(self.batch))

    def estimate(self, model: nn.Module) -> Stats:
        return estimate(model, self.batches())


def _buffers(m: _BatchNorm) -> list[torch.Tensor]:
    return [b for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]
