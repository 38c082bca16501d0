"""TensorBoard event files of runs: the tag scheme, live writing beside the tables, export of run folders.

TensorBoard is an optional extra (`pip install -e '.[tensorboard]'` in a checkout, or `pip install tensorboard`) and is imported here only,
and only when events are written or read. `ics train --tensorboard` (and `ics sweep`) writes
`RUN/tensorboard/` while the run goes: each time rows are appended to a table, the same rows, parsed
back from the CSV text just written (units: the block just written), become events, so every value
is the CSV's (docs/metrics.md, "TensorBoard tags"). `ics export tensorboard RUNS --logdir DIR`
writes the same events from the tables of finished or unfinished run folders into DIR/<name>/
(`export_names`: `<model>-<norm>-lr<lr>-s<seed>`, with the run's hash where two runs would share a
name), so `tensorboard --logdir DIR` overlays the runs of a sweep. Events are written by SummaryWriter's
own file writer and summary functions (torch.utils.tensorboard), one event per step holding all of
that step's values rather than one per value (a thread handoff each).

**The tag scheme** (one definition: `scalars`, `unit_histograms`, `activation_histograms`, used live
and by export). The step of each event is the row's `step`; a blank (NaN) cell writes nothing:

- train.csv: `loss/train`, `accuracy/train` (the loss and accuracy of the training batch of the
  update at each log step: one point per --log-every steps);
- metrics.csv: `loss/train_since_eval`, `accuracy/train_since_eval` (the mean over the updates since
  the previous evaluation), `loss/test`, `loss/test_batchstats`, `loss/train_eval`, `accuracy/test`,
  `accuracy/test_batchstats`, `accuracy/train_eval`, `lr` (not `elapsed_s`: events carry their own wall time);
- layers.csv: `drift/<layer>/<site>` (the headline drift, `drift_mean_scaled`), and every other
  column as `<column>/<layer>/<site>` (`drift_mean/hidden1/linear`, `dead_units/…`);
- grads.csv: `grad_norm/<layer>`, `weight_norm/<layer>`, `update_ratio/<layer>`;
- the second view: `<table>/<column>` with the row's key: `grad_ics/ics_cos/<layer>`,
  `landscape/loss/eta_mult=<m>`, `relative_loss/rel_loss/alpha=<a>` (m, a as the CSV writes them),
  `sharpness/<column>`; a column that is the same in every row of a step once, keyless
  (`landscape/loss0`, `landscape/grad_norm`, `relative_loss/loss0`);
- histograms: `unit_mean/<layer>/<site>` (each unit's `mean` from the units table at a log step:
  one value per unit), and, live only, `activations/<layer>/<site>` (a fixed sample of
  SAMPLES values of the site tensor at each log step, from the probe pass already made:
  probes.ActivationRecorder). Histograms hold the finite values only, in BINS equal-width buckets.

**Resuming** never duplicates a step: the tables are cut back to the checkpoint (blocks.RunLogs), and
so are the events, by a rewrite: every event of a tag whose table keeps the step is kept (once),
written into one new file, and the older files are removed (`Events.truncate`). Without event files
(the run was started without --tensorboard) the events up to the checkpoint are written from the
tables. A run resumed without --tensorboard, and every fresh start, removes `RUN/tensorboard/`.

**HParams and config**: every event file starts with the run's HParams (model, norm, lr, batch size,
seed, … with the test accuracy and losses as its metrics) and its config.json as text (tag `config`),
so TensorBoard's HParams tab filters a sweep by norm, lr or seed.

**Export** stages every run's events in a folder beside DIR (`staging.staging_folder`) and then moves
each into DIR/<name>/, replacing what an earlier export put there, so exporting again never
duplicates an event and a kill leaves the earlier export.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from . import runs as store
from . import files
from . import schema
from . import staging
from ..errors import IcsError, installed, require as require_package
from ..probes import SITES

FOLDER = "tensorboard"              # RUN/tensorboard/: the live events of a run
SAMPLES = 512                       # activation values sampled per site and log step (live only)
MAX_QUEUE = 1000                    # events the writer's thread may hold before a write waits
BINS = 30                           # equal-width buckets of a histogram, from its smallest value to its largest

METRICS_TAGS = {"train_loss": "loss/train_since_eval", "test_loss": "loss/test",
                "test_loss_batchstats": "loss/test_batchstats",
                "train_acc": "accuracy/train_since_eval", "test_acc": "accuracy/test",
                "test_acc_batchstats": "accuracy/test_batchstats", "lr": "lr",
                "train_loss_eval": "loss/train_eval", "train_acc_eval": "accuracy/train_eval"}
HEADLINE_DRIFT = "drift_mean_scaled"
# Per table: the key columns a tag ends in (`name=` for a number: eta_mult=0.5), and the tag of each
# value column (before its key); columns the same in every row of a step are written once, keyless.
SCALARS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "metrics": ((), METRICS_TAGS),
    "layers": (("layer", "site"), {c: "drift" if c == HEADLINE_DRIFT else c for c in schema.LAYERS_COLUMNS[3:]}),
    "grads": (("layer",), {c: c for c in schema.GRADS_COLUMNS[2:]}),
    "train": ((), {"batch_loss": "loss/train", "batch_acc": "accuracy/train"}),
    **{name: (tuple(k for k in schema.ROW_KEYS[name] if k != "step"),
              {c: f"{name}/{c}" for c in columns if c not in schema.ROW_KEYS[name]})
       for name, columns in store.TABLES.items() if name not in schema.CORE_TABLES},
}
NAMED_KEYS = ("eta_mult", "alpha")
PER_STEP = {"landscape": ("loss0", "grad_norm"), "relative_loss": ("loss0",)}
HISTOGRAMS = {"unit_mean": "units", "activations": "layers"}     # histogram tag -> the table it goes with
# The table each tag (before its keys) belongs to: a resumed run cuts its events where it cuts that table.
SECTIONS = {**{tag: table for table, (_, tags) in SCALARS.items() for tag in tags.values()}, **HISTOGRAMS}


def section(tag: str) -> str:
    """The table of a tag written by this module (its longest prefix in SECTIONS: `loss/train` is
    train.csv's, `loss/test` metrics.csv's, `drift/hidden1/norm` layers.csv's); "" for any other."""
    parts = tag.split("/")
    return next((SECTIONS[p] for k in range(len(parts), 0, -1) if (p := "/".join(parts[:k])) in SECTIONS), "")


def available() -> bool:
    """Whether the tensorboard package is installed (without importing it)."""
    return installed("tensorboard")


def require(what: str = "--tensorboard") -> None:
    """One line naming the fix when the tensorboard package is missing."""
    require_package("tensorboard", "TensorBoard", what, present=available())


# --------------------------------------------------------------------------- the tag scheme


def scalars(table: str, frame: pd.DataFrame) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every non-blank cell of `frame`, rows of table `table`, in step order."""
    if table not in SCALARS or frame.empty:
        return []
    keys, tags = SCALARS[table]
    steps = frame["step"].astype(int).tolist()
    suffixes = [""] * len(steps)
    for k in keys:
        cells = ([f"/{k}={files.fmt(float(v))}" for v in frame[k]] if k in NAMED_KEYS
                 else [f"/{v}" for v in frame[k]])
        suffixes = [a + b for a, b in zip(suffixes, cells)]
    found, once = [], set()
    for column, tag in tags.items():
        if column not in frame:         # a column added after the run was recorded
            continue
        keyed = column not in PER_STEP.get(table, ())
        values = pd.to_numeric(frame[column], errors="coerce").astype(float).tolist()
        for step, suffix, value in zip(steps, suffixes, values):
            if value != value:          # blank: nothing to show
                continue
            if keyed:
                found.append((tag + suffix, step, value))
            elif (tag, step) not in once:
                once.add((tag, step))
                found.append((tag, step, value))
    return sorted(found, key=lambda e: e[1])


def unit_histograms(units: pd.DataFrame) -> Iterator[tuple[str, int, np.ndarray]]:
    """(tag, step, values): each site's per-unit means at each log step of a units table."""
    if units.empty:
        return
    frame = pd.DataFrame({"step": np.asarray(units["step"]), "layer": np.asarray(units["layer"], dtype=object),
                          "site": np.asarray(units["site"], dtype=object),
                          "mean": np.asarray(units["mean"], dtype=np.float64)})
    for (step, layer, site), rows in frame.groupby(["step", "layer", "site"], sort=False):
        yield f"unit_mean/{layer}/{site}", int(step), rows["mean"].to_numpy()


def activation_histograms(steps: list[int], sample: np.ndarray, layers: list[str]) -> Iterator[tuple]:
    """(tag, step, values) of the sampled activations of a block: `sample` is (steps, layers, sites, SAMPLES)."""
    for k, step in enumerate(steps):
        for li, layer in enumerate(layers):
            for si, site in enumerate(SITES):
                yield f"activations/{layer}/{site}", step, sample[k, li, si].astype(np.float64)


def _write(writer, scalar_events, histogram_events) -> None:
    """One event per step that holds all of that step's values, each encoded as SummaryWriter's
    add_scalar and add_histogram encode it (torch.utils.tensorboard.summary)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard import summary

    by_step: dict[int, list] = {}
    for tag, step, value in scalar_events:
        by_step.setdefault(step, []).extend(summary.scalar(tag, value).value)
    for tag, step, values in histogram_events:
        values = values[np.isfinite(values)]
        if values.size:
            by_step.setdefault(step, []).extend(summary.histogram(tag, values, BINS).value)
    for step, values in by_step.items():
        writer.add_summary(Summary(value=values), step)


def write_tables(writer, run_dir: Path, cuts: dict[str, int] | None = None) -> None:
    """Every table of a run folder as events (not the live-only activations); with `cuts`, only the
    rows at or before each table's step."""
    run_dir = Path(run_dir)

    def rows(name: str) -> pd.DataFrame:
        frame = store.read_table(run_dir, name)
        return frame if cuts is None or frame.empty else frame[frame["step"] <= cuts[name]]

    for name in store.TABLES:
        if name == "units":
            _write(writer, [], unit_histograms(rows(name)))
        else:
            _write(writer, scalars(name, rows(name)), [])


def _file_writer(folder: Path, run_dir: Path | None = None):
    """A new event file in `folder` (SummaryWriter's own writer: one event per step, not per value);
    with `run_dir`, it starts with the run's HParams and config text (`write_meta`)."""
    from torch.utils.tensorboard.writer import FileWriter

    writer = FileWriter(str(folder), max_queue=MAX_QUEUE)
    if run_dir is not None:
        write_meta(writer, run_dir)
    return writer


HPARAMS = ("model", "norm", "lr", "batch_size", "seed", "dataset", "optimizer", "activation", "depth", "width")
# The HParams plugin's metrics: scalar tags the run writes, read by the plugin at their last step.
HPARAM_METRICS = ("accuracy/test", "loss/test", "loss/train", "drift/hidden1/linear")


def hparams(config: dict) -> dict:
    """The run's hyperparameters as TensorBoard's HParams shows them (filter a sweep by norm, lr, seed…)."""
    cfg = config.get("config", config)
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k in HPARAMS
            if (v := cfg.get(k)) is not None}


