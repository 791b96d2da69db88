"""The documentation agrees with itself: the site's navigation and the index list each page
once, and a speed figure quoted on two pages is the same figure."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_navigation_lists_each_page_once():
    pages = re.findall(r"^\s*-\s*[^:]+:\s*(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert pages and len(pages) == len(set(pages)), pages
    assert set(pages) == {p.name for p in DOCS.glob("*.md")}


def test_index_lists_each_page_once():
    section = (DOCS / "index.md").read_text().split("## Pages", 1)[1].split("\n## ", 1)[0]
    entries = re.findall(r"^\* \[[^\]]+\]\(([^)#]+\.md)\)", section, re.M)
    assert entries and len(entries) == len(set(entries)), entries


def test_l2_search_time_is_quoted_the_same_way():
    """quickstart.md and search.md quote the time of one default l2 search from the same measurement."""
    pattern = re.compile(r"l2 geometry it takes (\d+(?:–\d+)? s)")
    quick = pattern.findall((DOCS / "quickstart.md").read_text())
    search = pattern.findall((DOCS / "search.md").read_text())
    assert quick and search and set(quick) == set(search)
