"""Grids of runs: expansion, resumption by config hash, parallel execution in processes.

A sweep folder holds `sweep.json` (the grid and the resolved common config) and one run folder per
configuration, written by train.train. Rerunning a sweep skips runs whose summary.json says
completed or diverged, resumes interrupted ones from their checkpoint, restarts missing ones, and
never duplicates a run: a run's folder name ends in its config hash.
"""

from __future__ import annotations

import itertools
import os
import tomllib
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from . import store
from .config import RunConfig, check_writable, validate
from .errors import ConfigError

AXES = {"norms": ("norm", str), "lrs": ("lr", float), "seeds": ("seed", int),
        "batch_sizes": ("batch_size", int)}


def default_jobs() -> int:
    """One process per CPU core, each with one thread: small nets gain little from more threads."""
    return max(1, os.cpu_count() or 1)


def parse_list(option: str, text: str, cast: type) -> list:
    """'0.1,1,10' -> [0.1, 1.0, 10.0], with a one-line error naming the option."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{option} is empty; give a comma-separated list, e.g. {option} 0.1,1")
    try:
        return [cast(t) for t in items]
    except ValueError:
        kind = {float: "numbers", int: "integers", str: "names"}[cast]
        raise ConfigError(f"{option} '{text}' must be comma-separated {kind}") from None


@dataclass
class Sweep:
    """A grid: each axis a list; `common` holds every other RunConfig value."""

    common: RunConfig = field(default_factory=RunConfig)
    norms: list[str] = field(default_factory=lambda: ["none", "batch"])
    lrs: list[float] = field(default_factory=lambda: [RunConfig.lr])
    seeds: list[int] = field(default_factory=lambda: [0])
    batch_sizes: list[int] = field(default_factory=lambda: [RunConfig.batch_size])

    def configs(self) -> list[RunConfig]:
        """Every configuration of the grid, validated, in a fixed order, without duplicates."""
        for axis in AXES:
            if not getattr(self, axis):
                raise ConfigError(f"--{axis.replace('_', '-')} is empty: the grid has no runs")
        out, seen = [], set()
        for norm, lr, bs, seed in itertools.product(self.norms, self.lrs, self.batch_sizes, self.seeds):
            cfg = validate(replace(self.common, norm=norm, lr=lr, batch_size=bs, seed=seed))
            if cfg.hash() not in seen:
                seen.add(cfg.hash())
                out.append(cfg)
        return out

    def to_dict(self) -> dict:
        return {"grid": {axis: getattr(self, axis) for axis in AXES}, "common": self.common.to_dict()}


def load_toml(path: Path) -> dict:
    """A grid file: `[grid]` with norms/lrs/seeds/batch_sizes lists, `[common]` with RunConfig values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config '{path}' does not exist")
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config '{path}' is not valid TOML: {e}") from None
    unknown = set(doc) - {"grid", "common"}
    bad_axes = set(doc.get("grid", {})) - set(AXES)
    if unknown or bad_axes:
        raise ConfigError(f"--config '{path}': unknown keys {sorted(unknown | bad_axes)}; "
                          f"allowed: [grid] {', '.join(AXES)} and [common] RunConfig options")
    return doc


def make_sweep(common: dict, grid: dict, toml: dict | None = None) -> Sweep:
    """Build a Sweep from option dicts; TOML values first, then explicitly given options on top."""
    toml = toml or {}
    base = {**toml.get("common", {}), **common}
    grid = {**toml.get("grid", {}), **{k: v for k, v in grid.items() if v is not None}}
    axes = {}
    for axis, value in grid.items():
        _, cast = AXES[axis]
        axes[axis] = parse_list(f"--{axis.replace('_', '-')}", ",".join(map(str, value))
                                if isinstance(value, list) else value, cast)
    return Sweep(common=RunConfig.from_dict(base), **axes)


@dataclass
class Outcome:
    name: str
    status: str          # completed, diverged, interrupted, skipped, failed
    summary: dict | None = None
    error: str | None = None


def run_one(cfg_dict: dict, threads: int | None = None) -> Outcome:
    """One run in this process; an unexpected error goes to the run folder's error.txt."""
    import torch

    from .train import train

    if threads:
        torch.set_num_threads(threads)
    cfg = RunConfig.from_dict(cfg_dict)
    try:
        result = train(cfg)
    except KeyboardInterrupt:
        return Outcome(cfg.name(), "interrupted")
    except Exception as e:  # noqa: BLE001 - a failed run is reported, the sweep goes on
        run_dir = Path(cfg.out) / cfg.name()
        run_dir.mkdir(parents=True, exist_ok=True)
        store.write_atomic(run_dir / "error.txt", traceback.format_exc())
        return Outcome(cfg.name(), "failed", error=f"{type(e).__name__}: {e}")
    status = "skipped" if result.skipped else result.summary["status"]
    return Outcome(cfg.name(), status, result.summary)


def run(sweep: Sweep, out: Path, *, jobs: int | None = None,
        on_start: Callable[[int, int], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run every configuration of the grid into `out`, skipping finished ones; return the outcomes.

    on_start(total, already_done) is called once; on_outcome(outcome) after each run ends.
    """
    out = Path(out)
    configs = sweep.configs()
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    store.write_json(out / "sweep.json", {**sweep.to_dict(), "runs": [c.name() for c in configs]})
    configs = [replace(c, out=str(out)) for c in configs]
    outcomes = []
    todo = []
    for cfg in configs:
        summary = store.finished(out / cfg.name())
        if summary:
            outcomes.append(Outcome(cfg.name(), "skipped", summary))
        else:
            todo.append(cfg)
    if on_start:
        on_start(len(configs), len(outcomes))
    for o in outcomes:
        if on_outcome:
            on_outcome(o)
    jobs = min(jobs or default_jobs(), max(1, len(todo)))
    if jobs == 1:
        for cfg in todo:
            outcomes.append(_report(run_one(cfg.to_dict()), on_outcome))
        return outcomes
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(run_one, cfg.to_dict(), threads) for cfg in todo}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    outcomes.append(_report(fut.result(), on_outcome))
        except KeyboardInterrupt:
            for fut in pending:
                fut.cancel()
            raise
    return outcomes


def _report(outcome: Outcome, on_outcome) -> Outcome:
    if on_outcome:
        on_outcome(outcome)
    return outcome


