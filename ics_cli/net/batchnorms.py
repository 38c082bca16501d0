"""The norm modules torch does not have: batch renormalization, ghost batch norm, RMSNorm.

BatchRenorm and GhostBatchNorm keep batch statistics, so they are torch batch norms to the rest of
`ics` (`_BatchNorm` subclasses): the same buffers (running_mean, running_var as an unbiased variance,
num_batches_tracked), the same update running = lerp(running, batch, momentum) (momentum None: a
cumulative average, as torch), the same eval mode (running statistics), and with
track_running_stats off (probes.batch_stats_without_update) the training computation without any
update. RMSNorm has no batch statistics and computes the same in both modes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class _BatchStats(nn.modules.batchnorm._BatchNorm):
    """What the two batch-statistics modules share: input check, eval path, running-stat update."""

    def _check_input_dim(self, x):
        if x.dim() not in (2, 4):
            raise ValueError(f"expected a 2D or 4D input, got {x.dim()}D")

    def _eval(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize with the running statistics: torch's batch norm in eval mode, exactly."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def _uses_running(self) -> bool:
        return not self.training and self.track_running_stats

    def _updates(self) -> bool:
        return self.training and self.track_running_stats

    def _update(self, mean: torch.Tensor, var_unbiased: torch.Tensor) -> None:
        """running = lerp(running, batch, momentum), and one more batch counted (torch's rule)."""
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), factor)
            self.running_var.lerp_(var_unbiased.detach(), factor)

    def _affine(self, y: torch.Tensor) -> torch.Tensor:
        if not self.affine:
            return y
        shape = (1, -1) + (1,) * (y.dim() - 2)
        return y * self.weight.view(shape) + self.bias.view(shape)


def _unit_dims(x: torch.Tensor) -> list[int]:
    """The axes one unit's batch statistics reduce over: N (and H, W)."""
    return [0] + list(range(2, x.dim()))


# --------------------------------------------------------------------------- batch renormalization


@dataclass(frozen=True)
class RenormSchedule:
    """Batch renorm's bounds after `step` updates: r_max = 1 and d_max = 0 (plain batch norm) for the
    first `warmup` steps, then linear ramps from there, from (step `warmup`, 1 and 0) to (step `rmax_at`,
    `rmax`) and (step `dmax_at`, `dmax`), constant after. A ramp that ends at or before the warm-up's
    end is a jump to the final value at step `warmup`."""

    rmax: float
    dmax: float
    warmup: int
    rmax_at: int
    dmax_at: int

    def bounds(self, step: int) -> tuple[float, float]:
        return (1.0 + (self.rmax - 1.0) * self._ramp(step, self.rmax_at),
                self.dmax * self._ramp(step, self.dmax_at))

    def _ramp(self, step: int, at: int) -> float:
        """How far a ramp ending at step `at` has gone: 0 through the warm-up, 1 from `at` on."""
        if at <= self.warmup:
            return 1.0 if step >= self.warmup else 0.0
        return min(1.0, max(0.0, (step - self.warmup) / (at - self.warmup)))


