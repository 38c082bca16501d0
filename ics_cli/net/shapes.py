"""The models in numbers, without building one (nothing here imports torch): VGG's and the CIFAR
ResNet's layouts, the map each conv layer's norm sees, and the checks that refuse a model, norm or
input that cannot work together (config.validate and config.check_data call them before any weight is
allocated; `ics --help` and a refused option never import torch).
"""

from __future__ import annotations

from . import norms
from ..errors import ConfigError

# VGG configurations by number of convs: convs per stage, a 2x2 max-pool after each stage
# (Simonyan & Zisserman 2015, Table 1, without the three fully connected layers).
VGG_STAGES = {8: (1, 1, 2, 2, 2), 10: (2, 2, 2, 2, 2), 13: (2, 2, 3, 3, 3), 16: (2, 2, 4, 4, 4)}


def resnet_blocks(depth: int) -> int:
    """n, the basic blocks per stage of the resnet with `depth` = 6n + 2 weighted layers."""
    return (depth - 2) // 6


CONV = ("cnn", "vgg", "resnet")    # models whose hidden layers see (N, C, H, W)


def check(cfg) -> None:
    """Refuse a model/option combination that makes no sense (called by config.validate)."""
    depth = cfg.hidden_depth
    if cfg.model == "vgg" and depth not in VGG_STAGES:
        raise ConfigError(f"--depth {depth}: --model vgg has one of VGG's configurations of "
                          f"{', '.join(map(str, VGG_STAGES))} convs (A, B, D, E); leave --depth out for 8")
    if cfg.model == "resnet" and (depth < 8 or (depth - 2) % 6):
        raise ConfigError(f"--depth {depth}: --model resnet has 6n+2 weighted layers (n basic blocks per "
                          f"stage), e.g. 8, 14, 20, 32, 44, 56, 110; leave --depth out for 20")
    if cfg.model == "resmlp" and depth < 2:
        raise ConfigError(f"--depth {depth}: --model resmlp needs at least 2 hidden layers (hidden1 projects "
                          f"the input to the width, residual blocks follow)")
    if cfg.model == "dln" and cfg.dataset != "gaussian-linear":
        raise ConfigError(f"--model dln (a deep linear network for regression) needs --dataset gaussian-linear, "
                          f"got '{cfg.dataset}'")
    if cfg.model == "dln" and (cfg.activation != "identity" or cfg.hidden_depth < 2):
        raise ConfigError("--model dln is linear with at least 2 layers: give --activation identity and "
                          f"--depth >= 2 (got --activation {cfg.activation}, --depth {cfg.hidden_depth})")
    if cfg.dataset == "gaussian-linear" and cfg.model not in ("dln", "mlp", "resmlp"):
        raise ConfigError(f"--dataset gaussian-linear holds 10-number vectors, not images: use --model dln, "
                          f"mlp or resmlp, not '{cfg.model}'")


