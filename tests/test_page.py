"""`ics report`: one self-contained HTML page, complete, linked inside, deterministic.

The page is parsed (html.parser) and checked against its inputs: every table and every figure of
the folders given is there, every claim with its verdict marked and its measured value, nothing
points outside the page, every internal link lands on an id, and the same inputs give the same
bytes but for the line that says when the page was made. The inputs are a synthetic sweep
(tests/fixtures_runs.py) and copies of committed study folders (results/ba2016, results/wu2021:
their CSVs, verdicts and README, as a clean clone has them, without run folders).
"""

from __future__ import annotations

import html
import re
import shutil
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from expect import error_line
from fixtures_runs import write_runs
from ics_cli.analyse import compare
from ics_cli.figures import draw
from ics_cli.analyse import outputs
from ics_cli.report import page
from ics_cli.store import runs as store
from ics_cli.cli import main
from ics_cli.report.page import figures as figs
from ics_cli.report.page import glossary
from ics_cli.analyse.keys import LONG_KEY, RUN_COLUMNS
from ics_cli.report.page.markup import interval, markdown, table
from ics_cli.report.page.sections import claim_refs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
NOW = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)


class Parsed(HTMLParser):
    """Everything the checks need: ids, links, image sources and alt texts, tables, headings, text."""

    def __init__(self, text: str):
        super().__init__()
        self.ids, self.hrefs, self.imgs, self.tables, self.headings, self.tags = [], [], [], [], [], []
        self.attr_values, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.attr_values += [v for _, v in attrs if v]
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a":
            self.hrefs.append(a.get("href"))
        if tag == "img":
            self.imgs.append((a.get("src", ""), a.get("alt", "")))
        if tag == "table":
            self.tables.append(a.get("id"))
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))

    def handle_data(self, data):
        self.text.append(data)


