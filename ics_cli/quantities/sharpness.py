"""Sharpness: the largest and smallest eigenvalue of the loss Hessian, by Lanczos on Hessian-vector products.

At a probed step t, on the step's own training batch, H = ∇²L(θ_t) with respect to every parameter
(weights, biases, the norms' γ and β). Each Hv is one double-backward pass through the graph of one
gradient (no H is ever formed); a measurement makes `--sharpness-iters` = m of them, no more.

**Lanczos** (the default, `--sharpness-method lanczos`), in float64 with full reorthogonalization:
q_0 = the start vector, and for j = 0 … m−1, w = H q_j, α_j = q_jᵀw, w ← w minus its projection on
q_0 … q_j (twice: "twice is enough"), β_j = ‖w‖, q_{j+1} = w / β_j. The eigenvalues of the tridiagonal
T = tridiag(β, α, β) (scipy's `eigh_tridiagonal`) are the Ritz values: `sharpness` = the top one,
`sharpness_min` = the bottom one. They are Rayleigh quotients over the Krylov space, so they are
*inner* bounds, λ_min(H) ≤ sharpness_min ≤ sharpness ≤ λ_max(H), and the extremes converge first;
once the space is invariant (m ≥ the parameter count, or β ≈ 0) they are exact. β ≈ 0 is a
breakdown: the space found is invariant. From a random start that means every distinct eigenvalue the
start touches is found, and Lanczos stops early; from a warm start the subspace may hold no extreme
(the previous top eigenvector is itself invariant), so Lanczos continues, once, from the random start
vector orthogonalized against the basis (T is then block diagonal). A Hv that is not finite records
NaN and keeps the previous start. `rel_change` = |θ_k − θ_{k−1}| / |θ_k|, θ_k the top Ritz value after
k steps, says how far from converged the top is (NaN with one step).

This is the *algebraic* top, not the largest magnitude: a negative curvature (a saddle, batch norm's
deep linear net at initialization) is `sharpness_min`, never `sharpness`, so sharpness × lr ≈ 2 still
means the edge of stability (plain gradient descent on a quadratic is stable only below 2, Cohen et
al. 2021).

**Power iteration** (`--sharpness-method power`) is the method earlier runs were recorded with, kept
byte for byte so they can be extended and compared: v ← Hv / ‖Hv‖, m times, `sharpness` = the last
Rayleigh quotient vᵀHv. It converges to the eigenvalue of largest *magnitude*, which can be negative;
`sharpness_min` is NaN and `rel_change` is the last iteration's relative change of the quotient.

Either way the first start is a random unit vector from a generator of its own (seed + SEED_OFFSET,
never the global stream); every later measurement starts from the previous one's vector (Lanczos:
its top Ritz vector), which is saved in checkpoints so a resumed run records the same bytes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .base import Params, Probe, Quantity, flat

SEED_OFFSET = 2_000_003     # the start vector's stream, apart from init, batch order and the probe batch
BREAKDOWN = 1e-10           # β at most this × the largest |α|, β so far: the Krylov space is invariant

if TYPE_CHECKING:     # torch is imported where it runs: the registry is read without it
    import torch


def hvp_fn(probe: Probe):
    """A function v ↦ Hv at θ_t (flat float64 in and out), reusing one gradient graph."""
    import torch

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


def _orthogonal(w: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """w minus its projection on the orthonormal rows of `basis`, twice (classical Gram-Schmidt)."""
    for _ in range(2):
        w = w - basis.T @ (basis @ w)
    return w


def lanczos(hvp, start: torch.Tensor, steps: int, restart: torch.Tensor | None = None):
    """At most `steps` Lanczos steps from the unit vector `start`, one Hv each.

    Returns (Ritz values ascending, the top Ritz value one step earlier (NaN after one step), the top
    Ritz vector, the Hv made); when a Hv is not finite, ([NaN], NaN, None, the Hv made). On breakdown
    it goes on once from `restart` (a unit vector) orthogonalized against the basis, and stops if that
    lies in it.
    """
    from scipy.linalg import eigh_tridiagonal
    import torch

    size = min(steps, start.numel())
    basis = torch.empty(size, start.numel(), dtype=torch.float64, device=start.device)
    alphas: list[float] = []
    betas: list[float] = []         # T's off-diagonal: 0 where a restart began a new block
    scale, q = 0.0, start
    for j in range(size):
        basis[j] = q
        w = hvp(q)
        alpha = q @ w
        w = _orthogonal(w, basis[: j + 1])
        alpha, beta = torch.stack([alpha, w.norm()]).tolist()       # one copy to the host per step
        if not (math.isfinite(alpha) and math.isfinite(beta)):       # a non-finite Hv makes both so
            return [math.nan], math.nan, None, j + 1
        alphas.append(alpha)
        scale = max(scale, abs(alpha), beta)
        if j + 1 == size:
            break
        if beta > BREAKDOWN * scale:
            q = w / beta
            betas.append(beta)
            continue
        if restart is None:
            break
        r = _orthogonal(restart, basis[: j + 1])
        restart, length = None, r.norm().item()
        if length <= BREAKDOWN:     # the random start lies in the invariant space: every extreme found
            break
        q = r / length
        betas.append(0.0)
    values, vectors = eigh_tridiagonal(alphas, betas)
    prev = eigh_tridiagonal(alphas[:-1], betas[:-1], eigvals_only=True)[-1] if len(alphas) > 1 else math.nan
    k = len(alphas)
    top = basis[:k].T @ torch.as_tensor(vectors[:, -1], dtype=torch.float64, device=start.device)
    return values, float(prev), top / top.norm(), k


class Sharpness(Quantity):
    name = "sharpness"
    columns = ('step', 'sharpness', 'sharpness_min', 'lr', 'sharpness_lr', 'iterations', 'rel_change')
    keys = ('step',)
    every_field = "sharpness_every"
    option = "--sharpness-every"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self.method: str = cfg.sharpness_method
        self.v: torch.Tensor | None = None      # the last unit vector (float64), where the next one starts

    def random(self, size: int) -> torch.Tensor:
        """The first start: a random unit vector from its own stream (the same at every call)."""
        import torch

        gen = torch.Generator().manual_seed(self.cfg.seed + SEED_OFFSET)
        v = torch.randn(size, generator=gen, dtype=torch.float64)
        return v / v.norm()

    def start(self, size: int, device: torch.device) -> torch.Tensor:
        """The warm start, or at the first measurement the random one."""
        if self.v is None:
            self.v = self.random(size)
        return self.v.to(device)

    def measure(self, probe: Probe) -> list[list]:
        hvp = hvp_fn(probe)
        size = sum(p.numel() for p in probe.before.values())
        warm = self.v is not None
        v = self.start(size, probe.x.device)
        if self.method == "power":
            top, bottom, iterations, rel = self.power(hvp, v)
        else:
            top, bottom, iterations, rel = self.extremes(hvp, v, self.random(size).to(v.device) if warm else None)
        return [[probe.step, top, bottom, probe.lr, top * probe.lr, iterations, rel]]

    def extremes(self, hvp, v: torch.Tensor, restart: torch.Tensor | None) -> tuple[float, float, int, float]:
        """(λ_max, λ_min, Hv made, rel_change); the top Ritz vector becomes the next start."""
        values, prev, vector, steps = lanczos(hvp, v, self.cfg.sharpness_iters, restart)
        top, bottom = float(values[-1]), float(values[0])
        if vector is not None:      # else a Hv overflowed: the next measurement starts where this one did
            self.v = vector.detach().cpu()
        rel = abs(top - prev) / abs(top) if top != 0 and math.isfinite(prev) else math.nan
        return top, bottom, steps, rel

    def power(self, hvp, v: torch.Tensor) -> tuple[float, float, int, float]:
        """(the Rayleigh quotient of the last iterate, NaN, iterations, rel_change): earlier runs' method."""
        import torch

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
        return last, math.nan, len(quotients), rel

    def state(self) -> dict:
        return {} if self.v is None else {"v": self.v.clone()}

    def load_state(self, state: dict) -> None:
        self.v = state["v"].detach().cpu().double() if "v" in state else None
