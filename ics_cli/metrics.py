"""The statistics recorded for one run: each one a pure function with one definition.

They work on tensors and stay on the tensors' device; the recorder (probes.py) calls them inside a
probe pass and copies the results to the host once per log step. docs/metrics.md gives each formula.
Cross-run aggregates (drift totals, gradient stability, lr tolerance) live in compare.py.
"""

from __future__ import annotations

import torch

LOG_VAR_FLOOR = 1e-8     # keeps log(var) finite for a unit that is constant over the probe (dead ReLU)
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


def log_var(unit_var: torch.Tensor) -> torch.Tensor:
    return torch.log(unit_var + LOG_VAR_FLOOR)


def drift(mean_a: torch.Tensor, logvar_a: torch.Tensor,
          mean_b: torch.Tensor, logvar_b: torch.Tensor) -> torch.Tensor:
    """[drift of the unit means, drift of the log unit variances] from a to b.

    drift_mean = mean over units |mean_b - mean_a|; drift_var = mean over units |logvar_b - logvar_a|.
    Leading dimensions are kept; the last one (units) is reduced.
    """
    return torch.stack([(mean_b - mean_a).abs().mean(-1), (logvar_b - logvar_a).abs().mean(-1)], -1)


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