def check_self_contained(text: str) -> Parsed:
    """No external URL or asset, every internal link resolves, ids unique, images described."""
    p = Parsed(text)
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert len(p.ids) == len(set(p.ids)), [i for i in set(p.ids) if p.ids.count(i) > 1][:5]
    assert p.hrefs and all(h and h.startswith("#") for h in p.hrefs), [h for h in p.hrefs if not h or h[0] != "#"][:5]
    missing = sorted({h[1:] for h in p.hrefs} - set(p.ids))
    assert not missing, missing[:10]
    assert all(src.startswith("data:image/") for src, _ in p.imgs)
    assert all(alt.strip() for _, alt in p.imgs)
    assert not [v for v in p.attr_values if re.match(r"(https?:|ftp:|//|file:)", v)]
    assert "link" not in p.tags and text.count("<script") == 1 and "<script src" not in text
    assert p.headings.count(1) == 1 and p.headings[0] == 1
    return p


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A results tree: a comparison of synthetic runs (their folders deleted: CSVs only) and two
    committed studies, copied without their run folders."""
    root = tmp_path_factory.mktemp("page") / "results"
    sweep = write_runs(root.parent / "sweep")
    draw.save(compare.build(store.find_runs(sweep)), root / "default")
    shutil.rmtree(sweep)
    for name in ("ba2016", "wu2021"):
        shutil.copytree(RESULTS / name, root / name, ignore=shutil.ignore_patterns("runs"))
    return root


@pytest.fixture(scope="module")
def tree_page(tree):
    return page.build([tree], now=NOW, opts=page.Options(jobs=2))


def _figure_names(folder: Path) -> set[str]:
    return {p.stem for p in folder.iterdir() if p.suffix == ".png"}


def test_a_results_tree_report_holds_every_table_figure_and_claim(tree, tree_page):
    p = check_self_contained(tree_page)
    ids = set(p.ids)
    # The comparison: every table (by id) and every figure drawn, with its caption.
    for name in outputs.load(tree / "default"):
        assert f"results-default-table-{name.replace('_', '-')}" in p.tables, name
    assert len(list((tree / "default" / "long").glob("*.csv"))) >= 5
    for long in (tree / "default" / "long").glob("*.csv"):    # the per-seed tables are named
        assert f"<code>long/{long.name}</code>" in tree_page, long.name
    for stem in _figure_names(tree / "default"):
        assert f"results-default-fig-{stem.replace('_', '-')}" in ids, stem
    for study in ("ba2016", "wu2021"):
        folder = tree / study
        # Its own figures are drawn; its compare/ figures are named (not drawn) in a tree report.
        for stem in _figure_names(folder / "figures"):
            assert f"results-study-{study}-fig-{stem.replace('_', '-')}" in ids, (study, stem)
        assert not [i for i in ids if i.startswith(f"results-study-{study}-compare-fig-")]
        named = "".join(p.text)
        for stem in _figure_names(folder / "compare"):
            assert stem in named, stem
        for name in outputs.load(folder / "compare"):
            assert f"results-study-{study}-compare-table-{name.replace('_', '-')}" in p.tables
        for group in (folder / "tables").iterdir():
            for csv in group.glob("*.csv"):
                gid = f"results-study-{study}-group-{group.name}-{csv.stem}".replace("_", "-")
                assert gid in p.tables, gid
        verdicts = pd.read_csv(folder / "verdicts.csv", keep_default_na=False, na_values=[""])
        assert f"results-study-{study}-verdicts" in p.tables
        for r in verdicts.to_dict("records"):
            block = re.search(rf'<div class="claim ([\w-]+)" id="results-study-{study}-claim-{r["claim_id"].lower()}">'
                              r"(.*?)</div>", tree_page, re.S)
            assert block, r["claim_id"]
            kind = r["verdict"].lower().replace(" ", "-")
            assert block.group(1) == kind
            assert f'class="verdict {kind}"' in block.group(2)
            assert interval(r["measured"], r["ci_low"], r["ci_high"]) in block.group(2)
    # Findings come first: the sentences of results/README.md for the studies present, their links
    # turned into anchors of the page; the comparison's headline; each study's verdicts in a line.
    assert p.ids.index("findings") < min(p.ids.index(f"results-study-{s}") for s in ("ba2016", "wu2021"))
    findings = tree_page.split('id="findings"')[1].split('id="results-default"')[0]
    assert "Caveat:" in findings and "red-team" in findings
    l1 = pd.read_csv(tree / "ba2016" / "verdicts.csv").set_index("claim_id")["verdict"]["L1"]
    if l1 in ("PASS", "FAIL"):           # a finding the review left standing links its claim and figure
        assert 'href="#results-study-ba2016-fig-fig6-test-error"' in findings
    assert '<a href="#results-study-wu2021-claim-p3">P3</a>' in findings         # in wu2021's verdict line
    assert "every norm at one matched learning rate" in findings and 'href="#results-default-headline"' in findings
    assert set(re.findall(r'href="#results-study-wu2021-claim-(\w+)"', findings)) == {"p1", "p2", "p3", "p4", "p5"}
    provenance = tree_page.split('id="provenance"')[1]
    assert "Comparison: default: folder" in provenance and "seeds" in provenance


def test_evidence_links_go_to_the_figures_a_claim_names(tree_page):
    # wu2021's P3 is shown by norm_batch (caption "P3, P4, P5: ..."), P1 by ema_vs_precise.
    p3 = re.search(r'id="results-study-wu2021-claim-p3">(.*?)</div>', tree_page, re.S).group(1)
    assert 'href="#results-study-wu2021-fig-norm-batch"' in p3
    assert "ema-vs-precise" not in p3


def test_the_same_inputs_give_the_same_bytes_but_the_made_line(tree, tree_page):
    again = page.build([tree], now=datetime(2027, 5, 6, tzinfo=timezone.utc), opts=page.Options(jobs=1))
    made = re.compile(r'^<p class="provenance" id="made">.*</p>$', re.M)
    assert len(made.findall(again)) == 1 and made.sub("", again) == made.sub("", tree_page)
    assert again != tree_page


def test_a_single_study_report_draws_its_compare_figures(tree):
    text = page.build([tree / "ba2016"], now=NOW)
    p = check_self_contained(text)
    for stem in _figure_names(tree / "ba2016" / "compare"):
        assert f"ba2016-compare-fig-{stem.replace('_', '-')}" in p.ids, stem
    assert "Protocol" in "".join(p.text)


def test_a_sweep_without_compare_is_compared_for_the_report_and_left_untouched(tmp_path):
    sweep = write_runs(tmp_path / "sweep")
    before = sorted(str(q) for q in sweep.rglob("*"))
    out = tmp_path / "r.html"
    assert main(["report", str(sweep), "-o", str(out)]) == 0
    assert sorted(str(q) for q in sweep.rglob("*")) == before
    p = check_self_contained(out.read_text())
    assert "sweep-table-summary" in p.tables and "sweep-headline-table" in p.tables
    assert any(i.startswith("sweep-fig-drift") for i in p.ids)
    assert "ics-report-" not in out.read_text()       # no temporary folder named in the provenance
    assert f"{sweep} (compared for this report)" in out.read_text()


def test_too_large_svg_figures_fall_back_to_png_when_that_is_smaller(monkeypatch):
    sizes = {"svg": {"dense": 900, "sparse": 300, "huge": 900}, "png": {"dense": 400, "sparse": 800, "huge": 1200}}
    drawn = []

    def fake(folder, fmt):
        drawn.append(fmt)
        return [figs.Drawn(name, b"x" * n, fmt, "c") for name, n in sizes[fmt].items()]
    monkeypatch.setattr(figs, "_of_compare", fake)
    monkeypatch.setattr(figs, "SVG_LIMIT", 500)
    got = figs.of("compare", Path("."), "svg")
    # dense: SVG over the limit, PNG smaller -> PNG; sparse: under the limit; huge: PNG is no smaller.
    assert [(d.name, d.fmt) for d in got] == [("dense", "png"), ("sparse", "svg"), ("huge", "svg")]
    drawn.clear()
    monkeypatch.setattr(figs, "SVG_LIMIT", 1000)
    assert {d.fmt for d in figs.of("compare", Path("."), "svg")} == {"svg"} and drawn == ["svg"]
    assert {d.fmt for d in figs.of("compare", Path("."), "png")} == {"png"}


@pytest.mark.parametrize("argv, needle", [
    (["report", "no-such-folder"], "no such folder"),
    (["report", "tests"], "holds no comparison"),
    (["report", "results/ba2016", "-o", "no-such-folder/r.html"], "does not exist"),
    (["report", "results/ba2016", "-o", "results"], "is a folder"),
    (["report", "results/ba2016", "--max-rows", "0"], "--max-rows"),
    (["report", "results/ba2016", "--format", "pdf"], "pdf"),
])
def test_bad_input_is_one_line_and_writes_nothing(argv, needle, capsys, monkeypatch):
    monkeypatch.chdir(RESULTS.parent)
    before = set(RESULTS.rglob("report.html"))
    error_line(main(argv), capsys, needle)
    assert set(RESULTS.rglob("report.html")) == before


@pytest.mark.parametrize("caption, refs", [
    ("P1, P2: test error", ["P1", "P2"]),
    ("Fig. 3 (B2a–c): size of", ["B2a", "B2b", "B2c"]),
    ("R1–R6: test accuracy", ["R1", "R2", "R3", "R4", "R5", "R6"]),
    ("Fig. 1a (I1, I2): test accuracy", ["I1", "I2"]),
    ("Fig. 2 (B1, B1c): relative loss", ["B1", "B1c"]),
    ("Test accuracy and training loss", []),
])
def test_claim_refs_reads_the_claim_ids_a_caption_names(caption, refs):
    assert claim_refs(caption) == refs


@pytest.mark.parametrize("args, text", [
    ((0.93721, 0.921, 0.953), "0.937 [0.921, 0.953]"),
    ((0.94, 0.931, 0.949), "0.940 [0.931, 0.949]"),
    ((-0.0021, -0.00285, -0.00134), "-0.0021 [-0.0029, -0.0013]"),
    ((238.1, 219.3, 256.2), "238 [219, 256]"),
    ((3.55, 1.45, 8.69), "3.5 [1.4, 8.7]"),     # skewed (a ratio): rounded at its nearer side
    ((0.5, float("nan"), float("nan")), "0.5"),                 # one seed: no interval
    ((17800.0, 10700.0, float("nan")), "17800 [10700, –]"),   # an open upper side
])
def test_intervals_are_rounded_at_their_precision(args, text):
    assert interval(*args) == text


def test_protocol_markdown_becomes_headings_lists_and_tables():
    html = markdown("Intro with `code` and **bold** and [a link](x.md).\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                    "* one\n  continued\n* two", link=lambda t: None)
    assert "<code>code</code>" in html and "<strong>bold</strong>" in html
    assert "<a " not in html and "a link" in html          # a link with no anchor in the page is text
    assert "<th scope=\"col\">a</th>" in html and "<td>2</td>" in html
    assert "<li>one continued</li>" in html and "<li>two</li>" in html


# --------------------------------------------------------------------------- the glossary (issue 27)


def _headings(text: str, table_id: str) -> dict[str, str | None]:
    """A table's column headings, each with its tooltip (None: no title attribute)."""
    inner = re.search(rf'<table class="sortable" id="{table_id}">(.*?)</thead>', text, re.S).group(1)
    return {name: (html.unescape(title) if title else None) for title, name in
            re.findall(r'<th scope="col" aria-sort="none"(?: title="([^"]*)")?><button type="button">([^<]*)'
                       r"</button></th>", inner)}


