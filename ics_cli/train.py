"""One training run, top to bottom: seed, data, model, optimizer, the loop, the record.

Step s means "after s updates". A finished run also keeps its trained weights (`model.pt`, a
state dict: `torch.load(path, weights_only=True)`), so a model can be evaluated again later.

Each record has its own cadence, and every one includes step 0 (before any update) and the last step:
activation statistics every `log_every` steps (from the fixed probe batch, or under `--probe train`
from the training pass itself), the test set every `eval_every` steps (one metrics row, whose train
loss and accuracy average the updates since the previous row), and each layer's gradient norm on
every step. The recorders keep their rows on the device and the logs receive them in blocks.
Checkpoints are taken on a wall clock (`checkpoint_every` seconds), each after flushing every block;
a killed or interrupted run resumes from its last checkpoint, cuts its logs back to that step, and
ends with the same bytes as an unbroken one (the recorded values do not depend on when checkpoints
happened, or on how often the run is probed).
With --tensorboard the same rows, as they are written, also become TensorBoard events in
RUN/tensorboard/ (ics_cli/tensorboard.py), with a fixed sample of each site's activations per log step.
What one update sees comes from ics_cli/sampling.py (i.i.d. or paired batches, one pass or one per
--micro-batch slice); test_loss/test_acc use the statistics --bn-eval names, and FrozenBN holds from
--freeze-bn-at on (ics_cli/population.py).
A NaN/inf loss, a loss above diverge_factor (1e3) x the first one, or a smoothed loss (EMA with
alpha 0.1, about the last 10 steps) above diverge_smooth (4) x the first one ends the run as
`diverged`: a result, not an error. The smoothed rule catches saturating nets (sigmoid) whose loss
is stuck far above chance level but bounded, so never reaches 1e3 x.
"""

from __future__ import annotations

import io
import math
import platform
import shutil
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

from . import __version__, quantities
from .store import logs as blocks, lock, runs as store
from .store import files
from .store import schema
from .store.provenance import git_commit
from .net import data, models, norms, population, sampling, tasks
from .store import tensorboard
from .config import RunConfig, check_writable, validate
from .errors import IcsError
from .probes import ActivationRecorder, GradientRecorder, batch_stats_without_update

EMA_ALPHA = 0.1
EVAL_CHUNK = 1000
PROBE_SEED_OFFSET = 1_000_003   # the probe's own stream, apart from init and batch order
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


def provenance(cfg: RunConfig, device: torch.device) -> dict:
    commit = git_commit()
    return {"config": cfg.to_dict(), "hash": cfg.hash(), "name": cfg.name(),
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
                                 binarize=cfg.binarize, device=device)
    counts = torch.bincount(ds.y_train.cpu(), minlength=ds.num_classes).tolist() if ds.task == "classify" else None
    cfg = check_data(cfg, len(ds.x_train), len(ds.x_test), ds.shape, ds.num_classes, class_counts=counts)
    return cfg, ds, device


