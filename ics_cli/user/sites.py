"""Where a user's model is recorded: its layers found as (linear, norm, act) sites, presented to the
recorders as a Net presents its blocks (a small "blocks view").

The rule (docs/watch.md): walk the modules in registration order (`model.named_modules()`), not
descending into a module already classified, nor into an `nn.MultiheadAttention` (it computes with
its weights functionally: its `out_proj` is never called). Every `nn.Linear` / `nn.Conv1d/2d/3d` is
a layer. The module right after it in that order is its `norm` site when it is a normalization
(NORMS) *and* one pass shows it fed by the layer's output; the module right after that (or right after
the Linear when there is no norm) is its `act` site when it is an activation (ACTS) fed by the
site before it. A site a layer lacks takes the value of the site before it (as `--norm none` is an
identity in `ics train`). Layers are named `hidden1`, `hidden2`, ... in that order, as `ics train`
names its own, so `ics compare`, `plot` and `report` read them; the last one is the head, `output`
(its gradient norm only, no activations), when it has neither norm nor act. config.json keeps the
module names behind each.

"Fed by" is checked in one side-effect-free pass (`trace`): a module's first call in the pass must
take the very tensor the site before it returned. So a norm after a residual sum (`out += identity`,
a post-norm transformer) or before the Linear (pre-norm) is not taken for the Linear's norm: a
normalization module that no layer's output feeds cannot be placed, and is refused by name (name the
layers with `layers=` to record others). So is a Linear/Conv never called in the pass, or called
twice (its statistics would be one of the two calls). The pass is of the batch's first TRACE samples:
which module takes which tensor does not depend on the batch size, and a full probe batch through a
ResNet-18 costs half a second. When a module of the walk is not called on them (a model whose calls
depend on its data: a mixture of experts), or the model cannot take so few, the whole batch is passed
instead.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import IcsError
from ..net import noise
from ..net.batchnorms import RMSNorm as OwnRMSNorm
from ..probes import batch_stats_without_update

LINEARS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = tuple(c for c in (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
                          nn.LayerNorm, nn.GroupNorm, getattr(nn, "RMSNorm", None), OwnRMSNorm, noise.Noisy)
              if c is not None)
ACTS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
        nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.Tanhshrink)
OPAQUE = (nn.MultiheadAttention,)
TRACE = 8           # samples of the batch in the detection pass (more than 1: batch norm in training mode)

# The registry's name of each norm class, for config.json's `norm` when the user names none.
NORM_NAMES = (("BatchRenorm", "batch-renorm"), ("GhostBatchNorm", "ghost-batch"),
              ("BatchNormNoGrad", "batch-nograd"), ("BatchNorm", "batch"), ("InstanceNorm", "instance"),
              ("LayerNorm", "layer"), ("GroupNorm", "group"), ("RMSNorm", "rms"))


@dataclass
class Site:
    """One layer of a user's model: its Linear/Conv, the norm and act after it (None if absent),
    their module names, and whether its outputs are token sequences (a Linear on (N, T, d): the
    units are the last axis, every other axis a sample)."""
    linear: nn.Module
    norm: nn.Module | None
    act: nn.Module | None
    names: tuple[str, str | None, str | None]
    tokens: bool = False


class View:
    """A user's model as the recorders see a Net: `blocks` (hidden layer name -> Site), `output` (the
    head, or None), `hidden(x)` (one pass: the whole model), `modules()`, `named_parameters()`."""

    frozen_norms = False

    def __init__(self, module: nn.Module, blocks: dict[str, Site], head: tuple[str, nn.Module] | None):
        self.module, self.blocks = module, blocks
        self.head_name, self.output = head if head else (None, None)

    def hidden(self, x=None, z1=None):
        return self.module(x)       # a user's model cannot start from the first Linear's output

    def modules(self):
        return self.module.modules()

    def named_parameters(self):
        return self.module.named_parameters()

    @property
    def batch_stats(self) -> bool:
        return any(isinstance(s.norm, nn.modules.batchnorm._BatchNorm) for s in self.blocks.values())

    def keep(self, li: int, out: torch.Tensor) -> torch.Tensor:
        """What the recorder keeps of a site's output: a copy (a later in-place operation, ReLU(inplace)
        or `out += identity`, would change it), token sequences as samples of the last axis."""
        out = out.detach()
        if list(self.blocks.values())[li].tokens and out.dim() > 2:
            out = out.reshape(-1, out.shape[-1])
        return out.clone()

    def describe(self) -> list[dict]:
        """config.json's `sites`: each layer's name and the modules behind it."""
        rows = [{"layer": name, "linear": s.names[0], "norm": s.names[1], "act": s.names[2]}
                for name, s in self.blocks.items()]
        if self.output is not None:
            rows.append({"layer": "output", "linear": self.head_name, "norm": None, "act": None})
        return rows


def view(model: nn.Module, x: torch.Tensor, layers: list[str] | None = None):
    """The recorders' view of `model` (a Net is its own), its layers found with one pass of x."""
    from ..net.models import Net

    if isinstance(model, Net) and layers is None:
        return model
    if not isinstance(model, nn.Module):
        raise IcsError(f"ics.watch: model must be a torch.nn.Module, not {type(model).__name__}")
    walk = order(model)
    named = dict(model.named_modules())
    if layers is not None:
        for name in layers:
            if name not in named:
                raise IcsError(f"ics.watch: layers names '{name}', which is not a module of this "
                               f"{type(model).__name__} (see model.named_modules())")
            if not isinstance(named[name], LINEARS):
                raise IcsError(f"ics.watch: layers names '{name}', a {type(named[name]).__name__}: a layer "
                               f"is a Linear or Conv1d/2d/3d")
    modules = [m for _, m in walk]
    try:
        calls = trace(model, x[:TRACE], modules) if len(x) > TRACE else None
    except Exception:       # a model that cannot take a few samples: the whole batch (its own error, if any)
        calls = None
    if calls is None or any(m not in calls for m in modules):
        calls = trace(model, x, modules)
    linears = [n for n, m in walk if isinstance(m, LINEARS)] if layers is None else list(layers)
    position = {n: i for i, (n, _) in enumerate(walk)}
    sites, placed = {}, set()
    for name in linears:
        module = named[name]
        if name not in position:
            raise IcsError(f"ics.watch: layer '{name}' is inside an attention module, which uses its weights "
                           f"functionally; it cannot be recorded")
        if len(calls.get(module, [])) > 1:
            raise IcsError(f"ics.watch: layer '{name}' ({type(module).__name__}) is called "
                           f"{len(calls[module])} times in one pass; its statistics would mix the calls "
                           f"(name the others with layers=[...])")
        if not calls.get(module):
            raise IcsError(f"ics.watch: layer '{name}' ({type(module).__name__}) is never called in a "
                           f"forward pass (a module used functionally?); name the layers to record with "
                           f"layers=[...]")
        chain, feed = [name, None, None], calls[module][0][1]
        at = position[name]
        for slot, kinds in ((1, NORMS), (2, ACTS)):
            if at + 1 >= len(walk):
                break
            nxt_name, nxt = walk[at + 1]
            first = calls.get(nxt, [])
            if isinstance(nxt, kinds) and first and first[0][0] is feed:
                chain[slot], feed, at = nxt_name, first[0][1], at + 1
                placed.add(nxt)
        tokens = isinstance(module, nn.Linear) and calls[module][0][1].dim() > 2
        sites[name] = Site(module, *(named[n] if n else None for n in chain[1:]), names=tuple(chain),
                           tokens=tokens)
    if layers is None:
        stray = [(n, m) for n, m in walk if isinstance(m, NORMS) and m not in placed and calls.get(m)]
        if stray:
            n, m = stray[0]
            raise IcsError(f"ics.watch: cannot place normalization '{n}' ({type(m).__name__}): it does not "
                           f"take a Linear/Conv's output directly (pre-norm, or after a residual sum); name "
                           f"the layers to record with layers=[...]")
    for n, m in walk:
        if isinstance(m, nn.modules.instancenorm._InstanceNorm) and m.track_running_stats:
            raise IcsError(f"ics.watch: '{n}' is an InstanceNorm with track_running_stats=True, whose "
                           f"running statistics a probe pass would change; not supported")
    head = None
    last = list(sites)[-1] if sites else None
    if layers is None and last and sites[last].norm is None and sites[last].act is None and len(sites) > 1:
        head = (last, sites.pop(last).linear)
    if not sites:
        raise IcsError(f"ics.watch: no Linear/Conv layer found in this {type(model).__name__}")
    blocks = {f"hidden{i}": s for i, s in enumerate(sites.values(), 1)}
    return View(model, blocks, head)


