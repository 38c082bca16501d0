"""What each column of the report means: a tooltip on its heading and a Glossary at the end of the page,
both from the tables of docs/metrics.md, the one place a column is defined.

docs/ is not part of the installed package, so the definitions travel beside this module as
glossary.json, which `parse` makes from docs/metrics.md (`python scripts/make_glossary.py` rewrites
it; tests/test_page.py checks that it is up to date). `parse` reads every markdown table whose first
heading cell is `column` or `per-run value`: each name in backticks in a row's first cell gets the
row's definition (the cell headed `definition` or `per-run quantity`, else the last one). Braces
expand (`x_{a,b}` is `x_a` and `x_b`), and an interval triple, `x_{mean,ci_low,ci_high}` or `x_*`, is
the one column `x` the page shows (markup.table merges it). A table's definitions belong to the
table named by the closest heading, or bold line, above it that names a `<table>.csv` (or `.parquet`);
under a heading that names none, to the heading's words (`headline`, `long_tables`). A definition
that reads "as in `<table>.csv`" is that table's.

A column of a report table is looked up in its own table, then among the long tables' key and run
columns (`model`, `lr`, `seed`, ...: the key columns every table starts with), then in the run-folder
table its values come from (SOURCES), then among the columns many tables share (`n_seeds`, `layer`,
`step`, ...: docs/metrics.md, "Shared rules").
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt

from .markup import esc, inline

FILE = Path(__file__).with_name("glossary.json")
DOCS = "docs/metrics.md"
FIRST_CELLS = ("column", "per-run value")
DEFINITION_CELLS = ("definition", "per-run quantity")
INTERVAL = ("mean", "ci_low", "ci_high")
KEY_TABLE = "long_tables"          # the long tables' key and run columns: every table has some of them
SHARED = "shared_rules"            # the columns many tables share

# The run-folder table (docs/metrics.md, Part 1) whose columns a compare table averages over seeds,
# where it has no definitions of its own; a `<name>_curves` table's is `<name>`.
SOURCES = {"curves": "metrics", "layer_curves": "layers", "grad_curves": "grads", "percentiles": "units",
           "depth_profile": "layers", "lr_curve": "summary", "runs": "summary"}


# --------------------------------------------------------------------------- docs/metrics.md -> definitions


def _names(cell: str) -> list[str]:
    """The column names a first cell gives: its code spans, braces expanded, interval triples merged;
    none where the cell says more than a list of names (`key columns without `lr``)."""
    if re.sub(r"`[^`]+`|,|\band\b", "", cell).strip():
        return []
    out = []
    for span in re.findall(r"`([^`]+)`", cell):
        if span.endswith("_*"):
            out.append(span[:-2])
            continue
        expanded = [span]
        while any("{" in s for s in expanded):
            s = next(s for s in expanded if "{" in s)
            head, body, tail = re.match(r"(.*?)\{([^}]*)\}(.*)", s).groups()
            at = expanded.index(s)
            expanded[at:at + 1] = [f"{head}{part.strip()}{tail}" for part in body.split(",")]
        stems = {s.rsplit("_" + INTERVAL[0], 1)[0] for s in expanded if s.endswith("_" + INTERVAL[0])}
        for stem in stems:
            if all(f"{stem}_{suffix}" in expanded for suffix in INTERVAL):
                expanded = [s for s in expanded if s not in {f"{stem}_{x}" for x in INTERVAL}] + [stem]
        out += [s for s in expanded if re.fullmatch(r"[A-Za-z_][\w]*", s)]
    return out


def _context(line: str) -> str | None:
    """The table a heading or bold line names (`summary.csv` -> summary), else None."""
    found = re.search(r"`([\w/.-]+)\.(?:csv|parquet)`", line)
    return found.group(1).rsplit("/", 1)[-1] if found else None


def _heading_words(line: str) -> str:
    text = re.sub(r"\(.*", "", line).replace("`", "").strip().lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def parse(text: str) -> dict[str, dict[str, str]]:
    """{table: {column: definition (markdown)}} from the tables of docs/metrics.md, in its order."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    out: dict[str, dict[str, str]] = {}
    context, row, header, in_head = "", [], [], False
    for i, tok in enumerate(tokens):
        if tok.type == "inline" and tokens[i - 1].type == "heading_open":
            context = _context(tok.content) or _heading_words(tok.content)
        elif tok.type == "inline" and tokens[i - 1].type == "paragraph_open" and tok.content.startswith("**"):
            context = _context(tok.content.split("**")[1]) or context
        elif tok.type == "thead_open":
            in_head, header = True, []
        elif tok.type == "thead_close":
            in_head = False
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "inline" and tokens[i - 1].type in ("th_open", "td_open"):
            row.append(tok.content.strip())
        elif tok.type == "tr_close" and in_head:
            header = [c.lower() for c in row]
        elif tok.type == "tr_close" and header and header[0] in FIRST_CELLS and len(row) == len(header):
            at = next((header.index(h) for h in DEFINITION_CELLS if h in header), len(header) - 1)
            for name in _names(row[0]):
                out.setdefault(context, {}).setdefault(name, row[at])
    for table, columns in out.items():        # "as in `batch_size.csv`": that table's definition
        for name, text_ in columns.items():
            other = re.fullmatch(r"as in `(\w+)\.csv`", text_)
            if other and name in out.get(other.group(1), {}):
                columns[name] = out[other.group(1)][name]
    return out


