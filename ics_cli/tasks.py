"""What the network is asked to do: classify (cross-entropy, accuracy) or regress (squared error).

A dataset names its task (`data.Dataset.task`); the loop, the evaluation and the quantities take
their loss from here, so every reader of a run sees one definition. Regression has no accuracy:
its accuracy columns are blank (NaN), and readers fall back on a loss-based rule (docs/metrics.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import metrics

TASKS = ("classify", "regress")


def loss(task: str, out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The training loss of `out` against `y`: `mean` over the batch, or `sum`."""
    if task == "classify":
        return F.cross_entropy(out, y, reduction=reduction)
    raise NotImplementedError(task)


def correct_sum(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Correctly classified samples (a device scalar); NaN for regression, which has no accuracy."""
    if task == "classify":
        return metrics.accuracy_sum(out, y)
    return out.new_tensor(float("nan"))
