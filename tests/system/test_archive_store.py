"""The archive's store against both engines: a SQLite file and a real PostgreSQL started by the
tests (tests/postgres.py). Expected lessons, spans and erase points are written down from the
hand-built message sequences."""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import random
import sqlite3
import uuid
from pathlib import Path

import pytest

from edge_ocr.archive.store import LessonRules, MessageError, Period, StoreError, open_store

RULES = LessonRules(timezone="UTC", inactivity_s=1800, wiped_s=120)
T0 = 1704096000.0  # 2024-01-01 08:00 UTC, a Monday
DEVICE = "room-101"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "archive.sqlite3")
    return request.getfixturevalue("postgres_url")


def box(row: int) -> list[list[float]]:
    y = 40.0 * row
    return [[0.0, y], [300.0, y], [300.0, y + 24], [0.0, y + 24]]


def page(seq: int, ts: float, *texts: str | tuple[str, int], device: str = DEVICE) -> dict:
    """A page as the daemon publishes it (schemas/page.schema.json): line k on row k, or (text, row)."""
    rows = [t if isinstance(t, tuple) else (t, k) for k, t in enumerate(texts)]
    lines = [{"text": t, "confidence": 0.9, "box": box(k), "block": 0, "char_confidences": [0.9] * len(t),
              "cached": False} for t, k in rows]
    return {"msg_id": uuid.uuid4().hex, "seq": seq, "device": device, "ts": ts, "frame": {"seq": seq, "ts": ts},
            "text": "\n".join(t for t, _ in rows), "lines": lines, "surface": box(0), "surface_detected": True,
            "frame_size": [1280, 720], "model": "m", "detector": "d", "rotation": 0,
            "timings_ms": {"surface": 1, "split": 1, "recognise": 1, "total": 3}, "sharpness": 0.7, "blurred": False}


def snapshot(seq: int, page_seq: int, ts: float, jpeg: bytes, device: str = DEVICE) -> dict:
    return {"msg_id": uuid.uuid4().hex, "seq": seq, "device": device, "ts": ts, "page_seq": page_seq,
            "frame": page_seq, "width": 2, "height": 2, "sha256": hashlib.sha256(jpeg).hexdigest(),
            "jpeg": base64.b64encode(jpeg).decode()}


# A lesson: A B C → + D → B changed to B2, C wiped → + E → all wiped; then a new board 10 min later.
BOARD = [(1, 0, ["A 力的作用", "B 光合作用", "C 牛顿"]),
         (2, 30, ["A 力的作用", "B 光合作用", "C 牛顿", "D photosynthesis"]),
         (3, 60, ["A 力的作用", "B2 光合速率", ("D photosynthesis", 3)]),
         (4, 90, ["A 力的作用", "B2 光合速率", ("D photosynthesis", 3), ("E energy", 4)]),
         (5, 120, []),
         (6, 720, ["F 新的一课"])]


def ingest_board(store, order: list[int] | None = None) -> None:
    msgs = {seq: page(seq, T0 + dt, *texts) for seq, dt, texts in BOARD}
    for seq in order or sorted(msgs):
        assert store.ingest("page", msgs[seq], T0)


def check_board(store) -> None:
    """The expected lessons of BOARD: two, the first ended by the wipe."""
    first, second = sorted(store.lessons(DEVICE), key=lambda s: s.start_ts)
    assert (first.ended_by, first.versions, first.erases, first.max_lines) == ("wiped", 5, 2, 4)
    assert (second.start_ts, second.versions) == (T0 + 720, 1)
    lesson = store.lesson(first.id)
    seq_of = {v.id: v.seq for v in lesson.versions}
    assert [v.seq for v in lesson.versions] == [1, 2, 3, 4, 5]
    assert [v.lines for v in lesson.versions] == [3, 4, 3, 4, 0]
    life = {s.text: (seq_of[s.first_version], seq_of[s.last_version], s.removed_ts) for s in lesson.spans}
    assert life == {"A 力的作用": (1, 4, T0 + 120), "B 光合作用": (1, 2, T0 + 60), "C 牛顿": (1, 2, T0 + 60),
                    "D photosynthesis": (2, 4, T0 + 120), "B2 光合速率": (3, 4, T0 + 120), "E energy": (4, 4, T0 + 120)}
    by_text = {s.text: s for s in lesson.spans}
    assert by_text["B2 光合速率"].replaces == by_text["B 光合作用"].id
    assert [(e.ts, seq_of[e.fullest_version], seq_of[e.after_version], e.removed) for e in lesson.erases] == \
        [(T0 + 60, 2, 2, 1), (T0 + 120, 4, 4, 4)]


