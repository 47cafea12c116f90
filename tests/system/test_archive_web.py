"""The archive's JSON API and exports over real HTTP (the device's bounded waitress server), on a
real store (SQLite; PostgreSQL too where marked) filled with the known lesson of
tests/archive_lesson.py: every answer is checked against the lesson's lines, times and pictures
written down there, not against what the code computed."""

from __future__ import annotations

import base64
import html.parser
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from edge_ocr import config as config_mod
from edge_ocr.archive.service import ArchiveService
from edge_ocr.archive.store import LessonRules, Store, open_store
from edge_ocr.archive.web import OPENAPI, ArchiveWeb, make_app
from edge_ocr.config import HttpConfig
from tests import archive_lesson as lesson
from tests.archive_lesson import CLOCK, L0, L1, L2, L3, L4, L5, TEXTS
from tests.broker import free_port
from tests.system.test_api import _start, call

TOKEN = "archive-t0ken"
V = lesson.versions


def serve(store: Store, token: str = "") -> Iterator[ArchiveWeb]:
    web = make_app(store, HttpConfig(port=free_port(), token=token), lesson.TIMEZONE)
    stop = _start(web)
    try:
        yield web
    finally:
        stop.set()


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = open_store(str(tmp_path_factory.mktemp("archive") / "archive.sqlite3"),
                       LessonRules(timezone=lesson.TIMEZONE))
    lesson.fill(store)
    yield store
    store.close()


@pytest.fixture(scope="module")
def web(sqlite_store: Store) -> Iterator[ArchiveWeb]:
    yield from serve(sqlite_store)


def get(web: ArchiveWeb, path: str, headers: dict | None = None):
    return call(web.port, "GET", path, headers=headers)


def ids(web: ArchiveWeb) -> tuple[int, dict[int, int]]:
    """The lesson's id and its versions' ids by seq, as the archive numbered them."""
    status, doc, _ = get(web, "/api/boards")
    assert status == 200
    lesson_id = doc["boards"][0]["newest_lessons"][0]["id"]
    status, doc, _ = get(web, f"/api/lessons/{lesson_id}")
    return lesson_id, {v["seq"]: v["id"] for v in doc["versions"]}


def check_lesson(web: ArchiveWeb) -> None:
    """Boards, the lesson, a version, search: the known lesson's right values."""
    status, doc, _ = get(web, "/api/boards")
    assert status == 200 and [b["device"] for b in doc["boards"]] == [lesson.DEVICE]
    board = doc["boards"][0]
    assert (board["lessons"], board["versions"]) == (1, 7)
    summary = board["newest_lessons"][0]
    assert (summary["versions"], summary["erases"], summary["max_lines"]) == (7, 1, 5)
    assert summary["start_ts"] == lesson.T0 and summary["end_ts"] == lesson.T0 + 360
    lesson_id, by_seq = ids(web)
    status, doc, _ = get(web, f"/api/lessons/{lesson_id}")
    assert [v["seq"] for v in doc["versions"]] == [10, 20, 30, 40, 50, 60, 70]
    assert [v["ts"] for v in doc["versions"]] == [lesson.T0 + 60 * k for k in range(7)]
    assert [v["lines"] for v in doc["versions"]] == [1, 2, 3, 4, 5, 3, 4]
    assert [v["picture"] for v in doc["versions"]] == [v.sha256 for v in V()]
    # each line: (the seq it appeared in, the last seq holding it, removed at)
    life = {s["text"]: ({v: k for k, v in by_seq.items()}[s["first_version"]],
                        {v: k for k, v in by_seq.items()}[s["last_version"]], s["removed_ts"]) for s in doc["spans"]}
    t_erase = lesson.T0 + 300
    assert life == {L0: (10, 50, t_erase), L1: (20, 50, t_erase), L2: (30, 70, None), L3: (40, 70, None),
                    L4: (50, 70, None), L5: (70, 70, None)}
    assert len(doc["spans"]) == 6 and all(s["replaces"] is None for s in doc["spans"])
    assert doc["erases"] == [{"ts": t_erase, "fullest_version": by_seq[50], "after_version": by_seq[50],
                              "removed": 2}]
    status, doc, _ = get(web, f"/api/versions/{by_seq[30]}")
    assert status == 200 and [ln["text"] for ln in doc["lines"]] == TEXTS[2] and doc["lesson_id"] == lesson_id
    assert doc["picture"] == V()[2].sha256 and doc["text"] == "\n".join(TEXTS[2])
    for query, text, seq in (("力", L5, 70), ("光合", L4, 50), ("friday", L3, 40), ("Homework", L1, 20)):
        status, doc, _ = get(web, "/api/search?q=" + quote(query))
        hits = [(h["text"], h["version_id"], h["lesson_id"]) for h in doc["hits"]]
        assert status == 200 and hits == [(text, by_seq[seq], lesson_id)], (query, doc)
        start = text.lower().index(query.lower())
        assert doc["hits"][0]["matches"] == [[start, start + len(query)]]
    status, doc, _ = get(web, "/api/search?q=" + quote("量子"))  # on no board
    assert status == 200 and doc["hits"] == []
    status, doc, _ = get(web, f"/api/search?q=ma&device={lesson.DEVICE}x")
    assert status == 200 and doc["hits"] == []


