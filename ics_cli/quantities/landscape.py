"""The loss landscape along the gradient (Santurkar et al. 2018, Sec. 3.2).

At θ_t, on the batch of update t + 1, with g = ∇L(θ_t) over every parameter, for each step size
η = m · lr (m in --landscape-etas): the loss L(θ_t − ηg), the gradient predictiveness
‖∇L(θ_t) − ∇L(θ_t − ηg)‖₂ and the effective β-smoothness at that η, that change over ‖ηg‖₂.
The probe steps along the raw gradient whatever the optimizer (with Adam it is not the step taken).
Cost: one forward and backward pass at θ_t, one per η.
"""

from __future__ import annotations

from . import grids
from .base import Probe, Quantity, flat


class Landscape(Quantity):
    name = "landscape"
    columns = ('step', 'eta_mult', 'eta', 'loss0', 'loss', 'grad_norm', 'grad_diff', 'beta')
    keys = ('step', 'eta_mult')
    every_field = "landscape_every"
    option = "--landscape-every"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self.mults = grids.parse(cfg.landscape_etas)

    @staticmethod
    def check(cfg) -> None:
        grids.check("--landscape-etas", cfg.landscape_etas)

    def measure(self, probe: Probe) -> list[list]:
        import torch

        loss0, g = probe.loss_and_grad()
        g_flat = flat(g)
        grad_norm = g_flat.norm()
        values = []       # per η: loss0, loss, grad_norm, grad_diff, beta, on the device until one copy
        for m in self.mults:
            eta = m * probe.lr
            moved = {k: v - eta * g[k] for k, v in probe.before.items()}
            loss, g_moved = probe.loss_and_grad(moved)
            grad_diff = (g_flat - flat(g_moved)).norm()
            # 0/0 (a zero gradient) is NaN: no step, no smoothness measured.
            beta = grad_diff / (eta * grad_norm)
            values.append(torch.stack([loss0.double(), loss.double(), grad_norm, grad_diff, beta]))
        host = torch.stack(values).tolist()
        return [[probe.step, m, m * probe.lr, *row] for m, row in zip(self.mults, host)]