def test_lessons_spans_and_erase_points(database):
    store = open_store(database, RULES)
    ingest_board(store)
    check_board(store)
    assert store.devices()[0].lessons == 2 and store.devices()[0].versions == 6
    store.close()


def test_pages_out_of_order_end_in_the_right_place(database):
    store = open_store(database, RULES)
    ingest_board(store, [2, 6, 1, 4, 3, 5])
    check_board(store)
    store.close()


def test_duplicates_are_stored_once(database):
    store = open_store(database, RULES)
    p = page(1, T0, "A")
    ev = {"msg_id": uuid.uuid4().hex, "seq": 2, "device": DEVICE, "ts": T0, "frame": {"seq": 1, "ts": T0},
          "event": "added", "index": 0, "text": "A", "previous": None, "box": box(0), "confidence": 0.9}
    assert store.ingest("page", p, T0) and not store.ingest("page", p, T0 + 1)
    assert store.ingest("events", ev, T0) and not store.ingest("events", ev, T0 + 1)
    jpeg = b"\xff\xd8 a board \xff\xd9"
    s1, s2 = snapshot(3, 1, T0, jpeg), snapshot(4, 1, T0 + 30, jpeg)  # the same board twice
    assert store.ingest("snapshot", s1, T0) and not store.ingest("snapshot", s1, T0)
    assert store.ingest("snapshot", s2, T0)
    stats = store.stats()
    assert (stats["versions"], stats["events"], stats["snapshots"], stats["pictures"], stats["messages"]) == \
        (1, 1, 2, 1, 4)
    store.close()


def test_snapshot_before_its_page_and_bad_pictures(database):
    store = open_store(database, RULES)
    jpeg = b"\xff\xd8 board two \xff\xd9"
    assert store.ingest("snapshot", snapshot(10, 2, T0 + 31, jpeg), T0)
    store.ingest("page", page(1, T0, "A"), T0)
    store.ingest("page", page(2, T0 + 30, "A", "B"), T0)
    lesson = store.lesson(store.lessons()[0].id)
    assert [v.picture for v in lesson.versions] == [None, hashlib.sha256(jpeg).hexdigest()]
    assert store.picture(lesson.versions[1].picture) == jpeg
    bad = snapshot(11, 1, T0, jpeg) | {"sha256": "0" * 64}
    with pytest.raises(MessageError, match="hash"):
        store.ingest("snapshot", bad, T0)
    with pytest.raises(MessageError, match="lines"):
        store.ingest("page", {"msg_id": uuid.uuid4().hex, "seq": 3, "device": DEVICE, "ts": T0}, T0)
    with pytest.raises(MessageError, match="box"):
        store.ingest("page", page(3, T0, "A") | {"lines": [{"text": "A", "box": [[0, 0]]}]}, T0)
    assert store.stats()["messages"] == 3  # nothing of the refused ones
    store.close()


def test_too_large_notices_are_kept_as_such(database):
    store = open_store(database, RULES)
    notice = {"msg_id": uuid.uuid4().hex, "seq": 4, "device": DEVICE, "ts": T0, "too_large": {"bytes": 9, "limit": 8}}
    assert store.ingest("page", notice, T0) and not store.ingest("page", notice, T0)
    assert store.ingest("events", notice | {"msg_id": uuid.uuid4().hex}, T0)
    stats = store.stats()
    assert (stats["messages"], stats["versions"], stats["events"]) == (2, 0, 0)
    store.close()


