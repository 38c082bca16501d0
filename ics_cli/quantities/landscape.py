"""STUB: to be written (issue 10)."""

from __future__ import annotations

from .base import Probe, Quantity


class Landscape(Quantity):
    name = "landscape"
    columns = ('step', 'eta_mult', 'eta', 'loss0', 'loss', 'grad_norm', 'grad_diff', 'beta')
    keys = ('step', 'eta_mult')
    every_field = "landscape_every"
    option = "--landscape-every"

    def measure(self, probe: Probe) -> list[list]:
        return []
