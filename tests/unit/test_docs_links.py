"""Every relative link in README.md and docs/*.md points to a file that exists and, with a
#fragment, to a heading in it (GitHub's anchors: lower case, punctuation dropped, spaces to
hyphens), so moving text between the README and docs/ cannot leave a reader at a dead end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge_ocr.paths import ROOT

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.S)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors of a Markdown text (a repeated heading gets -1, -2, …)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", FENCE.sub("", markdown), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(doc: Path) -> list[str]:
    return [t for t in LINK.findall(CODE.sub("", doc.read_text(encoding="utf-8")))
            if not re.match(r"[a-z]+:", t)]


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_anchors_follow_github() -> None:
    text = ("# Install on a Raspberry Pi\n## Re-training the model (host only)\n## Checks beyond `make test`\n"
            "## Setup\n## Setup\n")
    assert anchors(text) == {"install-on-a-raspberry-pi", "re-training-the-model-host-only",
                             "checks-beyond-make-test", "setup", "setup-1"}


def test_a_dead_link_is_found(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("# A\n[ok](#a) [gone](b.md) [`code`](a.md#nowhere) ![img](x.png) [web](https://x.org)\n")
    assert links(doc) == ["#a", "b.md", "a.md#nowhere"]
    assert broken(doc) == ["b.md", "a.md#nowhere"]


def broken(doc: Path) -> list[str]:
    bad = []
    for target in links(doc):
        path, _, fragment = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists() or (fragment and (dest.suffix != ".md" or fragment not in anchors(dest.read_text(
                encoding="utf-8")))):
            bad.append(target)
    return bad


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    assert broken(doc) == [], f"{doc.relative_to(ROOT)}: dead links"


def test_the_readme_leads_to_every_doc() -> None:
    readme = ROOT / "README.md"
    linked = {(readme.parent / t.partition("#")[0]).resolve() for t in links(readme)}
    assert [d.name for d in DOCS[1:] if d.resolve() not in linked] == []
