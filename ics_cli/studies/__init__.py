"""Studies: a fixed protocol, the runs it needs, and claims each measured and given a verdict.

One module per study (ioffe2015.py, note.py) defines its protocol, its runs and its claims as data;
this module runs one end to end:

1. the study's runs, one folder each under `<out>/runs/` (run as one sweep; finished runs are reused);
2. `<out>/compare/`: compare.build/write and plots.draw_all over all of the study's runs;
3. every claim measured (claims.py says how a verdict is reached);
4. `<out>/figures/`: the study's own figures;
5. `<out>/verdicts.csv` and a generated `<out>/README.md`.

A failing claim is a finding, not an error: run_study reports it and returns normally.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import compare, plots
from ..errors import IcsError
from ..store import write_atomic
from . import ioffe2015, note, readme
from .claims import (FAIL, INCONCLUSIVE, PASS, Claim, Measurement, MissingData, Study)

__all__ = ["Claim", "Measurement", "Study", "StudyResult", "REGISTRY", "VERDICT_COLUMNS", "names",
           "select", "run_study", "run_all", "measure", "PASS", "FAIL", "INCONCLUSIVE"]

REGISTRY: dict[str, Study] = {s.name: s for s in (ioffe2015.STUDY, note.STUDY)}
VERDICT_COLUMNS = ["claim_id", "claim", "source", "metric", "measured", "ci_low", "ci_high",
                   "expected", "paper_value", "verdict"]
DEFAULT_ROOT = Path("results")


@dataclass
class StudyResult:
    name: str
    out: Path
    verdicts: pd.DataFrame            # VERDICT_COLUMNS, plus `seen` (the sentence per claim)
    seconds: float


def names() -> list[str]:
    return list(REGISTRY)


def select(name: str) -> list[str]:
    """The studies `name` stands for: itself, or every study for 'all'; a one-line IcsError otherwise."""
    if name == "all":
        return names()
    if name not in REGISTRY:
        raise IcsError(f"unknown study '{name}'; choose one of: {', '.join(names())}, all")
    return [name]


def measure(study: Study, ctx) -> pd.DataFrame:
    """Every claim of `study` measured on `ctx`: one row per claim (VERDICT_COLUMNS + seen)."""
    rows = []
    for claim in study.claims:
        try:
            m = claim.measure(ctx)
        except MissingData as e:
            m = Measurement(float("nan"), None, None, INCONCLUSIVE, f"Not measured: {e}.")
        rows.append({"claim_id": claim.id, "claim": claim.statement, "source": claim.source,
                     "metric": claim.metric, "measured": m.value,
                     "ci_low": m.ci_low, "ci_high": m.ci_high, "expected": claim.expected,
                     "paper_value": claim.paper_value, "verdict": m.verdict, "seen": m.seen})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS + ["seen"])


def run_study(name: str, out: Path | None = None, *, quick: bool = False, jobs: int | None = None,
              on_outcome=None) -> StudyResult:
    """Run study `name` into `out` (default results/<name>/), resuming finished runs; see the module doc."""
    if name not in REGISTRY:
        select(name)                      # raises the one-line error for an unknown name
        raise IcsError(f"run_study runs one study; for '{name}' use run_all (studies: {', '.join(names())})")
    study = REGISTRY[name]
    out = Path(out) if out is not None else DEFAULT_ROOT / name
    start = time.perf_counter()
    statuses = []

    def outcome(o):
        statuses.append(o.status)
        if on_outcome:
            on_outcome(o)
    ctx = study.run(out, quick=quick, jobs=jobs, on_outcome=outcome)

    tables = compare.build(ctx.all_runs())
    compare.write(tables, out / "compare")
    compare_figures = plots.draw_all(tables, out / "compare")
    verdicts = measure(study, ctx)
    figures = study.figures(ctx, out / "figures") if study.figures else []
    write_atomic(out / "verdicts.csv", compare.to_csv(verdicts[VERDICT_COLUMNS]))
    seconds = time.perf_counter() - start
    write_atomic(out / "README.md", readme.render(study, ctx, verdicts, figures, compare_figures, seconds,
                                                  reused=statuses.count("skipped")))
    return StudyResult(name, out, verdicts, seconds)


def run_all(root: Path | None = None, *, quick: bool = False, jobs: int | None = None,
            on_outcome=None) -> list[StudyResult]:
    """Every study, each into root/<name>/ (default results/<name>/)."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    return [run_study(n, root / n, quick=quick, jobs=jobs, on_outcome=on_outcome) for n in names()]
