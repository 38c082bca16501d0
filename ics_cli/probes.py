"""What is recorded and where: forward hooks on every site of every hidden layer, gradient norms.

Sites (per hidden layer): `linear` (output of the Linear/Conv), `norm` (output of the norm, the
input to the nonlinearity), `act` (output of the nonlinearity), all three from a training-mode
pass, and `norm_eval` (output of the norm in eval mode: running statistics for batch norm).

Two probe sources (`--probe`):
- `fixed`: at each log step a fixed probe batch of training images goes through the network in a
  pass of its own (the cleanest signal for drift: the same inputs every time).
- `train`: the statistics of the training batch the model trains on next, read from the training
  forward pass itself by the same hooks; no extra pass (except at the last step, whose next batch is
  never trained on: one probe pass on it).

Neither has side effects: no gradient, no running-statistics update (num_batches_tracked included)
and no draw from any random stream, so a run's trajectory does not depend on how often it is probed.
Under `--noise santurkar` a probe pass has noise of the same law as a training pass, from a seed of
its own (noise.py: (seed, layer, step)), so the `norm` site shows the noise and the training noise
stream is untouched; under `--probe train` the hooks read the training pass and its own noise.

`norm_eval` comes from an eval-mode pass of the same input (the whole network in eval mode, as at
test time, so without noise); under `--probe train` it runs just before the training pass, so it reads
the step's running statistics, not yet updated by the batch. Norms without batch statistics compute
the same in both modes, so without noise their `norm_eval` is `norm` and needs no pass.

Hooks only keep references to the sites' outputs; after the passes, each layer's sites are reduced
together (one mean, one variance and one sort per layer, site statistics from the unit ones by the law
of total variance) into one flat row per log step, kept on the device in a block that is
copied to the host once per block (blocks.py turns it into table rows).

Layers of unequal widths (the resnet's stages) share buffers as wide as the widest layer: a unit a
layer does not have is NaN, and every per-site statistic (site statistics, drifts, dead units) is
computed over each layer's own units, a run of consecutive layers of one width at a time. Percentiles
are tracked for the first min(track_units, narrowest width) units of every layer.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch
from torch import nn

from . import metrics
from .net import noise
from .net.models import SITES as TRAIN_SITES
from .net.models import Net, weighted_layers

SITES = TRAIN_SITES + ("norm_eval",)
NORM_SITE, EVAL_SITE = SITES.index("norm"), SITES.index("norm_eval")
PER_SITE = 11    # 4 site statistics, drift since the previous log and since init (3 each), dead units
STACK_LIMIT = 2**16      # sites of at most this many values are stacked and reduced together
SAMPLE_SEED = 0          # the positions sampled for TensorBoard's activation histograms (a generator of their own)


def census(model: nn.Module) -> tuple[list[nn.Module], list[nn.Module], list[nn.Module]]:
    """(every module, the batch norms, the noise modules) of `model`, found once per model: walking the
    tree and Module.train() on every probe pass cost about a tenth of a log step."""
    found = model.__dict__.get("probe_census")
    if found is None:
        every = list(model.modules())
        found = (every, [m for m in every if isinstance(m, nn.modules.batchnorm._BatchNorm)],
                 [m for m in every if isinstance(m, noise.Santurkar)])
        model.__dict__["probe_census"] = found      # a plain attribute: not a submodule, not in state_dict
    return found


def set_modes(modules: list[nn.Module], modes) -> None:
    """Each module's `training` flag, written directly (what Module.train sets, without its walk and
    Module.__setattr__'s checks); `modes` one bool for all, or one per module."""
    for m, mode in zip(modules, [modes] * len(modules) if isinstance(modes, bool) else modes):
        m.__dict__["training"] = mode


@contextmanager
def batch_stats_without_update(model: nn.Module, noise_mode: str = "off", *, grad: bool = False):
    """Training-mode forward passes that leave every running statistic untouched.

    With track_running_stats off, torch's batch norm normalizes with batch statistics and neither
    updates the running mean/var nor counts the batch; the flags (and every module's mode) are
    restored afterwards. As model.train() would: every module in training mode, except the batch
    norms of a FrozenBN model (Net.frozen_norms). Noise modules (--noise) are in `noise_mode`: "off"
    (test evaluation), "probe" (the activation probe: a draw of their own, never from the training
    noise stream) or "replay" (the second view of ICS: the step's own training draw again). Without
    `grad`, no autograd graph is built.
    """
    every, bns, noisy = census(model)
    modes = [m.training for m in every]
    tracked = [m.track_running_stats for m in bns]
    noise_modes = [m.mode for m in noisy]
    set_modes(every, True)
    if getattr(model, "frozen_norms", False):
        set_modes(bns, False)
    for m in bns:
        m.track_running_stats = False
    for m in noisy:
        m.mode = noise_mode
    try:
        with torch.set_grad_enabled(grad):
            yield
    finally:
        for m, track in zip(bns, tracked):
            m.track_running_stats = track
        for m, old in zip(noisy, noise_modes):
            m.mode = old
        set_modes(every, modes)


