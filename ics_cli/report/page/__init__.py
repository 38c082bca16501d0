"""`ics report`: one self-contained HTML page for comparisons, sweeps, studies, or all of results/.

The page is built from the files those folders hold (CSV tables, verdicts, JSON) and the studies'
fixed protocols; figures are redrawn from the CSVs into SVG, as `ics plot` would draw them, and
embedded. It needs no network and no other file: style, figures and the one script (sorting a table
by a column; the page reads the same without it) are inside. The same inputs give the same bytes,
except the one line that says when it was made (`made_line`; SOURCE_DATE_EPOCH fixes it too).

    from ics_cli import page
    page.write(["results"], "results/report.html")
"""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from ... import __version__
from ...store import runs as store
from ...store.provenance import git_commit
from ...errors import IcsError
from . import figures as figs
from . import markup, sections
from .figures import FORMATS
from .glossary import Shown
from .markup import esc, inline
from .sections import Options, Section

__all__ = ["build", "write", "Options", "FORMATS", "made_line"]

MADE_ID = "made"
GLOSSARY_ID = "glossary"


def made_line(now: datetime | None = None) -> str:
    """The page's one line that differs between two builds of the same inputs: when it was made."""
    if now is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH")
        now = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch and epoch.isdigit() \
            else datetime.now(timezone.utc)
    return f'<p class="provenance" id="{MADE_ID}">Made on {now:%Y-%m-%d %H:%M} UTC.</p>'


def _sections(kinds: dict[Path, str], opts: Options) -> tuple[list[Section], list[str]]:
    out, found = [], []
    many = len(kinds) > 1
    for i, (path, what) in enumerate(kinds.items()):
        ident = markup.slug(path.name if path.name not in ("", ".") else "report", i if many else None)
        if what == "collection":
            secs, sentences = sections.collection_sections(path, opts)
            out += secs
            found += sentences
        elif what == "study":
            out.append(sections.study_section(path, ident, opts))
        elif what == "compare":
            out.append(sections.compare_section(path, ident, f"Comparison: {path}", opts))
        else:
            out.append(sections.sweep_section(path, ident, f"Sweep: {path}", opts))
    return out, found


def build(paths, *, title: str | None = None, opts: Options | None = None, all_figures: bool = False,
          now: datetime | None = None) -> str:
    """The report's HTML for `paths` (compare, sweep, study or results folders).

    In a report of a results tree, each study shows its own figures (the evidence for its claims) and
    names, without drawing, the generic figures of its compare/ folder, unless `all_figures`.
    """
    paths = [Path(p) for p in paths]
    opts = opts or Options()
    if opts.fmt not in FORMATS:
        raise IcsError(f"figure format '{opts.fmt}' is not one of: {', '.join(FORMATS)}")
    for p in paths:
        if not p.is_dir():
            raise IcsError(f"no such folder: '{p}'; give comparison, sweep, study or results folders")
    opts.glossary = Shown()          # this page's columns only, if `opts` served an earlier page
    kinds = {p: sections.kind(p) for p in paths}
    opts.study_compare_figures = all_figures or "collection" not in kinds.values()
    jobs = [job for p, what in kinds.items() for job in sections.figure_jobs(p, opts, what)]
    opts.drawn.update(figs.draw_all([j for j in dict.fromkeys(jobs) if j not in opts.drawn], opts.fmt,
                                    opts.jobs))
    secs, sentences = _sections(kinds, opts)
    links = {}
    for s in secs:
        links.update(s.links)
    link = lambda target: links.get(target.removeprefix("./"))  # noqa: E731
    title = title or "ics report: " + ", ".join(str(p) for p in paths)

    findings = []
    if sentences:       # a results tree: its findings, then each study's verdicts in one line
        findings.append(f"<p>{inline(sentences[0], link)}</p>")
        findings.append("<ul>" + "".join(f"<li>{inline(s, link)}</li>" for s in sentences[1:]) + "</ul>")
    headlines = [f"<li>{f}</li>" for s in secs if not s.tally for f in s.findings]
    if headlines:
        findings.append("<p>The comparisons, every norm at one matched learning rate:</p><ul>"
                        + "".join(headlines) + "</ul>")
    if sentences:
        tallies = [f"<li>{s.tally}</li>" for s in secs if s.tally]
        if tallies:
            findings.append("<p>The studies' verdicts (each links to its claim and evidence):</p><ul>"
                            + "".join(tallies) + "</ul>")
    else:
        claims = [f"<li>{f}</li>" for s in secs if s.tally for f in s.findings]
        if claims:
            findings.append("<p>Each claim, its verdict and what was measured:</p><ul>" + "".join(claims) + "</ul>")
    if not findings:
        findings.append("<p>No findings: these folders hold no headline table and no verdicts.</p>")

    toc = "".join(f'<li><a href="#{s.id}">{esc(s.title)}</a></li>' for s in secs)
    glossary = opts.glossary.section(GLOSSARY_ID)       # after every table: the columns they showed
    prov = [("made by", f"ics {esc(__version__)}"),
            ("git commit of ics", f"<code>{esc(git_commit() or 'unknown (not a git checkout)')}</code>"),
            ("python", esc(platform.python_version())),
            ("inputs", ", ".join(f"<code>{esc(str(p))}</code>" for p in paths)),
            ("figures", f"redrawn from the CSVs as {esc(opts.fmt.upper())}"),
            *[pair for s in secs for pair in s.provenance]]
    body = "\n".join([
        f"<header><h1>{esc(title)}</h1>",
        made_line(now),
        "<p>Built by <code>ics report</code> from the tables, verdicts and configurations in its input "
        "folders; every number is read from a CSV, and every figure is redrawn from one. Definitions of "
        "every column: <code>docs/metrics.md</code> (a heading's tooltip and the Glossary at the end give "
        "those of the columns shown); the studies' protocols: <code>docs/studies.md</code>.</p>"
        "</header>",
        '<nav class="toc" aria-labelledby="contents"><h2 id="contents">Contents</h2><ul>'
        '<li><a href="#findings">Findings</a></li>' + toc + '<li><a href="#provenance">Provenance</a></li>'
        + (f'<li><a href="#{GLOSSARY_ID}">Glossary</a></li>' if glossary else "") + '</ul></nav>',
        "<main>",
        '<section aria-labelledby="findings"><h2 id="findings">Findings</h2>' + "\n".join(findings) + "</section>",
        *[f'<section aria-labelledby="{s.id}">{s.html}</section>' for s in secs],
        '<section aria-labelledby="provenance"><h2 id="provenance">Provenance</h2>'
        + sections.facts(prov) + "</section>",
        *([f'<section aria-labelledby="{GLOSSARY_ID}">{glossary}</section>'] if glossary else []),
        "</main>",
    ])
    return markup.page(title, body)


def write(paths, out: Path, **kwargs) -> Path:
    """Build the report and write it to `out` atomically (a kill leaves the previous file, or none)."""
    text = build(paths, **kwargs)
    out = Path(out)
    store.write_atomic(out, text)
    return out
