"""The networks, whose hidden layers are Linear/Conv -> Norm -> Activation blocks.

Hidden layers are named `hidden1`, `hidden2`, ...; each is a `Block` with submodules `linear`,
`norm` and `act`, the three recording sites. The classifier is `output`. Every model's hidden layers
have the same width except the resnet's (w, 2w, 4w by stage); the recorder pads narrower layers.

- `mlp`, `cnn`: plain blocks (the cnn's convs 3x3 with stride 2), then global average pooling for
  the cnn, then a linear head.
- `resmlp`: `hidden1` projects the flattened input to the width (a plain block); hidden2..K are
  residual blocks in the post-activation form of He et al. 2016 ("Deep residual learning", the
  ResNet of Bjorck et al. 2018): x <- act(x + norm(linear(x))), an identity skip around one layer.
  The `act` site is then the block's output, the residual stream itself.
- `vgg`: VGG (Simonyan & Zisserman 2015) for 32x32 images, scaled down: 3x3 convs (stride 1,
  padding 1) -> norm -> act in five stages, a 2x2 max-pool after each (inside the stage's last
  Block, after `act`: the sites are unchanged), then a linear head on the 1x1 map (as in the public
  CIFAR reimplementations, e.g. kuangliu/pytorch-cifar). --depth picks the configuration: 8 (A, the
  default), 10 (B), 13 (D), 16 (E) convs. Every conv has the same --width channels (default 32, not
  64..512), so every layer's per-unit statistics fit the recorder's one buffer and it trains on a
  CPU. Pools round up (ceil_mode), which changes nothing for 32x32 and lets 28x28 MNIST through.
- `resnet`: the CIFAR ResNet of He et al. 2016 ("Deep residual learning", Sec. 4.2). `hidden1` is the
  stem, a 3x3 conv to w = --width channels (default 16); then 3 stages of n basic blocks, 2n convs of
  w, 2w, 4w channels, the first conv of stages 2 and 3 with stride 2; global average pooling, a linear
  head: 6n + 2 weighted layers = --depth (20, 56, 110: n = 3, 9, 18). A basic block is the pair
  (hidden2k, hidden2k+1) = (A, B): out = act(x' + norm_B(conv_B(act(norm_A(conv_A(x)))))), x' the
  parameter-free shortcut of option A: x itself, or at a stage's first block x subsampled with stride
  2 and zero-padded with the new channels. B's `act` site is the block output, the residual stream,
  as for resmlp. He et al. initialize with `--init kaiming`.

With `--noise santurkar` every Block's `norm` slot holds the norm followed by the noise
(noise.Noisy), so the `norm` site records the noisy activation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import noise, norms
from .shapes import VGG_STAGES, resnet_blocks

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity}
SITES = ("linear", "norm", "act")


class Block(nn.Module):
    """linear -> norm -> act (-> pool). `residual`: act(x + norm(linear(x))), x the block's input."""

    def __init__(self, linear: nn.Module, norm: nn.Module, act: nn.Module, pool: nn.Module | None = None,
                 residual: bool = False):
        super().__init__()
        self.linear, self.norm, self.act = linear, norm, act
        self.pool = pool or nn.Identity()
        self.residual = residual

    def forward(self, x):
        return self.after_linear(self.linear(x), x if self.residual else None)

    def after_linear(self, z, skip=None):
        """The block from its Linear/Conv output on: the norm, (the skip,) the nonlinearity, (the pool).
        A residual block needs its input as `skip`."""
        h = self.norm(z)
        return self.pool(self.act(h if skip is None else h + skip))


