"""What the network is asked to do: classify (cross-entropy, accuracy) or regress (squared error).

A dataset names its task (`data.Dataset.task`); the loop, the evaluation and the quantities take
their loss from here, so every reader of a run sees one definition. Regression has no accuracy:
its accuracy columns are blank (NaN), and readers fall back on a loss-based rule (docs/metrics.md).

The regression loss is Santurkar et al.'s full-batch objective for the deep linear network: for a
batch, the SUM over its samples of a per-sample squared error (not the mean), so that their learning
rates (1e-6, 1e-7 with the 1000 samples in one batch) are on the scale of a summed objective. Per
sample, two conventions (`--regress-loss`, docs/metrics.md "Regression"):

* `mean` (task "regress", the default): ``l(x) = mean_j (f(x)_j - y_j)^2``, the squared error
  averaged over the d outputs; chosen when the DLN was first run, after seeing that it puts the
  standard net's loss in the paper's decade;
* `sum` (task "regress-sum"): ``l(x) = ||f(x) - y||^2``, the literal objective, d times the mean.

Under `sum` the gradient is d times larger, so lr η under `sum` takes exactly the steps of d·η under
`mean` (the same run, its losses × d): a convention is a choice of learning-rate scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import metrics

TASKS = ("classify", "regress", "regress-sum")
REGRESS_TASK = {"mean": "regress", "sum": "regress-sum"}    # --regress-loss -> the task that computes it


def task_for(task: str, regress_loss: str) -> str:
    """A dataset's task under the run's --regress-loss (a classification is left as it is)."""
    return REGRESS_TASK[regress_loss] if task.startswith("regress") else task


def regression(task: str) -> bool:
    return task.startswith("regress")


def loss(task: str, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The training loss of the batch (`mean`), or the sum of its per-sample losses (`sum`).

    classify: cross-entropy, averaged (`mean`) or summed over the samples. regress, regress-sum:
    l(x) as in the module docstring; the training loss of a batch is already the sum of l over its
    samples, so both reductions give that sum.
    """
    if task == "classify":
        return F.cross_entropy(out, y, reduction=reduction)
    if task == "regress":
        return (out - y).square().mean(1).sum()
    if task == "regress-sum":
        return (out - y).square().sum()
    raise ValueError(f"unknown task '{task}'; one of: {', '.join(TASKS)}")


def sample_sum(task: str, batch_loss: float, n: int) -> float:
    """The sum over a batch of n samples of their per-sample losses, from its training loss."""
    return batch_loss if regression(task) else batch_loss * n


def correct_sum(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correctly classified samples (a device scalar); NaN for regression, which has no accuracy."""
    if task == "classify":
        return metrics.accuracy_sum(out, y)
    return out.new_tensor(float("nan"))
