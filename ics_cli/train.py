"""One training run, top to bottom: seed, data, model, optimizer, the loop, the record.

Step s means "after s updates". A finished run also keeps its trained weights (`model.pt`, a
state dict: `torch.load(path, weights_only=True)`), so a model can be evaluated again later.

Each record has its own cadence, and every one includes step 0 (before any update) and the last step:
activation statistics every `log_every` steps (from the fixed probe batch, or under `--probe train`
from the training pass itself), with the loss and accuracy of the update's own training batch (a
train.csv row, no extra pass), the test set every `eval_every` steps (one metrics row, whose train
loss and accuracy average the updates since the previous row), and each layer's gradient norm on
every step. The recorders keep their rows on the device and the logs receive them in blocks.
Checkpoints are taken on a wall clock (`checkpoint_every` seconds), each after flushing every block;
a killed or interrupted run resumes from its last checkpoint, cuts its logs back to that step, and
ends with the same bytes as an unbroken one (the recorded values do not depend on when checkpoints
happened, or on how often the run is probed).
With --tensorboard the same rows, as they are written, also become TensorBoard events in
RUN/tensorboard/ (ics_cli/store/tensorboard.py), with a fixed sample of each site's activations per log step.
What one update sees comes from ics_cli/net/sampling.py (i.i.d. or paired batches, one pass or one per
--micro-batch slice); test_loss/test_acc use the statistics --bn-eval names, and FrozenBN holds from
--freeze-bn-at on (ics_cli/net/population.py).
A NaN/inf loss, a loss above diverge_factor (1e3) x the first one, or a smoothed loss (EMA with
alpha 0.1, about the last 10 steps) above diverge_smooth (4) x the first one ends the run as
`diverged`: a result, not an error. The smoothed rule catches saturating nets (sigmoid) whose loss
is stuck far above chance level but bounded, so never reaches 1e3 x.
"""

from __future__ import annotations

import functools
import math
import platform
import shutil
import time     # noqa: F401 - the run's clock is store/checkpoint.py's; tests patch train.time.perf_counter
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from . import __version__, quantities
from .store import logs as blocks, lock, runs as store
from .store import files
from .store import schema
from .store.checkpoint import Checkpoint, Stop, write_torch
from .store.provenance import git_commit
from .net import data, models, norms, population, sampling, schedule, tasks
from .store import tensorboard
from .config import RunConfig, check_writable, validate
from .errors import IcsError
from .probes import ActivationRecorder, GradientRecorder, batch_stats_without_update

EMA_ALPHA = 0.1
EVAL_CHUNK = 1000
PROBE_SEED_OFFSET = 1_000_003   # the probe's own stream, apart from init and batch order
EVAL_TRAIN_SAMPLES = 1000       # the fixed training subset evaluated like the test set (train_*_eval)
EVAL_TRAIN_SEED = 4_000_037     # its choice: one subset for every run of a dataset, whatever the seed
batches = sampling.batches      # the i.i.d. sampler, importable from here as before it moved


@dataclass
class RunResult:
    path: Path
    summary: dict
    skipped: bool = False        # an identical finished run already existed


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def evaluate(model, x, y, chunk: int = EVAL_CHUNK, batch_stats: bool = False,
             task: str = "classify") -> torch.Tensor:
    """[mean loss, accuracy] on (x, y), as a device tensor.

    Eval mode (running statistics) by default. With batch_stats, train-mode normalization over
    consecutive chunks of `chunk` test samples, without side effects (a last chunk of one sample
    joins the one before, since batch statistics of one sample are undefined), frozen norms
    (FrozenBN) included.
    """
    bounds = list(range(0, len(x), chunk)) + [len(x)]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2:
        bounds.pop(-2)
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.float64, device=x.device)
    was_training = model.training
    with ExitStack() as ctx:
        if batch_stats:   # each chunk's own statistics: frozen norms thawed, batch renorm's r, d off
            for manager in (population.thawed(model), norms.plain_batch_norm(model),
                            batch_stats_without_update(model)):
                ctx.enter_context(manager)
        else:
            ctx.enter_context(torch.no_grad())
            model.eval()
        for a, b in zip(bounds[:-1], bounds[1:]):
            logits = model(x[a:b])
            loss += tasks.loss(task, logits, y[a:b], reduction="sum")
            correct += tasks.correct_sum(task, logits, y[a:b])
    model.train(was_training)
    return torch.stack([loss, correct]) / len(x)


