"""What the report shows for each kind of folder: a comparison, a sweep, a study, a results tree.

Each `Section` is an id, a title, its HTML and the one-line findings it contributes to the summary
at the top. Every value is read from the CSVs and JSON files the folder holds (compare tables,
verdicts.csv, study.json, sweep.json, runs.csv) or from the study's fixed protocol; nothing is
recomputed from a model. `links` maps the relative paths that generated markdown links to (a
study's README.md, a figure file) to the anchors where the report shows them, so those links stay
inside the page.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...analyse import base, compare, quantities as second_view
from ...analyse import outputs
from ...figures import draw
from ...store.runs import runs_under
from ...store import runs as store
from ...store import files
from ...errors import IcsError
from . import figures as figs
from .glossary import Shown
from .markup import badge, esc, figure, inline, interval, markdown, number, slug, table

# One line per compare table: what a row is and what it holds (docs/metrics.md, Part 2, has formulas).
TABLE_NOTES = {
    "summary": "one row per configuration: final and best test accuracy, loss drop and steps to the "
               "target, each over seeds",
    "drift": "one row per configuration × layer × site: how far the activation statistics moved over "
             "training, raw and in units of each unit's own standard deviation (`_scaled`)",
    "gradient_stability": "one row per configuration × layer: how much the gradient norm varies from "
                          "update to update (`grad_norm_cv`, and `grad_norm_jitter` with the trend taken out)",
    "lr_tolerance": "one row per model × norm: the learning rates that still train, and the largest "
                    "stable one",
    "best_lr": "each norm at its own best learning rate, chosen on the other seeds (leave-one-seed-out)",
    "lr_curve": "final accuracy against the learning rate, one row per configuration",
    "curves": "figure data: loss and accuracy at each evaluation step",
    "layer_curves": "figure data: each layer's statistics at each log step",
    "percentiles": "figure data: the tracked units' 15th, 50th and 85th percentiles, per seed",
    "grad_curves": "figure data: gradient and weight norms at the log steps",
    "runs": "one row per run folder: seed, status, hash, final metrics and path (provenance)",
    "grad_ics_curves": "figure data: gradient ICS (‖G − G′‖₂, cos(G, G′)) per layer and step",
    "landscape_curves": "figure data: the loss band and gradient predictiveness along the gradient, per step",
    "landscape_stability": "one row per configuration: how steady the effective β-smoothness is, and the "
                           "early loss band and gradient predictiveness",
    "relative_loss_curves": "figure data: the relative loss of one step of size α, per step and α",
    "relative_loss_threshold": "one row per configuration × step: the smallest α at which the loss blows up",
    "sharpness_curves": "figure data: the top Hessian eigenvalue and sharpness × lr per step",
    "depth_profile": "figure data: each hidden layer's mean and standard deviation against its depth",
    "batch_size": "one row per configuration × normalization batch: final test error with the run's own "
                  "test-time statistics and with batch statistics",
    "test_stats": "own minus batch-statistics test error, paired by seed",
}
# Tables whose rows are figure data (a step or a unit per row): shown folded, the first rows only.
FIGURE_DATA = {*base.FIGURE_DATA, *second_view.FIGURE_DATA}     # per-step tables: folded, first rows shown
FIGURE_DATA_ROWS = 12
KEY_ORDER = ("model", "norm", "lr", "batch_size", "width", "activation", "steps")


@dataclass
class Section:
    id: str
    title: str
    html: str
    findings: list[str] = field(default_factory=list)     # HTML, one line each
    tally: str = ""                                       # HTML, one line: a study's verdicts in brief
    links: dict[str, str] = field(default_factory=dict)   # relative path -> anchor
    provenance: list[tuple[str, str]] = field(default_factory=list)   # (what, HTML)


@dataclass
class Options:
    fmt: str = "svg"                 # figures (figures.py: svg falls back to png where SVG is too large)
    max_rows: int = 100              # rows shown of a table that is not figure data
    jobs: int | None = None          # processes drawing figures (default: one per CPU core)
    study_compare_figures: bool = True   # a study's compare/ figures (off in a results-tree report)
    drawn: dict = field(default_factory=dict, repr=False)   # (what, folder) -> figures, drawn ahead
    glossary: Shown = field(default_factory=Shown, repr=False)   # the columns shown with a definition


def _drawn(opts: Options, what: str, folder: Path) -> list[figs.Drawn]:
    key = (what, Path(folder))
    if key not in opts.drawn:
        opts.drawn[key] = figs.of(what, folder, opts.fmt)
    return opts.drawn[key]


def figure_jobs(path: Path, opts: Options, what: str | None = None) -> list[tuple[str, Path]]:
    """The figure sets the report of `path` (of kind `what`, default: found) shows, as (what, folder),
    so they can be drawn in parallel."""
    path = Path(path)
    what = what or kind(path)
    if what == "compare":
        return [("compare", path)]
    if what == "study":
        return [("study", path)] + ([("compare", path / "compare")] if opts.study_compare_figures
                                    and (path / "compare" / "summary.csv").is_file() else [])
    if what == "sweep":
        return [("compare", path / "compare")] if (path / "compare" / "summary.csv").is_file() else []
    return [job for child in _children(path) if (k := kind_or_none(child)) for job in figure_jobs(child, opts, k)]


# --------------------------------------------------------------------------- what a folder is


def kind(path: Path) -> str:
    """study | compare | sweep (a folder holding compare/ or run folders) | collection (results/)."""
    path = Path(path)
    if (path / "verdicts.csv").is_file() and (path / "study.json").is_file():
        return "study"
    if (path / "summary.csv").is_file():
        return "compare"
    if (path / "compare" / "summary.csv").is_file() or (path / "sweep.json").is_file():
        return "sweep"
    if any(kind_or_none(child) in ("study", "compare") for child in _children(path)):
        return "collection"
    if store.find_runs(path, check=False):
        return "sweep"
    raise IcsError(f"'{path}' holds no comparison (summary.csv), study (verdicts.csv), sweep or run "
                   "folders; give what `ics compare`, `ics sweep` or `ics reproduce` wrote")


def kind_or_none(path: Path) -> str | None:
    try:
        return kind(path) if path.is_dir() and not path.is_symlink() else None
    except IcsError:
        return None


def _children(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink() and p.name != "runs"
                  and not p.name.startswith("."))


# --------------------------------------------------------------------------- pieces


def _table_html(name: str, df: pd.DataFrame, ident: str, max_rows: int, where: str, shown: Shown) -> str:
    note = TABLE_NOTES.get(name, "")
    caption = (f"<code>{esc(name)}.csv</code> ({len(df):,} rows)"
               + (f": {inline(note)}" if note else "") + f". <span class=muted>{esc(where)}</span>")
    if name in FIGURE_DATA:
        inner = table(df, ident=ident, caption=caption, max_rows=FIGURE_DATA_ROWS, define=shown.define(name))
        return (f"<details><summary>{esc(name)} ({len(df):,} rows, figure data)</summary>{inner}"
                "</details>")
    return table(df, ident=ident, caption=caption, max_rows=max_rows, define=shown.define(name))


# The headline's drift and gradient columns a sweep's findings name, with what a low value means.
SPREAD = (("drift_linear_scaled", "drift of the input each norm receives (scale-free; lower: steadier)"),
          ("drift_norm_eval_scaled", "drift of the norm's eval-mode output (scale-free; lower: steadier)"),
          ("grad_norm_jitter", "gradient-norm jitter (detrended; lower: steadier)"))


def spread_findings(title: str, model: str, rows: pd.DataFrame, ident: str) -> list[str]:
    """One finding per drift or gradient column of the headline: the norms with the lowest and the highest
    value at the matched lr (the tool's subject, beside accuracy)."""
    out = []
    for column, meaning in SPREAD:
        if column not in rows:
            continue
        values = pd.to_numeric(rows[column], errors="coerce")
        known = rows.assign(_v=values).dropna(subset=["_v"]).sort_values("_v")
        if len(known) < 2:
            continue
        low, high = known.iloc[0], known.iloc[-1]
        out.append(f"{esc(title)}, {esc(model)}: {esc(meaning)}: lowest with {esc(low['norm'])} "
                   f"({esc(number(low['_v']))}), highest with {esc(high['norm'])} ({esc(number(high['_v']))}). "
                   f'(<a href="#{ident}-headline">headline</a>)')
    return out


def _figure_html(drawn: figs.Drawn, ident: str, where: str) -> str:
    caption = f"<strong>{esc(drawn.name)}</strong>: {inline(drawn.caption)} <span class=muted>{esc(where)}</span>"
    return figure(drawn.data, drawn.fmt, ident=ident, caption=caption,
                  alt=f"Figure {drawn.name}: {drawn.caption}")


def _values(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """The configuration keys a comparison spans, each with its distinct values, and the seeds."""
    out = []
    for col in [c for c in KEY_ORDER if c in runs.columns] + \
               [c for c in runs.columns if c not in KEY_ORDER and c in _key_like(runs)]:
        vals = pd.unique(runs[col].dropna())
        out.append((col, ", ".join(esc(number(v)) for v in vals)))
    if "seed" in runs.columns:
        out.append(("seeds", ", ".join(esc(number(v)) for v in sorted(pd.unique(runs["seed"].dropna())))))
    if "status" in runs.columns:
        counts = runs["status"].value_counts()
        out.append(("runs", f"{len(runs)} ({', '.join(f'{n} {esc(s)}' for s, n in sorted(counts.items()))})"))
    return out


def _key_like(runs: pd.DataFrame) -> list[str]:
    """The key columns of runs.csv: those before `seed` (key_columns wrote them first)."""
    cols = list(runs.columns)
    return cols[: cols.index("seed")] if "seed" in cols else []


def _versions(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """Versions, commits and the shared configuration recorded by the run folders behind `runs`,
    where they are on disk (runs.csv holds their paths)."""
    seen: dict[str, Counter] = {}
    configs = []
    found = 0
    for p in runs.get("path", pd.Series(dtype=str)).dropna():
        cfg = Path(p) / "config.json"
        if not cfg.is_file() or cfg.is_symlink():
            continue
        try:
            recorded = store.read_json(cfg)
        except (IcsError, store.DamagedFile, ValueError):
            continue
        versions = recorded.get("versions", {})
        configs.append(recorded.get("config", {}))
        found += 1
        for k, v in versions.items():
            seen.setdefault(k, Counter())[str(v)] += 1
    if not found:
        return [("run folders", "not on this machine (runs.csv lists them), so their versions are not shown")]

    def listed(counts: Counter) -> str:      # the most common first; a long tail is counted, not listed
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        text = ", ".join(f"{esc(v)} ({n} runs)" for v, n in top[:4])
        return text + (f", and {len(top) - 4} more" if len(top) > 4 else "")
    common = {k: v for k, v in configs[0].items() if k not in ("out", "seed")
              and all(c.get(k, v) == v for c in configs)}
    return [(f"{k} (of the runs)", listed(c)) for k, c in seen.items()] + \
           [("configuration all runs share", "<code>" + esc(_flat(common)) + "</code>"),
            ("run folders read", f"{found} of {len(runs)}")]


def facts(rows: list[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


# --------------------------------------------------------------------------- a comparison


def compare_section(folder: Path, ident: str, title: str, opts: Options, *, rel: str = "",
                    heading: int = 2, figures: bool = True, source: str | None = None) -> Section:
    """The headline, every table and every figure of a compare folder (`figures` False: the figures
    are named, not drawn). `rel`: the folder's path in the page's links; `source`: the folder as the
    provenance names it (default: its path)."""
    folder = Path(folder)
    tables = outputs.load(folder)
    drawn = _drawn(opts, "compare", folder) if figures else []
    where = lambda name: f"{rel}{name}" if rel else name   # noqa: E731 - the file a piece comes from
    h = f"h{heading}"
    sub = f"h{min(heading + 1, 6)}"
    parts = [f'<{h} id="{ident}">{esc(title)}</{h}>']
    findings = []
    head = compare.headline(tables)
    if len(head):
        parts += [f"<{sub} id=\"{ident}-headline\">Headline: every norm at the same learning rate</{sub}>",
                  "<p>Per model, all norms at one matched learning rate (<code>lr_rule</code> says how it "
                  "was chosen); final test accuracy as mean [95% t-interval] over seeds.</p>",
                  table(head, ident=f"{ident}-headline-table", caption="Headline (compare.headline)",
                        define=opts.glossary.define("headline"))]
        for model, rows in head.groupby("model", sort=False):
            accs = ", ".join(f"{esc(r['norm'])} {esc(interval(r['final_test_acc_mean'], r.get('final_test_acc_ci_low'), r.get('final_test_acc_ci_high')))}"
                             for _, r in rows.iterrows())
            findings.append(f'{esc(title)}, {esc(model)} at lr {esc(number(rows["lr"].iloc[0]))}: final test '
                            f'accuracy {accs}. (<a href="#{ident}-headline">headline</a>)')
            findings += spread_findings(title, model, rows, ident)
    links = {}
    if drawn:
        parts.append(f"<{sub} id=\"{ident}-figures\">Figures</{sub}>")
        for d in drawn:
            fid = slug(ident, "fig", d.name)
            parts.append(_figure_html(d, fid, where(f"{d.name}.{d.fmt}")))
            for ext in ("png", "svg", "pdf"):
                links[f"{rel}{d.name}.{ext}"] = fid
    if not figures:
        names = sorted(p.stem for p in folder.iterdir() if draw.owns(p.name) and p.suffix != ".csv"
                       and not p.name.startswith("."))
        parts.append(f"<p>Its figures ({esc(', '.join(names)) or 'none'}) are left out of a report of a whole "
                     "results folder, to keep the page small; <code>ics report</code> on the study folder "
                     "draws them.</p>")
    parts.append(f"<{sub} id=\"{ident}-tables\">Tables</{sub}>")
    for name, df in tables.items():
        parts.append(_table_html(name, df, slug(ident, "table", name), opts.max_rows, where(f"{name}.csv"),
                                 opts.glossary))
        links[f"{rel}{name}.csv"] = slug(ident, "table", name)
    long = sorted(q.stem for q in (folder / "long").glob("*.csv")) if (folder / "long").is_dir() else []
    if long:
        parts.append(f"<p>Per-seed tables, one row per run (and layer, site, step), the sources of the "
                     f"tables above for your own analysis: {', '.join(f'<code>long/{esc(n)}.csv</code>' for n in long)} "
                     f"<span class=muted>({esc(rel)}long/; columns: docs/metrics.md, “Long tables (per seed)”)</span>.</p>")
    links[rel or "."] = ident
    runs = tables.get("runs", pd.DataFrame())
    prov = [(f"{title}: folder", f"<code>{esc(source or str(folder))}</code>"), *_values(runs), *_versions(runs)]
    return Section(ident, title, "\n".join(parts), findings=findings, links=links, provenance=prov)


def sweep_section(folder: Path, ident: str, title: str, opts: Options, heading: int = 2) -> Section:
    """A sweep folder: its compare/ when there is one, else the tables built from its run folders."""
    import tempfile

    folder = Path(folder)
    prov = []
    if (folder / "sweep.json").is_file():
        plan = store.read_json(folder / "sweep.json")
        prov.append((f"{title}: sweep.json", "<code>" + esc(_flat(plan)) + "</code>"))
    if (folder / "compare" / "summary.csv").is_file():
        section = compare_section(folder / "compare", ident, title, opts, rel="compare/", heading=heading)
    else:
        runs = runs_under(folder)
        with tempfile.TemporaryDirectory(prefix="ics-report-") as tmp:
            dest = Path(tmp) / "compare"
            files.write_tables(compare.build(runs), dest)   # the tables `ics compare` would write; read back
            section = compare_section(dest, ident, title, opts, heading=heading,
                                      source=f"{folder} (compared for this report)")
    section.provenance = prov + section.provenance
    return section


def _flat(value, prefix: str = "") -> str:
    if isinstance(value, dict):
        return "; ".join(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else f"{prefix}{k} = {v}"
                         for k, v in value.items())
    return f"{prefix}{value}"


# --------------------------------------------------------------------------- a study


SEEN = re.compile(r"^\* \*\*(?P<id>[^*]+)\*\* \((?P<verdict>[A-Z]+)\): (?P<text>.*)$")


def _seen(folder: Path) -> dict[str, str]:
    """The sentence per claim that the study wrote into its README ("What the measurements say")."""
    readme = folder / "README.md"
    if not readme.is_file():
        return {}
    return {m["id"]: m["text"] for line in files.read_text(readme, "markdown").splitlines()
            if (m := SEEN.match(line))}


def claim_refs(caption: str) -> list[str]:
    """The claim ids a figure caption names before its colon: 'Fig. 3 (B2a–c): …' -> [B2a, B2b, B2c];
    'R1–R6: …' -> [R1, …, R6]; 'P1, P2: …' -> [P1, P2]."""
    head = caption.split(":", 1)[0]
    if "(" in head:
        head = head[head.rfind("(") + 1: head.rfind(")") if ")" in head else None]
    out = []
    for part in re.split(r",\s*", head):
        part = part.strip()
        if m := re.fullmatch(r"([A-Z]+)(\d+)([a-z]?)[–-]([A-Z]+)?(\d+)?([a-z]?)", part):
            letters, lo, sub_lo, _, hi, sub_hi = m.groups()
            if hi:          # R1–R6
                out += [f"{letters}{n}" for n in range(int(lo), int(hi) + 1)]
            elif sub_lo and sub_hi:    # B2a–c
                out += [f"{letters}{lo}{chr(c)}" for c in range(ord(sub_lo), ord(sub_hi) + 1)]
        elif re.fullmatch(r"[A-Z]+\d+[a-z]?", part):
            out.append(part)
    return out


def _evidence(claim: str, refs: list[str]) -> bool:
    """Whether a figure naming `refs` shows claim `claim` (a figure of S5 shows S5a and S5b)."""
    return any(claim == r or (claim.startswith(r) and claim[len(r):].isalpha()) for r in refs)


def study_section(folder: Path, ident: str, opts: Options, *, rel: str = "", heading: int = 2) -> Section:
    """Verdicts (marked), each claim with its measured value and evidence, figures, protocol, and the
    study's comparison of all its runs, folded."""
    from ...studies import CORE_VERDICT_COLUMNS, REGISTRY

    from . import predictors as predictors_page

    folder = Path(folder)
    if predictors_page.is_predictors(folder):      # one verdict per measure, not per claim
        ident_, title, html, brief, links = predictors_page.section(folder, ident, rel=rel, heading=heading)
        return Section(ident_, title, html, tally=brief, links=links)
    meta = store.read_json(folder / "study.json")
    study = REGISTRY.get(meta.get("study"))
    if study is None:
        raise IcsError(f"'{folder / 'study.json'}' names an unknown study; known: {', '.join(REGISTRY)}")
    text = files.read_text(folder / "verdicts.csv")
    verdicts = files.parse_csv(folder / "verdicts.csv", text, keep_default_na=False, na_values=[""])
    missing = [c for c in CORE_VERDICT_COLUMNS if c not in verdicts.columns]
    if missing:
        raise IcsError(f"'{folder / 'verdicts.csv'}' is not a verdict table (no column {', '.join(missing)})")
    seen = _seen(folder)
    drawn = _drawn(opts, "study", folder)
    h, sub = f"h{heading}", f"h{min(heading + 1, 6)}"
    fig_ids = [slug(ident, "fig", d.name) for d in drawn]
    evidence = {c: [(fid, d.name) for fid, d in zip(fig_ids, drawn) if _evidence(c, claim_refs(d.caption))]
                for c in verdicts["claim_id"]}
    from ...studies import VERDICTS, tally as study_tally

    tally = study_tally(verdicts["verdict"])
    mode = "quick (scaled-down) protocol" if meta.get("quick") else "full protocol"
    parts = [f'<{h} id="{ident}">{esc(study.title)}</{h}>',
             f"<p>{inline(study.description[:1].upper() + study.description[1:])}. "
             f"<code>ics reproduce {esc(study.name)}</code> ({esc(mode)}"
             + (f", seeds {esc(', '.join(map(str, meta['seeds'])))}" if meta.get("seeds") else "")
             + f"). Verdicts: {esc(tally)}.</p>",
             "<p class=muted>" + esc("; ".join(f"{v}: {m}" for v, m in VERDICTS.items()))
             + ". Metrics, thresholds, margins and seeds were fixed before the deciding runs; later changes "
             "are in each study's threshold history.</p>"]

    def cell(name, value, row):
        if name == "verdict":
            return badge(str(value))
        if name == "claim_id":
            return f'<a href="#{slug(ident, "claim", value)}">{esc(value)}</a>'
        return None
    cols = ["claim_id", "claim", "measured", "ci_low", "ci_high", "n_seeds", "mde", "margin", "expected", "verdict"]
    shown = verdicts[[c for c in cols if c in verdicts.columns]]
    shown = shown.rename(columns={"measured": "measured_mean", "ci_low": "measured_ci_low",
                                  "ci_high": "measured_ci_high"})
    parts.append(table(shown, ident=slug(ident, "verdicts"), cell=cell,
                       caption=f"<code>verdicts.csv</code>: one row per claim; measured [95% interval, "
                               f"Bonferroni where a claim has parts]. <span class=muted>{esc(rel)}verdicts.csv</span>"))
    parts.append(f"<{sub} id=\"{ident}-claims\">Each claim and its evidence</{sub}>")
    findings = []
    for r in verdicts.to_dict("records"):
        cid, verdict = r["claim_id"], str(r["verdict"])
        cident = slug(ident, "claim", cid)
        measured = interval(r["measured"], r["ci_low"], r["ci_high"])
        seeds = "exact" if pd.isna(r["n_seeds"]) else f"{int(r['n_seeds'])} seeds"
        ev = ", ".join(f'<a href="#{fid}">{esc(name)}</a>' for fid, name in evidence[cid]) or "no figure; the measured value above"
        rows = [("claim", inline(str(r["claim"]))), ("source", inline(str(r["source"]))),
                ("metric", inline(str(r["metric"]))), ("expected", inline(str(r["expected"]))),
                ("measured", f"{esc(measured)} ({esc(seeds)})"), ("paper", inline(str(r["paper_value"]))),
                ("evidence", ev)]
        if cid in seen:
            rows.insert(5, ("what was seen", inline(seen[cid])))
        parts.append(f'<div class="claim {verdict.lower().replace(" ", "-")}" id="{cident}"><p><strong>{esc(cid)}</strong> '
                     f"{badge(verdict)}</p>{facts(rows)}</div>")
        findings.append(f'<a href="#{cident}">{esc(study.name)} {esc(cid)}</a> {badge(verdict)}: '
                        f"{inline(seen.get(cid, str(r['claim'])))}")
    links = {f"{rel}README.md": ident, rel.rstrip("/") or ".": ident, f"{rel}verdicts.csv": slug(ident, "verdicts"),
             **{f"{rel}README.md#{c}": slug(ident, "claim", c) for c in verdicts["claim_id"]}}
    if drawn:
        parts.append(f"<{sub} id=\"{ident}-figures\">Figures</{sub}>")
        for fid, d in zip(fig_ids, drawn):
            parts.append(_figure_html(d, fid, f"{rel}figures/{d.name}.{d.fmt}"))
            for ext in ("png", "svg", "pdf"):
                links[f"{rel}figures/{d.name}.{ext}"] = fid
    parts += [f"<{sub} id=\"{ident}-protocol\">Protocol</{sub}>",
              markdown(study.protocol, level=min(heading + 2, 6))]
    prov = [(f"{study.name}: folder", f"<code>{esc(str(folder))}</code>"),
            (f"{study.name}: study.json", f"<code>{esc(_flat(meta))}</code>")]
    inner = []
    if (folder / "compare" / "summary.csv").is_file():
        comp = compare_section(folder / "compare", slug(ident, "compare"), f"{study.name}: all runs together",
                               opts, rel=f"{rel}compare/", heading=min(heading + 1, 6),
                               figures=opts.study_compare_figures)
        inner.append(comp.html)
        links.update(comp.links)
        prov += comp.provenance
    groups = sorted(p for p in (folder / "tables").glob("*") if (p / "summary.csv").is_file()) \
        if (folder / "tables").is_dir() else []
    for g in groups:
        tabs = outputs.load(g)
        inner.append(f"<{sub} id=\"{slug(ident, 'group', g.name)}\">Tables of the group "
                     f"<code>{esc(g.name)}</code> (what the claims and figures read)</{sub}>")
        for name, df in tabs.items():
            gid = slug(ident, "group", g.name, name)
            inner.append(_table_html(name, df, gid, FIGURE_DATA_ROWS,
                                     f"{rel}tables/{g.name}/{name}.csv", opts.glossary))
            links[f"{rel}tables/{g.name}/{name}.csv"] = gid
    if inner:
        parts.append(f"<details><summary>All of {esc(study.name)}'s runs together, and the tables behind its "
                     "claims</summary>" + "\n".join(inner) + "</details>")
    marks = " ".join(f'<a href="#{slug(ident, "claim", c)}">{esc(c)}</a>&nbsp;{badge(str(v))}'
                     for c, v in zip(verdicts["claim_id"], verdicts["verdict"]))
    brief = f'<a href="#{ident}">{esc(study.title)}</a> ({esc(tally)}): {marks}'
    return Section(ident, study.title, "\n".join(parts), findings=findings, tally=brief, links=links,
                   provenance=prov)


# --------------------------------------------------------------------------- a results tree


def collection_sections(root: Path, opts: Options) -> tuple[list[Section], list[str]]:
    """results/: its comparisons first, then its studies in the registry's order; and its findings
    (the sentences results/README.md leads with), when it holds studies."""
    from ...studies import REGISTRY
    from ...studies.findings import sentences

    root = Path(root)
    kids = [(p, kind_or_none(p)) for p in _children(root)]
    order = {name: i for i, name in enumerate(REGISTRY)}
    comps = [p for p, k in kids if k in ("compare", "sweep")]
    studies = sorted((p for p, k in kids if k == "study"),
                     key=lambda p: (order.get(store.read_json(p / "study.json").get("study"), len(order)), p.name))
    sections = []
    for p in comps:
        if kind(p) == "compare":
            sections.append(compare_section(p, slug(root.name, p.name), f"Comparison: {p.name}", opts,
                                            rel=f"{p.name}/"))
        else:
            sections.append(sweep_section(p, slug(root.name, p.name), f"Sweep: {p.name}", opts))
    for p in studies:
        sections.append(study_section(p, slug(root.name, "study", p.name), opts, rel=f"{p.name}/"))
    # "[N4a: FAIL](note/README.md)" in a finding goes to claim N4a's block, not the top of its study.
    found = [re.sub(r"\[(\w+): ([A-Z]+)\]\(([^)#]+)/README\.md\)", r"[\1: \2](\3/README.md#\1)", line)
             for line in sentences(root)] if studies else []
    return sections, found