def test_status_and_health_keep_the_last(database):
    store = open_store(database, RULES)
    store.ingest("status", {"device": DEVICE, "status": "online"}, T0)
    store.ingest("status", {"device": DEVICE, "status": "offline"}, T0 + 5)
    store.ingest("health", {"msg_id": uuid.uuid4().hex, "seq": 1, "device": DEVICE, "state": "ok"}, T0)
    store.ingest("health", {"msg_id": uuid.uuid4().hex, "seq": 2, "device": DEVICE, "state": "degraded"}, T0 + 9)
    (d,) = store.devices()
    assert (d.status, d.health["state"]) == ("offline", "degraded")
    store.close()


def test_lessons_by_timetable(database):
    rules = LessonRules((Period("Physics", (0,), "08:00", "08:45"),), timezone="UTC", inactivity_s=600)
    store = open_store(database, rules)
    for seq, dt in enumerate([-300, 60, 1500, 2700], 1):  # 07:55 | 08:01, 08:25 (a 24 min gap) | 08:45
        store.ingest("page", page(seq, T0 + dt, f"line {seq}"), T0)
    got = sorted(store.lessons(), key=lambda s: s.start_ts)
    assert [(s.title, s.versions, s.ended_by) for s in got] == \
        [("room-101 2024-01-01 07:55", 1, "timetable"), ("Physics", 2, "timetable"),
         ("room-101 2024-01-01 08:45", 1, "inactivity")]  # the last: over by the clock, long ago
    store.close()


def test_search_chinese_english_prefix_and_nothing(database):
    store = open_store(database, RULES)
    ingest_board(store)
    store.ingest("page", page(1, T0, "力学", "光合", device="other"), T0)

    def found(query: str, device: str | None = None) -> set[str]:
        return {h.text for h in store.search(query, device=device)}

    assert found("力") == {"A 力的作用", "力学"}
    assert found("光合") == {"B 光合作用", "B2 光合速率", "光合"}
    assert found("光合", device=DEVICE) == {"B 光合作用", "B2 光合速率"}
    assert found("energy") == {"E energy"}
    assert found("PHOTO") == {"D photosynthesis"}
    assert found("synthesis") == set() and found("引力") == set() and found("，") == set()
    (hit,) = store.search("光合作用")
    lesson = store.lesson(hit.lesson_id)
    first = next(v for v in lesson.versions if v.id == hit.version_id)
    assert (first.seq, hit.matches, hit.text) == (1, [(2, 6)], "B 光合作用")
    assert store.search("光合")[0].text == "光合"  # the whole line is the query: first
    store.close()


def test_prune_removes_old_lessons_and_shrinks_the_file(tmp_path):
    path = tmp_path / "archive.sqlite3"
    store = open_store(str(path), RULES)
    ingest_board(store)
    for k in range(20):  # 20 different boards, 64 KB each
        store.ingest("snapshot", snapshot(100 + k, 1 + k % 6, T0, random.Random(k).randbytes(65536)), T0)
    store.bulk_lines("old", [f"第{k}行 line {k}" for k in range(20000)], T0 - 86400 * 30)
    store.ingest("page", page(7, T0 + 86400 * 60, "kept"), T0)  # a new lesson, two months on
    before = store.stats()
    pruned = store.prune(keep_days=10, now=T0 + 86400 * 60)
    after = store.stats()
    assert (pruned.lessons, pruned.versions, pruned.pictures) == (2 + before["lessons"] - 3, 6 + 1000, 20)
    assert (after["lessons"], after["versions"], after["spans"], after["pictures"]) == (1, 1, 1, 0)
    assert pruned.bytes_after < pruned.bytes_before / 4
    assert path.stat().st_size <= pruned.bytes_after
    assert store.search("line") == [] and [h.text for h in store.search("kept")] == ["kept"]
    store.close()


