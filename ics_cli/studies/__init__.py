"""Studies: a fixed protocol, the runs it needs, and claims each measured and given a verdict.

One module per study (ioffe2015.py, note.py) defines its protocol, its runs and its claims as data;
this module runs one end to end:

1. the study's runs, one folder each under `<out>/runs/` (run as one sweep; finished runs are reused);
2. `<out>/compare/`: compare.build and figures/draw.save (tables and figures, one staged output set)
   over all of the study's runs;
3. every claim measured (claims.py says how a verdict is reached);
4. `<out>/figures/`: the study's own figures, drawn from the group tables saved in `<out>/tables/`;
5. `<out>/verdicts.csv`, `<out>/study.json` (name, mode, seeds) and a generated `<out>/README.md`.

Where a study goes: the full protocol on its own seeds into results/NAME/ (what `make reproduce`
commits); `--quick` into runs/quick/NAME/; other seeds (a replication) into
runs/replicate/NAME-s10-11-12/. `held` compares a replication's verdicts with the committed ones.

A failing claim is a finding, not an error: run_study reports it and returns normally.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..analyse import compare
from ..store import files
from ..figures import draw
from ..errors import IcsError
from ..store.files import read_json, write_atomic, write_json
from . import ba2016, bjorck2018, ioffe2015, ioffe2017, note, readme, santurkar2018, wu2018, wu2021
from .claims import (FAIL, INCONCLUSIVE, PASS, Claim, Measurement, MissingData, Study)
from .context import Context

__all__ = ["Claim", "Measurement", "Study", "StudyResult", "REGISTRY", "VERDICT_COLUMNS", "names",
           "select", "default_out", "run_study", "run_all", "measure", "held", "redraw",
           "PASS", "FAIL", "INCONCLUSIVE"]

REGISTRY: dict[str, Study] = {s.name: s for s in (ioffe2015.STUDY, note.STUDY, santurkar2018.STUDY,
                                                     bjorck2018.STUDY, wu2018.STUDY, ba2016.STUDY,
                                                     ioffe2017.STUDY, wu2021.STUDY)}
VERDICT_COLUMNS = ["claim_id", "claim", "source", "metric", "measured", "ci_low", "ci_high",
                   "n_seeds", "expected", "paper_value", "verdict"]
DEFAULT_ROOT = Path("results")
QUICK_ROOT = Path("runs") / "quick"
REPLICATE_ROOT = Path("runs") / "replicate"


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


def default_out(name: str, *, quick: bool = False, seeds: list[int] | None = None) -> Path:
    """Where a study goes when no --out is given (see the module doc): results/ only for the full
    protocol on its own seeds."""
    if seeds:
        return REPLICATE_ROOT / f"{name}-s{'-'.join(str(s) for s in seeds)}"
    return QUICK_ROOT / name if quick else DEFAULT_ROOT / name


def measure(study: Study, ctx) -> pd.DataFrame:
    """Every claim of `study` measured on `ctx`: one row per claim (VERDICT_COLUMNS + seen)."""
    rows = []
    for claim in study.claims:
        try:
            m = claim.measure(ctx)
        except MissingData as e:
            m = Measurement(float("nan"), None, None, INCONCLUSIVE, f"Not measured: {e}.")
        rows.append({"claim_id": claim.id, "claim": claim.statement, "source": claim.source,
                     "metric": claim.metric, "measured": m.value, "ci_low": m.ci_low,
                     "ci_high": m.ci_high, "n_seeds": m.n_seeds, "expected": claim.expected,
                     "paper_value": claim.paper_value, "verdict": m.verdict, "seen": m.seen})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS + ["seen"])


def run_study(name: str, out: Path | None = None, *, quick: bool = False, seeds: list[int] | None = None,
              jobs: int | None = None, on_outcome=None) -> StudyResult:
    """Run study `name` into `out` (default: default_out), resuming finished runs; see the module doc.

    `seeds` replaces the protocol's seeds (a replication); `quick` scales the protocol down.
    """
    if name not in REGISTRY:
        select(name)                      # raises the one-line error for an unknown name
        raise IcsError(f"run_study runs one study; for '{name}' use run_all (studies: {', '.join(names())})")
    if seeds is not None and (not seeds or any(int(s) < 0 for s in seeds)):
        raise IcsError(f"--seeds must be a comma list of integers >= 0, got {seeds}")
    study = REGISTRY[name]
    out = Path(out) if out is not None else default_out(name, quick=quick, seeds=seeds)
    start = time.perf_counter()
    statuses = []

    def outcome(o):
        statuses.append(o.status)
        if on_outcome:
            on_outcome(o)
    ctx = study.run(out, quick=quick, jobs=jobs, on_outcome=outcome, seeds=seeds)

    tables = compare.build(ctx.all_runs())
    # Tables and figures staged beside out/compare and moved in at the end; figures are drawn from
    # the CSVs written, as `ics plot` redraws them: the same bytes either way.
    compare_figures = [p for p in draw.save(tables, out / "compare") if p.suffix != ".csv"]
    verdicts = measure(study, ctx)
    for group, runs in ctx.groups.items():
        if runs:
            ctx.tables(group)
    ctx.save_tables()
    figures = study.figures(Context(out=out, quick=quick), out / "figures") if study.figures else []
    write_json(out / "study.json", {"study": name, "quick": quick, "seeds": seeds})
    write_atomic(out / "verdicts.csv", files.to_csv(verdicts[VERDICT_COLUMNS]))
    seconds = time.perf_counter() - start
    write_atomic(out / "README.md", readme.render(study, ctx, verdicts, figures, compare_figures, seconds,
                                                  reused=statuses.count("skipped")))
    return StudyResult(name, out, verdicts, seconds)


def run_all(root: Path | None = None, *, quick: bool = False, seeds: list[int] | None = None,
            jobs: int | None = None, on_outcome=None) -> list[StudyResult]:
    """Every study, each into root/<name>/ (default: each study's default_out)."""
    return [run_study(n, Path(root) / n if root is not None else None, quick=quick, seeds=seeds,
                      jobs=jobs, on_outcome=on_outcome) for n in names()]


def held(result: StudyResult, reference: Path) -> pd.DataFrame:
    """Which verdicts of `result` (a replication) equal those in `reference` (a committed verdicts.csv).

    Columns: claim_id, reference_verdict, verdict, held (True when the two verdicts are equal).
    """
    reference = Path(reference)
    if not reference.is_file():
        raise IcsError(f"no committed verdicts at '{reference}' to compare with; run `ics reproduce "
                       f"{result.name}` first")
    ref = files.read_csv(reference, keep_default_na=False, dtype=str)
    ref = dict(zip(ref["claim_id"], ref["verdict"]))
    rows = [{"claim_id": r["claim_id"], "reference_verdict": ref.get(r["claim_id"], ""),
             "verdict": r["verdict"], "held": ref.get(r["claim_id"]) == r["verdict"]}
            for _, r in result.verdicts.iterrows()]
    return pd.DataFrame(rows, columns=["claim_id", "reference_verdict", "verdict", "held"])


def redraw(folder: Path, fmt: str = "png") -> list[Path]:
    """Redraw a study folder's own figures from the tables it saved (no runs needed)."""
    folder = Path(folder)
    info = folder / "study.json"
    if not info.is_file():
        raise IcsError(f"'{folder}' is not a study folder (no study.json); run `ics reproduce NAME` first")
    meta = read_json(info)
    study = REGISTRY.get(meta.get("study"))
    if study is None:
        raise IcsError(f"'{info}' names an unknown study; known: {', '.join(names())}")
    if not study.figures:
        return []
    ctx = Context(out=folder, quick=bool(meta.get("quick")))
    try:
        return [path for path, _ in study.figures(ctx, folder / "figures", fmt=fmt)]
    except MissingData as e:
        raise IcsError(f"cannot redraw the figures of '{folder}': {e}; rerun `ics reproduce`") from None