def conv_maps(cfg, input_shape: tuple[int, int, int]) -> list[tuple[int, int]]:
    """The (H, W) of the map each hidden layer's norm sees (empty for a model without convs)."""
    h, w = input_shape[1:]
    maps = []
    if cfg.model == "cnn":
        for _ in range(min(cfg.hidden_depth, 64)):    # stride 2, padding 1 halves the map, rounding up;
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1     # after 64 halvings every map is 1x1
            maps.append((h, w))
    elif cfg.model == "vgg":
        for convs in VGG_STAGES.get(cfg.hidden_depth, ()):
            maps += [(h, w)] * convs
            h, w = -(-h // 2), -(-w // 2)             # the stage's max-pool (ceil_mode)
    elif cfg.model == "resnet":
        convs = 2 * resnet_blocks(cfg.hidden_depth)
        maps = [(h, w)] * (1 + convs)                 # the stem and stage 1
        for _ in range(2):                            # stages 2 and 3: the first conv's stride 2
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
            maps += [(h, w)] * convs
    return maps


def check_input(cfg, input_shape: tuple[int, int, int]) -> None:
    """Refuse images too small for the model (called by config.check_data)."""
    if cfg.model == "vgg":
        h, w = conv_maps(cfg, input_shape)[-1]
        if h < 2 or w < 2:
            hi, wi = input_shape[1:]
            raise ConfigError(f"--model vgg: on {hi}x{wi} images the last stage's maps are {h}x{w}, where a "
                              f"3x3 conv sees one pixel; it needs images of at least 17x17 (CIFAR-10's 32x32, "
                              f"MNIST's 28x28); use --model cnn or a dataset with larger images")


def check_norm(cfg) -> None:
    """Refuse combinations that make no sense, naming what is allowed."""
    norm, conv = norms.get(cfg.norm), cfg.model in CONV
    if not conv and not norm.mlp:
        allowed = ", ".join(n for n, v in norms.REGISTRY.items() if v.mlp)
        raise ConfigError(f"--norm {cfg.norm} is undefined on the {cfg.model} (one value per unit per sample); "
                          f"use --model cnn, or one of: {allowed}")
    if conv and not norm.cnn:
        allowed = ", ".join(n for n, v in norms.REGISTRY.items() if v.cnn)
        raise ConfigError(f"--norm {cfg.norm} is undefined on the {cfg.model}; use one of: {allowed}")
    if cfg.norm == "group" and cfg.hidden_width % cfg.groups:
        divisors = [d for d in range(1, cfg.hidden_width + 1) if cfg.hidden_width % d == 0]
        raise ConfigError(f"--groups {cfg.groups} does not divide the width {cfg.hidden_width}; "
                          f"allowed: {', '.join(map(str, divisors))}")
    if norm.batch_stats and not conv:
        for option, size in (norm_batch_option(cfg), ("--probe-size", cfg.probe_size)):
            if size < 2:
                raise ConfigError(f"{option} {size}: --norm {cfg.norm} on the {cfg.model} needs at least 2 "
                                  f"samples per batch (batch statistics of one value are undefined)")
    if cfg.norm == "ghost-batch":
        option, size = norm_batch_option(cfg)
        divisors = [d for d in range(1, size + 1) if size % d == 0 and (conv or d > 1)]
        if size % cfg.ghost_size or (cfg.ghost_size == 1 and not conv):
            problem = ("a ghost of 1 sample has no batch statistics on the " + cfg.model if cfg.ghost_size == 1
                       else f"does not divide {option} {size}")
            raise ConfigError(f"--ghost-size {cfg.ghost_size}: {problem}; allowed: {', '.join(map(str, divisors))}")
    if not norm.batch_stats:
        with_stats = ", ".join(n for n, v in norms.REGISTRY.items() if v.batch_stats)
        for option, given in (("--bn-eval " + cfg.bn_eval, cfg.bn_eval != "ema"),
                              (f"--freeze-bn-at {cfg.freeze_bn_at}", cfg.freeze_bn_at is not None)):
            if given:
                raise ConfigError(f"{option}: --norm {cfg.norm} has no batch statistics; it applies to "
                                  f"--norm {with_stats}")


def norm_batch_option(cfg) -> tuple[str, int]:
    """The option that sets how many samples one set of batch statistics covers, and its value."""
    return ("--micro-batch", cfg.micro_batch) if cfg.micro_batch else ("--batch-size", cfg.batch_size)


def check_norm_input(cfg, input_shape: tuple[int, int, int]) -> None:
    """Refuse a CNN whose smallest feature map leaves a norm fewer than 2 values to normalize."""
    maps = conv_maps(cfg, input_shape)
    if not maps:
        return
    norm = norms.get(cfg.norm)
    h, w = min(maps, key=lambda m: m[0] * m[1])
    if cfg.norm == "instance" and h * w < 2:
        raise ConfigError(f"--norm instance: the last conv map is {h}x{w}, one value per channel; "
                          f"use a smaller --depth or larger images")
    if norm.batch_stats:
        sizes = [norm_batch_option(cfg), ("--probe-size", cfg.probe_size)]
        if cfg.norm == "ghost-batch":
            sizes.append(("--ghost-size", cfg.ghost_size))
        for option, size in sizes:
            if size * h * w < 2:
                raise ConfigError(f"{option} {size}: --norm {cfg.norm} needs at least 2 values per channel, "
                                  f"but the last conv map is {h}x{w}; use {option} 2 or more")