def norm_name(model) -> str:
    """The registry name of the norms at the sites of `model` (a Net or a View): `none` without, names
    joined by `+` when they differ, a class the registry does not know by its class name."""
    found = []
    for block in model.blocks.values():
        module = block.norm.norm if isinstance(block.norm, noise.Noisy) else block.norm
        if module is not None and not isinstance(module, nn.Identity):
            cls = type(module).__name__
            name = next((n for key, n in NORM_NAMES if key in cls), cls)
            found += [name] if name not in found else []
    return "+".join(found) or "none"


def order(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules a site can be, in registration order: leaves, and classified modules as a whole
    (a Noisy norm's children are not walked); nothing inside an opaque module (attention)."""
    out, skip = [], ()
    for name, m in model.named_modules():
        if skip and any(name.startswith(p + ".") for p in skip):
            continue
        if isinstance(m, OPAQUE) or isinstance(m, LINEARS + NORMS + ACTS):
            skip += (name,)
            if not isinstance(m, OPAQUE):
                out.append((name, m))
        elif not any(True for _ in m.children()):
            out.append((name, m))
    return out


def trace(model: nn.Module, x: torch.Tensor, modules: list[nn.Module]) -> dict:
    """Each module's calls in one side-effect-free training-mode pass of x: (input, output) tensors."""
    calls: dict = {}

    def hook(module, inputs, out):
        first = inputs[0] if inputs else None
        calls.setdefault(module, []).append((first, out))

    with ExitStack() as stack:
        for m in modules:
            stack.callback(m.register_forward_hook(hook).remove)
        stack.enter_context(torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []))
        stack.enter_context(batch_stats_without_update(model))
        model(x)
    return calls
