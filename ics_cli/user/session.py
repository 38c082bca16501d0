"""One recording session on a user's own model and loop (`ics.watch`): the run folder `ics train` writes.

Step t means "after t updates", as in `ics train`. `w.step(...)` is called after the backward pass of
update t + 1 and before `optimizer.step()`: it takes the gradient norms of that update, measures the
second view's quantities due at t (on the batch of update t + 1, at θ_t), and leaves what needs θ_{t+1}
(the weight norms and update ratios, grad_ics' G′, the activations of step t + 1) for the moment the
update is done: the next forward pass of the model (a forward pre-hook), the next `w.step`, or the end
of the block, whichever comes first. So the loop needs no call after `optimizer.step()`, and the probe
of step t + 1 sees the running statistics as the update left them, before the next batch's pass.

Every probe pass is free of side effects: batch norms normalize with the batch's statistics and keep
their running statistics (probes.batch_stats_without_update), and the global random stream is forked
around it (a Dropout draws from a stream of its own, seeded per step), so a run's trajectory does not
depend on how often it is recorded.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import __version__, quantities
from ..config import RunConfig
from ..errors import IcsError
from ..probes import ActivationRecorder, GradientRecorder
from ..store import files, lock, schema
from ..store import logs as blocks
from ..store.checkpoint import write_torch
from ..store.provenance import git_commit
from ..train import due
from . import sites

PROBE_SEED = 5_000_011      # the Dropout stream of probe passes: (PROBE_SEED + step)
STEPS_UNKNOWN = 2**62


def forked(device: torch.device, seed: int):
    """The global random streams forked (restored after the block) and seeded: a pass inside draws
    nothing from the training stream."""
    ctx = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])

    class Seeded:
        def __enter__(self):
            ctx.__enter__()
            torch.manual_seed(seed)

        def __exit__(self, *exc):
            return ctx.__exit__(*exc)
    return Seeded()


class UserProbe(quantities.Probe):
    """The quantities' probe on a user's model: every pass of one measurement draws the same Dropout
    masks (a stream of its own), none from the training stream."""

    def loss(self, params=None):
        with forked(self.x.device, PROBE_SEED + self.step):
            return super().loss(params)


class Watch:
    """The session `ics.watch` returns; see its docstring (ics_cli/user/__init__.py)."""

    def __init__(self, model: nn.Module, out: str | Path, *, every: int = 100, probe: torch.Tensor | None = None,
                 quantities: list[str] | dict[str, int] = (), loss_fn: Callable | None = None,
                 layers: list[str] | None = None, optimizer=None, steps: int | None = None,
                 eval_every: int | None = None, track_units: int = 4, norm: str | None = None,
                 lr: float | None = None, seed: int | None = None, name: str | None = None,
                 tags: dict | None = None):
        if not isinstance(model, nn.Module):
            raise IcsError(f"ics.watch: model must be a torch.nn.Module, not {type(model).__name__}")
        for option, value in (("every", every), ("eval_every", eval_every or 1), ("steps", steps or 1)):
            if type(value) is not int or value < 1:
                raise IcsError(f"ics.watch: {option} must be a positive integer, not {value!r}")
        wanted = dict(quantities) if isinstance(quantities, dict) else {q: every for q in quantities}
        unknown = [q for q in wanted if q not in quantities_registry()]
        if unknown:
            raise IcsError(f"ics.watch: quantities has '{unknown[0]}'; choose among: "
                           f"{', '.join(quantities_registry())}")
        if wanted and loss_fn is None:
            raise IcsError(f"ics.watch: quantities {', '.join(wanted)} re-run a step with changed parameters "
                           f"and need loss_fn=(output, y) -> loss, and x= and y= passed to w.step")
        self.model, self.out, self.every, self.steps = model, Path(out), every, steps
        self.eval_every = eval_every or every
        self.layers, self.loss_fn, self.optimizer, self.track_units = layers, loss_fn, optimizer, track_units
        self.probe_x = probe
        self.meta = {"norm": norm, "lr": lr, "seed": seed, "name": name, "tags": dict(tags or {})}
        self.qcfg = RunConfig(steps=steps or STEPS_UNKNOWN, seed=seed if seed is not None else 0,
                              **{quantities_registry()[q].every_field: int(e) for q, e in wanted.items()})
        self.wanted = wanted
        self.t = 0                       # updates done
        self.view = self.acts = self.grads = None
        self.second: list = []
        self.pending_update = False      # w.step called; the update's θ_{t+1} part not yet taken
        self.recorded = -1
        self.measured: list = []
        self.qprobe = None
        self.rows: dict = {}
        self.last_x = None
        self.batch_size = 0
        self.interval = [0.0, 0.0, 0, 0]   # loss sum, correct, examples, examples with accuracy
        self.batch = None                # train.csv's row of the last update (step, loss, accuracy)
        self.batches: list = []          # train.csv rows not yet written
        self.last_metrics = None
        self.logs = None
        self.hook = None
        self.busy = False                # inside the session's own passes (the pre-hook does nothing)
        self.start = None

    # -- the block -------------------------------------------------------------------------------

    def __enter__(self) -> "Watch":
        self.device = next(iter(self.model.parameters())).device
        self.start = time.perf_counter()
        lock.refuse_links(self.out, inside=False)
        if self.out.exists() and any(self.out.iterdir()):
            if not (self.out / "config.json").is_file():
                raise IcsError(f"ics.watch: out '{self.out}' is a folder that is not a run folder; give a new "
                               f"or an earlier run's folder")
            for f in self.out.iterdir():     # an earlier run of this folder: replaced whole
                if f.is_dir():
                    import shutil
                    shutil.rmtree(f)
                else:
                    f.unlink()
        self.out.mkdir(parents=True, exist_ok=True)
        self.lock = lock.hold(self.out)
        self.lock.__enter__()
        try:
            self.hook = self.model.register_forward_pre_hook(self._before_forward)
            if self.probe_x is not None:
                self._open(self.probe_x)
                self._probe(0, self.probe_x)
        except BaseException:       # a refused model (no block to leave): the folder and the model freed
            self._release()
            raise
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if self.acts is not None:
                self._settle()
                if self.recorded != self.t:
                    x = self.probe_x if self.probe_x is not None else self.last_x
                    self._probe(self.t, x)
                if self.last_metrics != self.t:
                    self._metrics(self.t)
                if (self.batch is not None and self.batch[0] == self.t
                        and not due(self.t, self.every, self.steps or STEPS_UNKNOWN)):
                    self.batches.append(self.batch)     # the last step is a log step (not yet queued)
                self._flush()
                write_torch(self.out / "model.pt", self.model.state_dict())
            status = "completed" if kind is None else ("interrupted" if kind is KeyboardInterrupt else "failed")
            self._write_config()
            summary = {"status": status, "name": self.out.name, "hash": self.hash, "steps_done": self.t,
                       "steps_planned": self.steps or self.t, "diverged_at_step": None,
                       "final": {k: self.final.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc",
                                                                "test_loss_batchstats", "test_acc_batchstats")},
                       "final_step": self.final.get("step"), "wall_s": round(time.perf_counter() - self.start, 3),
                       "steps_per_s": None}
            if self.logs is not None:
                self.logs.finish()
            files.write_json(self.out / "summary.json", summary)
        finally:
            self._release()

    def _release(self) -> None:
        if self.hook is not None:
            self.hook.remove()
        self.lock.__exit__(None, None, None)

    # -- the loop's one call ---------------------------------------------------------------------

    def step(self, loss=None, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
             out: torch.Tensor | None = None) -> None:
        """Record update t + 1, after its backward pass and before `optimizer.step()`.

        loss: the batch's loss (a tensor or a number), for metrics.csv's train_loss. x, y: the batch
        (x needed without a fixed probe, both by the quantities). out: the model's output on x, for
        train_acc (classification: its argmax against integer labels y).
        """
        self._settle()
        if self.acts is None:
            if x is None:
                raise IcsError("ics.watch: the first w.step needs x= (the batch) when no probe= was given")
            self._open(x)
        if x is not None:
            self.last_x, self.batch_size = x, self.batch_size or len(x)
        t = self.t
        if self.probe_x is None and self.recorded != t and due(t, self.every, self.steps or STEPS_UNKNOWN):
            self._probe(t, x)        # no fixed probe: step t's statistics from update t + 1's batch
        if t == 0:
            self._metrics(0)
        if loss is not None:
            value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
            n = len(x) if x is not None else 1
            self.interval[0] += value * n
            self.interval[2] += n
            self.batch = [t + 1, value, math.nan]
            if out is not None and y is not None and out.dim() == 2 and not y.is_floating_point():
                correct = float((out.detach().argmax(1) == y).sum())
                self.interval[1] += correct
                self.interval[3] += n
                self.batch[2] = correct / n
            if due(t + 1, self.every, self.steps or STEPS_UNKNOWN):
                self.batches.append(self.batch)
        if self.grads.full:
            self._flush()
        self.grads.before_step(full=due(t + 1, self.every, self.steps or STEPS_UNKNOWN))
        self.measured = [q for q in self.second if q.due(t)]
        if self.measured:
            if x is None or y is None:
                raise IcsError(f"ics.watch: {self.measured[0].name} is due at step {t} and needs x= and y= "
                               f"passed to w.step")
            self.busy = True
            try:
                self.qprobe = UserProbe(self.model, x, y, self.loss_fn, t, self._lr())
                for q in self.measured:
                    self.rows[q] += q.measure(self.qprobe)
            finally:
                self.busy = False
        self.pending_update = True

    def updated(self) -> None:
        """The optimizer has stepped: record now what needs θ_{t+1} (otherwise done at the model's next
        forward pass, the next w.step or the block's end), for a loop that calls a submodule rather than
        the watched model, or runs something between the update and the next forward pass."""
        self._settle()

    # -- inside ----------------------------------------------------------------------------------

    def _before_forward(self, module, args) -> None:
        if not self.busy:
            self._settle()

    def _settle(self) -> None:
        """The update of the last w.step is done: what needs θ_{t+1}."""
        if not self.pending_update:
            return
        self.pending_update, self.busy = False, True
        try:
            if self.measured:
                self.qprobe.updated()
                for q in self.measured:
                    self.rows[q] += q.after_update(self.qprobe)
                self.measured, self.qprobe = [], None
            self.t += 1
            self.grads.after_step(self.t)
            if self.probe_x is not None and due(self.t, self.every, self.steps or STEPS_UNKNOWN):
                self._probe(self.t, self.probe_x)
            if self.t % self.eval_every == 0:
                self._metrics(self.t)
        finally:
            self.busy = False

    def _open(self, x: torch.Tensor) -> None:
        """Find the sites with one pass of x; the recorders and the run's tables."""
        self.busy = True
        try:
            self.view = sites.view(self.model, x, self.layers)
        finally:
            self.busy = False
        own = self.view is not self.model
        batch_stats = self.view.batch_stats if own else any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules())
        self.acts = ActivationRecorder(self.view, self.track_units, batch_stats=batch_stats,
                                       keep=self.view.keep if own else None)
        self.grads = GradientRecorder(self.view)
        self.second = [quantities.REGISTRY[q](self.qcfg, self.view) for q in self.wanted]
        self.rows = {q: [] for q in self.second}
        self.logs = blocks.RunLogs(self.out, fresh=True, extra={q.name: q.columns for q in self.second})
        self._write_config()

    def _probe(self, step: int, x: torch.Tensor) -> None:
        if self.acts.full:
            self._flush()
        self.busy = True
        try:
            with forked(self.device, PROBE_SEED + step):
                self.acts.probe(x)
            self.acts.record(step)
        finally:
            self.busy = False
        self.recorded = step

    def _metrics(self, step: int) -> None:
        loss_sum, correct, n, n_acc = self.interval
        row = {"step": step, "train_loss": loss_sum / n if n else math.nan,
               "train_acc": correct / n_acc if n_acc else math.nan, "lr": self._lr(),
               "elapsed_s": round(time.perf_counter() - self.start, 3)}
        self.logs.metrics([[row.get(c, math.nan) for c in schema.METRICS_COLUMNS]])
        self.interval = [0.0, 0.0, 0, 0]
        self.last_metrics, self.final = step, row

    def _flush(self) -> None:
        steps, stats = self.acts.flush()
        if steps:
            self.logs.layers(blocks.layer_rows(steps, stats, self.acts.layers))
            self.logs.units(blocks.unit_block(steps, stats, self.acts.layers))
        steps, host = self.grads.flush()
        if steps:
            self.logs.grads(blocks.grad_rows(steps, host, self.grads.names))
        for q, rows in self.rows.items():
            if rows:
                self.logs.quantity(q.name, rows)
                rows.clear()
        if self.batches:
            self.logs.train(self.batches)
            self.batches = []

    def _lr(self) -> float:
        if self.optimizer is not None:
            return float(self.optimizer.param_groups[0]["lr"])
        return float(self.meta["lr"]) if self.meta["lr"] is not None else 0.0

    final: dict = {}

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self._config(), sort_keys=True, default=str).encode()).hexdigest()[:12]

    def _config(self) -> dict:
        """config.json's `config`: the keys `ics compare` reads (model, norm, lr, batch_size, seed), what
        the session knows of the run, and the user's tags."""
        view = self.view
        own = view is not None and view is not self.model
        seed = self.meta["seed"] if self.meta["seed"] is not None else torch.initial_seed()
        cfg = {"model": type(self.model).__name__,
               "norm": self.meta["norm"] or (sites.norm_name(view) if view is not None else "none"),
               "lr": self._lr(), "batch_size": self.batch_size, "seed": int(seed),
               "steps": self.steps if self.steps is not None else self.t,
               "log_every": self.every, "eval_every": self.eval_every, "track_units": self.track_units,
               "probe": "fixed" if self.probe_x is not None else "train",
               "probe_size": len(self.probe_x) if self.probe_x is not None else None,
               "parameters": sum(p.numel() for p in self.model.parameters()),
               "recorded_by": "ics.watch",
               **{quantities.REGISTRY[q].every_field: e for q, e in self.wanted.items()}}
        if own:
            cfg["sites"] = view.describe()
        elif view is not None:
            cfg["sites"] = [{"layer": n, "linear": f"{n}.linear", "norm": f"{n}.norm", "act": f"{n}.act"}
                            for n in view.blocks]
        cfg.update(self.meta["tags"])
        return cfg

    def _write_config(self) -> None:
        cfg = self._config()
        meta = {"config": cfg, "hash": self.hash, "name": self.meta["name"] or self.out.name, "data": None,
                "versions": {"python": platform.python_version(), "torch": torch.__version__, "ics": __version__,
                             "git_commit": git_commit()},
                "device": str(self.device), "threads": torch.get_num_threads(),
                "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        files.write_json(self.out / "config.json", meta)


def quantities_registry() -> dict:
    return quantities.REGISTRY