def test_boards_lesson_version_and_search_on_sqlite(web: ArchiveWeb) -> None:
    check_lesson(web)


def test_the_same_answers_on_postgresql(postgres_url: str) -> None:
    store = open_store(postgres_url, LessonRules(timezone=lesson.TIMEZONE))
    try:
        lesson.fill(store)
        for served in serve(store):
            check_lesson(served)
    finally:
        store.close()


def test_pictures_are_content_addressed_and_cached(web: ArchiveWeb) -> None:
    v = V()[4]
    status, data, r = get(web, f"/api/pictures/{v.sha256}")
    assert status == 200 and data == v.jpeg and r.getheader("Content-Type") == "image/jpeg"
    assert "immutable" in r.getheader("Cache-Control") and r.getheader("ETag") == f'"{v.sha256}"'
    status, data, r = get(web, f"/api/pictures/{v.sha256}", {"If-None-Match": f'"{v.sha256}"'})
    assert status == 304 and data == b""


@pytest.mark.parametrize(("path", "status", "says"), [
    ("/api/lessons/abc", 400, "positive integer"), ("/api/lessons/0", 400, "positive integer"),
    ("/api/lessons/99999", 404, "no lesson 99999"), ("/api/versions/-3", 400, "positive integer"),
    ("/api/versions/99999", 404, "no version 99999"), ("/api/lessons/99999/export.md", 404, "no lesson"),
    ("/api/pictures/NOTAHASH", 400, "sha256"), ("/api/pictures/" + "0" * 64, 404, "no picture"),
    ("/api/search", 400, "must not be empty"), ("/api/search?q=%20", 400, "must not be empty"),
    ("/api/search?q=a&limit=0", 400, "from 1 to 100"), ("/api/search?q=a&limit=ten", 400, "integer"),
    ("/api/boards?lessons=-1", 400, "from 0"), ("/api/boards/no-such-board/lessons", 404, "no board"),
    ("/api/boards/room-101/lessons?before=yesterday", 400, "Unix time"), ("/api/nothing", 404, "no such endpoint")])
def test_bad_requests_get_clear_json_errors(web: ArchiveWeb, path: str, status: int, says: str) -> None:
    got, doc, r = get(web, path)
    assert got == status and r.getheader("Content-Type") == "application/json"
    assert doc["success"] is False and says in doc["error"], doc


def test_lessons_page_back_in_time(web: ArchiveWeb) -> None:
    status, doc, _ = get(web, f"/api/boards/{lesson.DEVICE}/lessons?limit=5")
    assert status == 200 and [s["start_ts"] for s in doc["lessons"]] == [lesson.T0]
    status, doc, _ = get(web, f"/api/boards/{lesson.DEVICE}/lessons?before={lesson.T0}")
    assert status == 200 and doc["lessons"] == []


