"""The shape every quantity of the second view has, and the probe it reads from.

A quantity (f-dangel/cockpit's pattern) says three things and nothing else:
- **when it runs**: its cadence, a RunConfig field (`every_field`, e.g. `ics_every`): step t is
  measured when t % every == 0 (every = 0: never), for t < steps (under `--second-view-until f`, for
  t < ⌈f × steps⌉ only). Step t means the weights after t
  updates, θ_t, and the batch of update t + 1 (the one the loop has just differentiated);
- **what it computes**: `measure(probe)` at θ_t before the update, and `after_update(probe)` once the
  optimizer has made it (only the quantities that need θ_{t+1} use it); each returns rows;
- **which columns it writes**: `columns`, to the table `<name>.csv` of the run folder, one row per
  observation; `keys` are the columns that name one.

The loop asks the quantities that are due; it never branches on one. Every pass a quantity makes
goes through its `Probe`, which makes the pass free of side effects: batch norm normalizes with the
batch's statistics in training mode but leaves its running statistics and batch count untouched,
noise modules replay the draw of the step's own training pass (so they take nothing from the noise
stream), and no parameter's `.grad` is touched (gradients come from `torch.autograd.grad`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..net import schedule

if TYPE_CHECKING:     # torch is imported where it runs: the registry is read without it
    import torch
    from torch import nn

    Params = dict[str, torch.Tensor]
else:
    Params = dict


def side_effect_free(model: nn.Module):
    """Training-mode passes that change no buffer: batch norm without running-statistics updates,
    noise replaying its last training draw; gradients enabled."""
    from ..probes import batch_stats_without_update

    return batch_stats_without_update(model, noise_mode="replay", grad=True)


class Probe:
    """What a quantity may read at step t: the model at θ_t, the batch (x, y) of update t + 1, the
    loss function, the learning rate; and, after the update, θ_{t+1}.

    `loss(params)` and `grad(params)` evaluate the model with `params` (a dict of every parameter by
    name; by default θ_t) without changing it.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], step: int, lr: float):
        self.model, self.x, self.y, self.loss_fn, self.step, self.lr = model, x, y, loss_fn, step, lr
        self.before: Params = {k: p.detach().clone() for k, p in model.named_parameters()}
        self.after: Params | None = None     # θ_{t+1}, set by the loop once the update is made

    def updated(self) -> None:
        """Record θ_{t+1}: the loop calls this right after the optimizer step."""
        self.after = {k: p.detach().clone() for k, p in self.model.named_parameters()}

    def loss(self, params: Params | None = None) -> torch.Tensor:
        """The mean loss of the batch at `params` (θ_t by default), with its autograd graph."""
        from torch.func import functional_call

        params = self.before if params is None else params
        with side_effect_free(self.model):
            out = functional_call(self.model, params, (self.x,))
        return self.loss_fn(out, self.y)

    def grad(self, params: Params | None = None, *, create_graph: bool = False) -> Params:
        """∇L at `params` (θ_t by default), every parameter by name."""
        return self.loss_and_grad(params, create_graph=create_graph)[1]

    def loss_and_grad(self, params: Params | None = None, *,
                      create_graph: bool = False) -> tuple[torch.Tensor, Params]:
        """L (detached unless create_graph) and ∇L at `params` (θ_t by default), from one pass."""
        import torch

        params = dict(self.before if params is None else params)
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        loss = self.loss(leaves)
        grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=create_graph)
        return (loss if create_graph else loss.detach()), dict(zip(leaves, grads))


def flat(tensors: Params | list[torch.Tensor]) -> torch.Tensor:
    """Every tensor as one float64 vector (norms and dot products without float32 cancellation)."""
    import torch

    values = tensors.values() if isinstance(tensors, dict) else tensors
    return torch.cat([t.reshape(-1).double() for t in values])


class Quantity:
    """One measurement of the second view. Subclasses set the class attributes and `measure`."""

    name: str = ""                 # the table: <name>.csv
    columns: tuple[str, ...] = ()  # its header; "step" first
    keys: tuple[str, ...] = ("step",)   # the columns that name one row
    every_field: str = ""          # the RunConfig field holding its cadence
    option: str = ""               # that field as a CLI option, for messages

    def __init__(self, cfg, model: nn.Module):
        self.cfg, self.model = cfg, model
        self.every: int = getattr(cfg, self.every_field)
        # --second-view-until f: only the steps before step_at(f) (the early window a grid can afford).
        until = getattr(cfg, "second_view_until", None)
        self.until: int = cfg.steps if until is None else min(cfg.steps, schedule.step_at(until, cfg.steps))

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0 and step < self.until

    def measure(self, probe: Probe) -> list[list]:
        """Rows measured at θ_t, before the update (may keep what `after_update` needs)."""
        raise NotImplementedError

    def after_update(self, probe: Probe) -> list[list]:
        """Rows that need θ_{t+1} (probe.after). Default: none."""
        return []

    # A quantity that carries state from one step to the next (sharpness' warm start) saves it in
    # checkpoints, so a resumed run records the same bytes as an unbroken one.
    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass

    @staticmethod
    def check(cfg) -> None:
        """Refuse option values this quantity cannot use (called by config.validate)."""