class StepRows:
    """One row of values per recorded step, kept on the device and copied to the host a block at
    a time. `next()` is the row the coming step writes, `close(step)` files it under that step."""

    def __init__(self, capacity: int, shape: tuple[int, ...], device, fill: float = 0.0):
        self.fill = fill
        self.buffer = torch.full((capacity, *shape), fill, device=device)
        self.steps: list[int] = []

    @property
    def full(self) -> bool:
        return len(self.steps) == len(self.buffer)

    def next(self) -> torch.Tensor:
        if self.full:
            raise RuntimeError("step buffer full: flush it first")
        return self.buffer[len(self.steps)]

    def close(self, step: int) -> None:
        self.steps.append(step)

    def flush(self) -> tuple[list[int], np.ndarray]:
        """The filed steps and their rows as one host array (one copy); empties the buffer."""
        n, steps = len(self.steps), self.steps
        host = self.buffer[:n].to("cpu", copy=True).numpy()   # a copy: the buffer is reused
        self.buffer[:n] = self.fill
        self.steps = []
        return steps, host


class ActivationRecorder:
    """Per-unit and per-site statistics of every site, with drift, one flat row per log step.

    `batch_stats`: the norm uses batch statistics, so `norm_eval` differs from `norm` and is measured
    in an eval-mode pass (`eval_pass`); otherwise it is a copy of `norm`, unless the model has noise
    after its norms (off in eval mode), which also needs the pass.
    `samples` > 0 (ics train --tensorboard): each row also holds that many values of every site
    tensor, at the same positions at every log step (`sample`), for TensorBoard's histograms; they
    are read from the passes already made and change nothing else.
    `keep` (a user's model, ics_cli/user): what a hook keeps of layer li's site output, and only from
    a module's first call in a pass (torchvision's ResNet applies one ReLU twice); None: the output
    itself (a Net's modules are called once and never changed in place). A layer's site that is None
    (a Linear without norm) takes the value of the site before it.
    """

    def __init__(self, model: Net, track_units: int, batch_stats: bool, block: int = 256, samples: int = 0,
                 keep: Callable[[int, torch.Tensor], torch.Tensor] | None = None):
        self.model, self.batch_stats = model, batch_stats or bool(noise.modules(model))
        self.keep = keep
        self.layers = list(model.blocks)
        first = next(iter(model.blocks.values())).linear.weight
        self.widths = [b.linear.weight.shape[0] for b in model.blocks.values()]
        self.width = width = max(self.widths)
        self.units = min(track_units, min(self.widths))
        self.runs: list[tuple[slice, int]] = []     # consecutive layers of one width: (slice, width)
        for w, same in itertools.groupby(self.widths):
            start = self.runs[-1][0].stop if self.runs else 0
            self.runs.append((slice(start, start + len(list(same))), w))
        L, S = len(self.layers), len(SITES)
        self.shapes = {"site": (L, S, PER_SITE), "mean": (L, S, width), "var": (L, S, width),
                       "pct": (L, S, self.units, 3)}
        self.samples = samples
        if samples:
            self.shapes["sample"] = (L, S, samples)
        self._positions: dict[int, torch.Tensor] = {}
        row_size = sum(torch.Size(s).numel() for s in self.shapes.values())
        self.rows = StepRows(max(1, min(block, 2**22 // row_size)), (row_size,), first.device)
        self.prev = None                    # (unit mean, unit var) at the previous log step
        self.init = None                    # (unit mean, unit var) at step 0
        self._outs: list[list] = [[None] * S for _ in self.layers]

    @contextmanager
    def capturing(self, mode: str = "train"):
        """Hooks keep this pass's site outputs: linear, norm and act ("train"), or norm as norm_eval
        ("eval"). They exist only inside this block, so an unprobed pass runs without them."""
        blocks = list(self.model.blocks.values())
        sites: list[tuple[int, list[int], nn.Module]] = []     # (layer, the sites it fills, module)
        for li, b in enumerate(blocks):
            if mode == "train":
                for si, site in enumerate(TRAIN_SITES):
                    module = getattr(b, site)
                    if module is None:      # an absent site is the identity: the site before it
                        sites[-1][1].append(si)
                    else:
                        sites.append((li, [si], module))
            else:
                sites.append((li, [EVAL_SITE], b.norm if b.norm is not None else b.linear))
        handles = [module.register_forward_hook(self._hook(li, sis)) for li, sis, module in sites]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _hook(self, li: int, sis: list[int]):
        keep = self.keep

        def hook(module, inputs, out):
            if keep is None:
                out = out.detach()
            elif self._outs[li][sis[0]] is not None:     # a later call of the module in this pass
                return
            else:
                out = keep(li, out)
            for si in sis:
                self._outs[li][si] = out
        return hook

    def probe(self, x: torch.Tensor) -> None:
        """Side-effect-free passes of x through the hidden blocks (the head is not needed) for
        `record`: training mode, then eval mode when norm_eval needs it, starting from the first
        block's Linear/Conv output of the training pass (the same in both modes)."""
        with self.capturing("train"), batch_stats_without_update(self.model, noise_mode="probe"):
            self.model.hidden(x)
        self.eval_pass(x, z1=self._outs[0][0])

    def eval_pass(self, x: torch.Tensor | None = None, z1: torch.Tensor | None = None) -> None:
        """The eval-mode pass that gives `norm_eval` (norms with batch statistics; else nothing):
        of input x, or from z1, the first block's Linear/Conv output."""
        if not self.batch_stats:
            return
        # Eval mode for the pass (flags set directly: Module.train() walks the tree on every call).
        every = census(self.model)[0]
        modes = [m.training for m in every]
        set_modes(every, False)
        try:
            with self.capturing("eval"), torch.no_grad():
                self.model.hidden(x, z1)
        finally:
            set_modes(every, modes)

    def record(self, step: int) -> None:
        """Reduce the captured passes into the buffer row of `step` (raises if the buffer is full)."""
        stats = self._reduce()
        now = (stats["mean"], stats["var"])
        if self.init is None:
            self.init = now
        prev = self.prev if self.prev is not None else tuple(torch.full_like(v, float("nan")) for v in now)
        per_site = self._by_width(_per_site, *prev, *self.init, *now)
        self.prev = now
        parts = [per_site.flatten(), now[0].flatten(), now[1].flatten(), stats["pct"].flatten()]
        if self.samples:
            parts.append(self.sample().flatten())
        torch.cat(parts, out=self.rows.next())
        self.rows.close(step)
        self._outs = [[None] * len(SITES) for _ in self.layers]

    def _by_width(self, fn, *unit_values: torch.Tensor) -> torch.Tensor:
        """fn of the (layers, sites, units) values of every run of layers of one width, on those
        layers' own units (the unit axis cut to the width), joined along the layer axis: one call
        with the whole buffers for a model whose layers all have one width."""
        parts = [fn(*(v[ls, :, :width] for v in unit_values)) for ls, width in self.runs]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def sample(self) -> torch.Tensor:
        """(layers, sites, samples): the captured sites' values at fixed positions (drawn once per
        site size from a generator of their own, never a training stream); NaN past a smaller site."""
        L, S = len(self.layers), len(SITES)
        measured = S if self.batch_stats else S - 1       # else norm_eval is a copy of norm
        out = self._outs[0][0].new_full((L, S, self.samples), float("nan"))
        for li in range(L):
            for si in range(measured):
                flat = self._outs[li][si].reshape(-1)
                if flat.numel() not in self._positions:
                    gen = torch.Generator().manual_seed(SAMPLE_SEED)
                    at = torch.randperm(flat.numel(), generator=gen)[:self.samples]
                    self._positions[flat.numel()] = at.to(flat.device)
                at = self._positions[flat.numel()]
                out[li, si, :len(at)] = flat[at]
        if measured < S:
            out[:, EVAL_SITE] = out[:, NORM_SITE]
        return out

    def measure(self, x: torch.Tensor) -> dict:
        """Probe x now (for a notebook or a test): its statistics as host arrays without the step axis.

        Keys: site (layers, sites, PER_SITE), mean and var (layers, sites, units), pct (layers,
        sites, tracked units, 3), width (layers); buffered rows not yet flushed are flushed with it
        and dropped.
        """
        self.probe(x)
        self.record(0)
        _, stats = self.flush()
        return {k: v[-1] for k, v in stats.items()}

    @property
    def full(self) -> bool:
        return self.rows.full

    def flush(self) -> tuple[list[int], dict]:
        """The buffered steps and their statistics as host numpy arrays (one copy); empties the buffer.
        `width` (steps, layers): each layer's number of units, the rest of its unit axis is NaN."""
        steps, host = self.rows.flush()
        out, at = {}, 0
        for name, shape in self.shapes.items():
            size = torch.Size(shape).numel()
            out[name] = host[:, at:at + size].reshape(len(steps), *shape)
            at += size
        out["width"] = np.tile(np.asarray(self.widths, dtype=np.int64), (len(steps), 1))
        return steps, out

    def _reduce(self) -> dict[str, torch.Tensor]:
        """Unit means, variances and percentiles of every captured site."""
        L, S, T = len(self.layers), len(SITES), self.units
        measured = S if self.batch_stats else S - 1       # else norm_eval is a copy of norm
        outs = [out for layer in self._outs for out in layer[:measured]]
        # Small sites of the same shape (every site of an MLP) are reduced together: one mean,
        # one variance, one sort for all of them; large ones (a CNN's) one by one.
        groups: dict[tuple, list[int]] = {}
        for k, out in enumerate(outs):
            groups.setdefault(tuple(out.shape), []).append(k)
        # Units a layer does not have (narrower than the widest) stay NaN.
        mean = outs[0].new_full((len(outs), self.width), float("nan"))
        var = outs[0].new_full((len(outs), self.width), float("nan"))
        pct = outs[0].new_empty(len(outs), T, 3)
        for same_shape in groups.values():
            # Stacking copies: worth it for small sites (one call instead of many), not for large.
            small = outs[same_shape[0]].numel() <= STACK_LIMIT
            for ks in [same_shape] if small else [[k] for k in same_shape]:
                x = torch.stack([outs[k] for k in ks]) if len(ks) > 1 else outs[ks[0]][None]
                width = x.shape[2]
                mean[ks, :width], var[ks, :width] = metrics.unit_moments(x, [1] + list(range(3, x.dim())))
                pct[ks] = metrics.site_percentiles(x, T)                                   # (sites, T, 3)
        mean, var, pct = (v.view(L, measured, *v.shape[1:]) for v in (mean, var, pct))
        if measured < S:
            mean, var, pct = (torch.cat([v, v[:, NORM_SITE, None]], 1) for v in (mean, var, pct))
        return {"mean": mean, "var": var, "pct": pct}

    def state(self) -> dict:
        return {"prev": self.prev, "init": self.init}

    def load_state(self, state: dict) -> None:
        self.prev, self.init = state["prev"], state["init"]


def _per_site(prev_mean, prev_var, init_mean, init_var, mean, var) -> torch.Tensor:
    """A log step's PER_SITE values of each site from its unit statistics, in layers.csv order: the
    site statistics, drift_mean, drift_var, drift_mean_init, drift_var_init, drift_mean_scaled,
    drift_mean_scaled_init, dead_units. Drift since the previous log step and since step 0 in one
    call (NaN at the first log step)."""
    site = metrics.site_stats(mean, var)
    d_prev, d_init = metrics.drift(torch.stack([prev_mean, init_mean]), torch.stack([prev_var, init_var]), mean, var)
    dead = metrics.dead(var).sum(-1, keepdim=True).to(var.dtype)
    return torch.cat([site, d_prev[..., :2], d_init[..., :2], d_prev[..., 2:], d_init[..., 2:], dead], -1)


class GradientRecorder:
    """Each layer's weight-gradient norm on every step, buffered on the device; weight norm and
    update ratio on the steps asked for (they need a copy of the weights before the update).

    Call `before_step(full)` after backward and before optimizer.step(), and `after_step(step)` after it.
    """

    def __init__(self, model: Net, block: int = 1024):
        self.weights = list(weighted_layers(model).values())
        self.names = list(weighted_layers(model))
        # Per step: grad_norm, weight_norm, update_ratio of each layer (NaN where not measured).
        self.rows = StepRows(block, (3, len(self.weights)), self.weights[0].device, fill=float("nan"))
        self._before = None
        self._norms: list[torch.Tensor] = []     # each step's gradient norms, stacked into the rows at flush

    def before_step(self, full: bool) -> None:
        ws = self.weights
        # One fused call per step; its 0-d results are kept and stacked once per block (a stack into
        # the step's row on every step cost as much as the norms).
        self._norms += torch._foreach_norm([w.grad if w.grad is not None else w.new_zeros(()) for w in ws])
        self._before = [w.detach().clone() for w in ws] if full else None

    def after_step(self, step: int) -> None:
        if self._before is not None:
            ws, row = self.weights, self.rows.next()
            row[1] = torch.stack([w.detach().norm() for w in ws])
            row[2] = torch.stack([(w.detach() - b).norm() / b.norm() for w, b in zip(ws, self._before)])
            self._before = None
        self.rows.close(step)

    @property
    def full(self) -> bool:
        return self.rows.full

    def flush(self) -> tuple[list[int], np.ndarray]:
        """Buffered steps and a (steps, 3, layers) host array: grad_norm, weight_norm, update_ratio."""
        n, k = len(self.rows.steps), len(self.rows.steps) * len(self.weights)
        if n:      # the closed steps' norms (a step measured but not yet closed keeps its own)
            self.rows.buffer[:n, 0] = torch.stack(self._norms[:k]).view(n, len(self.weights))
            self._norms = self._norms[k:]
        return self.rows.flush()
