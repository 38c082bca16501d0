"""Gradient-based internal covariate shift (Santurkar, Tsipras, Ilyas, Madry 2018, Def. 2.1).

At a probed step t, on the step's own training batch, for each hidden layer i (`hidden1..hiddenK`):

    G  = ∇_{W_i} L(θ_t)                                   every parameter at θ_t
    G′ = ∇_{W_i} L(θ_{t+1} for layers 1..i−1,  θ_t for layers i..K and the head)

W_i is the weight of block i's Linear/Conv; a *layer* is every parameter whose name starts with
`hidden{i}.` (that weight, its bias, its norm's γ and β); on a user's model (ics.watch) the
parameters of its site modules, the Linear/Conv, norm and act (others, such as an embedding, stay at θ_t). G′ is the gradient layer i would get if it
saw the inputs the earlier layers give after the step's actual optimizer update: the difference is
the shift that update causes in what layer i is asked to do. Rows: ‖G‖₂, ‖G − G′‖₂, cos(G, G′) and
‖G − G′‖₂ / ‖G‖₂ (`ics_rel`). Compare nets by `ics_rel` or `ics_cos`, which are scale-free: ‖G − G′‖₂
alone shrinks with the gradient, so a net with smaller gradients reads as "less shift" (Santurkar's
Fig. 5 plots the raw ℓ2; a claim about shift, not about gradient size, reads the relative one).
For hidden1 nothing comes before it, so G′ = G: ℓ2 0, cosine 1 and ics_rel 0, without a pass
(ics_rel and cosine NaN where ‖G‖ = 0).

Cost: the gradient at θ_t is one backward pass for every layer at once (before the update); G′ is
one forward and backward per layer i ≥ 2 (after it), differentiating W_i only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .base import Params, Probe, Quantity

if TYPE_CHECKING:     # torch is imported where it runs: the registry is read without it
    import torch


def weight_names(model) -> dict[str, str]:
    """Each hidden block's name -> the parameter name of its Linear/Conv weight."""
    names = {id(p): k for k, p in model.named_parameters()}
    return {layer: names[id(block.linear.weight)] for layer, block in model.blocks.items()}


def layer_params(model) -> dict[str, set[str]]:
    """Each hidden layer's parameter names: every parameter of its block's sites (Linear/Conv, norm,
    act). For a Net, those under `hidden{i}.`; for a user's model (ics_cli/user), its site modules'."""
    names = {id(p): k for k, p in model.named_parameters()}
    return {layer: {names[id(p)] for site in ("linear", "norm", "act")
                    if (m := getattr(block, site)) is not None for p in m.parameters()}
            for layer, block in model.blocks.items()}


def shifted(probe: Probe, earlier: list[str], params: dict[str, set[str]] | None = None) -> Params:
    """θ_t, except the parameters of the layers in `earlier`, which take their values after the update
    (`params`: each layer's parameter names, `layer_params`; None: those under `layer.`)."""
    if params is None:
        prefixes = tuple(f"{layer}." for layer in earlier)
        moved = {k for k in probe.before if k.startswith(prefixes)}
    else:
        moved = set().union(*(params[layer] for layer in earlier))
    return {k: (probe.after[k] if k in moved else v) for k, v in probe.before.items()}


def weight_grad(probe: Probe, params: Params, key: str) -> torch.Tensor:
    """∇_{params[key]} L at `params`, differentiating that one parameter only."""
    import torch

    params = dict(params)
    leaf = params[key] = params[key].detach().requires_grad_(True)
    return torch.autograd.grad(probe.loss(params), leaf)[0]


class GradICS(Quantity):
    name = "grad_ics"
    columns = ('step', 'layer', 'grad_norm', 'ics_l2', 'ics_cos', 'ics_rel')
    keys = ('step', 'layer')
    every_field = "ics_every"
    option = "--ics-every"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self.weights = weight_names(model)
        self.params = layer_params(model)
        self._g: dict[str, torch.Tensor] = {}    # G of each layer, from measure to after_update

    def measure(self, probe: Probe) -> list[list]:
        grads = probe.grad()
        self._g = {layer: grads[key] for layer, key in self.weights.items()}
        return []

    def after_update(self, probe: Probe) -> list[list]:
        import torch

        layers = list(self.weights)
        stats = []                                   # per layer: ‖G‖, ‖G − G′‖, ⟨G, G′⟩, ‖G′‖ (float64)
        for i, layer in enumerate(layers):
            g = self._g[layer].double()
            g_norm = g.norm()
            if i == 0:
                stats.append(torch.stack([g_norm, g_norm.new_zeros(()), g_norm * g_norm, g_norm]))
                continue
            gp = weight_grad(probe, shifted(probe, layers[:i], self.params), self.weights[layer]).double()
            stats.append(torch.stack([g_norm, (g - gp).norm(), (g * gp).sum(), gp.norm()]))
        self._g = {}
        rows = []
        for layer, (g_norm, l2, dot, gp_norm) in zip(layers, torch.stack(stats).tolist()):
            if layer == layers[0]:
                cos = 1.0 if g_norm > 0 else math.nan
            elif g_norm > 0 and gp_norm > 0:
                cos = max(-1.0, min(1.0, dot / (g_norm * gp_norm)))   # rounding may step past ±1
            else:
                cos = math.nan
            rows.append([probe.step, layer, g_norm, l2, cos, l2 / g_norm if g_norm > 0 else math.nan])
        return rows
