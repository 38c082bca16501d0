"""What is recorded and where: forward hooks on every site of every hidden layer, gradient norms.

Sites (per hidden layer): `linear` (output of the Linear/Conv), `norm` (output of the norm, the
input to the nonlinearity), `act` (output of the nonlinearity), all three from a training-mode
pass, and `norm_eval` (output of the norm in eval mode: running statistics for batch norm).

The activation recorder runs a fixed probe batch through the network at each log step. The
training-mode pass uses batch statistics for batch norm, so at its `norm` site every unit's mean is
β by construction; `norm_eval` is what the norm hands on at test time, and `linear` is what the norm
receives. Neither pass has side effects: no gradient, no running-statistics update
(num_batches_tracked included) and no draw from any random stream, so a run's trajectory does not
depend on how often it is probed. Norms without batch statistics compute the same thing in both
modes, so their `norm_eval` is a copy of `norm` and needs no second pass. Hooks reduce on the device
into preallocated buffers; the host receives one copy per log step.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from . import metrics
from .models import SITES as TRAIN_SITES
from .models import Net, weighted_layers

SITES = TRAIN_SITES + ("norm_eval",)
EVAL_SITE = SITES.index("norm_eval")
NORM_SITE = SITES.index("norm")
PER_SITE = 11    # 4 site statistics, drift since the previous log and since init (3 each), dead units


@contextmanager
def batch_stats_without_update(model: nn.Module):
    """Training-mode forward passes that leave every running statistic untouched.

    With track_running_stats off, torch's batch norm normalizes with batch statistics and neither
    updates the running mean/var nor counts the batch; the flags are restored afterwards.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.track_running_stats, m.training) for m in bns]
    was_training = model.training
    model.train()
    for m in bns:
        m.track_running_stats = False
    try:
        with torch.no_grad():
            yield
    finally:
        for m, track, training in saved:
            m.track_running_stats = track
            m.train(training)
        model.train(was_training)


