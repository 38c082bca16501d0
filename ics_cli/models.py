"""The networks: an MLP and a small CNN whose hidden layers are Linear/Conv -> Norm -> Activation.

Hidden layers are named `hidden1`, `hidden2`, ...; each is a `Block` with submodules `linear`,
`norm` and `act`, the three recording sites. The classifier is `output`. All hidden layers have the
same width, so per-unit statistics of every layer fit one (layers, sites, units) buffer.
"""

from __future__ import annotations

import math

from torch import nn

from . import norms

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity}
SITES = ("linear", "norm", "act")


class Block(nn.Module):
    def __init__(self, linear: nn.Module, norm: nn.Module, act: nn.Module):
        super().__init__()
        self.linear, self.norm, self.act = linear, norm, act

    def forward(self, x):
        return self.after_linear(self.linear(x))

    def after_linear(self, z):
        """The block from its Linear/Conv output on: the norm, then the nonlinearity."""
        return self.act(self.norm(z))


class Net(nn.Module):
    """Hidden blocks, then a head. `conv` says whether the blocks see (N, C, H, W)."""

    def __init__(self, blocks: list[Block], head: nn.Module, conv: bool):
        super().__init__()
        self.conv = conv
        for i, block in enumerate(blocks, 1):
            self.add_module(f"hidden{i}", block)
        self.pool = nn.AdaptiveAvgPool2d(1) if conv else nn.Identity()
        self.output = head

    @property
    def blocks(self) -> dict[str, Block]:
        return {name: m for name, m in self.named_children() if name.startswith("hidden")}

    def inputs(self, x):
        """What the first block receives: images flattened for an MLP, as they are for a CNN."""
        return x if self.conv else x.flatten(1)

    def forward(self, x):
        x = self.inputs(x)
        for block in self.blocks.values():
            x = block(x)
        return self.output(self.pool(x).flatten(1))


def _init(layer: nn.Module, cfg, activation: str | None) -> None:
    """Initialize one layer's weight, biases to zero.

    `xavier` (default): Glorot uniform with the gain of the following nonlinearity (Glorot & Bengio
    2010, designed for sigmoid/tanh nets). `kaiming`: He normal (fan_in). `gaussian`: N(0, init_std^2),
    the "small random Gaussian values" of Ioffe & Szegedy. `torch`: PyTorch's default, kept as is.
    """
    w = layer.weight
    if cfg.init == "xavier":
        nn.init.xavier_uniform_(w, gain=nn.init.calculate_gain(activation) if activation not in (None, "identity") else 1.0)
    elif cfg.init == "kaiming":
        nn.init.kaiming_normal_(w, nonlinearity=activation if activation == "relu" else "linear")
    elif cfg.init == "gaussian":
        nn.init.normal_(w, 0.0, cfg.init_std)
    if layer.bias is not None and cfg.init != "torch":
        nn.init.zeros_(layer.bias)


def _plain(cfg, input_shape: tuple[int, int, int], num_classes: int) -> Net:
    """mlp and cnn: `depth` blocks of Linear/Conv -> Norm -> Activation, then a linear head."""
    width, conv = cfg.hidden_width, cfg.model == "cnn"
    bias = not norms.get(cfg.norm).affine   # beta replaces the bias before the norm
    blocks, fan_in = [], input_shape[0] if conv else math.prod(input_shape)
    for _ in range(cfg.hidden_depth):
        if conv:
            linear = nn.Conv2d(fan_in, width, 3, stride=2, padding=1, bias=bias)
        else:
            linear = nn.Linear(fan_in, width, bias=bias)
        _init(linear, cfg, cfg.activation)
        blocks.append(Block(linear, norms.build(cfg.norm, width, conv, cfg), ACTIVATIONS[cfg.activation]()))
        fan_in = width
    head = nn.Linear(width, num_classes)
    _init(head, cfg, None)
    return Net(blocks, head, conv)


# One builder per --model: (cfg, (C, H, W), outputs) -> Net.
BUILDERS = {"mlp": _plain, "cnn": _plain}


def build(cfg, input_shape: tuple[int, int, int], num_classes: int) -> Net:
    """The model named by cfg.model, for inputs of shape (C, H, W)."""
    return BUILDERS[cfg.model](cfg, input_shape, num_classes)


def check(cfg) -> None:
    """Refuse a model/option combination that makes no sense (called by config.validate)."""


def weighted_layers(model: Net) -> dict[str, nn.Parameter]:
    """The weight of each layer's Linear/Conv, hidden layers then `output`."""
    layers = {name: block.linear.weight for name, block in model.blocks.items()}
    layers["output"] = model.output.weight
    return layers
