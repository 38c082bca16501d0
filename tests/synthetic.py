"""Run folders with chosen numbers, written in the run-folder contract, for the falsifiability tests.

`write_run` writes one finished run whose series are given per logged step; everything not given
takes a neutral default (unit statistics of a standard normal, no drift, constant gradient norms).
`context` reads folders back into a study Context, so a claim's `measure` sees exactly what it
would see after real training: a world built to make the claim true, or false.

The pieces every hand-written run folder of the tests is made of live here too: `write_csv` (a table,
cells as the contract writes them), `write_units` (units.parquet, as a run writes it), `write_config`
(config.json of a configuration) and `edit_config` (config fields set or dropped in a folder already
written, the hash and name kept or made anew).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ics_cli.store import runs as store
from ics_cli.store import files
from ics_cli.store import schema
from ics_cli.store.units import UnitsLog
from ics_cli.config import RunConfig
from ics_cli.probes import SITES
from ics_cli.studies.context import Context

HIDDEN = ("hidden1", "hidden2", "hidden3")
NAN = math.nan


def cell(v) -> str:
    """One CSV cell as the contract writes it: floats to 9 significant digits, NaN blank, inf as inf."""
    if isinstance(v, float):
        return "" if v != v else format(v, ".9g")
    return str(v)


def write_csv(path: Path, columns: list[str], rows: list[list]) -> Path:
    path = Path(path)
    path.write_text(",".join(columns) + "\n" + "".join(",".join(cell(v) for v in r) + "\n" for r in rows))
    return path


def write_units(folder: Path, rows: list[list]) -> Path:
    """units.parquet of `rows` (the columns schema.UNITS_COLUMNS, ordered by step), written as a
    finished run writes it (UnitsLog: the values float32)."""
    log = UnitsLog(folder, fresh=True)
    if rows:
        log.append({c: np.array(v, dtype=object if c in ("layer", "site") else None)
                    for c, v in zip(schema.UNITS_COLUMNS, zip(*rows))})
    return log.finish()


def write_config(folder: Path, cfg: RunConfig, *, timestamp: str = "2026", indent: int | None = None) -> Path:
    """config.json of the resolved configuration `cfg` in `folder`, as a run records it."""
    (Path(folder) / "config.json").write_text(json.dumps({
        "config": cfg.to_dict(), "hash": cfg.hash(), "name": cfg.name(),
        "versions": {"python": "3", "torch": "2", "ics": "0"}, "device": "cpu", "timestamp": timestamp},
        indent=indent))
    return Path(folder)


def edit_config(folder: Path, *, rehash: bool = False, drop=(), **fields) -> Path:
    """Set config `fields` in the config.json of `folder` (the run's hash and name kept, or, with
    `rehash`, those of the new configuration), then leave the keys in `drop` out of it."""
    path = Path(folder) / "config.json"
    meta = json.loads(path.read_text())
    config = {**meta["config"], **fields}
    if rehash:
        resolved = RunConfig.from_dict(config)
        meta.update(hash=resolved.hash(), name=resolved.name())
    meta["config"] = {k: v for k, v in config.items() if k not in drop}
    path.write_text(json.dumps(meta))
    return Path(folder)


def write_run(root: Path, *, norm: str, seed: int, test_acc: list[float], log_every: int = 100,
              lr: float = 0.5, model: str = "mlp", status: str = "completed", layers: dict | None = None,
              units: dict | None = None, grads: dict | None = None,
              batchstats: list[float] | None = None) -> Path:
    """One run folder under root; logged and evaluated steps are 0, log_every, ... (one per test_acc
    value).

    layers: {(layer, site): {column: [value per logged step]}}; units: {(layer, site, unit):
    {"p15"/"p50"/"p85": [...]}}; grads: {layer: [grad norm per logged step > 0]}; batchstats: the
    test accuracy under the test batch's statistics per evaluation (default: blank).
    """
    steps = [k * log_every for k in range(len(test_acc))]
    cfg = RunConfig(norm=norm, lr=lr, seed=seed, model=model, depth=len(HIDDEN), steps=steps[-1],
                    log_every=log_every, eval_every=log_every, track_units=1, device="cpu").resolved()
    folder = Path(root) / cfg.name()
    folder.mkdir(parents=True)
    write_config(folder, cfg)
    layers, units, grads = layers or {}, units or {}, grads or {}
    batchstats = batchstats or [NAN] * len(test_acc)
    write_csv(folder / "metrics.csv", schema.METRICS_COLUMNS,
              [[s, 2 * (1 - a), a, 2 * (1 - a), a, 2 * (1 - b), b, lr, NAN, NAN, 0.0]
               for s, a, b in zip(steps, test_acc, batchstats)])
    rows = []
    for k, s in enumerate(steps):
        for layer in HIDDEN:
            for site in SITES:
                given = {c: v[k] for c, v in layers.get((layer, site), {}).items()}
                d = dict(mean=0.0, var=1.0, unit_mean_abs=0.0, unit_var_mean=1.0,
                         drift_mean=NAN if k == 0 else 0.0, drift_var=NAN if k == 0 else 0.0,
                         drift_mean_init=0.0, drift_var_init=0.0,
                         drift_mean_scaled=NAN if k == 0 else 0.0, drift_mean_scaled_init=0.0, dead_units=0)
                d.update(given)
                rows.append([s, layer, site] + [d[c] for c in schema.LAYERS_COLUMNS[3:]])
    write_csv(folder / "layers.csv", schema.LAYERS_COLUMNS, rows)
    rows = []
    for k, s in enumerate(steps):
        for layer in HIDDEN:
            for site in SITES:
                q = {c: v[k] for c, v in units.get((layer, site, 0), {}).items()}
                rows.append([s, layer, site, 0, 0.0, 1.0, q.get("p15", -1.0), q.get("p50", 0.0),
                             q.get("p85", 1.0)])
    write_units(folder, rows)
    rows = []
    for k, s in enumerate(steps[1:]):
        for layer in (*HIDDEN, "output"):
            g = grads.get(layer, [1.0] * (len(steps) - 1))[k]
            rows.append([s, layer, g, 1.0, 0.01])
    write_csv(folder / "grads.csv", schema.GRADS_COLUMNS, rows)
    final = {"train_loss": 2 * (1 - test_acc[-1]), "train_acc": test_acc[-1],
             "test_loss": 2 * (1 - test_acc[-1]), "test_acc": test_acc[-1]}
    files.write_json(folder / "summary.json", {
        "status": status, "steps_done": steps[-1], "steps_planned": steps[-1],
        "diverged_at_step": steps[-1] if status == "diverged" else None,
        "final": None if status == "diverged" else final, "final_step": steps[-1]})
    return folder


def context(out: Path, groups: dict[str, list[Path]]) -> Context:
    return Context(out=Path(out), quick=False,
                   groups={g: [store.read_run(p) for p in paths] for g, paths in groups.items()})


def write_relative_loss(folder: Path, rel_loss: dict[float, float], loss0: float = 2.3, step: int = 0) -> Path:
    """relative_loss.csv of a run folder: at `step`, each α with the given L(θ − αg)/L(θ) (inf and NaN
    allowed: a loss that blew up past float range, or one that is not a number)."""
    rows = [[step, a, loss0, r * loss0, r] for a, r in sorted(rel_loss.items())]
    write_csv(Path(folder) / "relative_loss.csv", ["step", "alpha", "loss0", "loss", "rel_loss"], rows)
    return Path(folder)


def write_quantity(folder: Path, name: str, rows: list[list]) -> Path:
    """A second-view table `name` (grad_ics, landscape, sharpness, ...) of a run folder, with the
    columns the quantity writes (store.TABLES) and the given rows."""
    write_csv(Path(folder) / f"{name}.csv", store.TABLES[name], rows)
    return Path(folder)
