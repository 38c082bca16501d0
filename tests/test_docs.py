"""The docs and the packaging say true things: every link and docs path resolves, pins live in one place."""

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_every_docs_path_named_in_the_code_exists():
    for source in (ROOT / "ics_cli").rglob("*.py"):
        for doc in re.findall(r"docs/[\w.-]+\.md", source.read_text()):
            assert (ROOT / doc).is_file(), f"{source.relative_to(ROOT)} names missing {doc}"


def test_exact_pins_live_in_constraints_not_in_the_package():
    """A researcher's own CUDA torch must satisfy the package; constraints.txt reproduces ours."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in deps if "==" in d], deps
    assert any(d.startswith("scipy") for d in deps)
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1" and "scipy" in pins