class Net(nn.Module):
    """Hidden blocks, then a head. `conv` says whether the blocks see (N, C, H, W)."""

    def __init__(self, blocks: list[Block], head: nn.Module, conv: bool):
        super().__init__()
        self.conv = conv
        for i, block in enumerate(blocks, 1):
            self.add_module(f"hidden{i}", block)
        self.pool = nn.AdaptiveAvgPool2d(1) if conv else nn.Identity()
        self.output = head

    frozen_norms = False    # FrozenBN (population.freeze): batch-statistics norms stay in eval mode

    def train(self, mode: bool = True) -> "Net":
        """As nn.Module.train, except that under FrozenBN every batch-statistics norm stays in eval mode."""
        super().train(mode)
        if self.frozen_norms:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.training = False
        return self

    @property
    def blocks(self) -> dict[str, Block]:
        return {name: m for name, m in self.named_children() if name.startswith("hidden")}

    def inputs(self, x):
        """What the first block receives: images flattened for an MLP, as they are for a CNN."""
        return x if self.conv else x.flatten(1)

    def hidden(self, x=None, z1=None):
        """The last hidden block's output, from the images x, or from z1, the first block's
        Linear/Conv output (what the recorder's eval-mode pass starts from)."""
        first, *rest = self.blocks.values()
        h = first(self.inputs(x)) if z1 is None else first.after_linear(z1)
        for block in rest:
            h = block(h)
        return h

    def forward(self, x):
        return self.output(self.pool(self.hidden(x)).flatten(1))


def shortcut(x: torch.Tensor, channels: int, stride: int) -> torch.Tensor:
    """He et al.'s option A, without parameters: x itself; where the block downsamples, every
    stride-th pixel, and zeros for the channels the block adds (after x's own)."""
    if stride > 1:
        x = x[:, :, ::stride, ::stride]
    extra = channels - x.shape[1]
    return nn.functional.pad(x, (0, 0, 0, 0, 0, extra)) if extra else x


class ResNet(Net):
    """hidden1 the stem, then basic blocks of two hidden layers each (He et al. 2016): for the pair
    (A, B), out = B.after_linear(B.linear(A(x)), skip=shortcut(x)): B's norm, the skip, B's act."""

    def hidden(self, x=None, z1=None):
        stem, *rest = self.blocks.values()
        h = stem(self.inputs(x)) if z1 is None else stem.after_linear(z1)
        for a, b in zip(rest[::2], rest[1::2]):
            skip = shortcut(h, b.linear.out_channels, a.linear.stride[0])
            h = b.after_linear(b.linear(a(h)), skip)
        return h


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


def _norm(cfg, width: int, conv: bool, layer: int) -> nn.Module:
    """The norm slot of hidden layer `layer` (1-based): the norm, then the noise if --noise asks."""
    norm, extra = norms.build(cfg.norm, width, conv, cfg), noise.build(cfg, layer)
    return norm if extra is None else noise.Noisy(norm, extra)


def _block(cfg, fan_in: int, layer: int, conv: bool, stride: int = 1, width: int | None = None, **kw) -> Block:
    """Hidden layer `layer`: a Linear (or 3x3 Conv) from fan_in to `width` (default: the width), its
    norm slot, the act."""
    width = width or cfg.hidden_width
    bias = not norms.get(cfg.norm).affine   # beta replaces the bias before the norm
    if conv:
        linear = nn.Conv2d(fan_in, width, 3, stride=stride, padding=1, bias=bias)
    else:
        linear = nn.Linear(fan_in, width, bias=bias)
    _init(linear, cfg, cfg.activation)
    return Block(linear, _norm(cfg, width, conv, layer), ACTIVATIONS[cfg.activation](), **kw)


def _head(cfg, num_classes: int, fan_in: int | None = None) -> nn.Linear:
    head = nn.Linear(fan_in or cfg.hidden_width, num_classes)
    _init(head, cfg, None)
    return head


def _plain(cfg, input_shape: tuple[int, int, int], num_classes: int) -> Net:
    """mlp and cnn: `depth` blocks of Linear/Conv -> Norm -> Activation, then a linear head."""
    conv = cfg.model == "cnn"
    fan_ins = [input_shape[0] if conv else math.prod(input_shape)] + [cfg.hidden_width] * (cfg.hidden_depth - 1)
    blocks = [_block(cfg, f, i, conv, stride=2) for i, f in enumerate(fan_ins, 1)]
    return Net(blocks, _head(cfg, num_classes), conv)


