"""Normalization variants. One registry entry each; they differ in *what is normalized*.

Every variant computes (x - E[x]) / sqrt(Var[x] + eps) and then an affine map gamma * x + beta; the
only question is which axes E and Var reduce over. For an activation of shape (N, C) (MLP) or
(N, C, H, W) (CNN):

| variant      | normalizes over | statistics per      |
|--------------|-----------------|---------------------|
| batch        | N (and H, W)    | unit / channel      |
| layer        | C (and H, W)    | sample              |
| instance     | H, W            | sample and channel  |
| group        | C/G (and H, W)  | sample and group    |

Adding a variant is one `Norm(...)` entry in REGISTRY.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .errors import ConfigError


class BatchNormNoGrad(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose backward pass treats the batch mean and variance as constants.

    The forward pass equals nn.BatchNorm1d/2d. In training mode the batch statistics are detached,
    so the gradient ignores how they depend on the input: the ablation behind Ioffe & Szegedy's
    Sec. 2 argument that normalization has to be differentiable with respect to the batch.
    Running statistics follow the same rules as torch's batch norm (unbiased variance, momentum).
    """

    def _check_input_dim(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"expected a 2D or 4D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        use_batch = self.training or not self.track_running_stats
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if use_batch:
            dims = [0] + list(range(2, x.dim()))
            var, mean = torch.var_mean(x.detach(), dim=dims, correction=0)
            if self.training and self.track_running_stats:
                n = x.numel() // x.shape[1]
                self.num_batches_tracked.add_(1)
                m = self.momentum
                with torch.no_grad():
                    self.running_mean.lerp_(mean, m)
                    self.running_var.lerp_(var * n / max(n - 1, 1), m)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def _batch(c: int, conv: bool, cfg) -> nn.Module:
    cls = nn.BatchNorm2d if conv else nn.BatchNorm1d
    return cls(c, eps=cfg.eps, momentum=cfg.bn_momentum)


def _batch_nograd(c: int, conv: bool, cfg) -> nn.Module:
    return BatchNormNoGrad(c, eps=cfg.eps, momentum=cfg.bn_momentum)


def _layer(c: int, conv: bool, cfg) -> nn.Module:
    # Over C, H, W per sample; GroupNorm with one group is exactly that, with per-channel gamma/beta.
    return nn.GroupNorm(1, c, eps=cfg.eps) if conv else nn.LayerNorm(c, eps=cfg.eps)


def _instance(c: int, conv: bool, cfg) -> nn.Module:
    return nn.InstanceNorm2d(c, eps=cfg.eps, affine=True)


def _group(c: int, conv: bool, cfg) -> nn.Module:
    return nn.GroupNorm(cfg.groups, c, eps=cfg.eps)


@dataclass(frozen=True)
class Norm:
    name: str
    over: str                 # the axes one set of statistics is taken over
    per: str                  # one set of statistics per ...
    build: Callable[[int, bool, object], nn.Module] | None
    description: str
    mlp: bool = True          # defined on (N, C) features
    cnn: bool = True          # defined on (N, C, H, W) channels
    batch_stats: bool = False  # statistics come from the mini-batch (needs >= 2 values per unit)
    affine: bool = True       # has a beta, so the bias before it is redundant


REGISTRY: dict[str, Norm] = {n.name: n for n in [
    Norm("none", "-", "-", None, "no normalization (the baseline)", affine=False),
    Norm("batch", "N (and H, W)", "unit / channel", _batch,
         "batch norm (Ioffe & Szegedy 2015): batch statistics in training, running ones in eval",
         batch_stats=True),
    Norm("batch-nograd", "N (and H, W)", "unit / channel", _batch_nograd,
         "batch norm with the batch mean/variance detached in the backward pass (ablation)",
         batch_stats=True),
    Norm("layer", "C (and H, W)", "sample", _layer, "layer norm (Ba et al. 2016)"),
    Norm("instance", "H, W", "sample and channel", _instance,
         "instance norm (Ulyanov et al. 2016); undefined on an MLP", mlp=False),
    Norm("group", "C/G (and H, W)", "sample and group", _group,
         "group norm (Wu & He 2018) with --groups groups"),
]}


def get(name: str) -> Norm:
    if name not in REGISTRY:
        raise ConfigError(f"--norm '{name}' is not one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def build(name: str, channels: int, conv: bool, cfg) -> nn.Module:
    norm = get(name)
    return nn.Identity() if norm.build is None else norm.build(channels, conv, cfg)


def check(cfg) -> None:
    """Refuse combinations that make no sense, naming what is allowed."""
    from .models import CONV

    norm, conv = get(cfg.norm), cfg.model in CONV
    if not conv and not norm.mlp:
        allowed = ", ".join(n for n, v in REGISTRY.items() if v.mlp)
        raise ConfigError(f"--norm {cfg.norm} is undefined on the {cfg.model} (one value per unit per sample); "
                          f"use --model cnn, or one of: {allowed}")
    if conv and not norm.cnn:
        allowed = ", ".join(n for n, v in REGISTRY.items() if v.cnn)
        raise ConfigError(f"--norm {cfg.norm} is undefined on the {cfg.model}; use one of: {allowed}")
    if cfg.norm == "group" and cfg.hidden_width % cfg.groups:
        divisors = [d for d in range(1, cfg.hidden_width + 1) if cfg.hidden_width % d == 0]
        raise ConfigError(f"--groups {cfg.groups} does not divide the width {cfg.hidden_width}; "
                          f"allowed: {', '.join(map(str, divisors))}")
    if norm.batch_stats and not conv:
        for option, size in (("--batch-size", cfg.batch_size), ("--probe-size", cfg.probe_size)):
            if size < 2:
                raise ConfigError(f"{option} {size}: --norm {cfg.norm} on the {cfg.model} needs at least 2 "
                                  f"samples per batch (batch statistics of one value are undefined)")


def check_input(cfg, input_shape: tuple[int, int, int]) -> None:
    """Refuse a CNN whose smallest feature map leaves a norm fewer than 2 values to normalize."""
    from .models import conv_maps

    maps = conv_maps(cfg, input_shape)
    if not maps:
        return
    norm = get(cfg.norm)
    h, w = min(maps, key=lambda m: m[0] * m[1])
    if cfg.norm == "instance" and h * w < 2:
        raise ConfigError(f"--norm instance: the last conv map is {h}x{w}, one value per channel; "
                          f"use a smaller --depth or larger images")
    if norm.batch_stats:
        for option, size in (("--batch-size", cfg.batch_size), ("--probe-size", cfg.probe_size)):
            if size * h * w < 2:
                raise ConfigError(f"{option} {size}: --norm {cfg.norm} needs at least 2 values per channel, "
                                  f"but the last conv map is {h}x{w}; use a batch of 2 or more")


def table() -> list[dict]:
    """The registry as rows, for `ics norms`."""
    return [{"norm": n.name, "normalizes over": n.over, "statistics per": n.per,
             "mlp": "yes" if n.mlp else "no", "cnn": "yes" if n.cnn else "no",
             "description": n.description} for n in REGISTRY.values()]
