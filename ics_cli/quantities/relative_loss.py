"""The relative loss of one gradient step (Bjorck et al. 2018, Fig. 2).

At θ_t, on the batch of update t + 1, with g = ∇L_B(θ_t): L(θ_t − αg) / L(θ_t) for each absolute step
size α in --relative-alphas (not a multiple of lr). A loss that blows up is a result, not an error:
a non-finite loss is recorded as it is (inf written `inf`, NaN blank).
Cost: one forward and backward pass at θ_t, one forward pass per α.
"""

from __future__ import annotations

import math

from . import grids
from .base import Probe, Quantity


def ratio(loss: float, loss0: float) -> float:
    """loss / loss0 as IEEE division gives it (x/0 is ±inf, 0/0 NaN) instead of a ZeroDivisionError."""
    if loss0 == 0:
        return math.nan if loss == 0 or math.isnan(loss) else math.copysign(math.inf, loss)
    return loss / loss0


class RelativeLoss(Quantity):
    name = "relative_loss"
    columns = ('step', 'alpha', 'loss0', 'loss', 'rel_loss')
    keys = ('step', 'alpha')
    every_field = "relative_loss_every"
    option = "--relative-loss-every"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self.alphas = grids.parse(cfg.relative_alphas)

    @staticmethod
    def check(cfg) -> None:
        grids.check("--relative-alphas", cfg.relative_alphas)

    def measure(self, probe: Probe) -> list[list]:
        import torch

        loss0, g = probe.loss_and_grad()
        with torch.no_grad():
            moved = [probe.loss({k: v - alpha * g[k] for k, v in probe.before.items()})
                     for alpha in self.alphas]
        loss0, *losses = torch.stack([loss0, *moved]).tolist()     # one copy from the device
        return [[probe.step, alpha, loss0, loss, ratio(loss, loss0)]
                for alpha, loss in zip(self.alphas, losses)]
