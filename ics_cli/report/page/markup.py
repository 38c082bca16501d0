"""HTML pieces of the report: escaping, ids, markdown (by markdown-it), tables, figures, the page shell.

Everything returns strings and depends only on its arguments, so the same inputs give the same bytes.
Nothing here points outside the page: links are `#id` anchors, figures are `data:` URIs, the style
and the one script (column sorting) are inline. The page reads without JavaScript.
"""

from __future__ import annotations

import base64
import html
import math
import re

import pandas as pd
from markdown_it import MarkdownIt

# A compare table's interval triple (`x_mean`, `x_ci_low`, `x_ci_high`) is shown as one column `x`.
CI_SUFFIXES = ("_mean", "_ci_low", "_ci_high")
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE", "UNDERPOWERED", "DESIGN CHECK")     # studies.claims.VERDICTS


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def slug(*parts) -> str:
    """A stable id from names: lower case, [a-z0-9-] only."""
    text = "-".join(str(p) for p in parts if p not in (None, ""))
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


# --------------------------------------------------------------------------- numbers


def number(x, digits: int = 4) -> str:
    """A value as a reader wants it: integers whole, floats to `digits` significant digits, NaN blank."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, (bool, str)):
        return str(x)
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
        return str(int(x))
    if isinstance(x, float):
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        return f"{x:.{digits}g}"
    return str(x)


def interval(mean, low, high) -> str:
    """'0.937 [0.921, 0.953]': rounded at the precision of the interval, as uncertainties are quoted:
    the nearer bound's distance from the mean keeps two significant digits when it starts with 1 or 2,
    one otherwise (the nearer one, so a skewed interval of a ratio is not rounded to its wide side)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    finite = [v for v in (low, high) if v is not None and isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:           # one seed, or an exact claim: no interval to show
        return number(float(mean), 3)
    if len(finite) < 2:      # an open side (a bracket with no upper bound): shown as –
        return f"{number(float(mean), 3)} [{number(low, 3) or '–'}, {number(high, 3) or '–'}]"
    half = min(abs(mean - low), abs(high - mean)) or (high - low) / 2
    big = max(abs(mean), abs(low), abs(high))
    exponent = math.floor(math.log10(half)) if half > 0 else 0
    decimals = -exponent + (1 if half > 0 and half / 10.0 ** exponent < 3 else 0)
    if half > 0 and big < 1e6 and decimals <= 6:
        decimals = max(decimals, 0)
        return f"{mean:.{decimals}f} [{low:.{decimals}f}, {high:.{decimals}f}]"
    return f"{number(float(mean), 3)} [{number(float(low), 3)}, {number(float(high), 3)}]"


# --------------------------------------------------------------------------- markdown


# The markdown the studies' protocols use, parsed as CommonMark by markdown-it with only what they need:
# paragraphs, `#` headings, lists, pipe tables; code spans, `*` emphasis and links. Off: raw HTML,
# entities and backslash escapes (shown as typed, escaped), images, autolinks, indented or fenced code,
# quotes, rules, setext headings and link references; `_` and `__` are text, not emphasis.
OFF = ["code", "fence", "blockquote", "hr", "reference", "html_block", "lheading",
       "escape", "entity", "autolink", "image", "html_inline"]

# Each element's HTML (open, close); one that closes a top-level block is followed by a newline.
TAGS = {
    "paragraph": ("<p>", "</p>"), "bullet_list": ("<ul>", "</ul>"), "ordered_list": ("<ol>", "</ol>"),
    "list_item": ("<li>", "</li>"), "table": ('<div class="scroll"><table>', "</table></div>"),
    "thead": ("<thead>", "</thead>"), "tbody": ("<tbody>", "</tbody>"), "tr": ("<tr>", "</tr>"),
    "th": ('<th scope="col">', "</th>"), "td": ("<td>", "</td>"),
    "em": ("<em>", "</em>"), "strong": ("<strong>", "</strong>"),
}


def _element(self, tokens, idx, options, env) -> str:
    """A render rule for the TAGS elements and headings, the latter shifted to start at env["level"]."""
    token = tokens[idx]
    kind = token.type.rsplit("_", 1)[0]
    if token.hidden:                        # the paragraph of a tight list's item
        return ""
    if kind in ("em", "strong") and token.markup not in ("*", "**"):
        return esc(token.markup)            # `_` and `__`
    if kind == "heading":
        h = min(6, env["level"] + int(token.tag[1]) - 1)
        open_, close = f"<h{h}>", f"</h{h}>"
    else:
        open_, close = TAGS[kind]
    if token.nesting == 1:
        start = token.attrs.get("start")    # an ordered list's first number, where not 1
        return open_ if start is None else f'<ol start="{esc(start)}">'
    if kind == "thead" and tokens[idx + 1].type != "tbody_open":
        close += "<tbody></tbody>"          # a table with no rows still has its body
    return close + ("\n" if token.block and token.level == 0 else "")


def _link(self, tokens, idx, options, env) -> str:
    """A link to env["link"](target) as an `#id`; a link it cannot map is shown as its text."""
    token = tokens[idx]
    if token.nesting == -1:
        return "</a>" if token.meta.get("anchor") else ""
    anchor = env["link"](token.attrs["href"]) if env.get("link") else None
    next(t for t in tokens[idx:] if t.type == "link_close").meta["anchor"] = anchor
    return f'<a href="#{esc(anchor)}">' if anchor else ""


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table").disable(OFF)
    md.validateLink = lambda url: True      # every target goes to `link`, unchanged
    md.normalizeLink = md.normalizeLinkText = lambda url: url
    rules = {"text": lambda self, tokens, idx, options, env: esc(tokens[idx].content),
             "code_inline": lambda self, tokens, idx, options, env: f"<code>{esc(tokens[idx].content)}</code>",
             "softbreak": lambda self, tokens, idx, options, env: " ",
             "hardbreak": lambda self, tokens, idx, options, env: " ",
             "link_open": _link, "link_close": _link}
    for kind in [*TAGS, "heading"]:
        rules[f"{kind}_open"] = rules[f"{kind}_close"] = _element
    for name, rule in rules.items():
        md.add_render_rule(name, rule)
    return md


BLOCKS = _parser()
INLINE = _parser().disable("newline")       # a line break in a line of text stays as it is


def inline(text: str, link=None) -> str:
    """Markdown inline code, bold, italics and links, escaped. `link(target)` maps a link target to an
    `#id` or None; a link it cannot map is shown as its text, so no link leaves the page."""
    return INLINE.renderInline(text, {"link": link})


def markdown(text: str, link=None, level: int = 3) -> str:
    """The markdown the studies' protocols use (see OFF): paragraphs, `#` headings (shifted to start
    at `level`), lists and pipe tables, as HTML blocks one a line; links as in `inline`."""
    return BLOCKS.render(text, {"link": link, "level": level}).removesuffix("\n")


# --------------------------------------------------------------------------- tables


def _merged(table: pd.DataFrame) -> list[tuple[str, list[str]]]:
    """Display columns: (name, source columns); an `x_mean`, `x_ci_low`, `x_ci_high` triple is one."""
    cols, out, used = list(table.columns), [], set()
    for c in cols:
        if c in used:
            continue
        stem = c[: -len("_mean")] if c.endswith("_mean") else None
        if stem and f"{stem}_ci_low" in cols and f"{stem}_ci_high" in cols:
            out.append((stem, [c, f"{stem}_ci_low", f"{stem}_ci_high"]))
            used.update(out[-1][1])
        else:
            out.append((c, [c]))
            used.add(c)
    return out


def _sort_value(x) -> str:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return "" if isinstance(x, float) and math.isnan(x) else repr(float(x))
    return str(x)


def table(df: pd.DataFrame, *, ident: str, caption: str, max_rows: int | None = None,
          cell=None, define=None) -> str:
    """A sortable table (click a column heading; without JavaScript it stays in file order).

    Interval triples are merged into "mean [low, high]"; `max_rows` shows the first rows only and says
    how many there are. `cell(column, value, row)` may return HTML for a cell (e.g. a verdict badge).
    `define(column)` may return the text of a heading's tooltip (its definition: glossary.Shown).
    """
    shown = df if max_rows is None or len(df) <= max_rows else df.head(max_rows)
    cols = _merged(df)

    def heading(name: str) -> str:
        text = define(name) if define else None
        title = f' title="{esc(text)}"' if text else ""
        return f'<th scope="col" aria-sort="none"{title}><button type="button">{esc(name)}</button></th>'
    head = "".join(heading(name) for name, _ in cols)
    rows = []
    for rec in shown.to_dict("records"):
        tds = []
        for name, sources in cols:
            value = rec[sources[0]]
            if len(sources) == 3:
                text = esc(interval(value, rec[sources[1]], rec[sources[2]]))
            else:
                custom = cell(name, value, rec) if cell else None
                text = custom if custom is not None else esc(number(value))
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            sort = f' data-sort="{esc(_sort_value(value))}"' if numeric else ""
            tds.append(f'<td{sort}{" class=num" if numeric else ""}>{text}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    note = ("" if len(shown) == len(df) else
            f" First {len(shown):,} of {len(df):,} rows; the whole table is the CSV file.")
    return (f'<div class="scroll"><table class="sortable" id="{esc(ident)}">'
            f"<caption>{caption}{esc(note)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def badge(verdict: str) -> str:
    """A verdict, marked by colour and by a symbol (readable in grey scale and by screen readers)."""
    mark = {"PASS": "✓", "FAIL": "✗", "INCONCLUSIVE": "?", "UNDERPOWERED": "–", "DESIGN CHECK": "○"}.get(verdict, "")
    kind = verdict.lower().replace(" ", "-") if verdict in VERDICTS else "other"
    return f'<span class="verdict {kind}"><span aria-hidden="true">{mark} </span>{esc(verdict)}</span>'


# --------------------------------------------------------------------------- figures


def figure(data: bytes, fmt: str, *, ident: str, caption: str, alt: str) -> str:
    mime = {"svg": "image/svg+xml", "png": "image/png"}[fmt]
    src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return (f'<figure id="{esc(ident)}"><img src="{src}" alt="{esc(alt)}" loading="lazy">'
            f"<figcaption>{caption}</figcaption></figure>")


# --------------------------------------------------------------------------- page


STYLE = """
:root { --pass: #1a7f37; --fail: #b42318; --inc: #9a6700; --line: #d0d7de; --muted: #57606a; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       max-width: 78rem; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
h1 { font-size: 1.8rem; margin-bottom: .2rem; } h2 { border-bottom: 1px solid var(--line); padding-bottom: .2rem; margin-top: 2.5rem; }
nav.toc h2 { margin-top: .3rem; }
nav.toc { background: #f6f8fa; border: 1px solid var(--line); padding: .5rem 1rem; border-radius: 6px; }
nav.toc ul { margin: .2rem 0; padding-left: 1.2rem; }
.provenance, caption, figcaption, .muted { color: var(--muted); }
.scroll { overflow-x: auto; margin: .8rem 0; }
table { border-collapse: collapse; font-size: 13px; }
caption { text-align: left; caption-side: top; padding: .2rem 0; }
th, td { border: 1px solid var(--line); padding: .2rem .45rem; vertical-align: top; }
th { background: #f6f8fa; position: sticky; top: 0; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th[title] button { text-decoration: underline dotted; }
th[aria-sort="ascending"] button::after { content: " ▲"; } th[aria-sort="descending"] button::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: 700; padding: 0 .35rem; border-radius: 4px; white-space: nowrap; color: #fff; }
.verdict.pass { background: var(--pass); } .verdict.fail { background: var(--fail); }
.verdict.inconclusive { background: var(--inc); } .verdict.other { background: var(--muted); }
.verdict.underpowered, .verdict.design-check { background: var(--muted); }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.claim { border-left: 4px solid var(--line); padding: .1rem 0 .1rem 1rem; margin: 1rem 0; }
.claim.pass { border-color: var(--pass); } .claim.fail { border-color: var(--fail); } .claim.inconclusive { border-color: var(--inc); }
details { margin: .6rem 0; } summary { cursor: pointer; font-weight: 600; }
code { background: #f6f8fa; padding: 0 .2rem; border-radius: 3px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; } dl.facts dt { font-weight: 600; }
@media print { details { display: block; } nav.toc { display: none; } }
"""

# Sorting only: a click on a column heading sorts its table by the cell's data-sort (numbers) or text.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th button").forEach(function (button, col) {
    button.addEventListener("click", function () {
      var th = button.parentNode, asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.setAttribute("aria-sort", "none"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col], s = cell.getAttribute("data-sort");
        return s !== null && s !== "" ? [0, parseFloat(s)] : [s === "" ? 2 : 1, cell.textContent];
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x[0] !== y[0]) return x[0] - y[0];
        var c = x[0] === 0 ? x[1] - y[1] : String(x[1]).localeCompare(String(y[1]));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n"
            '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"{body}\n<script>{SCRIPT}</script>\n</body>\n</html>\n")