class ActivationRecorder:
    """Per-unit and per-site statistics of every site on the probe batch, with drift.

    `eval_pass`: run the second, eval-mode probe pass for `norm_eval` (norms with batch statistics);
    otherwise `norm_eval` is a copy of `norm`.
    """

    def __init__(self, model: Net, probe_x: torch.Tensor, track_units: int, eval_pass: bool = True):
        self.model, self.probe_x, self.eval_pass = model, probe_x, eval_pass
        self.layers = list(model.blocks)
        width = next(iter(model.blocks.values())).linear.weight.shape[0]
        self.units = min(track_units, width)
        shape, dev = (len(self.layers), len(SITES)), probe_x.device
        self.unit_mean = torch.zeros(*shape, width, device=dev)
        self.unit_var = torch.zeros(*shape, width, device=dev)
        self.site = torch.zeros(*shape, 4, device=dev)
        self.pct = torch.zeros(*shape, self.units, 3, device=dev)
        self.prev = None                    # (unit mean, unit var) at the previous log step
        self.init = None                    # (unit mean, unit var) at step 0
        self.mode = None                    # None (hooks idle), "train" or "eval"
        for li, block in enumerate(model.blocks.values()):
            for si, site in enumerate(TRAIN_SITES):
                getattr(block, site).register_forward_hook(self._hook(li, si, "train"))
            block.norm.register_forward_hook(self._hook(li, EVAL_SITE, "eval"))

    def _hook(self, li: int, si: int, mode: str):
        def hook(module, inputs, out):
            if self.mode != mode:
                return
            mean, var = metrics.unit_stats(out)
            self.unit_mean[li, si], self.unit_var[li, si] = mean, var
            self.site[li, si] = metrics.site_stats(out, mean, var)
            if self.units:
                self.pct[li, si] = metrics.percentiles(out, self.units)
        return hook

    def _probe(self) -> None:
        try:
            self.mode = "train"
            with batch_stats_without_update(self.model):
                self.model(self.probe_x)
            if self.eval_pass:
                self.mode = "eval"
                was_training = self.model.training
                self.model.eval()
                try:
                    with torch.no_grad():
                        self.model(self.probe_x)
                finally:
                    self.model.train(was_training)
            else:
                for buf in (self.unit_mean, self.unit_var, self.site, self.pct):
                    buf[:, EVAL_SITE] = buf[:, NORM_SITE]
        finally:
            self.mode = None

    def record(self, step: int) -> tuple[list[list], list[list]]:
        """Probe the model now; return the rows for layers.csv and units.csv."""
        self._probe()
        now = (self.unit_mean.clone(), self.unit_var.clone())
        if self.init is None:
            self.init = now
        nan = torch.full(self.site.shape[:2] + (3,), float("nan"), device=self.site.device)
        d_prev = nan if self.prev is None else metrics.drift(*self.prev, *now)
        d_init = metrics.drift(*self.init, *now)
        self.prev = now
        dead = metrics.dead(self.unit_var).sum(-1, keepdim=True).to(self.site.dtype)
        # layers.csv order: site stats, drift_mean, drift_var, drift_mean_init, drift_var_init,
        # drift_mean_scaled, drift_mean_scaled_init, dead_units.
        per_site = torch.cat([self.site, d_prev[..., :2], d_init[..., :2], d_prev[..., 2:],
                              d_init[..., 2:], dead], -1)
        # One copy to the host for everything recorded at this step.
        host = torch.cat([per_site.flatten(), self.unit_mean.flatten(), self.unit_var.flatten(),
                          self.pct.flatten()]).cpu().tolist()
        return self._rows(step, host)

    def _rows(self, step: int, flat: list[float]) -> tuple[list[list], list[list]]:
        L, S, C, T, P = len(self.layers), len(SITES), self.unit_mean.shape[-1], self.units, PER_SITE
        per_site, flat = flat[:L * S * P], flat[L * S * P:]
        means, flat = flat[:L * S * C], flat[L * S * C:]
        varis, pct = flat[:L * S * C], flat[L * S * C:]
        layer_rows, unit_rows = [], []
        for li, layer in enumerate(self.layers):
            for si, site in enumerate(SITES):
                k = li * S + si
                row = per_site[k * P:(k + 1) * P]
                layer_rows.append([step, layer, site, *row[:-1], int(row[-1])])
                for u in range(C):
                    q = pct[(k * T + u) * 3:(k * T + u + 1) * 3] if u < T else [float("nan")] * 3
                    unit_rows.append([step, layer, site, u, means[k * C + u], varis[k * C + u], *q])
        return layer_rows, unit_rows

    def state(self) -> dict:
        return {"prev": self.prev, "init": self.init}

    def load_state(self, state: dict) -> None:
        self.prev, self.init = state["prev"], state["init"]


class GradientRecorder:
    """Gradient norm, weight norm and update ratio of each layer's weight over one optimizer step.

    Call `before_step()` after backward and before optimizer.step(), and `after_step()` after it,
    only on the steps whose result is logged.
    """

    def __init__(self, model: Net):
        self.weights = weighted_layers(model)
        self._before = None
        self._grad = None

    def before_step(self) -> None:
        ws = list(self.weights.values())
        self._before = [w.detach().clone() for w in ws]
        self._grad = torch.stack([w.grad.detach().norm() if w.grad is not None else w.new_zeros(())
                                  for w in ws])

    def after_step(self, step: int) -> list[list]:
        """Rows for grads.csv: step, layer, grad_norm, weight_norm (after), update_ratio."""
        ws = list(self.weights.values())
        w_norm = torch.stack([w.detach().norm() for w in ws])
        delta = torch.stack([(w.detach() - b).norm() / b.norm() for w, b in zip(ws, self._before)])
        host = torch.stack([self._grad, w_norm, delta], 1).cpu().tolist()
        self._before = None
        return [[step, name, *vals] for name, vals in zip(self.weights, host)]
