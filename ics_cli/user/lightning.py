"""`IcsCallback`: `ics.watch` as a PyTorch Lightning callback (the optional extra `lightning`).

    import lightning.pytorch as pl
    from ics_cli.user.lightning import IcsCallback          # or ics.IcsCallback

    trainer = pl.Trainer(max_steps=1000, callbacks=[IcsCallback("runs/mine", every=100, probe=x_probe)])
    trainer.fit(model, loader)

The session is the one `ics.watch` opens, on the LightningModule itself (an nn.Module: the probe passes
call its forward), with the trainer's optimizer and its planned number of optimizer steps. Lightning's
hooks are the places of the loop docs/watch.md describes:

- on_train_start: the session opens (the model on its device, the optimizer made, the sanity check done);
- on_train_batch_start: the batch, as (x, y), or `unpack(batch)`; the model's output in training_step
  (its first call, for the accuracy) is caught by a forward hook;
- on_before_backward: the loss, as Lightning backpropagates it (divided by accumulate_grad_batches);
- on_before_optimizer_step, after the backward pass and before the update: one `w.step` per optimizer
  step, with the update's micro-batches joined (x, y, output) and their losses summed (the loss whose
  gradient the update takes: the mean of the micro-batches' losses);
- on_train_batch_end: the update is done, so `w.updated()` records what needs θ_{t+1} before anything
  else runs (a validation loop, the next batch);
- on_train_end closes the session (summary.json `completed`); on_exception closes it with the error
  (`failed`, or `interrupted` for Ctrl-C), keeping what was recorded.

One process only: the session writes one folder, so a run on several processes (DDP) is refused.
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch

from ..errors import IcsError, require

# One line naming the extra when Lightning is missing, before the import that would fail.
require("lightning", "PyTorch Lightning", "ics_cli.user.lightning (IcsCallback)")

from lightning.pytorch import Callback, LightningModule

from .session import Watch

# The Watch arguments the callback fills in itself (the rest pass through **watch).
OWN = ("model", "out", "every", "probe", "quantities", "loss_fn")


class IcsCallback(Callback):
    """Record a Lightning fit as `ics.watch` records a loop: the run folder `ics train` writes, at `out`.

    Arguments: out, every, probe, quantities, loss_fn and **watch (layers, steps, eval_every, track_units,
    norm, lr, seed, name, tags, optimizer) are `ics.watch`'s (help(ics.watch)); by default the optimizer
    is the trainer's and steps its planned number of optimizer steps (trainer.estimated_stepping_batches).
    unpack: batch -> (x, y), for batches that are not an (x, y) tuple or list (a dict, a triple).

    Raises IcsError (one line) for a batch it cannot read, a fit on several processes, a fit resumed
    from a checkpoint (steps would restart at 0), more than one optimizer, a LightningModule without
    forward, and everything `ics.watch` refuses.
    """

    def __init__(self, out, every: int = 100, probe: torch.Tensor | None = None, quantities=(),
                 loss_fn: Callable | None = None, unpack: Callable | None = None, **watch):
        unknown = [k for k in watch if k in OWN or k not in inspect.signature(Watch).parameters]
        if unknown:
            raise IcsError(f"IcsCallback: unknown argument '{unknown[0]}'; ics.watch takes: "
                           f"{', '.join(p for p in inspect.signature(Watch).parameters if p not in OWN)}")
        self.args = dict(out=out, every=every, probe=probe, quantities=quantities, loss_fn=loss_fn, **watch)
        self.unpack = unpack
        self.session: Watch | None = None
        self.hook = None
        self.catching = False           # inside a training step, before its backward: its output is caught
        self.batches, self.losses, self.outs = [], [], []

    # -- the fit ---------------------------------------------------------------------------------

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.world_size > 1:
            raise IcsError(f"IcsCallback: this fit runs on {trainer.world_size} processes; ics.watch records one "
                           f"process into one folder (train on one device, or record one process yourself)")
        if type(pl_module).forward is LightningModule.forward:
            raise IcsError(f"IcsCallback: {type(pl_module).__name__} has no forward(); the probe passes call the "
                           f"LightningModule on x, so define forward(x) (e.g. return self.net(x))")

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_step:
            raise IcsError(f"IcsCallback: this fit resumes at step {trainer.global_step}; ics.watch records a run "
                           f"from its start (step 0)")
        if len(trainer.optimizers) != 1:
            raise IcsError(f"IcsCallback: the LightningModule has {len(trainer.optimizers)} optimizers; ics.watch "
                           f"records the updates of one")
        args = dict(self.args)
        if args["probe"] is not None:
            args["probe"] = args["probe"].to(pl_module.device)
        args.setdefault("optimizer", trainer.optimizers[0])
        planned = trainer.estimated_stepping_batches
        if "steps" not in args and planned != float("inf") and int(planned) > 0:
            args["steps"] = int(planned)
        self.session = Watch(pl_module, **args).__enter__()
        self.hook = pl_module.register_forward_hook(self._caught)

    def on_train_end(self, trainer, pl_module) -> None:
        self._close(None)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._close(exception)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._close(None)               # a fit that never reached on_train_end (max_steps=0, a skipped loop)

    # -- one update ------------------------------------------------------------------------------

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.session is None:
            return
        got = self.unpack(batch) if self.unpack is not None else batch
        x, y = got if isinstance(got, (tuple, list)) and len(got) == 2 else (None, None)
        if not isinstance(x, torch.Tensor) or not (y is None or isinstance(y, torch.Tensor)):
            where = "unpack(batch) returned" if self.unpack else "this batch is"
            fix = "" if self.unpack else ": give IcsCallback(unpack=lambda batch: (x, y))"
            raise IcsError(f"IcsCallback: a batch must be (x, y), x a tensor and y a tensor or None; {where} "
                           f"{described(got)}{fix}")
        self.batches.append((x, y))
        self.catching = True

    def _caught(self, module, args, output) -> None:
        if self.catching and not self.session.busy:
            self.catching = False
            x = self.batches[-1][0]
            fits = isinstance(output, torch.Tensor) and output.dim() > 0 and len(output) == len(x)
            self.outs.append(output.detach() if fits else None)

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if self.session is None:
            return
        self.catching = False
        scaler = getattr(trainer.precision_plugin, "scaler", None)      # mixed precision: the loss is scaled
        self.losses.append(loss.detach() / scaler.get_scale() if scaler is not None else loss.detach())

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.session is None or not self.losses:     # no backward (training_step returned None): no update
            return
        xs, ys = zip(*self.batches) if self.batches else ((None,), (None,))
        x, y = joined(xs), joined(ys)
        out = joined(self.outs) if len(self.outs) == len(self.batches) else None
        loss = self.losses[0] if len(self.losses) == 1 else torch.stack(self.losses).sum()
        self.batches, self.losses, self.outs = [], [], []
        self.session.step(loss=loss, x=x, y=y, out=out)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.session is not None:
            self.session.updated()

    def _close(self, exception: BaseException | None) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        self.hook.remove()
        self.catching, self.batches, self.losses, self.outs = False, [], [], []
        if exception is None:
            session.__exit__(None, None, None)
        else:
            session.__exit__(type(exception), exception, exception.__traceback__)


def described(batch) -> str:
    """A batch in a few words: its type, a dict's keys, a sequence's length and item types."""
    if isinstance(batch, dict):
        return f"a dict with keys {', '.join(map(str, batch))}"
    if isinstance(batch, (tuple, list)):
        return f"a {type(batch).__name__} of {len(batch)} ({', '.join(type(b).__name__ for b in batch)})"
    return f"a {type(batch).__name__}"


def joined(parts) -> torch.Tensor | None:
    """The micro-batches of one update as one batch (None when any part is None)."""
    if any(p is None for p in parts):
        return None
    return parts[0] if len(parts) == 1 else torch.cat(parts)