def test_prune_on_postgresql(postgres_url):
    store = open_store(postgres_url, RULES)
    ingest_board(store)
    store.ingest("page", page(7, T0 + 86400 * 60, "kept"), T0)
    pruned = store.prune(keep_days=10, now=T0 + 86400 * 60)
    assert (pruned.lessons, pruned.versions) == (2, 6)
    assert [h.text for h in store.search("kept")] == ["kept"] and store.search("力") == []
    store.close()


def test_newer_schema_is_refused_by_name(database):
    open_store(database, RULES).close()
    if database.startswith("postgresql"):
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("INSERT INTO schema_version VALUES (99, '0099_future', 0)")
    else:
        with sqlite3.connect(database) as conn:
            conn.execute("INSERT INTO schema_version VALUES (99, '0099_future', 0)")
    with pytest.raises(StoreError, match="0099_future"):
        open_store(database, RULES)


def test_opening_twice_migrates_once(database):
    a, b = open_store(database, RULES), open_store(database, RULES)
    assert a.schema() == b.schema() == "0001_initial"
    a.close()
    b.close()


def _open_close(url: str) -> None:
    open_store(url, RULES).close()


def test_two_processes_opening_a_new_database_migrate_it_once(database):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_close, args=(database,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = open_store(database, RULES)
    with store._tx() as q:
        assert q.all("SELECT version, name FROM schema_version") == [(1, "0001_initial")]
    store.close()


def test_database_gone_is_a_store_error(tmp_path, postgres):
    with pytest.raises(StoreError, match="does not exist"):
        open_store(str(tmp_path / "no-such-folder" / "a.sqlite3"))
    url = postgres.new_database()
    store = open_store(url, RULES)
    postgres.stop()
    try:
        with pytest.raises(StoreError, match="postgresql"):
            store.ingest("page", page(1, T0, "A"), T0)
    finally:
        postgres.start()
    assert store.ingest("page", page(1, T0, "A"), T0)  # the next call connects again
    assert store.stats()["versions"] == 1
    store.close()
    with pytest.raises(StoreError, match="postgresql"):
        open_store(f"postgresql://postgres@127.0.0.1:{postgres.port + 1 if postgres.port < 65535 else 1}/x")


def _ingest_part(url: str, msgs: list[dict]) -> None:
    store = open_store(url, RULES)
    for m in msgs:
        store.ingest("page", m, T0)
    store.close()


def test_two_processes_ingesting_one_device_equal_one(postgres):
    rng = random.Random(7)
    texts = [(f"第{k}行 row {k}", k) for k in range(8)]  # (text, row): a line stays where it was written
    msgs, board = [], []
    for seq in range(1, 61):  # lines written, changed and wiped at random; a long pause at 31
        if board and rng.random() < 0.2:
            board.pop(rng.randrange(len(board)))
        elif len(board) < 6:
            board.append(rng.choice([t for t in texts if t[1] not in {r for _, r in board}]))
        msgs.append(page(seq, T0 + seq * 20 + (3600 if seq > 30 else 0), *[(t, r) for t, r in board]))
    one = postgres.new_database()
    _ingest_part(one, msgs)
    two = postgres.new_database()
    shuffled = msgs[:]
    rng.shuffle(shuffled)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_ingest_part, args=(two, shuffled[k::2])) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0

    def picture(url: str) -> list:
        store = open_store(url, RULES)
        out = []
        for s in sorted(store.lessons(limit=1000), key=lambda s: s.start_ts):
            lesson = store.lesson(s.id)
            seq = {v.id: v.seq for v in lesson.versions}
            out.append((s.start_ts, s.end_ts, s.ended_by, [v.seq for v in lesson.versions],
                        sorted((x.text, seq[x.first_version], seq[x.last_version], x.removed_ts) for x in lesson.spans),
                        [(e.ts, seq[e.fullest_version], e.removed) for e in lesson.erases]))
        store.close()
        return out

    expected = picture(one)
    assert len(expected) == 2 and [len(x[3]) for x in expected] == [30, 30]
    assert picture(two) == expected