def train(cfg: RunConfig, *, force: bool = False,
          on_log: Callable[[int, dict], None] | None = None,
          on_step: Callable[[int], None] | None = None) -> RunResult:
    """Run (or resume, or skip if already finished) one configuration; return its folder and summary.

    on_log(step, metrics_row) is called at each evaluation, on_step(step) after each update.
    Ctrl-C writes an `interrupted` summary, keeps the checkpoint and re-raises KeyboardInterrupt.
    The run folder's lock is held throughout: lock.Busy if another process is writing it.
    """
    cfg, ds, device = prepare(cfg)
    run_dir = Path(cfg.out) / cfg.name()
    # One writer per run, from the skip/resume decision to the summary; a full disk or a read-only
    # file ends the run with one line and leaves it resumable (ics_cli/lock.py).
    with lock.hold(run_dir), lock.writing(run_dir):
        summary = None if force else store.finished(run_dir)
        if summary:
            if cfg.tensorboard:     # a run recorded without --tensorboard: its events from its tables
                tensorboard.backfill(run_dir)
            return RunResult(run_dir, summary, skipped=True)
        ckpt_path = run_dir / "checkpoint.pt"
        resume = open_folder(run_dir, resumable=not force and ckpt_path.exists())

        # Three independent streams: init (global), batch order, probe choice.
        torch.manual_seed(cfg.seed)
        model = models.build(cfg, ds.shape, ds.num_classes).to(device)
        opt = make_optimizer(cfg, model.parameters())
        gen = torch.Generator().manual_seed(cfg.seed)
        probe_x = None          # --probe train: the training batches themselves
        if cfg.probe == "fixed":
            probe_gen = torch.Generator().manual_seed(cfg.seed + PROBE_SEED_OFFSET)
            probe_x = ds.x_train[torch.randperm(len(ds.x_train), generator=probe_gen)[:cfg.probe_size].to(device)]
        uses_batch_stats = norms.get(cfg.norm).batch_stats
        acts = ActivationRecorder(model, cfg.track_units, batch_stats=uses_batch_stats,
                                  samples=tensorboard.SAMPLES if cfg.tensorboard else 0)
        grads = GradientRecorder(model)
        second = quantities.active(cfg, model)      # the second view of ICS, each on its own cadence
        loss_fn = lambda out, target: tasks.loss(ds.task, out, target)  # noqa: E731
        batch_stats_eval = cfg.eval_batchstats and uses_batch_stats
        # Test-time statistics (--bn-eval) and FrozenBN (--freeze-bn-at): ics_cli/population.py.
        bn_eval = cfg.bn_eval if uses_batch_stats else "ema"
        precise = (population.Precise(ds.x_train, cfg.precise_samples, cfg.norm_batch, cfg.seed)
                   if bn_eval == "precise" else None)
        freeze_at = population.freeze_step(cfg)

        def due(step: int, every: int) -> bool:
            return step % every == 0 or step == cfg.steps

        step, elapsed0, initial_loss, ema = 0, 0.0, None, None
        def fresh_interval() -> list:
            """Train loss sum, correct count (on the device; NaN for regression) and examples since the
            last metrics row."""
            return [0.0, torch.zeros((), dtype=torch.float64, device=device), 0]

        interval = fresh_interval()
        if resume:
            # weights_only: a checkpoint holds tensors, numbers and dicts only, so loading one can never
            # run code (a planted pickle fails here instead of executing).
            try:
                ck = torch.load(ckpt_path, map_location=device, weights_only=True)
                model.load_state_dict(ck["model"])
                opt.load_state_dict(ck["opt"])
                acts.load_state(ck["acts"])
                for q in second:
                    q.load_state(ck["quantities"].get(q.name, {}))
                step, elapsed0, initial_loss, ema = ck["step"], ck["elapsed"], ck["initial_loss"], ck["ema"]
                interval = list(ck["interval"])
            except Exception as e:  # noqa: BLE001 - whatever is wrong with it, it is not resumed from
                raise IcsError(f"{ckpt_path} is not a checkpoint ics can load safely ({type(e).__name__}: "
                               f"damaged, or more than tensors and numbers); remove the run folder "
                               f"{run_dir} to start the run afresh") from None
        else:
            files.write_json(run_dir / "config.json", provenance(cfg, device))
        logs = blocks.RunLogs(run_dir, fresh=not resume, extra={q.name: q.columns for q in second},
                              tensorboard=cfg.tensorboard)
        if resume:
            logs.truncate(step, measured_after=tuple(q.name for q in second) + (
                ("layers", "units") if cfg.probe == "train" else ()))
        batch_iter = sampling.sampler(cfg, ds.y_train, ds.num_classes, gen, skip=step)
        start = time.perf_counter() - elapsed0
        last_ckpt = time.perf_counter()
        last_row: dict = {}
        pending: dict = {q: [] for q in second}     # quantity rows not yet written
        recorded = evaluated = -1        # the last step with activation statistics / a metrics row

        def record(step: int) -> None:
            """Activation statistics of `step` from the passes just captured."""
            nonlocal recorded
            if acts.full:
                flush()
            acts.record(step)
            recorded = step

        def log_metrics(step: int) -> None:
            """Evaluate the test set; append one metrics row (train loss and accuracy since the last)."""
            nonlocal last_row, interval, evaluated
            bstats = (evaluate(model, ds.x_test, ds.y_test, chunk=cfg.norm_batch, batch_stats=True,
                               task=ds.task)
                      if batch_stats_eval or bn_eval == "batch" else None)
            if bn_eval == "batch":
                test = bstats
            else:   # PreciseBN's statistics for this evaluation only (FrozenBN keeps its own)
                recompute = precise is not None and not population.frozen(model)
                with population.using(model, precise.estimate(model)) if recompute else nullcontext():
                    test = evaluate(model, ds.x_test, ds.y_test, task=ds.task)
            bstats = bstats if batch_stats_eval else test
            host = torch.cat([test, bstats]).tolist()
            loss_sum, correct, n = interval[0], float(interval[1]), interval[2]
            row = {"step": step, "train_loss": loss_sum / n if n else math.nan,
                   "train_acc": correct / n if n else math.nan, "test_loss": host[0], "test_acc": host[1],
                   "test_loss_batchstats": host[2], "test_acc_batchstats": host[3],
                   "lr": opt.param_groups[0]["lr"], "elapsed_s": round(time.perf_counter() - start, 3)}
            logs.metrics([[row[c] for c in schema.METRICS_COLUMNS]])
            interval = fresh_interval()
            last_row, evaluated = row, step
            if on_log:
                on_log(step, row)

        def flush() -> None:
            """Every buffered row to disk: one copy from the device per recorder."""
            steps, stats = acts.flush()
            if steps:
                logs.layers(blocks.layer_rows(steps, stats, acts.layers))
                logs.units(blocks.unit_block(steps, stats, acts.layers))
                logs.samples(steps, stats, acts.layers)     # TensorBoard's activation histograms
            steps, host = grads.flush()
            if steps:
                logs.grads(blocks.grad_rows(steps, host, grads.names))
            for q, rows in pending.items():
                if rows:
                    logs.quantity(q.name, rows)
                    rows.clear()

        def save(path: Path, obj) -> None:
            # Serialized in memory, then one atomic write: a full disk is then an OSError naming the
            # file (torch.save to a file says `unexpected pos`) and leaves no temporary file.
            buf = io.BytesIO()
            torch.save(obj, buf)
            with lock.writing(path):
                store.write_atomic(path, buf.getvalue())

        def checkpoint() -> None:
            """Flush the logs, then save everything the loop needs to go on from `step` exactly."""
            nonlocal last_ckpt
            flush()
            save(ckpt_path, {"model": model.state_dict(), "opt": opt.state_dict(),
                             "acts": acts.state(), "quantities": {q.name: q.state() for q in second},
                             "step": step, "initial_loss": initial_loss, "ema": ema,
                             "interval": interval, "elapsed": time.perf_counter() - start})
            last_ckpt = time.perf_counter()

        status, diverged_at = "completed", None
        model.train()
        norms.set_step(model, step)     # batch-renorm's schedule: the updates done so far
        try:
            if step == 0:
                if probe_x is not None:
                    acts.probe(probe_x)
                    record(0)
                log_metrics(0)
            while step < cfg.steps:
                idx = next(batch_iter)
                x, y = ds.x_train[idx], ds.y_train[idx]
                if freeze_at is not None and step >= freeze_at and not population.frozen(model):
                    # FrozenBN from here on (or again, in a run resumed after the freeze step), with
                    # PreciseBN's statistics under --bn-eval precise, else the EMA's as they are.
                    if precise is not None and step == freeze_at:
                        population.keep(model, precise.estimate(model))
                    population.freeze(model)
                # --probe train: step s's statistics are those of this pass (weights after s updates,
                # the batch of update s + 1), read by the hooks; the pass itself is unchanged. The
                # eval-mode pass for norm_eval goes first, with the step's running statistics.
                capture = probe_x is None and due(step, cfg.log_every) and recorded != step
                if capture:
                    acts.eval_pass(x)
                opt.zero_grad(set_to_none=True)
                with acts.capturing() if capture else nullcontext():
                    # The gradient accumulates in .grad: one pass, or one per --micro-batch slice.
                    logits, loss = sampling.forward_backward(model, x, y, ds.task, cfg.micro_batch)
                if capture:
                    record(step)
                loss_value = loss.item()
                if initial_loss is None:
                    initial_loss = ema = loss_value
                ema = (1 - EMA_ALPHA) * ema + EMA_ALPHA * loss_value
                if (not math.isfinite(loss_value) or loss_value > cfg.diverge_factor * initial_loss
                        or ema > cfg.diverge_smooth * initial_loss):
                    # This batch's update never happens: its loss stays out of the logged train_loss.
                    status, diverged_at = "diverged", step
                    if recorded != step:
                        acts.probe(x if probe_x is None else probe_x)
                        record(step)
                    if evaluated != step:
                        log_metrics(step)
                    break
                if grads.full:
                    flush()
                grads.before_step(full=due(step + 1, cfg.log_every))
                measured = [q for q in second if q.due(step)]
                if measured:
                    probe = quantities.Probe(model, x, y, loss_fn, step, opt.param_groups[0]["lr"])
                    for q in measured:
                        pending[q] += q.measure(probe)
                opt.step()
                if measured:
                    probe.updated()
                    for q in measured:
                        pending[q] += q.after_update(probe)
                step += 1
                norms.set_step(model, step)
                grads.after_step(step)
                interval[0] += tasks.sample_sum(ds.task, loss_value, len(y))
                interval[1] += tasks.correct_sum(ds.task, logits, y)
                interval[2] += len(y)
                if probe_x is not None and due(step, cfg.log_every):
                    acts.probe(probe_x)
                    record(step)
                if due(step, cfg.eval_every):
                    log_metrics(step)
                if time.perf_counter() - last_ckpt >= cfg.checkpoint_every and step < cfg.steps:
                    checkpoint()
                if on_step:
                    on_step(step)
            if status == "completed" and recorded != step:
                # --probe train at the last step: the batch that would come next, probed without effects.
                acts.probe(ds.x_train[next(batch_iter)])
                record(step)
            flush()
            save(run_dir / "model.pt", model.state_dict())
        except KeyboardInterrupt:
            status = "interrupted"
            finish(run_dir, cfg, status, step, diverged_at, last_row, time.perf_counter() - start, logs,
                   keep_checkpoint=True)
            raise
        finally:
            logs.close()
        summary = finish(run_dir, cfg, status, step, diverged_at, last_row, time.perf_counter() - start, logs)
        return RunResult(run_dir, summary)


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
    cfg = replace(RunConfig.from_dict(store.read_json(run_dir / "config.json")["config"]), device=device)
    ds = data.load(cfg.dataset, data_dir=cfg.data_dir, binarize=cfg.binarize, device=torch.device(device))
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
