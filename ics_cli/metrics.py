"""The statistics recorded for one run: each one a pure function with one definition.

They work on tensors and stay on the tensors' device; the recorder (probes.py) calls them after a
probe pass and copies the results to the host once per block of log steps. docs/metrics.md gives each formula.
Cross-run aggregates (drift totals, gradient stability, lr tolerance) live in compare.py.
"""

from __future__ import annotations

import numpy as np
import torch

# A unit whose variance over the probe is at most DEAD_FRACTION x its site's mean unit variance is
# "dead" (a ReLU that never fires, a saturated sigmoid): its log-variance and its standardized mean
# change are undefined or dominated by rounding, so drift leaves it out (relative, hence scale-free).
DEAD_FRACTION = 1e-6
QUANTILES = (0.15, 0.50, 0.85)


def unit_moments(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance (divide by the count) over `dims`, in two passes.

    var = mean((x - mean)^2): as exact as torch.var_mean, and on a CPU several times faster for the
    strided reductions of stacked sites.
    """
    mean = x.mean(dims, keepdim=True)
    d = x - mean
    return mean.squeeze(dims), (d * d).mean(dims)


def site_stats(unit_mean: torch.Tensor, unit_var: torch.Tensor) -> torch.Tensor:
    """[mean, var, unit_mean_abs, unit_var_mean] of each site, from its units' means and variances.

    Every unit of a site has the same number of values (N, or N x H x W), so the site's mean is the
    mean of the unit means and its variance, by the law of total variance, the mean of the unit
    variances plus the variance of the unit means: var = E[var_u] + Var[mean_u] (population, over
    units). unit_mean_abs: mean over units of |unit mean|; unit_var_mean: mean over units of the unit
    variance. The last axis (units) is reduced.
    """
    var_within = unit_var.mean(-1)
    var_between, mean = torch.var_mean(unit_mean, dim=-1, correction=0)
    return torch.stack([mean, var_within + var_between, unit_mean.abs().mean(-1), var_within], -1)


def dead(unit_var: torch.Tensor) -> torch.Tensor:
    """Boolean mask of dead units: variance <= DEAD_FRACTION x the mean over units (last axis)."""
    return unit_var <= DEAD_FRACTION * unit_var.mean(-1, keepdim=True)


def _mean_over(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of the kept values; NaN where none is kept (0 / 0)."""
    values = torch.where(keep, values, torch.zeros_like(values))
    return values.sum(-1) / keep.sum(-1)


def drift(mean_a: torch.Tensor, var_a: torch.Tensor,
          mean_b: torch.Tensor, var_b: torch.Tensor) -> torch.Tensor:
    """[drift_mean, drift_var, drift_mean_scaled] of each site from statistics a to statistics b.

    drift_mean = mean over units |mean_b - mean_a| (raw activation units, every unit);
    drift_var = mean over live units |ln var_b - ln var_a|;
    drift_mean_scaled = mean over live units |mean_b - mean_a| / sqrt((var_a + var_b) / 2), the
    change of each unit's mean in units of its own standard deviation (scale-free).
    Live units are alive (see `dead`) at both a and b; with none the value is NaN. Leading
    dimensions are kept; the last one (units) is reduced.
    """
    live = ~dead(var_a) & ~dead(var_b)
    ones = torch.ones_like(var_a)
    change = (mean_b - mean_a).abs()
    log_ratio = (torch.log(torch.where(live, var_b, ones)) - torch.log(torch.where(live, var_a, ones))).abs()
    scaled = change / torch.sqrt(torch.where(live, (var_a + var_b) / 2, ones))
    return torch.stack([change.mean(-1), _mean_over(log_ratio, live), _mean_over(scaled, live)], -1)


def _sorted(values: torch.Tensor) -> torch.Tensor:
    """values sorted along the last axis. On the CPU by numpy: torch's CPU sort is some 30x slower
    on these small rows (the same values either way)."""
    if values.device.type == "cpu":
        return torch.from_numpy(np.sort(values.detach().numpy(), axis=-1))
    return values.sort(-1).values


def site_percentiles(x: torch.Tensor, units: int) -> torch.Tensor:
    """p15, p50, p85 of each of the first `units` units of every site stacked in x: (sites, units, 3).

    x is (sites, N, C) or (sites, N, C, H, W); a unit's values are its N (or N x H x W) entries.
    Linear interpolation between order statistics (torch.quantile's default): one sort for all sites,
    then the value at position q (n - 1) interpolated between its two neighbours.
    """
    if units == 0:
        return x.new_zeros(x.shape[0], 0, 3)
    x = x[:, :, :units]
    values = _sorted(x.transpose(1, 2).reshape(x.shape[0], units, -1))   # (sites, units, n)
    pos = torch.tensor(QUANTILES, dtype=torch.float64) * (values.shape[-1] - 1)
    lo, frac = pos.floor().long(), (pos - pos.floor()).to(x.dtype).to(x.device)
    hi = torch.clamp(lo + 1, max=values.shape[-1] - 1)
    a, b = values[..., lo.to(x.device)], values[..., hi.to(x.device)]
    return a + frac * (b - a)


def accuracy_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions, as a tensor (no host sync)."""
    return (logits.argmax(1) == y).sum()
