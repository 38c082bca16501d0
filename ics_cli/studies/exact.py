"""Exact checks: modules built directly and fed real mnist-5k training batches, no training.

Each normalization promises zero mean and unit variance over its own sets of values (ics_cli/net/norms.py
says which); `sets` writes that promise out independently, as a reshape to (sets, values per set),
so a check compares what a module does with what it claims, not the module with itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..net import norms
from ..config import RunConfig, validate

BATCHES = 3               # training batches each check is run on
BATCH_SIZE = 60
SEED = 0

if TYPE_CHECKING:      # torch is imported where it runs: a study folder is read without it
    import torch
    from torch import nn

    from ..net import models


def batches(n: int = BATCHES, size: int = BATCH_SIZE, seed: int = SEED) -> list[torch.Tensor]:
    """The first n mini-batches of a fixed shuffle of the mnist-5k training images (standardized)."""
    from ..net import data
    import torch

    ds = data.load("mnist-5k", device="cpu")
    perm = torch.randperm(len(ds.x_train), generator=torch.Generator().manual_seed(seed))
    return [ds.x_train[perm[i * size:(i + 1) * size]] for i in range(n)]


def sets(x: torch.Tensor, norm: str, groups: int) -> torch.Tensor:
    """x (N, C) or (N, C, H, W) as (sets, values): one row per set of values a norm standardizes.

    batch: per unit over N (and H, W); layer: per sample over C (and H, W); instance: per sample and
    channel over H, W; group: per sample and group over C/G (and H, W).
    """
    n, c = x.shape[:2]
    if norm in ("batch", "batch-nograd"):
        return x.transpose(0, 1).reshape(c, -1)
    if norm == "layer":
        return x.reshape(n, -1)
    if norm == "instance":
        return x.reshape(n * c, -1)
    if norm == "group":
        return x.reshape(n * groups, -1)
    raise ValueError(f"no sets for norm '{norm}'")


def build(cfg: RunConfig, seed: int = SEED) -> tuple[RunConfig, models.Net]:
    """The model of cfg at init, with every norm's gamma and beta set to random non-trivial values.

    Random gamma/beta make the checks meaningful: they are divided out again before comparing.
    """
    from ..net import data
    from ..net import models
    import torch

    cfg = validate(cfg)
    ds = data.load(cfg.dataset, device="cpu")
    torch.manual_seed(seed)
    model = models.build(cfg, ds.shape, ds.num_classes)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for block in model.blocks.values():
            if getattr(block.norm, "weight", None) is not None:
                block.norm.weight.copy_(torch.rand(block.norm.weight.shape, generator=gen) * 1.5 + 0.5)
                block.norm.bias.copy_(torch.randn(block.norm.bias.shape, generator=gen))
    return cfg, model.train()


def norm_io(model: models.Net, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """(norm module, its input, its output) for every hidden layer, from one training-mode forward."""
    import torch

    seen, hooks = [], []
    for block in model.blocks.values():
        hooks.append(block.norm.register_forward_hook(
            lambda m, inp, out: seen.append((m, inp[0].detach(), out.detach()))))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def unaffine(module: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """(y - beta) / gamma per channel: the normalized value before the affine map."""
    shape = (1, -1) + (1,) * (y.dim() - 2)
    return (y - module.bias.view(shape)) / module.weight.view(shape)


def standardization(cfg: RunConfig, xs: list[torch.Tensor]) -> dict[str, float]:
    """Worst deviations from the promise over every layer and batch.

    mean: max |mean| of a set of normalized values; var: max |var - v/(v+eps)|, v the variance of
    the set's inputs (with eps the promised variance is v/(v+eps), not 1); var_raw: max |var - 1|.
    Population variances (divide by the count), as in the papers.
    """
    import torch

    cfg, model = build(cfg)
    worst = {"mean": 0.0, "var": 0.0, "var_raw": 0.0}
    for x in xs:
        for module, z, y in norm_io(model, x):
            v_in = torch.var(sets(z.double(), cfg.norm, cfg.groups), dim=1, correction=0)
            s = sets(unaffine(module, y).double(), cfg.norm, cfg.groups)
            var, mean = torch.var_mean(s, dim=1, correction=0)
            worst["mean"] = max(worst["mean"], mean.abs().max().item())
            worst["var"] = max(worst["var"], (var - v_in / (v_in + cfg.eps)).abs().max().item())
            worst["var_raw"] = max(worst["var_raw"], (var - 1).abs().max().item())
    return worst


def preactivations(cfg: RunConfig, x: torch.Tensor) -> list[torch.Tensor]:
    """Every hidden layer's Linear output (the input to its norm) on x, in float64."""
    cfg, model = build(cfg)
    model = model.double()
    return [z for _, z, _ in norm_io(model, x.double())]


def batch_norm(cfg: RunConfig, width: int) -> nn.Module:
    """The project's batch norm for an MLP layer, in float64 and training mode."""
    return norms.build("batch", width, False, cfg).double().train()


def identity_error(z: torch.Tensor, cfg: RunConfig, gamma: str) -> tuple[float, int]:
    """Batch norm with beta = batch mean and gamma = batch var ('var') or sqrt(var + eps) ('sqrt'):
    (max |BN(z) - z|, number of units where it is within 1e-5)."""
    import torch

    var, mean = torch.var_mean(z, dim=0, correction=0)
    bn = batch_norm(cfg, z.shape[1])
    with torch.no_grad():
        bn.weight.copy_(var if gamma == "var" else torch.sqrt(var + cfg.eps))
        bn.bias.copy_(mean)
        err = (bn(z) - z).abs().amax(dim=0)
    return err.max().item(), int((err <= 1e-5).sum())


def bias_effect(z: torch.Tensor, cfg: RunConfig, scale: float = 5.0, seed: int = SEED) -> float:
    """max |BN(z + b) - BN(z)| for a constant per-unit bias b ~ N(0, scale²), in training mode."""
    import torch

    b = torch.randn(z.shape[1], generator=torch.Generator().manual_seed(seed), dtype=z.dtype) * scale
    bn = batch_norm(cfg, z.shape[1])
    with torch.no_grad():
        return (bn(z + b) - bn(z)).abs().max().item()
