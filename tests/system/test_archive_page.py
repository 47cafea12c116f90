"""The archive's page in a real headless Chromium (tests/chromium.py), served with a token over a
real SQLite store holding the known lesson of tests/archive_lesson.py: the board and its lesson
listed, the slider showing each version's picture (its bytes hashed in the page) and lines, the
erase mark jumping to the fullest board, search in Chinese and English opening the version
where the text appeared, Chinese drawn with a CJK font, nothing shown without the token. The
lesson page's screenshot is kept in test-artifacts/archive_lesson.png (a small palette PNG; the one
in reports/ is a copy)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from edge_ocr.archive.store import LessonRules, open_store
from edge_ocr.archive.web import ArchiveWeb
from edge_ocr.paths import ROOT
from tests import archive_lesson as lesson
from tests.archive_lesson import FULLEST_BEFORE_ERASE, L0, L1, L3, L4, L5, TEXTS
from tests.chromium import DevTools, browser, needs_chromium
from tests.system.test_archive_web import serve

pytestmark = needs_chromium
TOKEN = "page-t0ken"
SCREENSHOT = ROOT / "test-artifacts" / "archive_lesson.png"
LINES = "Array.from(document.querySelectorAll('#lines li')).map(li => li.firstChild.textContent)"
ADDED = "Array.from(document.querySelectorAll('#lines li.added')).map(li => li.firstChild.textContent)"
REMOVED = "Array.from(document.querySelectorAll('#removed li')).map(li => li.textContent)"
HITS = "Array.from(document.querySelectorAll('#hits li a')).map(a => a.textContent)"
# the sha256 of the bytes the <img> shows, computed in the page
SHOWN_SHA = """(async () => { const img = document.getElementById('picture');
  if (img.hidden || !img.complete || !img.naturalWidth) return null;
  const bytes = await (await fetch(img.src)).arrayBuffer();
  return Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)))
    .map(b => b.toString(16).padStart(2, '0')).join(''); })()"""


@pytest.fixture
def web(tmp_path: Path) -> Iterator[ArchiveWeb]:
    store = open_store(str(tmp_path / "archive.sqlite3"), LessonRules(timezone=lesson.TIMEZONE))
    lesson.fill(store)
    try:
        yield from serve(store, TOKEN)
    finally:
        store.close()


def at_version(cdp: DevTools, k: int) -> None:
    """Wait until the page shows version ``k`` (0-based): its lines and its picture's bytes."""
    want = lesson.versions()[k]
    texts = json.dumps(json.dumps(TEXTS[k], ensure_ascii=False, separators=(",", ":")))  # as JSON.stringify writes
    shown = cdp.wait(f"JSON.stringify({LINES}) === {texts}"
                     f" && document.getElementById('slider').value === '{k}'")
    assert shown, (k, cdp.eval(LINES), cdp.eval("document.getElementById('slider').value"))
    assert cdp.wait(f"{SHOWN_SHA}.then(h => h === '{want.sha256}')"), f"version {k}'s picture is not shown"


def slide(cdp: DevTools, k: int) -> None:
    cdp.eval(f"(() => {{ const s = document.getElementById('slider'); s.value = {k};"
             " s.dispatchEvent(new Event('input')); })()")
    at_version(cdp, k)


def search(cdp: DevTools, query: str) -> list[str]:
    cdp.eval(f"document.getElementById('q').value = {json.dumps(query)};"
             "document.getElementById('search').requestSubmit()")
    assert cdp.wait("document.getElementById('resultstatus').textContent.indexOf('Searching') < 0"
                    " && document.getElementById('resultstatus').textContent !== ''")
    return cdp.eval(HITS)


def test_lesson_page_in_a_headless_browser(web: ArchiveWeb, tmp_path: Path) -> None:
    with browser(tmp_path / "profile", "1200,860") as cdp:
        cdp.navigate(f"http://127.0.0.1:{web.port}/")
        # without the token: the page loads, says what it needs and shows nothing of the archive
        assert cdp.wait("document.getElementById('notice').textContent.includes('token')")
        assert cdp.eval("document.querySelectorAll('#boards li').length") == 0
        cdp.eval(f"const t = document.getElementById('token'); t.value = {json.dumps(TOKEN)};"
                 "t.dispatchEvent(new Event('change'))")
        title = f"{lesson.DEVICE} 2026-03-09 08:00"
        assert cdp.wait(f"document.querySelector('#boards li a')?.textContent === {json.dumps(title)}")
        assert cdp.eval("document.querySelector('#boards h3').textContent").startswith(lesson.DEVICE)

        cdp.eval("document.querySelector('#boards li a').click()")
        at_version(cdp, 6)  # a lesson opens at its last version
        assert cdp.eval(ADDED) == [L5]
        assert "2026-03-09 08:06:00" in cdp.eval("document.getElementById('at').textContent")  # the archive's clock
        slide(cdp, 2)
        assert cdp.eval(ADDED) == [TEXTS[2][-1]] and cdp.eval(REMOVED) == []
        slide(cdp, 5)  # the erase: two lines gone, listed struck
        assert cdp.eval(ADDED) == [] and cdp.eval(REMOVED) == [L0, L1]
        assert cdp.eval("getComputedStyle(document.querySelector('#removed li')).textDecorationLine") == "line-through"
        slide(cdp, 0)
        assert cdp.eval("document.querySelectorAll('#marks button').length") == 1
        cdp.eval("document.querySelector('#marks button').click()")
        at_version(cdp, FULLEST_BEFORE_ERASE)  # the fullest board before the erase

        for query, text, k in (("Friday", L3, 3), ("光合", L4, 4), ("力", L5, 6)):
            slide(cdp, 1)  # elsewhere first, so following the link has to move
            assert search(cdp, query) == [text], query
            cdp.eval("document.querySelector('#hits li a').click()")
            at_version(cdp, k)
            assert cdp.eval("document.querySelector('#hits mark').textContent") == query
        assert search(cdp, "量子") == []
        assert "No line" in cdp.eval("document.getElementById('resultstatus').textContent")
        search(cdp, "力")
        cdp.eval("document.querySelector('#hits li a').click()")
        at_version(cdp, 6)

        # Chinese drawn with a CJK font on this machine (no web font: the page fetches nothing else)
        cdp("DOM.enable")
        cdp("CSS.enable")
        node = cdp("DOM.querySelector", nodeId=cdp("DOM.getDocument")["root"]["nodeId"], selector="#lines li")["nodeId"]
        fonts = [f["familyName"] for f in cdp("CSS.getPlatformFontsForNode", nodeId=node)["fonts"]]
        assert any("CJK" in f or "WenQuanYi" in f or "Micro Hei" in f for f in fonts), fonts

        shot = tmp_path / "lesson.png"
        cdp.screenshot(shot)
        SCREENSHOT.parent.mkdir(exist_ok=True)
        small = io.BytesIO()
        Image.open(shot).convert("RGB").quantize(128).save(small, "PNG", optimize=True)
        SCREENSHOT.write_bytes(small.getvalue())