def test_the_glossary_is_up_to_date_with_docs_metrics():
    """glossary.json is what scripts/make_glossary.py makes of docs/metrics.md now (rerun it if not)."""
    docs = (ROOT / glossary.DOCS).read_text(encoding="utf-8")
    assert glossary.FILE.read_text(encoding="utf-8") == glossary.dumps(glossary.parse(docs)), \
        "docs/metrics.md changed: run `python scripts/make_glossary.py`"
    tables = glossary.parse(docs)
    assert tables["summary"]["n_seeds"] == "aggregated runs (completed + diverged)"
    assert tables["summary"]["final_test_acc"].startswith("final test accuracy")     # an interval triple
    assert tables["best_lr"]["n_seeds"] != tables["summary"]["n_seeds"]                 # per table
    assert tables["test_stats"]["norm_batch"] == tables["batch_size"]["norm_batch"]     # "as in batch_size.csv"
    assert list(tables[glossary.KEY_TABLE]) == [*LONG_KEY, *RUN_COLUMNS]               # the long tables' key
    assert "lr" not in tables["best_lr"]               # "key columns without `lr`" names no column


def test_parse_reads_names_braces_triples_and_the_table_a_heading_names():
    text = ("### `t.csv` — one row per thing\n\n| column | definition |\n|---|---|\n"
            "| key columns | see above |\n| `a_{mean,ci_low,ci_high}` | A |\n| `b_*`, `c` | B |\n"
            "| `d_{x,y}` | D |\n\n**`u.csv` — another**\n\n| column | role | per-run quantity |\n|---|---|---|\n"
            "| `c` | key | as in `t.csv` |\n\n### Headline (`x`)\n\n| column | definition |\n|---|---|\n"
            "| `e` | **E** |\n\n| table | definition |\n|---|---|\n| `f` | not a column table |\n")
    assert glossary.parse(text) == {"t": {"a": "A", "b": "B", "c": "B", "d_x": "D", "d_y": "D"},
                                    "u": {"c": "B"}, "headline": {"e": "**E**"}}
    assert glossary.plain("**E** is `e`") == "E is e"


