"""`ics report`: one self-contained HTML page, complete, linked inside, deterministic.

The page is parsed (html.parser) and checked against its inputs: every table and every figure of
the folders given is there, every claim with its verdict marked and its measured value, nothing
points outside the page, every internal link lands on an id, and the same inputs give the same
bytes but for the line that says when the page was made. The inputs are a synthetic sweep
(tests/fixtures_runs.py) and copies of committed study folders (results/ba2016, results/wu2021:
their CSVs, verdicts and README, as a clean clone has them, without run folders).
"""

from __future__ import annotations

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
from ics_cli.report.page.markup import interval, markdown
from ics_cli.report.page.sections import claim_refs

RESULTS = Path(__file__).resolve().parents[1] / "results"
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
