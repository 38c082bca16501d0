"""The statistics recorded for one run: each one a pure function with one definition.

They work on tensors and stay on the tensors' device; the recorder (probes.py) calls them inside a
probe pass and copies the results to the host once per log step. docs/metrics.md gives each formula.
Cross-run aggregates (drift totals, gradient stability, lr tolerance) live in compare.py.
"""

from __future__ import annotations

import torch

# A unit whose variance over the probe is at most DEAD_FRACTION x its site's mean unit variance is
# "dead" (a ReLU that never fires, a saturated sigmoid): its log-variance and its standardized mean
# change are undefined or dominated by rounding, so drift leaves it out (relative, hence scale-free).
DEAD_FRACTION = 1e-6
QUANTILES = (0.15, 0.50, 0.85)


def unit_dims(x: torch.Tensor) -> list[int]:
    """Axes one unit's statistics reduce over: N for features (N, C), N, H, W for channels."""
    return [0] + list(range(2, x.dim()))


def unit_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit mean and population variance (divide by the count), each of shape (C,)."""
    var, mean = torch.var_mean(x, dim=unit_dims(x), correction=0)
    return mean, var


def site_stats(x: torch.Tensor, unit_mean: torch.Tensor, unit_var: torch.Tensor) -> torch.Tensor:
    """[mean, var, unit_mean_abs, unit_var_mean] of one site's activation x.

    mean, var: over all elements of x. unit_mean_abs: mean over units of |unit mean|.
    unit_var_mean: mean over units of the unit variance.
    """
    var, mean = torch.var_mean(x, correction=0)
    return torch.stack([mean, var, unit_mean.abs().mean(), unit_var.mean()])


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


def unit_values(x: torch.Tensor, units: int) -> torch.Tensor:
    """The values of the first `units` units as columns: (N, units) or (N*H*W, units)."""
    x = x[:, :units]
    return x if x.dim() == 2 else x.transpose(0, 1).reshape(units, -1).T


def percentiles(x: torch.Tensor, units: int) -> torch.Tensor:
    """p15, p50, p85 of each of the first `units` units over the probe: shape (units, 3).

    Linear interpolation between order statistics (torch.quantile's default).
    """
    q = torch.tensor(QUANTILES, dtype=x.dtype, device=x.device)
    return torch.quantile(unit_values(x, units), q, dim=0).T


def accuracy_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct predictions, as a tensor (no host sync)."""
    return (logits.argmax(1) == y).sum()
