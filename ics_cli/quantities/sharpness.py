"""Sharpness: the top eigenvalue of the loss Hessian, by power iteration on Hessian-vector products.

At a probed step t, on the step's own training batch, H = ∇²L(θ_t) with respect to every parameter
(weights, biases, the norms' γ and β). Power iteration v ← Hv / ‖Hv‖, `--sharpness-iters` times;
each Hv is one double-backward pass through the graph of one gradient (no H is ever formed). The
first start is a random unit vector from a generator of its own (seed + SEED_OFFSET, never the
global stream); every later measurement starts from the previous one's vector, which is saved in
checkpoints so a resumed run records the same bytes.

Power iteration converges to the eigenvalue of largest *magnitude*: early in training, or at a
saddle, that can be a negative one. `rel_change` = |λ_k − λ_{k−1}| / |λ_k|, the last iteration's
relative change of the Rayleigh quotient, says how far from converged it is (NaN with one iteration).
sharpness × lr is what to read: plain gradient descent on a quadratic is stable only below 2 (the
"edge of stability", Cohen et al. 2021).
"""

from __future__ import annotations

import math

import torch

from .base import Params, Probe, Quantity, flat

SEED_OFFSET = 2_000_003     # the start vector's stream, apart from init, batch order and the probe batch


def hvp_fn(probe: Probe):
    """A function v ↦ Hv at θ_t (flat float64 in and out), reusing one gradient graph."""
    leaves: Params = {k: v.detach().requires_grad_(True) for k, v in probe.before.items()}
    grads = torch.autograd.grad(probe.loss(leaves), list(leaves.values()), create_graph=True)
    shapes = [p.shape for p in leaves.values()]
    sizes = [p.numel() for p in leaves.values()]
    # A gradient with no graph is constant in θ (the loss is linear in those parameters): its rows of
    # H are zero, so it takes no part in the second backward.
    live = [i for i, g in enumerate(grads) if g.requires_grad]
    params = list(leaves.values())

    def hvp(v: torch.Tensor) -> torch.Tensor:
        parts = [p.reshape(s).to(params[0].dtype) for p, s in zip(v.split(sizes), shapes)]
        if not live:
            return torch.zeros_like(v)
        hv = torch.autograd.grad([grads[i] for i in live], params, [parts[i] for i in live],
                                 retain_graph=True, allow_unused=True)
        return flat([torch.zeros_like(p) if h is None else h for h, p in zip(hv, params)])

    return hvp


class Sharpness(Quantity):
    name = "sharpness"
    columns = ('step', 'sharpness', 'lr', 'sharpness_lr', 'iterations', 'rel_change')
    keys = ('step',)
    every_field = "sharpness_every"
    option = "--sharpness-every"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self.v: torch.Tensor | None = None      # the last unit vector (float64), where the next one starts

    def start(self, size: int, device: torch.device) -> torch.Tensor:
        """The warm start, or at the first measurement a random unit vector from its own stream."""
        if self.v is None:
            gen = torch.Generator().manual_seed(self.cfg.seed + SEED_OFFSET)
            v = torch.randn(size, generator=gen, dtype=torch.float64)
            self.v = v / v.norm()
        return self.v.to(device)

    def measure(self, probe: Probe) -> list[list]:
        hvp = hvp_fn(probe)
        v = self.start(sum(p.numel() for p in probe.before.values()), probe.x.device)
        quotients: list[torch.Tensor] = []
        for _ in range(self.cfg.sharpness_iters):
            hv = hvp(v)
            quotients.append(v @ hv)             # Rayleigh quotient vᵀHv, ‖v‖ = 1
            size = hv.norm()
            if not (torch.isfinite(size) and size > 0):   # H v = 0 (or overflow): v stays where it is
                break
            v = hv / size
        self.v = v.detach().cpu()
        host = torch.stack(quotients[-2:]).tolist()
        last, prev = host[-1], (host[0] if len(host) > 1 else math.nan)
        rel = abs(last - prev) / abs(last) if last != 0 and math.isfinite(prev) else math.nan
        return [[probe.step, last, probe.lr, last * probe.lr, len(quotients), rel]]

    def state(self) -> dict:
        return {} if self.v is None else {"v": self.v.clone()}

    def load_state(self, state: dict) -> None:
        self.v = state["v"].detach().cpu().double() if "v" in state else None