def make_optimizer(cfg: RunConfig, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.scaled_lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.scaled_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def provenance(cfg: RunConfig, device: torch.device, ds: data.Dataset | None = None) -> dict:
    commit = git_commit()
    return {"config": cfg.to_dict(), "hash": cfg.hash(), "name": cfg.name(),
            "data": ds.info if ds is not None else None,
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "ics": __version__, "git_commit": commit},
            "device": str(device), "threads": torch.get_num_threads(),
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def prepare(cfg: RunConfig, *, data_cache: data.Dataset | None = None):
    """Validate, load the data and resolve the config; raises IcsError before anything is written.

    The returned config has its steps resolved (from --epochs and the training-set size), so its
    hash and name are the run folder's.
    """
    from .config import check_data

    cfg = validate(cfg)
    check_writable(cfg.out)
    device = resolve_device(cfg.device)
    ds = data_cache or data.load(cfg.dataset, data_dir=cfg.data_dir, download=cfg.download,
                                 binarize=cfg.binarize, device=device, split=cfg.split)
    ds = replace(ds, task=tasks.task_for(ds.task, cfg.regress_loss))    # a regression's --regress-loss
    counts = torch.bincount(ds.y_train.cpu(), minlength=ds.num_classes).tolist() if ds.task == "classify" else None
    cfg = check_data(cfg, len(ds.x_train), len(ds.x_test), ds.shape, ds.num_classes, class_counts=counts)
    return cfg, ds, device


def due(step: int, every: int, steps: int) -> bool:
    """A record's cadence: every `every` steps, and the last step."""
    return step % every == 0 or step == steps


class Recorders:
    """Activation statistics, gradient norms and the second view's quantities, and the logs they
    go to.

    Activation statistics every `log_every` steps, from the fixed probe batch or, under --probe
    train, from the training pass itself; each layer's gradient norm on every step; each quantity
    on its own cadence. The recorders keep their rows on the device and `flush` hands the logs
    every block.
    """

    def __init__(self, cfg: RunConfig, ds: data.Dataset, model, device: torch.device):
        self.cfg, self.model = cfg, model
        self.probe_x = None          # --probe train: the training batches themselves
        if cfg.probe == "fixed":
            probe_gen = torch.Generator().manual_seed(cfg.seed + PROBE_SEED_OFFSET)
            chosen = torch.randperm(len(ds.x_train), generator=probe_gen)[:cfg.probe_size]
            self.probe_x = ds.x_train[chosen.to(device)]
        self.acts = ActivationRecorder(model, cfg.track_units, batch_stats=norms.get(cfg.norm).batch_stats,
                                       samples=tensorboard.SAMPLES if cfg.tensorboard else 0)
        self.grads = GradientRecorder(model)
        self.second = quantities.active(cfg, model)     # the second view of ICS, each on its own cadence
        self.loss_fn = functools.partial(tasks.loss, ds.task)
        self.pending: dict = {q: [] for q in self.second}     # quantity rows not yet written
        self.batches: list = []          # train.csv rows not yet written (accuracy on the device)
        self.measured: list = []         # the quantities measured around this update, and their probe
        self.quantity_probe = None
        self.recorded = -1               # the last step with activation statistics
        # What a training pass changes besides the gradient (running statistics, num_batches_tracked),
        # as it was before the pass: a pass whose update never happens (divergence) is undone.
        self.buffers = list(model.buffers())
        self.before_pass = [b.clone() for b in self.buffers]
        self.logs: blocks.RunLogs | None = None

    def open_logs(self, run_dir: Path, resume: bool, step: int) -> None:
        """The run's tables; a resumed run's cut back to its checkpoint's step."""
        self.logs = blocks.RunLogs(run_dir, fresh=not resume, extra={q.name: q.columns for q in self.second},
                                   tensorboard=self.cfg.tensorboard)
        if resume:
            self.logs.truncate(step, measured_after=tuple(q.name for q in self.second) + (
                ("layers", "units") if self.cfg.probe == "train" else ()))

    def record(self, step: int) -> None:
        """Activation statistics of `step` from the passes just captured."""
        if self.acts.full:
            self.flush()
        self.acts.record(step)
        self.recorded = step

    def probe(self, step: int, x: torch.Tensor) -> None:
        """Activation statistics of `step` from a pass over x without effects."""
        self.acts.probe(x)
        self.record(step)

    def probe_if_due(self, step: int) -> None:
        """--probe fixed: the probe batch's statistics at each log step."""
        if self.probe_x is not None and due(step, self.cfg.log_every, self.cfg.steps):
            self.probe(step, self.probe_x)

    def ensure(self, step: int, x: torch.Tensor) -> None:
        """A diverged run's last step: the training pass undone (its update never happens, so neither
        does its running-statistics update), then statistics of `step` unless it has them: from x under
        --probe train, else the probe batch."""
        if self.buffers:
            torch._foreach_copy_(self.buffers, self.before_pass)
        if self.recorded != step:
            self.probe(step, x if self.probe_x is None else self.probe_x)

    def updated(self, step: int) -> None:
        """Update `step` done: its gradient row closes; the probe batch's statistics if due."""
        self.grads.after_step(step)
        self.probe_if_due(step)

    @contextmanager
    def capturing(self, step: int, x: torch.Tensor):
        """The training pass of update step + 1, under --probe train at a log step recorded as step's."""
        # --probe train: step s's statistics are those of this pass (weights after s updates,
        # the batch of update s + 1), read by the hooks; the pass itself is unchanged. The
        # eval-mode pass for norm_eval goes first, with the step's running statistics.
        if self.buffers:     # one fused copy per step, none for a net without buffers (no batch norm)
            torch._foreach_copy_(self.before_pass, self.buffers)
        log_step = due(step, self.cfg.log_every, self.cfg.steps)
        if self.probe_x is not None or not log_step or self.recorded == step:
            yield
            return
        self.acts.eval_pass(x)
        with self.acts.capturing():
            yield
        self.record(step)

    def before_update(self, step: int, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        """Ready the gradient norms of this update; measure the quantities due at `step`."""
        if self.grads.full:
            self.flush()
        self.grads.before_step(full=due(step + 1, self.cfg.log_every, self.cfg.steps))
        self.measured = [q for q in self.second if q.due(step)]
        if self.measured:
            self.quantity_probe = quantities.Probe(self.model, x, y, self.loss_fn, step, lr)
            for q in self.measured:
                self.pending[q] += q.measure(self.quantity_probe)

    def after_update(self) -> None:
        """The measured quantities' part that needs the updated weights."""
        if self.measured:
            self.quantity_probe.updated()
            for q in self.measured:
                self.pending[q] += q.after_update(self.quantity_probe)

    def flush(self) -> None:
        """Every buffered row to disk: one copy from the device per recorder."""
        steps, stats = self.acts.flush()
        if steps:
            self.logs.layers(blocks.layer_rows(steps, stats, self.acts.layers))
            self.logs.units(blocks.unit_block(steps, stats, self.acts.layers))
            self.logs.samples(steps, stats, self.acts.layers)     # TensorBoard's activation histograms
        steps, host = self.grads.flush()
        if steps:
            self.logs.grads(blocks.grad_rows(steps, host, self.grads.names))
        for q, rows in self.pending.items():
            if rows:
                self.logs.quantity(q.name, rows)
                rows.clear()
        if self.batches:
            accs = torch.stack([acc for *_, acc in self.batches]).tolist()
            self.logs.train([[step, loss, acc] for (step, loss, _), acc in zip(self.batches, accs)])
            self.batches.clear()


class Evaluation:
    """The test set every `eval_every` steps, each time one metrics row, whose train loss and
    accuracy average the updates since the previous row; at each log step the update's own batch
    loss and accuracy (a train.csv row, buffered with the recorders' blocks)."""

    def __init__(self, cfg: RunConfig, ds: data.Dataset, model, opt, device: torch.device,
                 recorders: Recorders, clock: Callable[[], float],
                 on_log: Callable[[int, dict], None] | None):
        self.cfg, self.ds, self.model, self.opt, self.device = cfg, ds, model, opt, device
        self.recorders, self.clock, self.on_log = recorders, clock, on_log     # the logs, elapsed_s
        uses_batch_stats = norms.get(cfg.norm).batch_stats
        self.batch_stats_eval = cfg.eval_batchstats and uses_batch_stats
        # Test-time statistics (--bn-eval) and FrozenBN (--freeze-bn-at): ics_cli/net/population.py.
        self.bn_eval = cfg.bn_eval if uses_batch_stats else "ema"
        self.precise = (population.Precise(ds.x_train, cfg.precise_samples, cfg.norm_batch, cfg.seed)
                        if self.bn_eval == "precise" else None)
        self.interval = self.fresh_interval()
        self.last_row: dict = {}
        self.evaluated = -1              # the last step with a metrics row
        chosen = torch.randperm(len(ds.x_train), generator=torch.Generator().manual_seed(EVAL_TRAIN_SEED))
        chosen = chosen[:EVAL_TRAIN_SAMPLES].to(ds.x_train.device)
        self.x_sub, self.y_sub = ds.x_train[chosen], ds.y_train[chosen]

    def fresh_interval(self) -> list:
        """Train loss sum, correct count (on the device; NaN for regression) and examples since the
        last metrics row."""
        return [0.0, torch.zeros((), dtype=torch.float64, device=self.device), 0]

    def add(self, step: int, loss_value: float, logits: torch.Tensor, y: torch.Tensor) -> None:
        """Update `step`'s batch into the interval; at a log step, also its train.csv row."""
        loss_sum = tasks.sample_sum(self.ds.task, loss_value, len(y))
        correct = tasks.correct_sum(self.ds.task, logits, y)
        self.interval[0] += loss_sum
        self.interval[1] += correct
        self.interval[2] += len(y)
        if due(step, self.cfg.log_every, self.cfg.steps):
            self.recorders.batches.append((step, loss_sum / len(y), correct.double() / len(y)))

    def due(self, step: int) -> bool:
        return due(step, self.cfg.eval_every, self.cfg.steps)

    def ensure(self, step: int) -> None:
        """The metrics row of `step`, unless it has one."""
        if self.evaluated != step:
            self(step)

    def __call__(self, step: int) -> None:
        """Evaluate the test set; append one metrics row (train loss and accuracy since the last)."""
        cfg, ds, model = self.cfg, self.ds, self.model
        bstats = (evaluate(model, ds.x_test, ds.y_test, chunk=cfg.norm_batch, batch_stats=True,
                           task=ds.task)
                  if self.batch_stats_eval or self.bn_eval == "batch" else None)
        # The training subset is scored as the test set is (the --bn-eval statistics), so the two compare.
        if self.bn_eval == "batch":
            test = bstats
            train = evaluate(model, self.x_sub, self.y_sub, chunk=cfg.norm_batch, batch_stats=True, task=ds.task)
        else:   # PreciseBN's statistics for this evaluation only (FrozenBN keeps its own)
            recompute = self.precise is not None and not population.frozen(model)
            with population.using(model, self.precise.estimate(model)) if recompute else nullcontext():
                test = evaluate(model, ds.x_test, ds.y_test, task=ds.task)
                train = evaluate(model, self.x_sub, self.y_sub, task=ds.task)
        bstats = bstats if self.batch_stats_eval else test
        host = torch.cat([test, bstats, train]).tolist()
        loss_sum, correct, n = self.interval[0], float(self.interval[1]), self.interval[2]
        row = {"step": step, "train_loss": loss_sum / n if n else math.nan,
               "train_acc": correct / n if n else math.nan, "test_loss": host[0], "test_acc": host[1],
               "test_loss_batchstats": host[2], "test_acc_batchstats": host[3],
               "train_loss_eval": host[4], "train_acc_eval": host[5],
               "lr": self.opt.param_groups[0]["lr"], "elapsed_s": round(self.clock(), 3)}
        self.recorders.logs.metrics([[row[c] for c in schema.METRICS_COLUMNS]])
        self.interval = self.fresh_interval()
        self.last_row, self.evaluated = row, step
        if self.on_log:
            self.on_log(step, row)


class Divergence:
    """The rule that ends a run as `diverged` (see the module docstring), from the first loss."""

    def __init__(self, cfg: RunConfig):
        self.factor, self.smooth = cfg.diverge_factor, cfg.diverge_smooth
        self.initial_loss: float | None = None
        self.ema: float | None = None            # the smoothed loss, EMA_ALPHA
        self.at: int | None = None               # the step the run diverged at

    @property
    def status(self) -> str:
        return "completed" if self.at is None else "diverged"

    def check(self, step: int, loss_value: float) -> bool:
        """Take the loss of the batch at `step`; True when the run has diverged there."""
        if self.initial_loss is None:
            self.initial_loss = self.ema = loss_value
        self.ema = (1 - EMA_ALPHA) * self.ema + EMA_ALPHA * loss_value
        if (not math.isfinite(loss_value) or loss_value > self.factor * self.initial_loss
                or self.ema > self.smooth * self.initial_loss):
            self.at = step
        return self.at is not None


def loop_state(step: int, model, opt, recorders: Recorders, divergence: Divergence,
               evaluation: Evaluation) -> dict:
    """What checkpoint.pt holds (with the clock's `elapsed`): everything the loop needs to go on
    from `step` exactly."""
    return {"model": model.state_dict(), "opt": opt.state_dict(), "acts": recorders.acts.state(),
            "quantities": {q.name: q.state() for q in recorders.second},
            "step": step, "initial_loss": divergence.initial_loss, "ema": divergence.ema,
            "interval": evaluation.interval}


def restore(ckpt: Checkpoint, device: torch.device, model, opt, recorders: Recorders,
            divergence: Divergence, evaluation: Evaluation, on_resume=None) -> int:
    """The loop as loop_state left it in the checkpoint; returns its step. Every field is checked before
    use (a damaged or planted checkpoint that passes weights_only is one line, never a hang)."""
    with ckpt.restoring(device) as ck:
        check_checkpoint(ck, recorders.cfg.steps)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        recorders.acts.load_state(ck["acts"])
        for q in recorders.second:
            q.load_state(ck["quantities"].get(q.name, {}))
        divergence.initial_loss, divergence.ema = ck["initial_loss"], ck["ema"]
        evaluation.interval = list(ck["interval"])
        if on_resume:
            on_resume(ck["step"])
        return ck["step"]


def check_checkpoint(ck, steps: int) -> None:
    """A ValueError naming the first field of a checkpoint that loop_state could not have written for a
    run of `steps` updates (restoring turns it into the one-line error)."""
    def number(v, *, none: bool = False) -> bool:
        return (v is None and none) or (type(v) in (int, float) and math.isfinite(v))

    if not isinstance(ck, dict) or not {"model", "opt", "acts", "quantities", "step", "initial_loss", "ema",
                                         "interval", "elapsed"} <= set(ck):
        raise ValueError("fields missing")
    step, interval = ck["step"], ck["interval"]
    if type(step) is not int or not 0 <= step < steps:      # taken before the last step, after `step` updates
        raise ValueError(f"step {step!r} is not an integer in [0, {steps})")
    if not number(ck["elapsed"]) or ck["elapsed"] < 0:
        raise ValueError(f"elapsed {ck['elapsed']!r} is not a number of seconds")
    if not (number(ck["initial_loss"], none=True) and number(ck["ema"], none=True)
            and (ck["initial_loss"] is None) == (ck["ema"] is None) == (step == 0)):
        raise ValueError("initial_loss and ema are not the losses of the updates done")
    if not (isinstance(interval, (list, tuple)) and len(interval) == 3 and number(interval[0])
            and isinstance(interval[1], torch.Tensor) and interval[1].numel() == 1
            and type(interval[2]) is int and 0 <= interval[2] <= steps * (1 << 40)):
        raise ValueError("interval is not (loss sum, correct count, examples)")
    if not isinstance(ck["quantities"], dict):
        raise ValueError("quantities is not a dict")


def skipped(run_dir: Path, cfg: RunConfig, summary: dict) -> RunResult:
    """An identical finished run already exists: it is kept as it is."""
    if cfg.tensorboard:     # a run recorded without --tensorboard: its events from its tables
        tensorboard.backfill(run_dir)
    return RunResult(run_dir, summary, skipped=True)


def at_step(cfg: RunConfig, model, opt, step: int) -> None:
    """Ready update `step`: batch-renorm's schedule (the updates done so far) and the lr schedule."""
    norms.set_step(model, step)
    if schedule.varies(cfg):
        for group in opt.param_groups:
            group["lr"] = schedule.lr_at(cfg, step, cfg.scaled_lr)


def freeze_if_due(cfg: RunConfig, model, step: int, precise: population.Precise | None) -> None:
    freeze_at = population.freeze_step(cfg)
    if freeze_at is not None and step >= freeze_at and not population.frozen(model):
        # FrozenBN from here on (or again, in a run resumed after the freeze step), with
        # PreciseBN's statistics under --bn-eval precise, else the EMA's as they are.
        if precise is not None and step == freeze_at:
            population.keep(model, precise.estimate(model))
        population.freeze(model)


def train(cfg: RunConfig, *, force: bool = False,
          on_log: Callable[[int, dict], None] | None = None, on_step: Callable[[int], None] | None = None,
          on_resume: Callable[[int], None] | None = None) -> RunResult:
    """Run (or resume, or skip if already finished) one configuration; return its folder and summary.

    on_log(step, metrics_row) at each evaluation, on_step(step) after each update, on_resume(step) when a
    checkpoint is restored. Ctrl-C or SIGTERM stops at the next step boundary (checkpoint.Stop) with a checkpoint
    of that step and an `interrupted` summary, then KeyboardInterrupt. lock.Busy if another process writes it.
    """
    cfg, ds, device = prepare(cfg)
    run_dir = Path(cfg.out) / cfg.name()
    # One writer per run, from the skip/resume decision to the summary; a full disk or a read-only
    # file ends the run with one line and leaves it resumable (ics_cli/store/lock.py).
    with lock.hold(run_dir), lock.writing(run_dir), Stop() as stop:
        if not force and (summary := store.finished(run_dir)):
            return skipped(run_dir, cfg, summary)
        ckpt = Checkpoint(run_dir, cfg.checkpoint_every)
        resume = open_folder(run_dir, resumable=not force and ckpt.path.exists())
        # Three independent streams: init (global), batch order, probe choice.
        torch.manual_seed(cfg.seed)
        model = models.build(cfg, ds.shape, ds.num_classes).to(device)
        opt = make_optimizer(cfg, model.parameters())
        gen = torch.Generator().manual_seed(cfg.seed)
        recorders = Recorders(cfg, ds, model, device)
        evaluation = Evaluation(cfg, ds, model, opt, device, recorders, ckpt.elapsed, on_log)
        divergence = Divergence(cfg)
        step = restore(ckpt, device, model, opt, recorders, divergence, evaluation, on_resume) if resume else 0
        if not resume:
            files.write_json(run_dir / "config.json", provenance(cfg, device, ds))
        recorders.open_logs(run_dir, resume, step)
        batch_iter = sampling.sampler(cfg, ds.y_train, ds.num_classes, gen, skip=step)
        ckpt.start_clock()
        model.train()
        at_step(cfg, model, opt, step)
        try:
            if step == 0:
                recorders.probe_if_due(0)
                evaluation(0)
            while step < cfg.steps:
                idx = next(batch_iter)
                x, y = ds.x_train[idx], ds.y_train[idx]
                freeze_if_due(cfg, model, step, evaluation.precise)
                opt.zero_grad(set_to_none=True)
                with recorders.capturing(step, x):
                    # The gradient accumulates in .grad: one pass, or one per --micro-batch slice.
                    logits, loss = sampling.forward_backward(model, x, y, ds.task, cfg.micro_batch)
                loss_value = loss.item()
                if divergence.check(step, loss_value):
                    # This batch's update never happens: its loss stays out of the logged train_loss.
                    recorders.ensure(step, x)
                    evaluation.ensure(step)
                    break
                recorders.before_update(step, x, y, opt.param_groups[0]["lr"])
                opt.step()
                recorders.after_update()
                step += 1
                at_step(cfg, model, opt, step)
                evaluation.add(step, loss_value, logits, y)
                recorders.updated(step)
                if evaluation.due(step):
                    evaluation(step)
                if ckpt.due() and step < cfg.steps:
                    recorders.flush()       # every block first: the logs then match the checkpoint
                    ckpt.save(loop_state(step, model, opt, recorders, divergence, evaluation))
                stop.boundary(step, on_step)
            if divergence.at is None and recorders.recorded != step:
                # --probe train at the last step: the batch that would come next, probed without effects.
                recorders.probe(step, ds.x_train[next(batch_iter)])
            recorders.flush()
            write_torch(run_dir / "model.pt", model.state_dict())
        except KeyboardInterrupt:
            stop.keep(step, ckpt, recorders.flush,
                      lambda: loop_state(step, model, opt, recorders, divergence, evaluation))
            finish(run_dir, cfg, "interrupted", step, divergence.at, evaluation.last_row, ckpt.elapsed(),
                   recorders.logs, keep_checkpoint=True)
            raise
        finally:
            recorders.logs.close()
        return RunResult(run_dir, finish(run_dir, cfg, divergence.status, step, divergence.at,
                                         evaluation.last_row, ckpt.elapsed(), recorders.logs))


def open_folder(run_dir: Path, resumable: bool) -> bool:
    """Make run_dir ready for this (locked) writer; True when it resumes from its checkpoint.

    Nothing is written through a link: a linked folder, or a linked file in a folder to resume, is
    refused. A folder that cannot be resumed is started afresh.
    """
    lock.refuse_links(run_dir, inside=False)
    resume = resumable and (run_dir / "config.json").exists()
    if resume:
        lock.refuse_links(run_dir, inside=True)     # appending through a planted link writes elsewhere
        for tmp in run_dir.glob(".*.tmp"):          # left by a kill mid-write; we are the only writer
            tmp.unlink()
    elif run_dir.exists():
        shutil.rmtree(run_dir)
    for stale in ("summary.json", "error.txt"):     # an `interrupted` summary is resumed past
        (run_dir / stale).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    return resume


def load_model(run_dir: Path, device: str = "cpu") -> tuple[RunConfig, models.Net, data.Dataset]:
    """A finished run's trained model (from `model.pt`), its config and its dataset, on `device`.

    The weights are read with weights_only=True: a run folder from someone else cannot run code.
    """
    run_dir = Path(run_dir)
    path = run_dir / "model.pt"
    if not path.is_file():
        raise IcsError(f"'{run_dir}' has no model.pt (unfinished, or recorded by an older ics); rerun it")
    cfg = replace(RunConfig.from_record(store.read_json(run_dir / "config.json")["config"]), device=device)
    ds = data.load(cfg.dataset, data_dir=cfg.data_dir, binarize=cfg.binarize, device=torch.device(device),
                   split=cfg.split)
    ds = replace(ds, task=tasks.task_for(ds.task, cfg.regress_loss))
    model = models.build(cfg, ds.shape, ds.num_classes).to(device)
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    return cfg, model.eval(), ds


def finish(run_dir: Path, cfg: RunConfig, status: str, step: int, diverged_at: int | None,
           last_row: dict, wall_s: float, logs: blocks.RunLogs, keep_checkpoint: bool = False) -> dict:
    """Write summary.json last: its presence is what marks the run as finished."""
    final = {k: last_row.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc",
                                          "test_loss_batchstats", "test_acc_batchstats")}
    final = {k: (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v)
             for k, v in final.items()}
    summary = {"status": status, "name": cfg.name(), "hash": cfg.hash(), "steps_done": step,
               "steps_planned": cfg.steps, "diverged_at_step": diverged_at,
               "final": final, "final_step": last_row.get("step"),
               "wall_s": round(wall_s, 3), "steps_per_s": round(step / wall_s, 2) if wall_s > 0 else None}
    with lock.writing(run_dir / "summary.json"):
        files.write_json(run_dir / "summary.json", summary)
    if not keep_checkpoint:
        # Only after summary.json exists: a kill before this point resumes, after it reads as finished.
        with lock.writing(run_dir / "units"):
            logs.finish()
        (run_dir / "checkpoint.pt").unlink(missing_ok=True)
    return summary
