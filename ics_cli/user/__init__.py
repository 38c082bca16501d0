"""`ics.watch`: the run folder `ics train` writes, recorded on your own model in your own loop.

sites.py finds the recording sites of a user's model (the blocks view the recorders read);
session.py is the recording session (`Watch`); lightning.py the same session as a PyTorch Lightning
callback (`IcsCallback`, the optional extra `lightning`, imported on first use). docs/watch.md is the manual.
"""

from __future__ import annotations

from .session import Watch


def watch(model, out, *, every: int = 100, probe=None, quantities=(), loss_fn=None, layers=None,
          optimizer=None, steps: int | None = None, eval_every: int | None = None, track_units: int = 4,
          norm: str | None = None, lr: float | None = None, seed: int | None = None, name: str | None = None,
          tags: dict | None = None) -> Watch:
    """Record what `ics train` records, on your model and in your loop; use it as a `with` block.

        import ics_cli as ics
        with ics.watch(model, out="runs/mine", every=100, probe=x_probe) as w:
            for x, y in batches:
                out = model(x)
                loss = loss_fn(out, y)
                opt.zero_grad(); loss.backward()
                w.step(loss=loss, x=x, y=y, out=out)   # after backward, before the update
                opt.step()

    The folder `out` then holds what `ics train` writes (config.json, metrics.csv, layers.csv,
    units.parquet, grads.csv, the second view's tables, model.pt, summary.json last), so `ics compare`,
    `ics plot` and `ics report` read it. An existing run folder at `out` is replaced.

    Sites: every nn.Linear / nn.Conv1d/2d/3d is a layer (`hidden1`, `hidden2`, ... in registration
    order; the last is the head `output` when nothing follows it); the normalization module right after
    it, when one pass shows it takes the layer's output, is its `norm` site (and `norm_eval`, from an
    eval-mode pass); the activation module after that is its `act` site. config.json's `sites` names
    the modules behind each layer. docs/watch.md says what is and is not supported.

    Arguments:
        model: a torch.nn.Module (a Net from ics_cli.net.models is recorded by its own blocks).
        out: the run folder.
        every: activation statistics every this many steps (and step 0 and the last step), as
            `ics train --log-every`; each update's gradient norms are recorded regardless.
        probe: a fixed batch of inputs passed through the model at each log step (side-effect free);
            None: the statistics of step t come from the batch given to the w.step of update t + 1.
        quantities: the second view, e.g. ["grad_ics", "landscape", "relative_loss", "sharpness"] (each
            every `every` steps), or a dict name -> cadence. They re-run the step with changed
            parameters, so they need `loss_fn` and x=, y= passed to w.step.
        loss_fn: (model(x), y) -> the mean loss of the batch.
        layers: module names of the Linear/Conv layers to record (model.named_modules()), instead of
            finding them; normalizations no layer feeds are then not refused.
        optimizer: read for the learning rate (metrics.csv's lr, config.json's lr).
        steps: the run's planned number of updates, if known: the last step's weight norms and update
            ratios are then measured as `ics train` does; without it, only the last step's activations.
        eval_every: a metrics.csv row (train loss and accuracy since the last row) every this many steps
            (default: every).
        track_units: units per layer whose percentiles are tracked (units.parquet's p15/p50/p85).
        norm, lr, seed, name: config.json's keys that `ics compare` groups runs by (default: the norm
            from the modules found, the optimizer's lr or 0, torch.initial_seed(), the folder name).
        tags: more config.json keys (e.g. {"model": "resnet18", "width": 64}); they override the above.

    Raises IcsError (one line) for a module it cannot place, a named layer that is not a Linear/Conv,
    or a quantity without loss_fn.
    """
    return Watch(model, out, every=every, probe=probe, quantities=quantities, loss_fn=loss_fn, layers=layers,
                 optimizer=optimizer, steps=steps, eval_every=eval_every, track_units=track_units, norm=norm,
                 lr=lr, seed=seed, name=name, tags=tags)


def __getattr__(name: str):
    # Lightning takes seconds to import and is an optional extra: only when the callback is asked for.
    if name == "IcsCallback":
        from .lightning import IcsCallback
        return IcsCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["watch", "Watch", "IcsCallback"]
