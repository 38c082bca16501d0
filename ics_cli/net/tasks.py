"""What the network is asked to do: classify (cross-entropy, accuracy) or regress (squared error).

A dataset names its task (`data.Dataset.task`); the loop, the evaluation and the quantities take
their loss from here, so every reader of a run sees one definition. Regression has no accuracy:
its accuracy columns are blank (NaN), and readers fall back on a loss-based rule (docs/metrics.md).

The regression loss is Santurkar et al.'s full-batch objective for the deep linear network: per
sample, the squared error averaged over the outputs, ``l(x) = mean_j (f(x)_j - y_j)^2``; for a
batch, the SUM of l over its samples (not the mean), so that their learning rates (1e-6, 1e-7 with
the 1000 samples in one batch) mean what they meant in the paper. Among the conventions tried, this
one reproduces the paper's orders of magnitude (docs/metrics.md, "Regression").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import metrics

TASKS = ("classify", "regress")


def loss(task: str, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The training loss of the batch (`mean`), or the sum of its per-sample losses (`sum`).

    classify: cross-entropy, averaged (`mean`) or summed over the samples. regress: l(x) as in the
    module docstring; the training loss of a batch is already the sum of l over its samples, so
    both reductions give that sum.
    """
    if task == "classify":
        return F.cross_entropy(out, y, reduction=reduction)
    if task == "regress":
        return (out - y).square().mean(1).sum()
    raise ValueError(f"unknown task '{task}'; one of: {', '.join(TASKS)}")


def sample_sum(task: str, batch_loss: float, n: int) -> float:
    """The sum over a batch of n samples of their per-sample losses, from its training loss."""
    return batch_loss if task == "regress" else batch_loss * n


def correct_sum(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correctly classified samples (a device scalar); NaN for regression, which has no accuracy."""
    if task == "classify":
        return metrics.accuracy_sum(out, y)
    return out.new_tensor(float("nan"))
