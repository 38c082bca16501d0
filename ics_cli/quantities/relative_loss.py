"""STUB: to be written (issue 10)."""

from __future__ import annotations

from .base import Probe, Quantity


class RelativeLoss(Quantity):
    name = "relative_loss"
    columns = ('step', 'alpha', 'loss0', 'loss', 'rel_loss')
    keys = ('step', 'alpha')
    every_field = "relative_loss_every"
    option = "--relative-loss-every"

    def measure(self, probe: Probe) -> list[list]:
        return []
