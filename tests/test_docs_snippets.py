"""Run the ```python blocks of the tested pages in docs/, in order, one namespace per page.

Tested pages: quickstart.md, index.md, concepts.md, and any page that contains the line
``<!-- snippets: tested -->`` (pages whose blocks are fragments, e.g. with placeholder names,
leave it out). Blocks are run as written (the pages keep their settings small enough for that)
inside a temporary working directory; a page using ``lmodp.train`` is skipped without torch.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
OPT_IN = "<!-- snippets: tested -->"
ALWAYS = ("quickstart.md", "index.md", "concepts.md")
PAGES = sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()) and (p.name in ALWAYS or OPT_IN in p.read_text()))


def test_there_are_snippets():
    assert any(p.name == "quickstart.md" for p in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_snippets_run(page, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, match in enumerate(BLOCK.finditer(page.read_text())):
        code = match.group(1)
        if "lmodp.train" in code:
            pytest.importorskip("torch")
        exec(compile(code, f"{page.name}[python block {i + 1}]", "exec"), namespace)