def write_meta(writer, run_dir: Path) -> None:
    """HParams (HPARAMS, with HPARAM_METRICS) and the config as text (tag `config`), at step 0."""
    import json

    from torch.utils.tensorboard import summary

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return
    config = files.read_json(path)
    for part in summary.hparams(hparams(config), {m: 0.0 for m in HPARAM_METRICS}):
        writer.add_summary(part)
    text = "```\n" + json.dumps(config.get("config", config), indent=2, sort_keys=True) + "\n```"
    writer.add_summary(summary.text("config", text), 0)


def event_files(folder: Path) -> list[Path]:
    """The event files in `folder`, in the order TensorBoard reads them."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if "tfevents" in p.name and p.is_file())


# --------------------------------------------------------------------------- live: RUN/tensorboard/


class Events:
    """The events of one run being written, beside its tables (blocks.RunLogs calls it). Every write
    is flushed, so the events of every row a checkpoint keeps are on disk with it."""

    def __init__(self, run_dir: Path, fresh: bool):
        self.run_dir = Path(run_dir)
        self.folder = self.run_dir / FOLDER
        self._writer = None
        if fresh:
            remove(self.run_dir)

    @property
    def writer(self):
        if self._writer is None:
            self._writer = _file_writer(self.folder, self.run_dir)
        return self._writer

    def table(self, name: str, columns: list[str], text: str) -> None:
        """Rows just appended to table `name`, as the CSV text that was written."""
        if text:
            frame = pd.read_csv(io.StringIO(text), header=None, names=columns)
            self._flushed(scalars(name, frame), [])

    def units(self, block: dict) -> None:
        self._flushed([], unit_histograms(pd.DataFrame({c: block[c] for c in ("step", "layer", "site", "mean")})))

    def activations(self, steps: list[int], sample: np.ndarray, layers: list[str]) -> None:
        self._flushed([], activation_histograms(steps, sample, layers))

    def _flushed(self, scalar_events, histogram_events) -> None:
        _write(self.writer, scalar_events, histogram_events)
        self.writer.flush()

    def truncate(self, cuts: dict[str, int]) -> None:
        """Keep the events of the rows each table keeps on resuming (`cuts`: table -> last step)."""
        old = event_files(self.folder)
        if not old:         # begun without --tensorboard: what the tables hold so far
            write_tables(self.writer, self.run_dir, cuts)
            self.writer.flush()
            return
        from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

        seen: set[tuple[str, int]] = set()
        kept = _file_writer(self.folder, self.run_dir)
        try:
            for path in old:
                if path.is_symlink() or not path.is_file():
                    raise ValueError(f"{path.name} is not a regular file")
                for event in LegacyEventFileLoader(str(path)).Load():    # a torn last record is left out
                    if not event.HasField("summary"):
                        continue
                    values = [v for v in event.summary.value if (v.tag, event.step) not in seen
                              and event.step <= cuts.get(section(v.tag), -1)]
                    if values:
                        seen.update((v.tag, event.step) for v in values)
                        del event.summary.value[:]
                        event.summary.value.extend(values)
                        kept.add_event(event, walltime=event.wall_time)
        except Exception:  # noqa: BLE001 - events that cannot be read (planted, damaged) are rebuilt
            kept.close()   # from the tables, which they only mirror: the run goes on
            remove(self.run_dir)
            write_tables(self.writer, self.run_dir, cuts)
            self.writer.flush()
            return
        kept.close()
        for path in old:        # a kill before this leaves copies of kept events: the next rewrite drops them
            path.unlink()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def remove(run_dir: Path) -> None:
    """Remove RUN/tensorboard/ (a fresh start, or a run resumed without --tensorboard)."""
    folder = Path(run_dir) / FOLDER
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)


def backfill(run_dir: Path) -> None:
    """A finished run reused by `ics train --tensorboard`: its events from its tables, if it has none."""
    folder = Path(run_dir) / FOLDER
    if not event_files(folder):
        remove(run_dir)
        writer = _file_writer(folder, run_dir)
        try:
            write_tables(writer, run_dir)
        except BaseException:       # a damaged table: no event file is left half-written
            writer.close()
            remove(run_dir)
            raise
        writer.close()


# --------------------------------------------------------------------------- export


def export_names(runs: list[store.Run]) -> dict[str, store.Run]:
    """{name in the logdir: run}: `<model>-<norm>-lr<lr>-s<seed>` (as TensorBoard lists it), and
    `-<hash>` (the run's, as its folder name ends) after each name that two runs share; an IcsError
    when two runs still share one (the same run twice)."""
    def part(value) -> str:         # config.json is data: no path separator reaches a folder name
        return re.sub(r"[^A-Za-z0-9._=+-]", "_", str(value))

    def base(run: store.Run) -> str:
        cfg = run.config["config"]
        return f"{part(cfg['model'])}-{part(cfg['norm'])}-lr{float(cfg['lr']):g}-s{cfg['seed']}"

    def hashed(run: store.Run) -> str:
        return part(run.hash if isinstance(run.hash, str) and run.hash else run.path.name.rsplit("-", 1)[-1])

    shared = Counter(map(base, runs))
    names: dict[str, store.Run] = {}
    for run in runs:
        name = base(run) + (f"-{hashed(run)}" if shared[base(run)] > 1 else "")
        if name in names:
            raise IcsError(f"two runs would both be named {name} ({names[name].path} and {run.path}: the same "
                           "run twice?); export them into different --logdir folders")
        names[name] = run
    return names


def export(paths: list[Path], logdir: Path,
           on_damaged: Callable[[Path, str], None] | None = None) -> list[Path]:
    """The runs at or below `paths` as event files in `logdir`/<name>/ (`export_names`); returns those
    folders.

    Damaged run folders are skipped (`on_damaged` hears of each); an IcsError when none is left, or
    when two runs would share a name. Everything is written beside `logdir` first, then moved in.
    """
    from .runs import runs_under

    require("ics export tensorboard")
    names = export_names(runs_under(*paths, on_damaged=on_damaged))
    logdir = Path(logdir)
    with staging.staging(logdir) as stage:
        for name, run in names.items():
            writer = _file_writer(stage / name, run.path)
            write_tables(writer, run.path)
            writer.close()
    logdir.mkdir(parents=True, exist_ok=True)
    replaced = stage / ".replaced"
    replaced.mkdir()
    for name in names:
        if os.path.lexists(logdir / name):      # an earlier export's (a link is moved, never followed)
            os.rename(logdir / name, replaced / name)
        os.rename(stage / name, logdir / name)
    shutil.rmtree(stage)
    return [logdir / name for name in names]