def dumps(definitions: dict[str, dict[str, str]]) -> str:
    """glossary.json's text: the same definitions give the same bytes."""
    return json.dumps({"source": DOCS, "tables": definitions}, indent=1, ensure_ascii=False) + "\n"


@cache
def load() -> dict[str, dict[str, str]]:
    return json.loads(FILE.read_text(encoding="utf-8"))["tables"]


def definition(table: str, column: str) -> str | None:
    """The markdown definition of `column` as table `table` shows it, or None (module docstring)."""
    tables = load()
    source = SOURCES.get(table, table.removesuffix("_curves"))
    # An interval column shown alone (`x_mean` without its bounds) is the mean over seeds of `x`.
    stem = next((column[:-len(s) - 1] for s in INTERVAL if column.endswith("_" + s)), None)
    for name in (column, stem) if stem else (column,):
        for where in (table, KEY_TABLE, source, SHARED):
            found = tables.get(where, {}).get(name)
            if found:
                return found
    return None


def plain(markdown: str) -> str:
    """A definition as a tooltip's text: without code and bold marks."""
    return markdown.replace("**", "").replace("`", "")


# --------------------------------------------------------------------------- the page's glossary


class Shown:
    """The columns a page shows that have a definition: their tooltips, and the Glossary of them."""

    def __init__(self):
        self.seen: dict[str, dict[str, list[str]]] = {}     # column -> definition -> tables, as shown

    def define(self, table: str):
        """For markup.table: a shown column of `table` -> its tooltip text (None: no definition)."""
        def tooltip(column: str) -> str | None:
            found = definition(table, column)
            if found is None:
                return None
            tables = self.seen.setdefault(column, {}).setdefault(found, [])
            if table not in tables:
                tables.append(table)
            return plain(found)
        return tooltip

    def section(self, ident: str = "glossary") -> str:
        """The Glossary: every column shown with a definition, alphabetically; a column that means one
        thing in some tables and another in others names the tables of each. Empty if none."""
        if not self.seen:
            return ""
        rows = []
        for column in sorted(self.seen):
            meanings = self.seen[column]
            if len(meanings) == 1:
                text = inline(next(iter(meanings)))
            else:
                text = "<ul>" + "".join(
                    f"<li>in {', '.join(f'<code>{esc(t)}</code>' for t in tables)}: {inline(m)}</li>"
                    for m, tables in meanings.items()) + "</ul>"
            rows.append(f"<dt><code>{esc(column)}</code></dt><dd>{text}</dd>")
        return (f'<h2 id="{ident}">Glossary</h2>'
                "<p>Each column shown above that <code>docs/metrics.md</code> defines, with its definition "
                "(also the tooltip of its heading). A column shown as <code>mean [low, high]</code> is the "
                "mean over seeds of the quantity defined here and its 95% t interval; the formulas and "
                "rules are in <code>docs/metrics.md</code>.</p>"
                f'<dl class="facts">{"".join(rows)}</dl>')
