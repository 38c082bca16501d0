"""Normalization variants. One registry entry each; they differ in *what is normalized*.

Every variant computes (x - E[x]) / sqrt(Var[x] + eps) and then an affine map gamma * x + beta; the
only question is which axes E and Var reduce over. For an activation of shape (N, C) (MLP) or
(N, C, H, W) (CNN):

| variant      | normalizes over               | statistics per            |
|--------------|-------------------------------|---------------------------|
| batch        | N (and H, W)                  | unit / channel            |
| batch-renorm | N (and H, W)                  | unit / channel            |
| ghost-batch  | ghost-size samples (and H, W) | unit / channel and ghost  |
| layer        | C (and H, W)                  | sample                    |
| instance     | H, W                          | sample and channel        |
| group        | C/G (and H, W)                | sample and group          |
| rms          | C (and H, W), not centred     | sample                    |

Two variants change the formula, not the axes: batch-renorm (Ioffe 2017) corrects the batch
statistics towards the running ones, (x - E x) / sqrt(Var x + eps) * r + d with r and d clipped and
constant for the gradient (schedule: `renorm_bounds`); rms (Zhang & Sennrich 2019) divides by the root
mean square, x / sqrt(E[x^2] + eps), and has a gain but no beta. The modules torch lacks live in
batchnorms.py.

Adding a variant is one `Norm(...)` entry in REGISTRY.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from .batchnorms import RenormSchedule

# torch is imported by the builders, not here: `ics --help` and a refused option read this registry
# without importing it (the modules are in torch and batchnorms.py).


def _batch(c: int, conv: bool, cfg) -> nn.Module:
    from torch import nn

    cls = nn.BatchNorm2d if conv else nn.BatchNorm1d
    return cls(c, eps=cfg.eps, momentum=cfg.bn_momentum)


def _batch_nograd(c: int, conv: bool, cfg) -> nn.Module:
    from .batchnorms import BatchNormNoGrad

    return BatchNormNoGrad(c, eps=cfg.eps, momentum=cfg.bn_momentum)


def _layer(c: int, conv: bool, cfg) -> nn.Module:
    from torch import nn

    # Over C, H, W per sample; GroupNorm with one group is exactly that, with per-channel gamma/beta.
    return nn.GroupNorm(1, c, eps=cfg.eps) if conv else nn.LayerNorm(c, eps=cfg.eps)


def _instance(c: int, conv: bool, cfg) -> nn.Module:
    from torch import nn

    return nn.InstanceNorm2d(c, eps=cfg.eps, affine=True)


def _group(c: int, conv: bool, cfg) -> nn.Module:
    from torch import nn

    return nn.GroupNorm(cfg.groups, c, eps=cfg.eps)


def renorm_schedule(cfg) -> RenormSchedule:
    """Batch renorm's r_max / d_max schedule for this run. Steps not given default to the paper's
    milestones (warm-up 5k, d_max final at 25k, r_max final at 40k) scaled so that r_max's ramp ends
    at half the run: warm-up steps/16, d_max at 5 x steps/16, r_max at steps/2 (rounded down)."""
    from .batchnorms import RenormSchedule

    steps = cfg.resolved().steps
    if steps is None:
        raise ValueError("batch renorm's default schedule needs the run length: resolve --epochs first")
    warmup, rmax_at, dmax_at = cfg.renorm_warmup, cfg.renorm_rmax_at, cfg.renorm_dmax_at
    return RenormSchedule(rmax=cfg.renorm_rmax, dmax=cfg.renorm_dmax,
                          warmup=steps // 16 if warmup is None else warmup,
                          rmax_at=steps // 2 if rmax_at is None else rmax_at,
                          dmax_at=5 * steps // 16 if dmax_at is None else dmax_at)


def renorm_bounds(cfg, step: int) -> tuple[float, float]:
    """(r_max, d_max) of batch renorm after `step` updates: 1 and 0 through the warm-up, then linear
    ramps to --renorm-rmax at --renorm-rmax-at and --renorm-dmax at --renorm-dmax-at."""
    return renorm_schedule(cfg).bounds(step)


def _renorm(c: int, conv: bool, cfg) -> nn.Module:
    from .batchnorms import BatchRenorm

    return BatchRenorm(c, renorm_schedule(cfg), eps=cfg.eps, momentum=cfg.bn_momentum)


def _ghost(c: int, conv: bool, cfg) -> nn.Module:
    from .batchnorms import GhostBatchNorm

    return GhostBatchNorm(c, cfg.ghost_size, eps=cfg.eps, momentum=cfg.bn_momentum)


def _rms(c: int, conv: bool, cfg) -> nn.Module:
    from .batchnorms import RMSNorm

    return RMSNorm(c, eps=cfg.eps)


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
    params: int = 2           # parameters per unit / channel (gamma and beta; rms: the gain only)
    order: int = 99           # its place in every table and legend (ORDER); unknown names come after, by name
    color: str = ""           # its colour in every figure (figures/style.norm_color)


REGISTRY: dict[str, Norm] = {n.name: n for n in [
    Norm("none", "-", "-", None, "no normalization (the baseline)", affine=False, params=0, order=0, color="#404040"),
    Norm("batch", "N (and H, W)", "unit / channel", _batch,
         "batch norm (Ioffe & Szegedy 2015): batch statistics in training, running ones in eval",
         batch_stats=True, order=1, color="#1f77b4"),
    Norm("batch-nograd", "N (and H, W)", "unit / channel", _batch_nograd,
         "batch norm with the batch mean/variance detached in the backward pass (ablation)",
         batch_stats=True, order=2, color="#17becf"),
    Norm("batch-renorm", "N (and H, W)", "unit / channel", _renorm,
         "batch renormalization (Ioffe 2017): batch statistics corrected towards the running ones by "
         "clipped r, d (bounds ramp up after a warm-up, see --renorm-*)", batch_stats=True, order=6, color="#bcbd22"),
    Norm("ghost-batch", "ghost-size samples (and H, W)", "unit / channel and ghost", _ghost,
         "ghost batch norm (Hoffer et al. 2017): batch norm over virtual batches of --ghost-size samples",
         batch_stats=True, order=7, color="#aec7e8"),
    Norm("layer", "C (and H, W)", "sample", _layer, "layer norm (Ba et al. 2016)", order=3, color="#2ca02c"),
    Norm("instance", "H, W", "sample and channel", _instance,
         "instance norm (Ulyanov et al. 2016); undefined on an MLP", mlp=False, order=4, color="#9467bd"),
    Norm("group", "C/G (and H, W)", "sample and group", _group,
         "group norm (Wu & He 2018) with --groups groups", order=5, color="#ff7f0e"),
    Norm("rms", "C (and H, W), not centred", "sample", _rms,
         "RMSNorm (Zhang & Sennrich 2019): divided by the root mean square, no centring; a gain, no beta",
         affine=False, params=1, order=8, color="#8c564b"),
]}


# Every table and legend lists norms in this order (names the registry does not know come after, by name);
# the first six kept the order and colours they had before the registry held them.
ORDER = tuple(sorted(REGISTRY, key=lambda name: REGISTRY[name].order))


def get(name: str) -> Norm:
    if name not in REGISTRY:
        raise ConfigError(f"--norm '{name}' is not one of: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def build(name: str, channels: int, conv: bool, cfg) -> nn.Module:
    from torch import nn

    norm = get(name)
    return nn.Identity() if norm.build is None else norm.build(channels, conv, cfg)


def table() -> list[dict]:
    """The registry as rows, for `ics norms`."""
    return [{"norm": n.name, "normalizes over": n.over, "statistics per": n.per,
             "mlp": "yes" if n.mlp else "no", "cnn": "yes" if n.cnn else "no",
             "description": n.description} for n in REGISTRY.values()]


def set_step(model: nn.Module, step: int) -> None:
    """Tell every norm whose computation depends on the training step (batch-renorm's r_max/d_max
    schedule) which update comes next: the loop calls this before each training forward. The modules
    are found once per model (a walk of every module on every step cost a few percent of an MLP step)."""
    stepped = model.__dict__.get("stepped_norms")
    if stepped is None:
        stepped = [m for m in model.modules() if m is not model and hasattr(m, "set_step")]
        model.__dict__["stepped_norms"] = stepped       # a plain attribute: not a submodule, not in state_dict
    for m in stepped:
        m.set_step(step)


@contextmanager
def plain_batch_norm(model: nn.Module):
    """Batch renorm without its correction (r = 1, d = 0) inside the block, i.e. plain batch norm: for
    passes meant to use each batch's own statistics (test-time batch statistics, PreciseBN's
    estimation), which a renorm with r and d would pull towards its running statistics."""
    from .batchnorms import BatchRenorm

    layers = [m for m in model.modules() if isinstance(m, BatchRenorm)]
    saved = [m.correct for m in layers]
    for m in layers:
        m.correct = False
    try:
        yield
    finally:
        for m, correct in zip(layers, saved):
            m.correct = correct
