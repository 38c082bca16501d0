"""A study's runs: groups of sweeps run into `<out>/runs/`, read back, and their compare tables.

A study's runs come in named groups, each a `sweep.Sweep`; all groups run as one sweep, so a study
resumes exactly like a sweep: finished runs are found by their config hash and skipped. Only the run
folders the protocol names are read back, so quick and full runs in the same folder never mix.

The compare tables of each group that a claim or figure read are saved under `<out>/tables/`, so a
study's figures can be redrawn from CSVs alone (`ics plot`), without its run folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..analyse import compare
from ..analyse.base import loss_drop
from ..store import files
from ..analyse import outputs
from ..store import runs as store
from ..sweep import run as sweep
from ..store.schema import FINISHED
from ..store.runs import Run
from .claims import MissingData


@dataclass
class Context:
    """What a study's claims and figures read: its runs by group and cached compare tables."""

    out: Path
    quick: bool
    groups: dict[str, list[Run]] = field(default_factory=dict)
    _tables: dict = field(default_factory=dict, repr=False)

    def all_runs(self) -> list[Run]:
        return [r for runs in self.groups.values() for r in runs]

    def runs(self, group: str, **where) -> list[Run]:
        """The finished runs of `group` whose resolved config has every value in `where`."""
        return [r for r in self.groups.get(group, []) if r.status in FINISHED
                and all(store.run_config(r).get(k) == v for k, v in where.items())]

    def by_seed(self, group: str, **where) -> dict[int, Run]:
        runs = self.runs(group, **where)
        if not runs:
            raise MissingData(f"no finished runs in {group} with {where}")
        return {store.run_config(r)["seed"]: r for r in runs}

    def tables(self, group: str, target: float | None = None) -> dict[str, pd.DataFrame]:
        """compare.build over the group's runs, or the tables saved by an earlier run (cached)."""
        key = (group, target)
        if key not in self._tables:
            runs = self.groups.get(group, [])
            saved = self.out / "tables" / table_folder(group, target)
            if runs:
                self._tables[key] = compare.build(runs, target=target)
            elif saved.is_dir():
                self._tables[key] = outputs.load(saved)
            else:
                raise MissingData(f"no runs in {group}")
        return self._tables[key]

    def save_tables(self) -> list[Path]:
        """Write every group's tables read so far to <out>/tables/<group>[-target<t>]/."""
        written = []
        for key, tables in self._tables.items():
            if key[0] != "run":
                written += files.write_tables(tables, self.out / "tables" / table_folder(*key),
                                              gzipped=outputs.PER_STEP_TABLES)
        return written

    def run_tables(self, run: Run) -> dict[str, pd.DataFrame]:
        """compare.build over one run: its per-run drift, gradient stability, ... (cached)."""
        key = ("run", str(run.path))
        if key not in self._tables:
            self._tables[key] = compare.build([run])
        return self._tables[key]


def shows_pilot(ctx: Context) -> bool:
    """Whether `ctx` reads the pilot's tables (<study>/pilot/): a figure drawn from it says so."""
    return Path(ctx.out).name == "pilot"


def listing(values) -> str:
    """Numbers as a protocol lists them: `0.1, 0.316, 1`."""
    return ", ".join(f"{v:g}" for v in values)


def eval_every(config: dict) -> int:
    """Steps between a run's metrics rows: eval_every (log_every for runs recorded before it existed)."""
    return int(config.get("eval_every") or config["log_every"])


def steps_to(run: Run, target: float) -> tuple[float, float, float]:
    """(point, lower, upper) of the first step at which a run's test_acc reaches `target`; for a
    regression (test_acc blank at every step), its loss drop 1 − test_loss / test_loss at step 0.

    Reached at evaluated step s: the truth lies in (s − eval_every, s], so [s − eval_every + 1, s].
    Never reached: at least steps_done + 1, no upper bound; the point is steps_done (a lower bound).
    """
    m = run.table("metrics").sort_values("step")
    every = eval_every(store.run_config(run))
    acc = pd.to_numeric(m["test_acc"], errors="coerce")
    value = acc if acc.notna().any() else loss_drop(m)
    reached = m["step"][value >= target]
    if len(reached):
        s = float(reached.iloc[0])
        return s, max(s - every + 1, 1.0), s
    done = float((run.summary or {}).get("steps_done") or 0)
    return done, done + 1, float("inf")


def table_folder(group: str, target: float | None) -> str:
    return group if target is None else f"{group}-target{target:g}"


@dataclass
class Plan(sweep.Sweep):
    """Several sweeps run as one: the union of their configurations, in order, without duplicates.

    One sweep.run over the union uses one pool of worker processes for the whole study (workers
    start once) and resumes like any sweep; `groups` says which runs each claim reads.
    """

    groups: dict[str, sweep.Sweep] = field(default_factory=dict)

    def configs(self) -> list:
        out, seen = [], set()
        for grid in self.groups.values():
            for cfg in grid.configs():
                if cfg.hash() not in seen:
                    seen.add(cfg.hash())
                    out.append(cfg)
        return out

    def to_dict(self) -> dict:
        return {"groups": {name: grid.to_dict() for name, grid in self.groups.items()}}


def labels(groups: dict[str, sweep.Sweep]) -> dict[str, int]:
    """Every run group a claim can name (a Plan's inner groups, or a plain sweep's own name) -> its seeds."""
    out = {}
    for name, grid in groups.items():
        inner = grid.groups if isinstance(grid, Plan) else {name: grid}
        out.update({label: len(g.seeds) for label, g in inner.items()})
    return out


def prune(groups: dict[str, sweep.Sweep], skip: set[str]) -> dict[str, sweep.Sweep]:
    """`groups` without the run groups named in `skip` (see `labels`); a Plan left empty is dropped."""
    out = {}
    for name, grid in groups.items():
        if isinstance(grid, Plan):
            kept = {label: g for label, g in grid.groups.items() if label not in skip}
            if kept:
                out[name] = Plan(groups=kept)
        elif name not in skip:
            out[name] = grid
    return out


def run_groups(out: Path, groups: dict[str, sweep.Sweep], *, quick: bool, jobs: int | None = None,
               on_outcome=None) -> Context:
    """Run every group's configurations into out/runs/ (skipping finished runs); read them back.

    Groups are listed longest runs first, so the short ones fill the pool's tail.
    """
    import torch

    out = Path(out)
    folder = out / "runs"
    # With one run left, sweep.run trains in this process: give it one thread, like every sweep
    # worker, since tiny tensors on several threads of busy cores run many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sweep.run(Plan(groups=groups), folder, jobs=jobs, on_outcome=on_outcome)
    finally:
        torch.set_num_threads(threads)
    ctx = Context(out=out, quick=quick)
    for name, grid in groups.items():
        ctx.groups[name] = [store.read_run(folder / cfg.name()) for cfg in grid.configs()
                            if store.is_run_dir(folder / cfg.name())]
    return ctx
