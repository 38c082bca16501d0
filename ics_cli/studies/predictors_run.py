"""The predictors study end to end (`ics reproduce predictors`), on the protocol of studies/predictors.py:

1. the pilot: the protocol's models and norms at PILOT_LRS on PILOT_SEEDS into `<out>/pilot/runs/<group>/`,
   analysed by `ics meta`'s build into `<out>/pilot/` (its tables and forest plots);
2. the seeds sized from the pilot (`size`: the median τ interval width of the candidate measures, and the
   budget the pilot's wall time says the grid affords), and the lr grid's ends checked (`grid_check`);
3. the deciding grid on seeds 20 … 20+n−1 into `<out>/runs/<group>/`, analysed into `<out>/` (predictors.csv,
   verdicts.csv, predictor_runs.csv, forest_<outcome>.png);
4. the replication: the same grid on seeds 30 … 30+n−1 into `<out>/replication/runs/`, analysed into
   `<out>/replication/`; `<out>/verdicts.csv` gets `replicated` (the replication's verdict) and `held`;
5. `<out>/study.json` (seeds, phase wall times, from_empty_s) and a generated `<out>/README.md`.

Finished runs are reused (a rerun resumes). `quick` runs the quick grid into runs/quick/predictors/ with
no pilot and no replication; `seeds` runs the deciding grid on those seeds only (a replication by hand).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..analyse import predictors as rules, ranks
from ..figures import forest
from ..store import files
from ..store.files import read_json, write_atomic, write_json
from ..store.runs import runs_under
from ..sweep import run as sweep_mod
from . import predictors as protocol
from .claims import PILOT_SEEDS

NAME = protocol.NAME
QUICK_OUT = Path("runs") / "quick" / NAME
REPLICATE_ROOT = Path("runs") / "replicate"
DEFAULT_OUT = Path("results") / NAME
DECIDING_START, REPLICATION_START = protocol.DECIDING_SEEDS[0], protocol.REPLICATION_SEEDS[0]
BOOTSTRAP, PERMUTATIONS = ranks.BOOTSTRAP, ranks.PERMUTATIONS     # as `ics meta`


@dataclass
class PredictorsResult:
    name: str
    out: Path
    verdicts: pd.DataFrame
    seconds: float
    result: rules.Result


def default_out(*, quick: bool = False, seeds: list[int] | None = None) -> Path:
    if seeds:
        return REPLICATE_ROOT / f"{NAME}-s{'-'.join(str(s) for s in seeds)}"
    return QUICK_OUT if quick else DEFAULT_OUT


def run_grid(groups: dict, root: Path, jobs: int | None, on_outcome=None) -> float:
    """Every group's sweep into root/<group>/ (finished runs reused); the wall time in seconds."""
    start = time.perf_counter()
    for group, sweep in groups.items():
        sweep_mod.run(sweep, root / group, jobs=jobs, on_outcome=on_outcome)
    return time.perf_counter() - start


def analyse(root: Path, dest: Path) -> rules.Result:
    """`ics meta root --out dest`: the analysis of every run under root, its tables and forest plots."""
    result = rules.build(runs_under(root), replicates=BOOTSTRAP, permutations=PERMUTATIONS)
    forest.save(result, dest)
    return result


def redraw(folder: Path, fmt: str = "png") -> list[Path]:
    """The forest plots of a predictors folder (and of its pilot/ and replication/), from their verdicts.csv,
    and its README (`ics plot results/predictors`)."""
    drawn = []
    for part in (folder, folder / "pilot", folder / "replication"):
        if (part / "verdicts.csv").is_file():
            drawn += forest.draw(files.read_csv(part / "verdicts.csv"), part, fmt)
    if not read_json(folder / "study.json").get("quick") and (folder / "predictor_runs.csv").is_file():
        write_atomic(folder / "README.md", readme(folder))
    return drawn


def widths(verdicts: pd.DataFrame, outcome: str = "final_acc") -> pd.Series:
    """Width of each candidate measure's τ-across-norms interval for `outcome` (role `measure` only)."""
    rows = verdicts[(verdicts["outcome"] == outcome) & (verdicts["role"] == rules.MEASURE)]
    w = pd.to_numeric(rows["tau_norm_ci_high"]) - pd.to_numeric(rows["tau_norm_ci_low"])
    return pd.Series(w.to_numpy(float), index=rows["measure"].to_numpy()).dropna()


