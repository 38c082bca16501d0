"""Noise after the norm: Santurkar et al. (2018), Algorithm 1 ("noisy BatchNorm"), for `--noise santurkar`.

At every training step, each unit (feature, or channel of a conv layer) j of a hidden layer gets a
distribution of its own: μ_j ~ U(−0.5, 0.5), σ_j ~ U(1, 1.25). Each element of the norm's output
a then becomes s·a + m with m ~ U(μ_j − 0.1, μ_j + 0.1) and s ~ N(σ_j, 0.1²) drawn per element
(per sample, and per position for a conv layer: height and width count as batch). Santurkar's
constants n_μ = 0.5, n_σ = 1.25, r_μ = 0.1, r_σ = 0.1; r_σ is read as a standard deviation.

The noise module sits right after the norm inside the Block's `norm` slot (`Noisy`), so the `norm`
site records the noisy activation. It works with any norm (`--norm none --noise santurkar` is the
paper's control).

Random stream: draw k of layer l comes from a torch.Generator seeded with a hash of (run seed,
OFFSET, layer, k), never from the global RNG. k counts the layer's training passes, one per step, and
is saved in the model's state_dict (`_extra_state`), so a checkpoint holds everything needed and a
resumed run draws what an unbroken one would: the stream is a function of (seed, layer, step).

Modes (`mode`):
- training pass (training mode, mode "train"): the next draw k, then k += 1; it is kept for replay;
- mode "replay": the last training draw again, exactly (the passes of the second view of ICS,
  quantities.side_effect_free);
- mode "probe" (the activation probe, probes.ActivationRecorder.probe): a draw of the same law from
  a separate seed (seed, layer, k, PROBE), so the probe sees noise like the training pass does but
  takes nothing from the training stream; k is not advanced;
- mode "off" (test evaluation with batch statistics) and eval mode: no noise, as with dropout: the
  noise perturbs training; the test set measures the learned function.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

OFFSET = 2_000_029            # apart from the probe batch's and the data streams' seeds
TRAIN, PROBE = 0, 1           # which stream a draw comes from
MU, SIGMA, R_MU, R_SIGMA = 0.5, 1.25, 0.1, 0.1     # Santurkar's n_μ, n_σ, r_μ, r_σ
MODES = ("train", "replay", "probe", "off")


def _seed(*key: int) -> int:
    """A 63-bit seed mixing the key's integers (numpy's SeedSequence: no overlap between keys)."""
    hi, lo = np.random.SeedSequence([OFFSET, *key]).generate_state(2, np.uint32)
    return (int(hi) << 31) ^ int(lo)


class Santurkar(nn.Module):
    """Algorithm 1's noise on (N, C) or (N, C, H, W) activations; unit j is index j of dim 1."""

    def __init__(self, seed: int, layer: int):
        super().__init__()
        self.seed, self.layer = seed, layer
        self.draws = 0                  # training draws made: the next one is number `draws`
        self.mode = "train"
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None   # (s, m) of the last training draw
        self._gens: dict[torch.device, torch.Generator] = {}

    def draw(self, a: torch.Tensor, k: int, stream: int = TRAIN) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, m), each shaped like a: draw k of this layer from `stream`."""
        gen = self._gens.get(a.device)
        if gen is None:
            gen = self._gens[a.device] = torch.Generator(device=a.device)
        gen.manual_seed(_seed(self.seed, stream, self.layer, k))
        c, kw = a.shape[1], dict(generator=gen, device=a.device, dtype=a.dtype)
        unit = (1, c) + (1,) * (a.dim() - 2)
        mu = ((torch.rand(c, **kw) * 2 - 1) * MU).view(unit)
        sigma = (1 + torch.rand(c, **kw) * (SIGMA - 1)).view(unit)
        m = mu + (torch.rand(a.shape, **kw) * 2 - 1) * R_MU
        s = sigma + torch.randn(a.shape, **kw) * R_SIGMA
        return s, m

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if not self.training or self.mode == "off":
            return a
        if self.mode == "replay":
            if self.last is None or self.last[0].shape != a.shape:
                raise RuntimeError("noise replay needs a training pass of the same shape first")
            s, m = self.last
        elif self.mode == "probe":
            s, m = self.draw(a, self.draws, PROBE)
        else:
            s, m = self.last = self.draw(a, self.draws)
            self.draws += 1
        return s * a + m

    # The draw counter travels with the weights (model.state_dict()), hence with every checkpoint.
    def get_extra_state(self) -> dict:
        return {"draws": self.draws}

    def set_extra_state(self, state: dict) -> None:
        self.draws, self.last = int(state["draws"]), None

    def extra_repr(self) -> str:
        return f"layer={self.layer}, draws={self.draws}"


class Noisy(nn.Module):
    """A norm followed by the noise: what the Block's `norm` slot holds under --noise santurkar."""

    def __init__(self, norm: nn.Module, noise: Santurkar):
        super().__init__()
        self.norm, self.noise = norm, noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.noise(self.norm(x))


def build(cfg, layer: int) -> Santurkar | None:
    """The noise module of hidden layer `layer` (1-based) for cfg.noise, or None."""
    return Santurkar(cfg.seed, layer) if cfg.noise == "santurkar" else None


def modules(model: nn.Module) -> list[Santurkar]:
    return [m for m in model.modules() if isinstance(m, Santurkar)]


@contextmanager
def mode(model: nn.Module, name: str):
    """Every noise module of `model` in mode `name` (one of MODES) inside the block."""
    saved = [(m, m.mode) for m in modules(model)]
    for m, _ in saved:
        m.mode = name
    try:
        yield
    finally:
        for m, old in saved:
            m.mode = old
