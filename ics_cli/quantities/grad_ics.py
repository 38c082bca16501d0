"""STUB: to be written (issue 10)."""

from __future__ import annotations

from .base import Probe, Quantity


class GradICS(Quantity):
    name = "grad_ics"
    columns = ('step', 'layer', 'grad_norm', 'ics_l2', 'ics_cos')
    keys = ('step', 'layer')
    every_field = "ics_every"
    option = "--ics-every"

    def measure(self, probe: Probe) -> list[list]:
        return []
