"""STUB: to be written (issue 10)."""

from __future__ import annotations

from .base import Probe, Quantity


class Sharpness(Quantity):
    name = "sharpness"
    columns = ('step', 'sharpness', 'lr', 'sharpness_lr', 'iterations', 'rel_change')
    keys = ('step',)
    every_field = "sharpness_every"
    option = "--sharpness-every"

    def measure(self, probe: Probe) -> list[list]:
        return []
