"""Rewrite ics_cli/report/page/glossary.json from docs/metrics.md's tables (the report's column
definitions: its tooltips and Glossary). Run it after changing a table of docs/metrics.md; the test
`test_the_glossary_is_up_to_date_with_docs_metrics` (tests/test_page.py) fails until then.

    python scripts/make_glossary.py
"""

from pathlib import Path

from ics_cli.report.page import glossary

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    text = glossary.dumps(glossary.parse((ROOT / glossary.DOCS).read_text(encoding="utf-8")))
    glossary.FILE.write_text(text, encoding="utf-8")
    print(f"wrote {glossary.FILE.relative_to(ROOT)} ({len(text):,} bytes)")