def size(pilot_verdicts: pd.DataFrame, pilot_seconds: float, n_pilot: int = len(PILOT_SEEDS),
         analysis_seconds: float = 0.0) -> dict:
    """The deciding seeds, by the protocol's rule (studies/predictors.py, "Pilot"): wanted from the median
    interval width, affordable from the budget (the pilot's training and analysis time, each scaled to a seed
    of the deciding grid: the deciding and replication grids and their analyses must fit what the pilot
    left); chosen = clip(min(wanted, affordable), 3, MAX_SEEDS)."""
    w = widths(pilot_verdicts)
    median = float(w.median()) if len(w) else math.nan
    target = 2 * rules.TAU_MIN
    wanted = (math.ceil(n_pilot * (median / target) ** 2) if math.isfinite(median) else protocol.MAX_SEEDS)
    scale = len(protocol.LRS) / len(protocol.PILOT_LRS) / n_pilot
    per_seed = (pilot_seconds + analysis_seconds) * scale
    left = protocol.BUDGET_S - pilot_seconds - analysis_seconds
    affordable = int(left // (2 * per_seed)) if per_seed > 0 else protocol.MAX_SEEDS
    floor = len(protocol.DECIDING_SEEDS)
    chosen = int(min(max(min(wanted, affordable), floor), protocol.MAX_SEEDS))
    if wanted <= affordable:
        why = f"the pilot's median width {median:.2f} asks for {wanted} seeds, within the budget ({affordable})"
    else:
        why = (f"the pilot's median width {median:.2f} asks for {wanted} seeds; the budget affords {affordable}: "
               f"verdicts whose intervals stay wider than {target:g} come out inconclusive (underpowered)")
    if chosen != min(wanted, affordable):
        why += f"; clipped to {chosen} (at least {floor}, at most {protocol.MAX_SEEDS})"
    return dict(median_width=median, target_width=target, measures=len(w), wanted=wanted,
                seconds_per_seed=per_seed, affordable=affordable, seeds=chosen, why=why)


def grid_check(table: pd.DataFrame) -> pd.DataFrame:
    """Per model (its key columns but norm and lr: the sigmoid and the deep ReLU MLP are both `mlp`) and
    norm of a run table: the mean final accuracy at each lr, whether the grid's lowest lr trains worse
    than the best one (`low_end_ok`) and whether its highest diverges or trains worse (`high_end_ok`)."""
    cols = list(table.columns)
    key = [c for c in cols[:cols.index("seed")] if c not in ("norm", "lr")]
    shown = [k for k in key if k == "model" or table[k].nunique() > 1]
    rows = []
    for values, g in table.groupby(key + ["norm"], sort=False, dropna=False):
        label = " ".join(f"{v}" if k == "model" else f"{k}={v}" for k, v in zip(key, values[:-1]) if k in shown)
        acc = g.groupby("lr")["final_acc"].mean().sort_index()
        div = g.groupby("lr")["diverged"].mean().sort_index()
        best = float(acc.max())
        rows.append(dict(model=label, norm=values[-1], **{f"acc@{lr:g}": round(float(a), 4) for lr, a in acc.items()},
                         best_lr=float(acc.idxmax()), low_end_ok=bool(acc.iloc[0] < best),
                         high_end_ok=bool(div.iloc[-1] > 0 or acc.iloc[-1] < best)))
    return pd.DataFrame(rows)


def held(deciding: pd.DataFrame, replication: pd.DataFrame) -> pd.DataFrame:
    """The deciding verdicts with the replication's verdict beside each (`replicated`) and `held`."""
    other = replication.set_index(["measure", "outcome"])["verdict"]
    out = deciding.copy()
    out["replicated"] = [other.get((m, o), "") for m, o in zip(out["measure"], out["outcome"])]
    out["held"] = out["verdict"] == out["replicated"]
    return out


def fingerprint() -> str:
    """A short hash of the protocol's pilot and deciding plans (every field of every group's config, its
    norms, lrs and seeds): a study.json written under another protocol has another."""
    text = repr(sorted(protocol.plan(pilot=True).items())) + repr(sorted(protocol.plan().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def same_protocol(before: dict) -> bool:
    """Whether an earlier study.json was written under this protocol: its fingerprint where it has one;
    a record from before fingerprints, by its deciding seeds (an earlier protocol decided on others)."""
    if not before:
        return True
    if "protocol" in before:
        return before["protocol"] == fingerprint()
    seeds = before.get("seeds") or []
    return not seeds or seeds[0] == DECIDING_START


def run(out: Path | None = None, *, quick: bool = False, seeds: list[int] | None = None, jobs: int | None = None,
        on_outcome=None) -> PredictorsResult:
    """The study into `out` (default: default_out); see the module doc. Returns the deciding result.

    Wall time (study.json `phases`): each phase's training time, summed over the invocations that trained
    some of its runs (a run stopped and resumed counts the time of both parts, not the time between),
    `pilot_analysis_s`, the first analysis of the pilot (which sized the seeds), and `analysis_s`, the last
    invocation's time in the other analyses; `from_empty_s` is their sum."""
    out = Path(out) if out is not None else default_out(quick=quick, seeds=seeds)
    start = time.perf_counter()
    before = read_json(out / "study.json") if (out / "study.json").is_file() else {}
    if not quick and seeds is None and not same_protocol(before):
        before = {}          # another protocol's record: its phase times and sizing say nothing about this one
    phases = {k: v for k, v in before.get("phases", {}).items() if k != "analysis_s"}
    statuses: list[str] = []
    analysing = [0.0]

    def outcome(o):
        statuses.append(o.status)
        if on_outcome:
            on_outcome(o)

    def grid(name: str, groups: dict, root: Path) -> None:
        n = len(statuses)
        seconds = run_grid(groups, root, jobs, outcome)
        if any(s != "skipped" for s in statuses[n:]):
            phases[name] = phases.get(name, 0.0) + seconds

    def analysed(root: Path, dest: Path) -> rules.Result:
        t = time.perf_counter()
        result = analyse(root, dest)
        analysing[0] += time.perf_counter() - t
        return result
    sizing, check, pilot_analysis = None, None, 0.0
    full = not quick and seeds is None
    if full:
        grid("pilot_s", protocol.plan(pilot=True), out / "pilot" / "runs")
        pilot = analysed(out / "pilot" / "runs", out / "pilot")
        pilot_analysis = analysing[0]
        phases.setdefault("pilot_analysis_s", pilot_analysis)
        # Sized once: a rerun (resume) keeps the seeds the first run chose, whatever this machine's speed.
        sizing = before.get("sizing") or size(pilot.verdicts, phases.get("pilot_s", 0.0),
                                              analysis_seconds=phases["pilot_analysis_s"])
        write_json(out / "study.json", {**before, "study": NAME, "phases": phases, "sizing": sizing})
        check = grid_check(pilot.runs)
        write_atomic(out / "pilot" / "grid_check.csv", files.to_csv(check))
        chosen = [DECIDING_START + i for i in range(sizing["seeds"])]
    else:
        chosen = list(seeds) if seeds else None
    grid("deciding_s", protocol.plan(quick=quick, seeds=chosen), out / "runs")
    write_json(out / "study.json", {**before, "study": NAME, "phases": phases, "sizing": sizing})
    result = analysed(out / "runs", out)
    verdicts = result.verdicts
    if full:
        again = [REPLICATION_START + i for i in range(len(chosen))]
        grid("replication_s", protocol.plan(seeds=again), out / "replication" / "runs")
        write_json(out / "study.json", {**before, "study": NAME, "phases": phases, "sizing": sizing})
        replication = analysed(out / "replication" / "runs", out / "replication")
        verdicts = held(verdicts, replication.verdicts)
        write_atomic(out / "verdicts.csv", files.to_csv(verdicts))
    phases["analysis_s"] = analysing[0] - pilot_analysis     # this invocation's analyses but the pilot's
    meta = {"study": NAME, "quick": quick, "protocol": fingerprint(), "seeds": chosen,
            "from_empty_s": sum(phases.values()),
            "phases": phases, "cpus": os.cpu_count(), "sizing": sizing}
    write_json(out / "study.json", meta)
    if full:
        write_atomic(out / "README.md", readme(out))
    return PredictorsResult(NAME, out, verdicts, time.perf_counter() - start, result)


README_STATS = "tau_by_subset.csv"     # what the README reads of predictors.csv (which make reproduce writes)


def readme_stats(out: Path) -> None:
    """Refresh README_STATS from `out/predictors.csv` where it exists: τ across norms, per cell, and n_runs at
    the deciding window, every subset (a few hundred KB; the full table is tens of MB, left to make reproduce)."""
    full = out / "predictors.csv"
    if full.is_file():
        stats = files.read_csv(full)
        keep = stats[(pd.to_numeric(stats["window"]) == rules.WINDOW)
                     & stats["statistic"].isin(["tau_norm", "tau_norm_cell", "n_runs"])]
        write_atomic(out / README_STATS, files.to_csv(keep))


def readme(out: Path) -> str:
    """README.md of a full study folder, from its saved tables (predictors_readme.render)."""
    from .predictors_readme import render

    readme_stats(out)
    check = out / "pilot" / "grid_check.csv"
    runs = files.read_csv(out / "predictor_runs.csv")
    stats = out / README_STATS
    earlier = out / "protocol2" / "verdicts.csv"
    return render(files.read_csv(out / "verdicts.csv"), read_json(out / "study.json"),
                  files.read_csv(check) if check.is_file() else None, len(runs),
                  files.read_csv(stats) if stats.is_file() else None,
                  files.read_csv(earlier) if earlier.is_file() else None)


def summary(verdicts: pd.DataFrame, outcome: str = "final_acc") -> dict[str, list[str]]:
    """The candidate measures (role `measure`) grouped by their verdict for `outcome`."""
    rows = verdicts[(verdicts["outcome"] == outcome) & (verdicts["role"] == rules.MEASURE)]
    return {v: list(rows.loc[rows["verdict"] == v, "measure"]) for v in rules.VERDICTS
            if (rows["verdict"] == v).any()}