def test_a_compare_page_explains_its_columns_in_tooltips_and_a_glossary(tmp_path, monkeypatch):
    monkeypatch.setattr(figs, "draw_all", lambda jobs, fmt="svg", workers=None: {j: [] for j in jobs})
    sweep = write_runs(tmp_path / "sweep")
    outputs.save(compare.build(store.find_runs(sweep)), tmp_path / "compare")
    text = page.build([tmp_path / "compare"], now=NOW)
    p = check_self_contained(text)
    tables = glossary.load()
    summary = _headings(text, "compare-table-summary")
    assert summary["n_seeds"] == "aggregated runs (completed + diverged)"
    assert summary["final_test_acc"] == glossary.plain(tables["summary"]["final_test_acc"])
    assert summary["model"] and summary["lr"] == glossary.plain(tables[glossary.KEY_TABLE]["lr"])
    assert _headings(text, "compare-table-best-lr")["n_seeds"] == glossary.plain(tables["best_lr"]["n_seeds"])
    head = _headings(text, "compare-headline-table")
    assert head["drift_linear_scaled"].startswith("mean over hidden layers of drift_mean_scaled_total_mean")
    curves = _headings(text, "compare-table-curves")         # values from metrics.csv's definitions
    assert curves["test_acc"] == glossary.plain(tables["metrics"]["test_acc"])
    runs = _headings(text, "compare-table-runs")
    assert runs["status"].startswith("the run's status") and runs["path"] == glossary.plain(tables["runs"]["path"])
    assert _headings(text, "compare-table-drift")["layer"] == glossary.plain(tables[glossary.SHARED]["layer"])

    # The Glossary: the last section, in the contents, every column shown with a definition and no other.
    assert text.rindex("<section") == text.index('<section aria-labelledby="glossary">')
    assert 'href="#glossary"' in text and "Glossary" in p.text
    section = text[text.index('<h2 id="glossary">'):]
    listed = re.findall(r"<dt><code>([^<]+)</code></dt>", section)
    titled = {name for m in re.findall(r'<table class="sortable" id="([^"]+)"', text)
              for name, title in _headings(text, m).items() if title}
    assert listed == sorted(titled) and {"n_seeds", "drift_mean_total", "model"} <= set(listed)
    # n_seeds means one thing in summary and another in best_lr: the Glossary names the tables of each.
    n_seeds = re.search(r"<dt><code>n_seeds</code></dt><dd>(.*?)</dd>", section, re.S).group(1)
    assert "in <code>best_lr</code>" in n_seeds and "<code>summary</code>" in n_seeds
    assert "sharpness_min" not in listed                   # defined in docs, not shown here