def _resmlp(cfg, input_shape: tuple[int, int, int], num_classes: int) -> Net:
    """hidden1 projects the input to the width; hidden2..K: x <- act(x + norm(linear(x)))."""
    blocks = [_block(cfg, math.prod(input_shape), 1, conv=False)]
    blocks += [_block(cfg, cfg.hidden_width, i, conv=False, residual=True) for i in range(2, cfg.hidden_depth + 1)]
    return Net(blocks, _head(cfg, num_classes), conv=False)


def _vgg(cfg, input_shape: tuple[int, int, int], num_classes: int) -> Net:
    """Five stages of 3x3 conv -> norm -> act blocks, a max-pool closing each, then a linear head."""
    blocks, fan_in = [], input_shape[0]
    for convs in VGG_STAGES[cfg.hidden_depth]:
        for k in range(convs):
            pool = nn.MaxPool2d(2, ceil_mode=True) if k == convs - 1 else None
            blocks.append(_block(cfg, fan_in, len(blocks) + 1, conv=True, pool=pool))
            fan_in = cfg.hidden_width
    return Net(blocks, _head(cfg, num_classes), conv=True)


def _dln(cfg, input_shape: tuple[int, int, int], num_classes: int) -> Net:
    """The deep linear network of Santurkar et al. 2018 (Sec. 3.3, Fig. 5): k = `depth` linear layers
    (default 25), square width x width (10 x 10 on gaussian-linear), no bias and no nonlinearity,
    Glorot init (--init xavier, gain 1). The first k - 1 are hidden blocks Linear -> Norm -> Identity
    (batch norm there makes the paper's "BN" net); the k-th is the head. Without norm the network is
    x -> W_k ... W_1 x.
    """
    width, blocks, fan_in = cfg.hidden_width, [], math.prod(input_shape)
    for layer in range(1, cfg.hidden_depth):
        linear = nn.Linear(fan_in, width, bias=False)
        _init(linear, cfg, "identity")
        blocks.append(Block(linear, _norm(cfg, width, False, layer), nn.Identity()))
        fan_in = width
    head = nn.Linear(fan_in, num_classes, bias=False)
    _init(head, cfg, "identity")
    return Net(blocks, head, conv=False)


def _resnet(cfg, input_shape: tuple[int, int, int], num_classes: int) -> ResNet:
    """The stem, 3 stages of n basic blocks (widths w, 2w, 4w, stride 2 into stages 2 and 3), a head."""
    w, n = cfg.hidden_width, resnet_blocks(cfg.hidden_depth)
    blocks = [_block(cfg, input_shape[0], 1, conv=True)]
    fan_in = w
    for stage, width in enumerate((w, 2 * w, 4 * w)):
        for k in range(2 * n):
            stride = 2 if stage > 0 and k == 0 else 1
            blocks.append(_block(cfg, fan_in, len(blocks) + 1, conv=True, stride=stride, width=width))
            fan_in = width
    return ResNet(blocks, _head(cfg, num_classes, 4 * w), conv=True)


# One builder per --model: (cfg, (C, H, W), outputs) -> Net.
BUILDERS = {"mlp": _plain, "cnn": _plain, "resmlp": _resmlp, "vgg": _vgg, "dln": _dln, "resnet": _resnet}


def build(cfg, input_shape: tuple[int, int, int], num_classes: int) -> Net:
    """The model named by cfg.model, for inputs of shape (C, H, W)."""
    return BUILDERS[cfg.model](cfg, input_shape, num_classes)


def weighted_layers(model: Net) -> dict[str, nn.Parameter]:
    """The weight of each layer's Linear/Conv, hidden layers then `output`."""
    layers = {name: block.linear.weight for name, block in model.blocks.items()}
    if model.output is not None:        # a user's model (ics_cli/user) may have no head
        layers["output"] = model.output.weight
    return layers
