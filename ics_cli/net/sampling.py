"""Which examples one update sees, and in how many passes: mini-batch samplers and micro-batches.

Samplers (`--batch-sampler`), each an endless iterator of training-set indices drawn from one seeded
generator; `skip` batches are drawn and passed over, so a resumed run continues with exactly the
batches an unbroken run sees:
- `iid` (`batches`): each epoch a fresh permutation of the training set, cut into batches, the
  remainder dropped;
- `paired` (`paired`): Ioffe 2017's non-i.i.d. batches. Each batch independently: batch_size/2
  distinct classes drawn uniformly (a permutation of the classes, its first batch_size/2), then two
  distinct images drawn uniformly from each chosen class's training images; the two images of a
  class sit next to each other in the batch.
- `two-class` (`few_classes` with 2): non-i.i.d. in the sense of Ioffe 2017's ImageNet batches, which
  covered 16 of 1,000 classes: each batch independently, 2 distinct classes drawn uniformly (the first
  2 of a random permutation of the classes), then batch_size/2 distinct images drawn uniformly from
  each (the first batch_size/2 of a random permutation of the class's training images); the images
  of a class sit next to each other in the batch.

Micro-batches (`--micro-batch M`, `forward_backward`): the batch goes through the network as
consecutive slices of M samples, each normalized over itself (batch norm's statistics and its
running-statistics update per slice), each followed by its own backward pass. Slice c's loss enters
with the weight that makes the accumulated gradient the gradient of the whole batch's loss: the
batch's loss is S / f(n), S the sum of its n per-sample losses and f(n) = n for classification (a
mean), 1 for regression (a sum; ics_cli/net/tasks.py), so slice c contributes S_c / f(n).
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from . import tasks


def batches(n: int, batch_size: int, gen: torch.Generator, skip: int = 0) -> Iterator[torch.Tensor]:
    """Endless shuffled mini-batch indices; each epoch is a fresh permutation, the rest dropped.

    `skip` batches are passed over (their permutations still drawn), so a resumed run continues
    with exactly the batches an unbroken run would see.
    """
    per_epoch = n // batch_size
    while True:
        perm = torch.randperm(n, generator=gen)
        for a in range(0, per_epoch * batch_size, batch_size):
            if skip:
                skip -= 1
                continue
            yield perm[a:a + batch_size]


def paired(y: torch.Tensor, batch_size: int, num_classes: int, gen: torch.Generator,
           skip: int = 0) -> Iterator[torch.Tensor]:
    """Endless non-i.i.d. batches: batch_size/2 distinct classes x 2 distinct images of each.

    `y` holds the training labels; every class needs at least 2 images (config.check_data).
    Indices come out class by class: [a1, a2, b1, b2, ...].
    """
    y = y.cpu()
    order = torch.argsort(y, stable=True)                 # training indices grouped by class
    counts = torch.bincount(y, minlength=num_classes)
    starts = counts.cumsum(0) - counts
    k = batch_size // 2
    while True:
        classes = torch.randperm(num_classes, generator=gen)[:k]
        u = torch.rand(k, 2, generator=gen, dtype=torch.float64)
        n = counts[classes]
        first = (u[:, 0] * n).long()                      # uniform in [0, n)
        second = (u[:, 1] * (n - 1)).long()               # uniform in [0, n) without `first`
        second += (second >= first).long()
        if skip:
            skip -= 1
            continue
        yield order[starts[classes, None] + torch.stack([first, second], 1)].flatten()


def few_classes(y: torch.Tensor, batch_size: int, classes: int, num_classes: int, gen: torch.Generator,
                skip: int = 0) -> Iterator[torch.Tensor]:
    """Endless non-i.i.d. batches: `classes` distinct classes x batch_size/classes distinct images of each.

    `y` holds the training labels; every class needs batch_size/classes images (config.check_data).
    Indices come out class by class: [a1, ..., am, b1, ..., bm, ...].
    """
    y = y.cpu()
    order = torch.argsort(y, stable=True)                 # training indices grouped by class
    counts = torch.bincount(y, minlength=num_classes).tolist()
    starts = [sum(counts[:c]) for c in range(num_classes)]
    per = batch_size // classes
    while True:
        chosen = torch.randperm(num_classes, generator=gen)[:classes].tolist()
        picks = [starts[c] + torch.randperm(counts[c], generator=gen)[:per] for c in chosen]
        if skip:
            skip -= 1
            continue
        yield order[torch.cat(picks)]


def sampler(cfg, y: torch.Tensor, num_classes: int, gen: torch.Generator, skip: int = 0) -> Iterator[torch.Tensor]:
    """The batches of cfg.batch_sampler over a training set with labels `y`."""
    if cfg.batch_sampler == "paired":
        return paired(y, cfg.batch_size, num_classes, gen, skip)
    if cfg.batch_sampler == "two-class":
        return few_classes(y, cfg.batch_size, 2, num_classes, gen, skip)
    return batches(len(y), cfg.batch_size, gen, skip)


def forward_backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str,
                     micro: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One update's passes: forward and backward of the batch, whole or in micro-batches of `micro`.

    Gradients are accumulated into the parameters' .grad (zero them first). Returns the batch's
    logits and its loss (detached device tensors), the loss being the sum of the slices' weighted
    losses under micro-batches (module docstring).
    """
    if micro is None or micro >= len(x):
        logits = model(x)
        loss = tasks.loss(task, logits, y)
        loss.backward()
        return logits.detach(), loss.detach()
    scale = tasks.sample_sum(task, 1.0, len(x))           # f(n): the batch's loss is S / f(n)
    outs, total = [], torch.zeros((), device=x.device)
    for xc, yc in zip(x.split(micro), y.split(micro)):
        out = model(xc)
        loss = tasks.loss(task, out, yc, reduction="sum") / scale
        loss.backward()
        outs.append(out.detach())
        total += loss.detach()
    return torch.cat(outs), total