class BatchRenorm(_BatchStats):
    """Batch renormalization (Ioffe 2017, Algorithm 1) on (N, C) or (N, C, H, W).

    Training: y = γ · ((x − μ_B) / σ_B · r + d) + β with σ_B = sqrt(var_B + eps) (var_B the biased
    batch variance), σ = sqrt(running_var + eps), r = clip(σ_B / σ, 1/r_max, r_max) and
    d = clip((μ_B − μ) / σ, −d_max, d_max), both treated as constants by the gradient; the running
    statistics are updated after r and d are computed. r_max and d_max come from `schedule` at the
    step given by `set_step` (the number of updates done; the loop sets it before each forward).
    With r_max = 1 and d_max = 0 this is batch norm, and so is it with `correct` off (r = 1, d = 0 at
    any step: norms.plain_batch_norm). Eval mode: the running statistics, like batch norm.

    One departure from the paper: the moving average is of the variance (unbiased, as torch keeps
    it), and σ is derived from it; Algorithm 1 averages σ itself. The average of variances is what
    every other batch norm here keeps, so eval mode, PreciseBN and FrozenBN treat it the same.
    """

    def __init__(self, num_features: int, schedule: RenormSchedule, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.schedule = schedule
        self.step = 0
        self.correct = True

    def set_step(self, step: int) -> None:
        self.step = step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if self._uses_running():
            return self._eval(x)
        dims, shape = _unit_dims(x), (1, -1) + (1,) * (x.dim() - 2)
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        sigma_b = torch.sqrt(var + self.eps)
        with torch.no_grad():
            r, d = torch.ones_like(mean), torch.zeros_like(mean)
            if self.correct and self.running_mean is not None:
                r_max, d_max = self.schedule.bounds(self.step)
                sigma = torch.sqrt(self.running_var + self.eps)
                r = (sigma_b / sigma).clamp(1 / r_max, r_max)
                d = ((mean - self.running_mean) / sigma).clamp(-d_max, d_max)
        y = (x - mean.view(shape)) / sigma_b.view(shape) * r.view(shape) + d.view(shape)
        if self._updates():
            n = x.numel() // x.shape[1]
            self._update(mean, var * n / max(n - 1, 1))
        return self._affine(y)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, schedule={self.schedule}"


# --------------------------------------------------------------------------- ghost batch norm


def last_ghost(n: int, ghost: int, per_sample: int = 1) -> int:
    """Where the last ghost of a batch of n starts. Ghosts hold `ghost` samples; a remainder forms a
    last, smaller ghost, merged into the one before when it would hold fewer than 2 values per
    channel (`per_sample` values each: 1 on an MLP, H x W on a CNN). n when the ghost size divides n."""
    full, rest = divmod(n, ghost)
    if rest == 0:
        return n
    if rest * per_sample < 2 and full >= 1:
        return (full - 1) * ghost
    return full * ghost


class GhostBatchNorm(_BatchStats):
    """Ghost batch norm (Hoffer, Hubara & Soudry 2017) on (N, C) or (N, C, H, W).

    Training: the batch is cut into consecutive virtual batches ("ghosts") of `ghost_size` samples,
    each normalized with its own statistics over its samples (and H, W); γ, β and the running
    statistics are shared. The running statistics are updated once per forward with the average over
    the ghosts of the ghost means and of the unbiased ghost variances (equal weight per ghost). A batch
    the ghost size does not divide ends in a smaller ghost (see `last_ghost`). Eval mode: the running
    statistics, like batch norm. One ghost holding the whole batch is batch norm.
    """

    def __init__(self, num_features: int, ghost_size: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.ghost_size = ghost_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if self._uses_running():
            return self._eval(x)
        n, per_sample = x.shape[0], x[0, 0].numel()
        cut = last_ghost(n, self.ghost_size, per_sample)
        parts = ([self._ghosts(x[:cut], self.ghost_size)] if cut else []) + (
            [self._ghosts(x[cut:], n - cut)] if cut < n else [])
        y = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        if self._updates():
            means = torch.cat([p[1] for p in parts])
            variances = torch.cat([p[2] for p in parts])
            self._update(means.mean(0), variances.mean(0))
        return self._affine(y)

    def _ghosts(self, x: torch.Tensor, size: int):
        """x normalized in ghosts of `size` samples (size divides len(x)), with each ghost's mean and
        unbiased variance, shaped (ghosts, C)."""
        g = x.view(len(x) // size, size, *x.shape[1:])
        dims = [1] + list(range(3, g.dim()))
        var, mean = torch.var_mean(g, dim=dims, correction=0, keepdim=True)
        y = ((g - mean) / torch.sqrt(var + self.eps)).view(x.shape)
        m = size * x[0, 0].numel()
        k, c = g.shape[0], g.shape[2]
        return y, mean.view(k, c), var.view(k, c) * m / max(m - 1, 1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ghost_size={self.ghost_size}"


# --------------------------------------------------------------------------- RMSNorm


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019): y = g · x / sqrt(mean(x²) + eps), the mean over the features
    of each sample (C on an MLP; C, H, W on a CNN, like layer norm), a gain g per unit / channel, no
    centring and no β. Batch-independent: the same computation in training and eval mode."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = list(range(1, x.dim()))
        y = x * torch.rsqrt(x.pow(2).mean(dim=dims, keepdim=True) + self.eps)
        return y * self.weight.view((1, -1) + (1,) * (x.dim() - 2))

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


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
