"""Synthetic run folders with hand-chosen numbers, written exactly as the run-folder contract says.

Nine finished or unfinished MLP runs (2 hidden layers, logged at steps 0, 10, 20, 30, 40):

| config           | seeds | status                                         |
|------------------|-------|------------------------------------------------|
| none,  lr 0.1    | 0 1 2 | completed                                      |
| none,  lr 1.0    | 0 1   | seed 0 completed, seed 1 diverged at step 30   |
| batch, lr 0.01   | 0     | completed                                      |
| batch, lr 0.1    | 0 1   | completed                                      |
| batch, lr 1.0    | 0 1 2 | seeds 0, 1 completed; seed 2 incomplete        |

Each run is described by a few series (RUNS below); every table is derived from them by the rules in
`_layers`, `_units` and `_grads`, so a test can recompute any expected number by hand:

* metrics: test_acc = ACC, test_loss = 2 (1 - acc), train_acc = acc, train_loss = test_loss - 0.1.
* layers: for hidden layer l and site factor f (linear 1, norm 0.5, act 0.1, norm_eval 0.4), mean = l f M,
  var = 1 + l f V; drift_mean = l f |ΔM| vs the previous logged step, drift_var = l f |ΔV|,
  drift_*_init = l f |X - X₀|. The scale-free drift divides by the units' σ, taken to be l, so only the
  site factor stays: drift_mean_scaled = f |ΔM|, drift_mean_scaled_init = f |M - M₀|.
  dead_units = k (the index of the log step: 0, 1, 2, ...) at hidden2's act site, 0 elsewhere.
  (norm_eval is synthetic here: in a real run without batch statistics it equals norm.)
* units: units 0 and 1 tracked (p15 = p50 - 1, p85 = p50 + 1, p50 = l f M + 0.1 unit), unit 2 untracked.
* grads (steps > 0): hidden1 = G, hidden2 = G / R, output = G / 4.
The diverged run records blank or inf from its last step on; the incomplete run has no summary.json.
`write_runs(root, legacy=True)` writes the folders of a run made before the norm_eval site and the
drift_mean_scaled, drift_mean_scaled_init, dead_units columns existed: three sites, the old columns.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ics_cli.config import RunConfig

from synthetic import write_config, write_csv, write_units

STEPS = [0, 10, 20, 30, 40]
LAYERS = {"hidden1": 1, "hidden2": 2}
SITES = {"linear": 1.0, "norm": 0.5, "act": 0.1, "norm_eval": 0.4}
LEGACY_SITES = ("linear", "norm", "act")
LAYERS_COLUMNS = ["step", "layer", "site", "mean", "var", "unit_mean_abs", "unit_var_mean", "drift_mean",
                  "drift_var", "drift_mean_init", "drift_var_init", "drift_mean_scaled",
                  "drift_mean_scaled_init", "dead_units"]
LEGACY_LAYERS_COLUMNS = LAYERS_COLUMNS[:11]
NAN, INF = math.nan, math.inf

# norm, lr, seed, status, ACC (per logged step), M, V (hidden-layer stats), G (hidden1 grad norms), R
RUNS = [
    dict(norm="none", lr=0.1, seed=0, status="completed", acc=[0.10, 0.50, 0.70, 0.75, 0.80],
         m=[0.0, 0.2, 0.5, 0.4, 0.4], v=[0.0, 0.5, 1.0, 1.0, 1.0], g=[1, 1, 1, 5], r=2),
    dict(norm="none", lr=0.1, seed=1, status="completed", acc=[0.10, 0.55, 0.75, 0.78, 0.82],
         m=[0.0, 0.4, 0.4, 0.8, 0.8], v=[0.0, 1.0, 1.0, 1.0, 2.0], g=[1, 2, 3, 4], r=3),
    dict(norm="none", lr=0.1, seed=2, status="completed", acc=[0.10, 0.45, 0.80, 0.83, 0.84],
         m=[0.0, 0.1, 0.3, 0.6, 0.6], v=[0.0, 0.0, 0.5, 0.5, 0.5], g=[2, 1, 7, 2], r=4),
    dict(norm="none", lr=1.0, seed=0, status="completed", acc=[0.10, 0.60, 0.60, 0.50, 0.40],
         m=[0.0, 1.0, 2.0, 3.0, 4.0], v=[0.0, 1.0, 2.0, 3.0, 4.0], g=[1, 1, 1, 1], r=2),
    # Diverges at step 30: that row is blank/inf everywhere and the run stops there.
    dict(norm="none", lr=1.0, seed=1, status="diverged", acc=[0.10, 0.30, 0.35, NAN],
         m=[0.0, 2.0, 4.0, NAN], v=[0.0, 2.0, 4.0, NAN], g=[1, 2, INF], r=2),
    dict(norm="batch", lr=0.01, seed=0, status="completed", acc=[0.10, 0.40, 0.60, 0.70, 0.80],
         m=[0.0, 0.01, 0.02, 0.02, 0.02], v=[0.0, 0.0, 0.0, 0.0, 0.0], g=[1, 1, 1, 1], r=1),
    dict(norm="batch", lr=0.1, seed=0, status="completed", acc=[0.10, 0.85, 0.90, 0.91, 0.92],
         m=[0.0, 0.02, 0.03, 0.03, 0.03], v=[0.0, 0.1, 0.1, 0.1, 0.1], g=[1, 1, 1, 1], r=1),
    dict(norm="batch", lr=0.1, seed=1, status="completed", acc=[0.10, 0.80, 0.93, 0.92, 0.90],
         m=[0.0, 0.04, 0.05, 0.05, 0.05], v=[0.0, 0.1, 0.2, 0.2, 0.2], g=[1, 1, 1, 1], r=1),
    dict(norm="batch", lr=1.0, seed=0, status="completed", acc=[0.10, 0.88, 0.91, 0.93, 0.94],
         m=[0.0, 0.05, 0.05, 0.05, 0.05], v=[0.0, 0.1, 0.1, 0.1, 0.1], g=[2, 2, 2, 2], r=1),
    dict(norm="batch", lr=1.0, seed=1, status="completed", acc=[0.10, 0.86, 0.95, 0.95, 0.96],
         m=[0.0, 0.05, 0.05, 0.05, 0.05], v=[0.0, 0.1, 0.1, 0.1, 0.1], g=[2, 2, 2, 2], r=1),
    # Killed after step 10: config.json and logs, no summary.json. Its numbers must never be averaged.
    dict(norm="batch", lr=1.0, seed=2, status="incomplete", acc=[0.10, 0.99],
         m=[0.0, 9.0], v=[0.0, 9.0], g=[99], r=1),
]


def _metrics(spec) -> list[list]:
    rows = []
    for step, acc in zip(STEPS, spec["acc"]):
        loss = 2 * (1 - acc)
        train_loss = NAN if acc != acc else loss - 0.1
        test_loss = INF if acc != acc else loss
        rows.append([step, train_loss, acc, test_loss, acc, NAN, NAN, spec["lr"], step * 0.01])
    return rows


def _layers(spec, sites) -> list[list]:
    rows = []
    m, v = spec["m"], spec["v"]
    for k, step in enumerate(STEPS[: len(m)]):
        for layer, l in LAYERS.items():
            for site in sites:
                f = SITES[site]
                s = l * f
                prev_m = NAN if k == 0 else s * abs(m[k] - m[k - 1])
                prev_v = NAN if k == 0 else s * abs(v[k] - v[k - 1])
                scaled = NAN if k == 0 else f * abs(m[k] - m[k - 1])
                dead = k if (layer, site) == ("hidden2", "act") else 0
                rows.append([step, layer, site, s * m[k], 1 + s * v[k], s * abs(m[k]), 1 + s * v[k],
                             prev_m, prev_v, s * abs(m[k] - m[0]), s * abs(v[k] - v[0]),
                             scaled, f * abs(m[k] - m[0]), dead])
    return rows


def _units(spec, sites) -> list[list]:
    rows = []
    m = spec["m"]
    for k, step in enumerate(STEPS[: len(m)]):
        for layer, l in LAYERS.items():
            for site in sites:
                f = SITES[site]
                for unit in range(3):
                    p50 = l * f * m[k] + 0.1 * unit
                    pct = [p50 - 1, p50, p50 + 1] if unit < 2 else [NAN, NAN, NAN]
                    rows.append([step, layer, site, unit, l * f * m[k], 1.0, *pct])
    return rows


def _grads(spec) -> list[list]:
    rows = []
    for step, g in zip(STEPS[1:], spec["g"]):
        g = float(g)
        for layer, norm in (("hidden1", g), ("hidden2", g / spec["r"]), ("output", g / 4)):
            rows.append([step, layer, norm, 1.0, NAN if g != g or g == INF else 0.01])
    return rows


def write_runs(root: Path, runs: list[dict] = RUNS, *, legacy: bool = False) -> Path:
    """Write one folder per entry of `runs` under `root/sweep`; return that folder.

    `legacy`: the layout of runs recorded before norm_eval and the scale-free drift (see above).
    """
    sweep = Path(root) / "sweep"
    sites = LEGACY_SITES if legacy else tuple(SITES)
    columns = LEGACY_LAYERS_COLUMNS if legacy else LAYERS_COLUMNS
    for spec in runs:
        cfg = RunConfig(norm=spec["norm"], lr=spec["lr"], seed=spec["seed"], depth=2, steps=40,
                        log_every=10, track_units=2, device="cpu").resolved()
        folder = sweep / cfg.name()
        folder.mkdir(parents=True)
        write_config(folder, cfg, timestamp="2024-01-01T00:00:00", indent=2)
        write_csv(folder / "metrics.csv", ["step", "train_loss", "train_acc", "test_loss", "test_acc",
                                           "test_loss_batchstats", "test_acc_batchstats", "lr", "elapsed_s"],
                  _metrics(spec))
        write_csv(folder / "layers.csv", columns,
                  [row[: len(columns)] for row in _layers(spec, sites)])
        write_units(folder, _units(spec, sites))
        write_csv(folder / "grads.csv", ["step", "layer", "grad_norm", "weight_norm", "update_ratio"],
                  _grads(spec))
        if spec["status"] == "incomplete":
            continue
        diverged = spec["status"] == "diverged"
        last = len(spec["acc"]) - 1
        acc = spec["acc"][last]
        (folder / "summary.json").write_text(json.dumps({
            "status": spec["status"], "steps_done": STEPS[last],
            "diverged_at_step": STEPS[last] if diverged else None,
            # A diverged run's final numbers are what its model gave: nothing finite.
            "final": {"test_acc": None if diverged else acc,
                      "test_loss": INF if diverged else 2 * (1 - acc),
                      "train_loss": NAN if diverged else 2 * (1 - acc) - 0.1,
                      "train_acc": None if diverged else acc},
            "wall_s": 1.0, "steps_per_s": 40.0}))
    return sweep
