"""Studies: a fixed protocol, the runs it needs, and claims each measured and given a verdict.

One module per study (ioffe2015.py, note.py) defines its protocol, its runs and its claims as data;
this module runs one end to end:

1. the study's runs, one folder each under `<out>/runs/` (run as one sweep; finished runs are reused);
2. `<out>/compare/`: compare.build and figures/draw.save (tables and figures, one staged output set)
   over all of the study's runs;
3. every claim measured (claims.py says how a verdict is reached);
4. `<out>/figures/`: the study's own figures, drawn from the group tables saved in `<out>/tables/`;
5. `<out>/verdicts.csv`, `<out>/study.json` (name, mode, seeds) and a generated `<out>/README.md`.

Before step 1 of the full protocol, a pilot: the same runs on `PILOT_SEEDS` (seeds that never decide a
verdict) into `<out>/pilot/runs/`, every claim measured on them, and `<out>/pilot.csv`: per claim the
pilot's seed SD, the margin, the MDE at the protocol's seeds and the seeds the margin would need.
A claim whose MDE exceeds its margin is UNDERPOWERED (claims.py) and is not read. A study that says
which run groups each claim reads (`Study.plan`, `Claim.runs`) is sized before its deciding runs:
step 1 then makes only the groups some powered claim reads (`not_made`), and the pilot's tables are
kept under `<out>/pilot/tables/` for figures of the others. A replication (other seeds) reads the
committed study's pilot.csv (and sizes the claims at its own seeds); quick mode runs no pilot.

Where a study goes: the full protocol on its own seeds into results/NAME/ (what `make reproduce`
commits); `--quick` into runs/quick/NAME/; other seeds (a replication) into
runs/replicate/NAME-s10-11-12/. `held` compares a replication's verdicts with the committed ones.

A failing claim is a finding, not an error: run_study reports it and returns normally.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..analyse import compare
from ..store import files
from ..figures import draw
from ..errors import IcsError
from ..store.files import read_json, write_atomic, write_json
from . import (ba2016, bjorck2018, ioffe2015, ioffe2017, note, predictors_run, readme, santurkar2018, wu2018,
               wu2021)
from .claims import (DESIGN_CHECK, FAIL, INCONCLUSIVE, PASS, PILOT_SEEDS, TESTS, UNDERPOWERED, VERDICTS,
                     Claim, Measurement, MissingData, Study, powered, seeds_needed)
from .context import Context, labels, prune, run_groups

__all__ = ["Claim", "Measurement", "Study", "StudyResult", "REGISTRY", "VERDICT_COLUMNS", "names",
           "select", "descriptions", "default_out", "run_study", "run_all", "measure", "held", "redraw",
           "PASS", "FAIL", "INCONCLUSIVE", "DESIGN_CHECK", "UNDERPOWERED", "VERDICTS", "TESTS", "PILOT_COLUMNS", "CORE_VERDICT_COLUMNS",
           "tally", "held_table", "figure_folder", "planned_seeds", "not_made", "prunable"]

REGISTRY: dict[str, Study] = {s.name: s for s in (ioffe2015.STUDY, note.STUDY, santurkar2018.STUDY,
                                                     bjorck2018.STUDY, wu2018.STUDY, ba2016.STUDY,
                                                     ioffe2017.STUDY, wu2021.STUDY)}
VERDICT_COLUMNS = ["claim_id", "claim", "source", "metric", "measured", "ci_low", "ci_high",
                   "n_seeds", "mde", "margin", "expected", "paper_value", "verdict", "changed_after_data"]
# What every verdicts.csv has had since the first release (older tables lack mde, margin, changed_after_data).
CORE_VERDICT_COLUMNS = [c for c in VERDICT_COLUMNS if c not in ("mde", "margin", "changed_after_data")]
PILOT_COLUMNS = ["claim_id", "pilot_seeds", "n_pilot", "pilot_value", "sd", "scale", "confidence",
                 "margin", "seeds", "mde", "seeds_needed", "powered"]
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
    """Every study `ics reproduce` runs: the claim studies of REGISTRY, then the predictors study (whose
    verdicts are per measure, studies/predictors_run.py)."""
    return [*REGISTRY, predictors_run.NAME]


def descriptions() -> dict[str, str]:
    """name → one-line description, for `ics reproduce --list`."""
    return {**{n: s.description for n, s in REGISTRY.items()},
            predictors_run.NAME: "Which early measure of internal covariate shift, if any, predicts how well a "
                                 "norm trains (issue 25; ics meta on a pre-registered grid)"}


def select(name: str, seeds: list[int] | None = None) -> list[str]:
    """The studies `name` stands for: itself; every claim study for 'studies'; every study for 'all' (with
    `seeds`, a replication, every claim study: the predictors study replicates itself inside its
    protocol); a one-line IcsError otherwise."""
    if name == "studies" or (name == "all" and seeds):
        return list(REGISTRY)
    if name == "all":
        return names()
    if name not in names():
        raise IcsError(f"unknown study '{name}'; choose one of: {', '.join(names())}, studies, all")
    return [name]


def default_out(name: str, *, quick: bool = False, seeds: list[int] | None = None) -> Path:
    """Where a study goes when no --out is given (see the module doc): results/ only for the full
    protocol on its own seeds."""
    if seeds:
        return REPLICATE_ROOT / f"{name}-s{'-'.join(str(s) for s in seeds)}"
    return QUICK_ROOT / name if quick else DEFAULT_ROOT / name


def tally(verdicts) -> str:
    """'3 PASS, 1 FAIL, 0 INCONCLUSIVE' (+ the untested verdicts that occur): what a study decided."""
    counts = pd.Series(list(verdicts)).value_counts()
    shown = list(TESTS) + [v for v in VERDICTS if v not in TESTS and counts.get(v, 0)]
    return ", ".join(f"{counts.get(v, 0)} {v}" for v in shown)


def _measure_one(claim: Claim, ctx) -> Measurement:
    try:
        return claim.measure(ctx)
    except MissingData as e:
        return Measurement(float("nan"), None, None, INCONCLUSIVE, f"Not measured: {e}.")


def measure(study: Study, ctx, pilot: pd.DataFrame | None = None,
            planned: dict[str, int] | None = None, skipped: set[str] = frozenset(),
            measured: dict[str, Measurement] | None = None) -> pd.DataFrame:
    """Every claim of `study` measured on `ctx`: one row per claim (VERDICT_COLUMNS + seen).

    `pilot` (pilot.csv) gives each claim's seed SD: the MDE at this measurement's seeds (`planned`,
    claim id -> seeds, where the study's plan says; else the seeds its measurement rests on), and
    UNDERPOWERED where it exceeds the margin: such a claim is not read (measured and interval blank;
    `skipped`: the run groups not made). `measured`: claim id -> its measurement on `ctx`, where the
    caller has it already.
    A claim with `design` set is a DESIGN CHECK.
    """
    sds = {} if pilot is None else {r["claim_id"]: _float(r["sd"]) for _, r in pilot.iterrows()}
    changed = {c for change in study.history if change.after_data for c in change.ids()}
    rows = []
    for claim in study.claims:
        n = (planned or {}).get(claim.id)
        m = _pilot_shape(pilot, claim.id, n) if n is not None and not claim.design else None
        mde, verdict = powered(claim, m, sds.get(claim.id)) if m is not None else (None, None)
        if verdict != UNDERPOWERED:
            m = (measured or {}).get(claim.id) or _measure_one(claim, ctx)
            mde, verdict = powered(claim, m, sds.get(claim.id))
        seen = m.seen
        if claim.design:
            verdict, seen = DESIGN_CHECK, f"Not a test here: {claim.design} {seen}"
        elif verdict == UNDERPOWERED:
            made = ("its runs were not made" if claim.runs and set(claim.runs) <= set(skipped)
                    else "its value is not read")
            seen = (f"Underpowered: the pilot's seed SD gives an MDE of {mde:.3g} at {m.n_seeds} seeds, above "
                    f"the margin {claim.margin:g}: not decided, and {made}.")
            m = Measurement(math.nan, None, None, UNDERPOWERED, seen, m.n_seeds)
        rows.append({"claim_id": claim.id, "claim": claim.statement, "source": claim.source,
                     "metric": claim.metric, "measured": m.value, "ci_low": m.ci_low,
                     "ci_high": m.ci_high, "n_seeds": m.n_seeds, "mde": mde, "margin": claim.margin,
                     "expected": claim.expected, "paper_value": claim.paper_value, "verdict": verdict,
                     "changed_after_data": "yes" if claim.id in changed else "no", "seen": seen})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS + ["seen"])


def _pilot_shape(pilot: pd.DataFrame | None, claim_id: str, n: int) -> Measurement | None:
    """A claim's interval shape (confidence, log scale) from pilot.csv, at `n` planned seeds: what
    `powered` needs to size a claim before its runs."""
    if pilot is None:
        return None
    rows = pilot[pilot["claim_id"] == claim_id]
    if rows.empty or _float(rows.iloc[0]["confidence"]) is None:
        return None
    r = rows.iloc[0]
    return Measurement(math.nan, None, None, INCONCLUSIVE, "", n, _float(r["sd"]), float(r["confidence"]),
                       str(r["scale"]) == "log")


def planned_seeds(study: Study, seeds: list[int] | None = None) -> dict[str, int]:
    """Claim id -> the seeds the study's plan gives it (the fewest over the run groups it reads);
    empty when the study does not say which runs each claim reads (`Study.plan`, `Claim.runs`)."""
    if not prunable(study):
        return {}
    sizes = labels(study.plan(False, seeds))
    return {c.id: min(sizes[g] for g in c.runs) for c in study.claims}


def prunable(study: Study) -> bool:
    return study.plan is not None and all(c.runs for c in study.claims)


def not_made(study: Study, pilot: pd.DataFrame, planned: dict[str, int]) -> set[str]:
    """The run groups that no claim powered at its planned seeds reads (those only underpowered claims
    or only figures read): not made on the deciding seeds; a figure of them draws the pilot's."""
    needed = set()
    for claim in study.claims:
        m = _pilot_shape(pilot, claim.id, planned[claim.id])
        if claim.design or m is None or powered(claim, m, m.sd)[1] != UNDERPOWERED:
            needed |= set(claim.runs)
    return set(labels(study.plan(False, None))) - needed


def _float(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if v == v else None


def pilot_table(study: Study, ctx, seeds_of: dict[str, int]) -> pd.DataFrame:
    """pilot.csv: each claim measured on the pilot's runs, its seed SD and the MDE at the seeds the
    protocol gives it (`seeds_of`, claim id -> n; a claim absent there is exact or unseeded)."""
    from .claims import mde as mde_at
    import math

    rows = []
    for claim in study.claims:
        m = _measure_one(claim, ctx)
        n = seeds_of.get(claim.id)
        d = mde_at(m.sd, n, m.confidence)
        margin = claim.margin
        need = None
        if margin is not None and m.sd is not None:
            need = seeds_needed(m.sd, m.confidence, math.log(margin) if m.log else margin)
        if d is not None and m.log:
            d = math.exp(d)
        rows.append({"claim_id": claim.id, "pilot_seeds": " ".join(map(str, PILOT_SEEDS)),
                     "n_pilot": m.n_seeds, "pilot_value": m.value, "sd": m.sd,
                     "scale": "log" if m.log else "linear", "confidence": m.confidence, "margin": margin,
                     "seeds": n, "mde": d, "seeds_needed": need,
                     "powered": "" if d is None or margin is None else ("yes" if d <= margin else "no")})
    return pd.DataFrame(rows, columns=PILOT_COLUMNS)


def run_study(name: str, out: Path | None = None, *, quick: bool = False, seeds: list[int] | None = None,
              jobs: int | None = None, on_outcome=None) -> StudyResult:
    """Run study `name` into `out` (default: default_out), resuming finished runs; see the module doc.

    `seeds` replaces the protocol's seeds (a replication); `quick` scales the protocol down.
    """
    if name not in names():
        select(name)                      # raises the one-line error for an unknown name
        raise IcsError(f"run_study runs one study; for '{name}' use run_all (studies: {', '.join(names())})")
    if seeds is not None and (not seeds or any(int(s) < 0 for s in seeds)):
        raise IcsError(f"--seeds must be a comma list of integers >= 0, got {seeds}")
    if name == predictors_run.NAME:
        done = predictors_run.run(out, quick=quick, seeds=seeds, jobs=jobs, on_outcome=on_outcome)
        return StudyResult(name, done.out, done.verdicts, done.seconds)
    study = REGISTRY[name]
    out = Path(out) if out is not None else default_out(name, quick=quick, seeds=seeds)
    start = time.perf_counter()
    statuses = []

    def outcome(o):
        statuses.append(o.status)
        if on_outcome:
            on_outcome(o)
    pilot, planned, skipped, pilot_ctx, measured = None, {}, set(), None, {}
    if not quick and seeds is None and study.claims:
        # The pilot first: its seeds never decide; its SDs size the claims (UNDERPOWERED).
        pilot_ctx = study.run(out / "pilot", quick=False, jobs=jobs, on_outcome=outcome, seeds=list(PILOT_SEEDS))
        planned = planned_seeds(study)
        if planned:       # sized before the deciding runs: those only underpowered claims read are not made
            pilot = pilot_table(study, pilot_ctx, planned)
            skipped = not_made(study, pilot, planned)
            _save_all_tables(pilot_ctx)
            ctx = _deciding(study, out, None, skipped, jobs, outcome)
        else:
            ctx = study.run(out, quick=quick, jobs=jobs, on_outcome=outcome, seeds=seeds)
            measured = {c.id: _measure_one(c, ctx) for c in study.claims}
            seeds_of = {i: m.n_seeds for i, m in measured.items() if m.n_seeds}
            pilot = pilot_table(study, pilot_ctx, seeds_of)
        write_atomic(out / "pilot.csv", files.to_csv(pilot))
    else:
        reference = default_out(name) / "pilot.csv"
        if seeds is not None and reference.is_file():
            pilot = files.read_csv(reference)
            planned = planned_seeds(study, seeds)
        if pilot is not None and planned:
            skipped = not_made(study, pilot, planned)
            ctx = _deciding(study, out, seeds, skipped, jobs, outcome)
        else:
            ctx = study.run(out, quick=quick, jobs=jobs, on_outcome=outcome, seeds=seeds)

    # With no deciding run made (every claim underpowered), the pilot's runs are what there is to show.
    shown = pilot_ctx if pilot_ctx is not None and not ctx.all_runs() else ctx
    compare_figures = []
    if shown.all_runs():
        # Tables and figures staged beside out/compare and moved in at the end; figures are drawn from
        # the CSVs written, as `ics plot` redraws them: the same bytes either way.
        compare_figures = [p for p in draw.save(compare.build(shown.all_runs()), out / "compare")
                           if p.suffix != ".csv"]
    verdicts = measure(study, ctx, pilot, planned, skipped, measured)
    _save_all_tables(ctx)
    figures = []
    if shown is not ctx and (out / "tables").is_dir() and not (out / "tables").is_symlink():
        shutil.rmtree(out / "tables")        # an earlier protocol's deciding tables: the figures show the pilot
    if study.figures and shown.all_runs():
        figures = study.figures(Context(out=figure_folder(out), quick=quick), out / "figures")
    seconds = time.perf_counter() - start
    reused = statuses.count("skipped")
    # The wall time from empty run folders: this invocation's when it trained every run, else the one an
    # earlier invocation recorded (a rerun that only re-measures keeps it).
    before = read_json(out / "study.json") if (out / "study.json").is_file() else {}
    from_empty = seconds if not reused else before.get("from_empty_s")
    out.mkdir(parents=True, exist_ok=True)           # a replication that made no run has no folder yet
    write_json(out / "study.json", {"study": name, "quick": quick, "seeds": seeds, "from_empty_s": from_empty,
                                    "cpus": os.cpu_count()})
    write_atomic(out / "verdicts.csv", files.to_csv(verdicts[VERDICT_COLUMNS]))
    write_atomic(out / "README.md", readme.render(study, ctx, verdicts, figures, compare_figures, seconds,
                                                  reused=reused, pilot=pilot, from_empty=from_empty,
                                                  skipped=skipped,
                                                  pilot_runs=pilot_ctx.all_runs() if pilot_ctx else []))
    return StudyResult(name, out, verdicts, seconds)


def _deciding(study: Study, out: Path, seeds: list[int] | None, skipped: set[str], jobs, outcome) -> Context:
    """The study's deciding runs without the run groups in `skipped`."""
    groups = prune(study.plan(False, seeds), skipped)
    if not groups:
        return Context(out=out, quick=False)
    return run_groups(out, groups, quick=False, jobs=jobs, on_outcome=outcome)


def figure_folder(out: Path) -> Path:
    """Where a study's figures read their tables: <out>/tables/, or the pilot's where no deciding run was made."""
    out = Path(out)
    return out / "pilot" if not (out / "tables").is_dir() and (out / "pilot" / "tables").is_dir() else out


def _save_all_tables(ctx: Context) -> None:
    """Every group's compare tables under <ctx.out>/tables/ (the pilot's too: figures of groups the deciding
    seeds did not make draw them)."""
    for group, runs in ctx.groups.items():
        if runs:
            ctx.tables(group)
    ctx.save_tables()


def run_all(root: Path | None = None, *, quick: bool = False, seeds: list[int] | None = None,
            jobs: int | None = None, on_outcome=None) -> list[StudyResult]:
    """Every study, each into root/<name>/ (default: each study's default_out)."""
    return [run_study(n, Path(root) / n if root is not None else None, quick=quick, seeds=seeds,
                      jobs=jobs, on_outcome=on_outcome) for n in select("all", seeds)]


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


def held_table(root: Path, replicated: list[Path]) -> pd.DataFrame:
    """Per claim of each replication folder: its committed verdict (root/NAME/verdicts.csv), its verdict
    on the fresh seeds, and whether they agree. Columns: study, seeds, claim_id, committed, replicated, held."""
    rows = []
    for folder in replicated:
        folder = Path(folder)
        meta = read_json(folder / "study.json") if (folder / "study.json").is_file() else None
        if not meta or not meta.get("seeds"):
            raise IcsError(f"'{folder}' is not a replication folder (its study.json names no --seeds); "
                           "run `ics reproduce NAME --seeds 10,11,12`")
        name = meta["study"]
        reference = Path(root) / name / "verdicts.csv"
        if not reference.is_file():
            raise IcsError(f"no committed verdicts at '{reference}' to compare '{folder}' with")
        ref = files.read_csv(reference, keep_default_na=False, dtype=str)
        ref = dict(zip(ref["claim_id"], ref["verdict"]))
        new = files.read_csv(folder / "verdicts.csv", keep_default_na=False, dtype=str)
        for cid, verdict in zip(new["claim_id"], new["verdict"]):
            rows.append({"study": name, "seeds": ",".join(map(str, meta["seeds"])), "claim_id": cid,
                         "committed": ref.get(cid, ""), "replicated": verdict, "held": ref.get(cid) == verdict})
    return pd.DataFrame(rows, columns=["study", "seeds", "claim_id", "committed", "replicated", "held"])


def redraw(folder: Path, fmt: str = "png") -> list[Path]:
    """Redraw a study folder's own figures from the tables it saved (no runs needed)."""
    folder = Path(folder)
    info = folder / "study.json"
    if not info.is_file():
        raise IcsError(f"'{folder}' is not a study folder (no study.json); run `ics reproduce NAME` first")
    meta = read_json(info)
    if meta.get("study") == predictors_run.NAME:
        return predictors_run.redraw(folder, fmt)
    study = REGISTRY.get(meta.get("study"))
    if study is None:
        raise IcsError(f"'{info}' names an unknown study; known: {', '.join(names())}")
    if not study.figures:
        return []
    ctx = Context(out=figure_folder(folder), quick=bool(meta.get("quick")))
    try:
        return [path for path, _ in study.figures(ctx, folder / "figures", fmt=fmt)]
    except MissingData as e:
        raise IcsError(f"cannot redraw the figures of '{folder}': {e}; rerun `ics reproduce`") from None
