"""The note's N7: how much larger a learning rate batch norm tolerates, bisected per seed.

A quarter-decade lr grid brackets each seed's largest stable lr to ×1.78; then rounds of runs bisect
each bracket (in log lr) until it is at most ×1.16 wide (two rounds: 10^(1/16) ≈ 1.155). Each round is
one sweep of the midpoints, one run per seed and norm; a midpoint's run decides which half the
largest stable lr lies in. The rounds are a pure function of the finished runs, so a rerun finds
them by their config hash and resumes where it stopped.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..config import RunConfig
from ..store.runs import run_config
from ..sweep.run import Sweep
from .claims import Measurement, MissingData, bracketed, directional, exp_interval, fmt_ci, measurement
from .context import Context, listing, run_groups

GRID_GROUP, BISECT_GROUP = "lr_sweep", "lr_bisect"
NORMS = ("none", "batch")
LR_GRID = [float(f"{10 ** (k / 4):.3g}") for k in range(-4, 9)]        # 0.1 ... 100, quarter-decades
TOLERANCE = 0.9            # a seed's lr is stable when its accuracy is ≥ 0.9 x its best over the grid
STABLE_RATIO = 5.0         # "much larger" = at least 5× (Ioffe & Szegedy's smallest factor)
RESOLUTION = 1.16          # bisect each bracket until it is at most ×1.16 wide (×1.155 after two rounds)
MAX_ROUNDS = 4             # a bracket the grid's ×1.78 needs two; a failed run is not retried forever


def _final_acc(run) -> float:
    """Final test accuracy (NaN for a diverged run: never stable)."""
    if run.status == "diverged":
        return math.nan
    value = ((run.summary or {}).get("final") or {}).get("test_acc")
    return math.nan if value is None else float(value)


def largest_stable(runs: dict[float, object]) -> tuple[float, float]:
    """(largest stable grid lr, next grid lr above it) of one seed's grid runs by lr: stable = not
    diverged and final test accuracy ≥ TOLERANCE × the seed's best over the grid. (NaN, NaN) if no run
    finished without diverging."""
    best = _best(runs)
    if not math.isfinite(best):
        return math.nan, math.nan
    grid = sorted(runs)
    top = max(lr for lr in grid if _stable(runs[lr], best))
    above = [lr for lr in grid if lr > top]
    return top, (above[0] if above else math.inf)


def _best(runs: dict[float, object]) -> float:
    finite = [a for a in (_final_acc(r) for r in runs.values()) if math.isfinite(a)]
    return max(finite) if finite else math.nan


def _stable(run, best: float) -> bool:
    acc = _final_acc(run)
    return math.isfinite(acc) and acc >= TOLERANCE * best


def midpoint(lo: float, hi: float) -> float:
    """The geometric midpoint of a bracket, to three significant digits (as the grid's values)."""
    return float(f"{math.sqrt(lo * hi):.3g}")


def bisect(grid: dict[float, object], extra: dict[float, object]) -> tuple[float, float, float | None]:
    """(lo, hi, next lr to run or None): the grid's bracket of one seed and norm, narrowed by the
    bisection runs in `extra` (lr -> run) until at most RESOLUTION wide. Stability is judged against
    the seed's best over the grid, so a bisection run never moves the bar."""
    lo, hi = largest_stable(grid)
    best = _best(grid)
    while math.isfinite(lo) and math.isfinite(hi) and hi / lo > RESOLUTION:
        mid = midpoint(lo, hi)
        if not lo < mid < hi:
            break
        if mid not in extra:
            return lo, hi, mid
        lo, hi = (mid, hi) if _stable(extra[mid], best) else (lo, mid)
    return lo, hi, None


def _by_seed_lr(runs, norm: str) -> dict[int, dict[float, object]]:
    out: dict[int, dict[float, object]] = {}
    for r in runs:
        cfg = run_config(r)
        if cfg.get("norm") == norm and r.status in ("completed", "diverged"):
            out.setdefault(int(cfg["seed"]), {})[float(cfg["lr"])] = r
    return out


def brackets(grid_runs, bisect_runs, norm: str) -> dict[int, tuple[float, float, float | None]]:
    """Per seed: bisect() over that seed's grid and bisection runs of `norm`."""
    grid, extra = _by_seed_lr(grid_runs, norm), _by_seed_lr(bisect_runs, norm)
    return {s: bisect(runs, extra.get(s, {})) for s, runs in grid.items()}


def run_bisection(out: Path, ctx: Context, common: RunConfig, plan: dict[str, Sweep], *, rounds: int,
                  jobs: int | None = None, on_outcome=None) -> Context:
    """Rounds of midpoint runs after the grid in ctx's GRID_GROUP; their runs become BISECT_GROUP.

    Each round runs the study's `plan` with every bisection group so far (finished runs are skipped),
    so the folder's sweep.json always lists every run of the study."""
    bisection: dict[str, Sweep] = {}
    done: list = []
    for _ in range(rounds):
        todo = {(norm, s): b[2] for norm in NORMS
                for s, b in brackets(ctx.groups.get(GRID_GROUP, []), done, norm).items() if b[2] is not None}
        if not todo:
            break
        fresh = {f"bisect-{norm}-s{s}-lr{lr:g}": Sweep(common=common, norms=[norm], lrs=[lr], seeds=[s],
                                                       batch_sizes=[common.batch_size])
                 for (norm, s), lr in todo.items()}
        bisection.update(fresh)
        names = {cfg.name() for grid in fresh.values() for cfg in grid.configs()}

        def report(o, names=names):     # the runs swept again only for sweep.json were reported already
            if on_outcome and (o.status != "skipped" or o.name in names):
                on_outcome(o)
        found = run_groups(out, {**bisection, **plan}, quick=ctx.quick, jobs=jobs, on_outcome=report)
        done = [r for name in bisection for r in found.groups.get(name, [])]
    ctx.groups[BISECT_GROUP] = done
    return ctx


def measure_n7(ctx: Context) -> Measurement:
    grid, extra = ctx.runs(GRID_GROUP), ctx.runs(BISECT_GROUP)
    if not grid:
        raise MissingData(f"no finished {GRID_GROUP} runs")
    bn, no = brackets(grid, extra, "batch"), brackets(grid, extra, "none")
    seeds = sorted(s for s in set(bn) & set(no) if math.isfinite(bn[s][0]) and math.isfinite(no[s][0]))
    if not seeds:
        raise MissingData("no seed with a stable lr for both networks")
    log = math.log
    point = {s: log(bn[s][0]) - log(no[s][0]) for s in seeds}
    lower = {s: log(bn[s][0]) - log(no[s][1]) for s in seeds}
    upper = {s: log(bn[s][1]) - log(no[s][0]) for s in seeds}
    iv = exp_interval(bracketed(point, lower, upper))
    per_seed = ", ".join(f"seed {s}: [{bn[s][0]:g}, {bn[s][1]:g}] vs [{no[s][0]:g}, {no[s][1]:g}]" for s in seeds)
    open_ = sum(b[2] is not None for d in (bn, no) for b in d.values())
    seen = (f"Largest stable lr with batch norm vs without, bracketed per seed ({per_seed}; grid "
            f"{listing(sorted({float(run_config(r)['lr']) for r in grid}))}, then {len(extra)} bisection runs"
            f"{f'; {open_} brackets still wider than ×{RESOLUTION:g}' if open_ else ''}): a ratio of "
            f"{fmt_ci(*iv[:3])} (geometric mean; the interval carries each bracket's width).")
    return measurement(iv, directional(iv.lo, iv.hi, ">=", STABLE_RATIO), seen)