def test_a_column_without_a_definition_gets_no_tooltip_and_no_glossary_entry():
    shown = glossary.Shown()
    df = pd.DataFrame({"mystery": [1], "n_seeds": [2], "x_mean": [0.5], "x_ci_low": [0.4], "x_ci_high": [0.6],
                       "final_test_acc_mean": [0.9]})
    text = table(df, ident="t", caption="c", define=shown.define("summary"))
    assert _headings(text, "t") == {"mystery": None, "n_seeds": "aggregated runs (completed + diverged)",
                                    "x": None, "final_test_acc_mean": glossary.plain(
                                        glossary.load()["summary"]["final_test_acc"])}
    assert list(shown.seen) == ["n_seeds", "final_test_acc_mean"]
    assert glossary.Shown().section() == ""               # nothing shown: no Glossary


def test_a_sweeps_findings_name_drift_and_gradients_beside_accuracy():
    from ics_cli.report.page.sections import spread_findings

    rows = pd.DataFrame(dict(norm=["none", "batch", "layer"], drift_linear_scaled=[9.0, 1.5, 3.0],
                             grad_norm_jitter=[0.2, 0.05, float("nan")]))
    lines = spread_findings("Comparison", "mlp", rows, "c")
    assert len(lines) == 2                                     # no drift_norm_eval column: no line for it
    assert "lowest with batch (1.5), highest with none (9)" in lines[0] and "drift of the input" in lines[0]
    assert "lowest with batch (0.05), highest with none (0.2)" in lines[1]     # NaN left out, not ranked
    assert spread_findings("C", "mlp", rows.head(1), "c") == []                  # one norm: nothing to compare