def test_token_guards_every_data_path(sqlite_store: Store) -> None:
    for web in serve(sqlite_store, TOKEN):
        lesson_id, by_seq = ids_with(web, TOKEN)
        paths = ["/api/boards", f"/api/boards/{lesson.DEVICE}/lessons", f"/api/lessons/{lesson_id}",
                 f"/api/lessons/{lesson_id}/export.md", f"/api/lessons/{lesson_id}/export.html",
                 f"/api/versions/{by_seq[10]}", f"/api/pictures/{V()[0].sha256}", "/api/search?q=ma"]
        for path in paths:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                            {"Authorization": f"Bearer {TOKEN}x"}):
                status, doc, r = get(web, path, headers)
                assert status == 401 and doc["error"] == "missing or wrong bearer token", (path, headers)
                assert r.getheader("WWW-Authenticate").startswith("Bearer")
            assert get(web, path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200, path
        assert get(web, "/")[0] == 200 and get(web, "/openapi.json")[0] == 200  # the page shell holds no data


def ids_with(web: ArchiveWeb, token: str) -> tuple[int, dict[int, int]]:
    auth = {"Authorization": f"Bearer {token}"}
    lesson_id = get(web, "/api/boards", auth)[1]["boards"][0]["newest_lessons"][0]["id"]
    return lesson_id, {v["seq"]: v["id"] for v in get(web, f"/api/lessons/{lesson_id}", auth)[1]["versions"]}


def test_openapi_describes_every_route(web: ArchiveWeb, tmp_path: Path) -> None:
    """The document served is the file, and its paths are exactly the routes of the app as the
    service runs it (the web app's, plus the service's /health and /metrics)."""
    status, spec, _ = get(web, "/openapi.json")
    assert status == 200 and spec == json.loads(OPENAPI.read_text())
    svc = ArchiveService(config_mod.load(None, environ={"EDGE_OCR_SERVICE_STATE_DIR": str(tmp_path)}))
    try:
        routes = {(re.sub(r"<(\w+)>", r"{\1}", r.rule), r.method.lower()) for r in svc.web.app.routes}
    finally:
        svc.store.close()
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert routes == documented
    for path, ops in spec["paths"].items():  # every path parameter is declared
        for op in ops.values():
            declared = {p.get("name") or p["$ref"].rsplit("/", 1)[-1] for p in op.get("parameters", [])}
            assert set(re.findall(r"{(\w+)}", path)) <= declared, path


# -- exports ----------------------------------------------------------------------------------

MD_TIMELINE = [f"- {CLOCK[0]} + added: {L0}", f"- {CLOCK[1]} + added: Homework: page 42, ex. 3-5",
               f"- {CLOCK[2]} + added: {L2}", f"- {CLOCK[3]} + added: {L3}", f"- {CLOCK[4]} + added: {L4}",
               f"- {CLOCK[5]} − removed: {L0}", f"- {CLOCK[5]} − removed: Homework: page 42, ex. 3-5",
               f"- {CLOCK[6]} + added: {L5}"]


def fenced_blocks(markdown: str) -> list[list[str]]:
    return [block.split("\n") for block in re.findall(r"```text\n(.*?)\n```", markdown, re.S)]


def test_markdown_export(web: ArchiveWeb) -> None:
    lesson_id, _ = ids(web)
    status, body, r = get(web, f"/api/lessons/{lesson_id}/export.md")
    text = body.decode()
    assert status == 200 and r.getheader("Content-Type").startswith("text/markdown")
    assert re.fullmatch(r'attachment; filename="lesson-\d+-room-101-20260309-0800\.md"',
                        r.getheader("Content-Disposition"))
    assert text.startswith(f"# {lesson.DEVICE} 2026-03-09 08:00\n")  # the title: device and local start time
    assert "2026-03-09, 08:00:00–08:06:00 (Asia/Shanghai)" in text
    assert fenced_blocks(text) == [TEXTS[4], TEXTS[6]]  # the fullest board before the erase, then the last
    headings = re.findall(r"^## (.*)$", text, re.M)
    assert headings[0].startswith("Board 1: 5 lines at 08:04:00, before the erase at 08:05:00 (2 lines removed)")
    assert headings[1].startswith("Board 2: 4 lines at 08:06:00") and headings[2] == "Timeline"
    timeline = text.split("## Timeline\n\n", 1)[1].strip().split("\n")
    assert timeline == MD_TIMELINE
    assert "omitted" in text and "data:" not in text and "](" not in text  # pictures omitted, said so


class Refs(html.parser.HTMLParser):
    """Every tag and every attribute that can load something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("src", "href", "srcset", "data", "poster",
                                                                   "action", "background", "style")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_export_is_one_self_contained_file(web: ArchiveWeb) -> None:
    lesson_id, _ = ids(web)
    status, body, r = get(web, f"/api/lessons/{lesson_id}/export.html")
    page = body.decode()
    assert status == 200 and r.getheader("Content-Type").startswith("text/html")
    parsed = Refs()
    parsed.feed(page)
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(parsed.tags)
    assert all(k == "src" and v.startswith("data:image/jpeg;base64,") for _, k, v in parsed.refs), parsed.refs
    assert "url(" not in page and "@import" not in page and "http" not in page.replace(
        'name="viewport"', "")
    pictures = [base64.b64decode(v.split(",", 1)[1]) for _, _, v in parsed.refs]
    assert pictures == [V()[4].jpeg, V()[6].jpeg]  # the fullest board before the erase, the last board
    text = "\n".join(t.strip() for t in parsed.text if t.strip())
    for line in TEXTS[4] + [L5]:
        assert line in text
    assert "08:05:00" in text and "removed" in text


@pytest.fixture
def written_lesson(tmp_path: Path) -> Iterator[Store]:
    store = open_store(str(tmp_path / "archive.sqlite3"), LessonRules(timezone=lesson.TIMEZONE))
    yield store
    store.close()


def test_exports_write_board_text_as_it_is(written_lesson: Store) -> None:
    """Markdown's own characters on a board stay text: fenced boards exact, timeline escaped."""
    tricky = ["# not a heading", "a*b*c_d", "```code```", "<b>x</b> | y"]
    v = V()[0]
    page = lesson.page_message(lesson.KnownVersion(10, v.ts, tricky, [b for b in V()[4].boxes[:4]], v.jpeg))
    assert written_lesson.ingest("page", page, v.ts)
    for served in serve(written_lesson):
        lesson_id = get(served, "/api/boards")[1]["boards"][0]["newest_lessons"][0]["id"]
        text = get(served, f"/api/lessons/{lesson_id}/export.md")[1].decode()
        fence = re.search(r"^(`{4,})text\n(.*?)\n\1$", text, re.M | re.S)
        assert fence and fence.group(2).split("\n") == tricky
        assert r"+ added: \# not a heading" in text and r"a\*b\*c\_d" in text and r"\<b\>x\</b\> \| y" in text
        page_html = get(served, f"/api/lessons/{lesson_id}/export.html")[1].decode()
        assert "&lt;b&gt;x&lt;/b&gt; | y" in page_html and "<b>x</b>" not in page_html


def test_a_failed_database_is_a_503_not_an_empty_answer(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    store = open_store(str(path), LessonRules(timezone=lesson.TIMEZONE))
    lesson.fill(store)
    store.close()
    path.write_bytes(b"not a database " * 1000)  # the disk under it gone bad
    for p in path.parent.glob("archive.sqlite3-*"):
        p.unlink()
    try:
        for served in serve(store):
            for url in ("/api/boards", "/api/search?q=ma", "/api/lessons/1"):
                status, doc, r = get(served, url)
                assert status == 503 and "database failed" in doc["error"], (url, doc)
                assert r.getheader("Retry-After") == "5"
    finally:
        store.close()


def test_a_line_changed_in_place_is_one_change_in_the_exports(written_lesson: Store) -> None:
    """Same box, other text (the teacher corrects 42 to 43): the timeline says changed, was …,
    and does not list the old text as removed."""
    corrected = "Homework: page 43, ex. 3-5"
    board = V()[1]  # two lines: L0 and L1
    first = lesson.KnownVersion(10, lesson.T0, [L0, L1], board.boxes, board.jpeg)
    second = lesson.KnownVersion(20, lesson.T0 + 60, [L0, corrected], board.boxes, board.jpeg)
    for v in (first, second):
        assert written_lesson.ingest("page", lesson.page_message(v), v.ts)
    for served in serve(written_lesson):
        lesson_id = get(served, "/api/boards")[1]["boards"][0]["newest_lessons"][0]["id"]
        text = get(served, f"/api/lessons/{lesson_id}/export.md")[1].decode()
        timeline = text.split("## Timeline\n\n", 1)[1].strip().split("\n")
        assert timeline == [f"- 08:00:00 + added: {L0}", f"- 08:00:00 + added: {L1}",
                            f"- 08:01:00 ~ changed: {corrected} (was: {L1})"]
        assert fenced_blocks(text) == [[L0, corrected]]
