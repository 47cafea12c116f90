"""What both engines share: message checks, ingest, lesson derivation in the database, queries,
search and retention, in SQL both SQLite and PostgreSQL run (``?`` placeholders; the PostgreSQL
engine turns them into ``%s``). An engine adds its connection, how a write transaction starts
(SQLite: ``BEGIN IMMEDIATE``, one writer at a time; PostgreSQL: the device's row locked, so
workers sharing a subscription serialise per device), bulk copy, sizes and vacuum."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

from edge_ocr.archive import lessons as lz
from edge_ocr.archive import search as sz
from edge_ocr.archive.base import LessonRules, MessageError, Pruned, StoreError
from edge_ocr.archive.records import (
    DeviceSummary,
    ErasePoint,
    Hit,
    Lesson,
    LessonSummary,
    Span,
    Version,
    VersionRef,
)
from edge_ocr.page.diff import LineEvent

KINDS = ("page", "events", "health", "status", "snapshot")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _num(doc: dict, key: str) -> float:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise MessageError(f"{key} missing or not a number")
    return float(v)


def _int(doc: dict, key: str) -> int:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise MessageError(f"{key} missing or not an integer")
    return v


class Q:
    """A transaction's cursor: ``one`` (first row or None), ``all``, ``run``, ``many``."""

    def __init__(self, cur: Any, convert: bool) -> None:
        self.cur, self._convert = cur, convert

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._convert else sql

    def run(self, sql: str, *args: Any) -> Any:
        return self.cur.execute(self._sql(sql), args)

    def one(self, sql: str, *args: Any) -> Any:
        self.cur.execute(self._sql(sql), args)
        return self.cur.fetchone()

    def all(self, sql: str, *args: Any) -> list[Any]:
        self.cur.execute(self._sql(sql), args)
        return self.cur.fetchall()

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(self._sql(sql), rows)


class DbSink:
    """Lesson derivation (:mod:`edge_ocr.archive.lessons`) written to the tables."""

    def __init__(self, q: Q, device_id: int) -> None:
        self.q, self.device_id = q, device_id

    def begin_lesson(self, title: str, start_ts: float, first_seq: int) -> int:
        return self.q.one("INSERT INTO lessons (device_id, title, start_ts, end_ts, first_seq, last_seq)"
                          " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                          self.device_id, title, start_ts, start_ts, first_seq, first_seq)[0]

    def end_lesson(self, state: lz.State, ended_by: str) -> None:
        self.q.run("UPDATE lessons SET title = ?, end_ts = ?, last_seq = ?, ended_by = ?, versions = ?, erases = ?,"
                   " max_lines = ?, state = NULL WHERE id = ?", state.title, state.end_ts, state.last_seq, ended_by,
                   state.versions, state.erases, state.max_lines, state.lesson_id)

    def save(self, state: lz.State) -> None:
        self.q.run("UPDATE lessons SET title = ?, end_ts = ?, last_seq = ?, versions = ?, erases = ?, max_lines = ?,"
                   " state = ? WHERE id = ?", state.title, state.end_ts, state.last_seq, state.versions,
                   state.erases, state.max_lines, state.to_json(), state.lesson_id)

    def open_span(self, lesson_id: int, text: str, version: int, ts: float, box: lz.Box | None,
                  replaces: int | None) -> int:
        sid = self.q.one("INSERT INTO spans (lesson_id, device_id, text, first_version, added_ts, replaces, box)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                         lesson_id, self.device_id, text, version, ts, replaces, _json(box))[0]
        self.q.many("INSERT INTO terms (term, span_id) VALUES (?, ?)", [(t, sid) for t in sz.terms_of(text)])
        return sid

    def close_span(self, span_id: int, last_version: int, removed_ts: float | None, box: lz.Box | None) -> None:
        self.q.run("UPDATE spans SET last_version = ?, removed_ts = ?, box = ? WHERE id = ?",
                   last_version, removed_ts, _json(box), span_id)

    def erase(self, lesson_id: int, point: ErasePoint) -> None:
        self.q.run("INSERT INTO erases (lesson_id, ts, fullest_version, after_version, removed) VALUES (?, ?, ?, ?, ?)",
                   lesson_id, point.ts, point.fullest_version, point.after_version, point.removed)


class SqlStore:
    """The archive over one database connection (guarded by a lock: the subscriber and the web
    server's threads share it). Engines override the hooks at the end."""

    engine = ""
    convert = False  # "?" → "%s"
    errors: tuple[type[BaseException], ...] = ()

    def __init__(self, where: str, rules: LessonRules | None) -> None:
        self.where = where  # for messages: the file, or the URL without its password
        self.rules = rules or LessonRules()
        self._lock = threading.RLock()
        self._conn: Any = None
        self._migrate()

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Q]:
        """One transaction; a database error rolls it back and becomes StoreError, anything else
        (MessageError) rolls it back and passes."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                cur = self._conn.cursor()
                q = Q(cur, self.convert)
                self._begin(q, write)
                try:
                    yield q
                    self._conn.commit()
                except BaseException:
                    self._rollback()
                    raise
            except self.errors as e:
                if self._lost(e):
                    self._drop()
                raise StoreError(f"{self.engine} {self.where}: {e}".strip()) from e

    def _rollback(self) -> None:
        try:
            self._conn.rollback()
        except self.errors:
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        with contextlib.suppress(Exception):  # already broken: nothing left to release
            conn.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._drop()

    # -- migrations ---------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Apply ``migrations/<engine>/NNNN_*.sql`` not yet in ``schema_version``, in order, in one
        transaction under the engine's migration lock; refuse a schema newer than the code."""
        folder = resources.files("edge_ocr.archive") / "migrations" / self.engine
        files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql") and f.name[:4].isdigit()),
                       key=lambda f: f.name)
        with self._tx(write=True) as q:
            self._migration_lock(q)
            q.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                  " applied_ts DOUBLE PRECISION NOT NULL)")
            row = q.one("SELECT version, name FROM schema_version ORDER BY version DESC LIMIT 1")
            have = row[0] if row else 0
            newest = int(files[-1].name[:4])
            if have > newest:
                raise StoreError(f"{self.engine} {self.where}: the database's schema is {row[1]} (version {have}), "
                                 f"newer than this edge-ocr knows ({files[-1].name[:-4]}): upgrade edge-ocr")
            for f in files:
                if int(f.name[:4]) > have:
                    for stmt in f.read_text(encoding="utf-8").split(";\n"):
                        if stmt.strip() and not all(ln.startswith("--") for ln in stmt.strip().splitlines()):
                            q.run(stmt)
                    q.run("INSERT INTO schema_version (version, name, applied_ts) VALUES (?, ?, ?)",
                          int(f.name[:4]), f.name[:-4], time.time())

    def schema(self) -> str:
        """The newest migration applied (e.g. ``0001_initial``)."""
        with self._tx() as q:
            return q.one("SELECT name FROM schema_version ORDER BY version DESC LIMIT 1")[0]

    # -- ingest -------------------------------------------------------------------------------
    def ingest(self, kind: str, message: dict[str, Any], received_ts: float) -> bool:
        """See :meth:`edge_ocr.archive.store.Store.ingest`; a malformed message raises
        :class:`MessageError` (a ValueError) and stores nothing."""
        if kind not in KINDS:
            raise MessageError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
        if not isinstance(message, dict):
            raise MessageError(f"a {kind} message is a JSON object")
        device = message.get("device")
        if not isinstance(device, str) or not device:
            raise MessageError(f"{kind} message without a device")
        if kind == "status":
            if message.get("status") not in ("online", "offline"):
                raise MessageError("status is online or offline")
            with self._tx(write=True) as q:
                dev = self._device(q, device, received_ts)
                q.run("UPDATE devices SET status = ?, status_ts = ? WHERE id = ?"
                      " AND (status_ts IS NULL OR status_ts <= ?)", message["status"], received_ts, dev, received_ts)
            return True
        msg_id = message.get("msg_id")
        if not isinstance(msg_id, str) or not msg_id:
            raise MessageError(f"{kind} message without a msg_id")
        seq = _int(message, "seq")
        ts = _num(message, "ts") if kind != "health" else received_ts
        notice = message.get("too_large")
        if notice is not None and not isinstance(notice, dict):
            raise MessageError("too_large is an object")
        handler = None if notice is not None else getattr(self, f"_check_{kind}")(message)
        with self._tx(write=True) as q:
            dev = self._device(q, device, ts)
            if q.one("INSERT INTO messages (msg_id, device_id, kind, seq, ts, received_ts, too_large)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (msg_id) DO NOTHING RETURNING msg_id",
                     msg_id, dev, kind, seq, ts, received_ts, _json(notice) if notice is not None else None) is None:
                return False
            if handler is not None:
                handler(q, dev, device, seq, ts, received_ts)
        return True

    def _device(self, q: Q, name: str, ts: float) -> int:
        """The device's id, its row created or its times widened, and (PostgreSQL) locked until
        the transaction ends: one device's messages are stored one at a time."""
        return q.one("INSERT INTO devices (name, first_seen, last_seen) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                     " SET last_seen = CASE WHEN devices.last_seen < excluded.last_seen THEN excluded.last_seen"
                     " ELSE devices.last_seen END, first_seen = CASE WHEN devices.first_seen > excluded.first_seen"
                     " THEN excluded.first_seen ELSE devices.first_seen END RETURNING id", name, ts, ts)[0]

    def _check_health(self, msg: dict) -> Any:
        def store(q: Q, dev: int, device: str, seq: int, ts: float, received_ts: float) -> None:
            q.run("UPDATE devices SET health = ?, health_ts = ? WHERE id = ? AND (health_ts IS NULL OR health_ts <= ?)",
                  _json(msg), received_ts, dev, received_ts)
        return store

    def _check_events(self, msg: dict) -> Any:
        try:
            ev = LineEvent.from_dict(msg)
        except ValueError as e:
            raise MessageError(str(e)) from e

        def store(q: Q, dev: int, device: str, seq: int, ts: float, received_ts: float) -> None:
            q.run("INSERT INTO events (device_id, seq, ts, msg_id, event, idx, text, previous, box, confidence)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", dev, seq, ts, msg["msg_id"], ev.kind, ev.index, ev.text,
                  ev.previous, _json(ev.box), ev.confidence)
        return store

    def _check_snapshot(self, msg: dict) -> Any:
        page_seq = _int(msg, "page_seq")
        sha = msg.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64:
            raise MessageError("sha256 missing or not 64 hex digits")
        try:
            data = base64.b64decode(msg.get("jpeg") or "", validate=True)
        except (binascii.Error, TypeError) as e:
            raise MessageError(f"jpeg is not base64: {e}") from e
        if not data or hashlib.sha256(data).hexdigest() != sha.lower():
            raise MessageError(f"the picture's bytes do not hash to its sha256 {sha}")
        w, h = msg.get("width"), msg.get("height")

        def store(q: Q, dev: int, device: str, seq: int, ts: float, received_ts: float) -> None:
            q.run("INSERT INTO pictures (sha256, data, bytes, width, height, first_ts) VALUES (?, ?, ?, ?, ?, ?)"
                  " ON CONFLICT (sha256) DO NOTHING", sha.lower(), data, len(data),
                  w if isinstance(w, int) else None, h if isinstance(h, int) else None, ts)
            q.run("INSERT INTO snapshots (device_id, seq, page_seq, ts, sha256) VALUES (?, ?, ?, ?, ?)",
                  dev, seq, page_seq, ts, sha.lower())
        return store

    def _check_page(self, msg: dict) -> Any:
        lines = msg.get("lines")
        if not isinstance(lines, list) or not all(isinstance(x, dict) and isinstance(x.get("text"), str)
                                                   for x in lines):
            raise MessageError("page without lines (a list of objects with text)")
        for k, x in enumerate(lines):
            b = x.get("box")
            if b is not None and not (isinstance(b, list) and len(b) >= 3 and all(
                    isinstance(pt, list) and len(pt) == 2 and all(isinstance(c, int | float) for c in pt) for pt in b)):
                raise MessageError(f"line {k}: box is not a polygon of [x, y] points")
        text = msg.get("text") if isinstance(msg.get("text"), str) else "\n".join(x["text"] for x in lines)

        def store(q: Q, dev: int, device: str, seq: int, ts: float, received_ts: float) -> None:
            row = q.one("INSERT INTO versions (device_id, seq, ts, msg_id, text, lines, n_lines, truncated)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, seq) DO NOTHING RETURNING id",
                        dev, seq, ts, msg["msg_id"], text, _json(lines), len(lines),
                        _json(msg["truncated"]) if "truncated" in msg else None)
            if row is None:  # this seq came before under another msg_id: the first one stays
                return
            if q.one("SELECT 1 FROM versions WHERE device_id = ? AND seq > ? LIMIT 1", dev, seq):
                self._rederive(q, dev, device, seq)
                return
            st = q.one("SELECT state FROM lessons WHERE device_id = ? AND state IS NOT NULL"
                       " ORDER BY first_seq DESC LIMIT 1", dev)
            sink = DbSink(q, dev)
            state = lz.feed(lz.State.from_json(st[0]) if st else None,
                            lz.VersionIn(row[0], seq, ts, lz.page_lines(lines)), device, self.rules, sink)
            sink.save(state)
            q.run("UPDATE versions SET lesson_id = ? WHERE id = ?", state.lesson_id, row[0])
        return store

    def _rederive(self, q: Q, dev: int, device: str, seq: int) -> None:
        """A version arrived after later ones: its lessons are derived again from the start of
        the lesson holding the version before it (or from the device's first version)."""
        row = q.one("SELECT l.first_seq FROM versions v JOIN lessons l ON l.id = v.lesson_id"
                    " WHERE v.device_id = ? AND v.seq < ? ORDER BY v.seq DESC LIMIT 1", dev, seq)
        first = row[0] if row else seq
        self._drop_lessons(q, "device_id = ? AND first_seq >= ?", (dev, first), keep_versions=True)
        sink = DbSink(q, dev)
        state: lz.State | None = None
        owner: list[tuple[int, int]] = []
        for vid, vseq, ts, lines in q.all("SELECT id, seq, ts, lines FROM versions WHERE device_id = ? AND seq >= ?"
                                          " ORDER BY seq", dev, first):
            state = lz.feed(state, lz.VersionIn(vid, vseq, ts, lz.page_lines(json.loads(lines))), device,
                            self.rules, sink)
            owner.append((state.lesson_id, vid))
        if state is not None:
            sink.save(state)
        q.many("UPDATE versions SET lesson_id = ? WHERE id = ?", owner)

    def _drop_lessons(self, q: Q, where: str, args: tuple, keep_versions: bool) -> int:
        """Delete the lessons ``where`` says, their spans (and search terms), erase points and,
        unless ``keep_versions``, their versions. Returns the lessons deleted."""
        spans = q.all(f"SELECT s.id, s.text FROM spans s JOIN lessons l ON l.id = s.lesson_id WHERE l.{where}", *args)
        q.many("DELETE FROM terms WHERE term = ? AND span_id = ?",
               [(t, sid) for sid, text in spans for t in sz.terms_of(text)])
        if not keep_versions:
            q.run(f"DELETE FROM versions WHERE lesson_id IN (SELECT id FROM lessons WHERE {where})", *args)
        return len(q.all(f"DELETE FROM lessons WHERE {where} RETURNING id", *args))

    # -- queries ------------------------------------------------------------------------------
    def devices(self) -> list[DeviceSummary]:
        with self._tx() as q:
            rows = q.all("SELECT d.name, d.first_seen, d.last_seen, d.status, d.health,"
                         " (SELECT count(*) FROM lessons l WHERE l.device_id = d.id),"
                         " (SELECT count(*) FROM versions v WHERE v.device_id = d.id) FROM devices d ORDER BY d.name")
        return [DeviceSummary(n, f, la, s, json.loads(h) if h else None, nl, nv) for n, f, la, s, h, nl, nv in rows]

    _LESSON = ("SELECT l.id, d.name, l.title, l.start_ts, l.end_ts, l.ended_by, l.versions, l.erases, l.max_lines,"
               " l.state FROM lessons l JOIN devices d ON d.id = l.device_id")

    def _summary(self, row: Sequence[Any], now: float) -> tuple[LessonSummary, lz.State | None]:
        lid, device, title, start, end, ended, versions, erases, max_lines, st = row
        state = lz.State.from_json(st) if st else None
        if state is not None:
            ended = lz.ended_by(state, now, device, self.rules)
        return LessonSummary(lid, device, title, start, end, ended is None, ended, versions, erases, max_lines), state

    def lessons(self, device: str | None = None, limit: int = 100, before: float | None = None) -> list[LessonSummary]:
        where, args = [], []
        if device is not None:
            where.append("d.name = ?")
            args.append(device)
        if before is not None:
            where.append("l.start_ts < ?")
            args.append(before)
        sql = (self._LESSON + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY l.start_ts DESC, l.id DESC LIMIT ?")
        with self._tx() as q:
            rows = q.all(sql, *args, int(limit))
        now = time.time()
        return [self._summary(r, now)[0] for r in rows]

    _PICTURE = ("(SELECT sn.sha256 FROM snapshots sn WHERE sn.device_id = v.device_id AND sn.page_seq = v.seq"
                " ORDER BY sn.seq DESC LIMIT 1)")

    def lesson(self, lesson_id: int) -> Lesson | None:
        with self._tx() as q:
            row = q.one(self._LESSON + " WHERE l.id = ?", lesson_id)
            if row is None:
                return None
            versions = q.all(f"SELECT v.id, v.seq, v.ts, v.n_lines, {self._PICTURE} FROM versions v"
                             " WHERE v.lesson_id = ? ORDER BY v.seq", lesson_id)
            spans = q.all("SELECT id, text, first_version, last_version, added_ts, removed_ts, replaces, box"
                          " FROM spans WHERE lesson_id = ? ORDER BY id", lesson_id)
            erases = q.all("SELECT ts, fullest_version, after_version, removed FROM erases WHERE lesson_id = ?"
                           " ORDER BY ts, id", lesson_id)
        summary, state = self._summary(row, time.time())
        live = {sid: line.box for sid, line in zip(state.live, state.last_lines)} if state else {}
        out = []
        for sid, text, first, last, added, removed, replaces, box in spans:
            if last is None and state is not None:
                last, box = state.last_version, _json(live.get(sid))
            out.append(Span(sid, text, first, last, added, removed, replaces, json.loads(box) if box else None))
        return Lesson(summary, [VersionRef(*v) for v in versions], out, [ErasePoint(*e) for e in erases])

    def version(self, version_id: int) -> Version | None:
        with self._tx() as q:
            row = q.one(f"SELECT v.id, v.lesson_id, d.name, v.seq, v.ts, v.text, v.lines, {self._PICTURE}"
                        " FROM versions v JOIN devices d ON d.id = v.device_id WHERE v.id = ?", version_id)
        if row is None:
            return None
        vid, lid, device, seq, ts, text, lines, pic = row
        return Version(vid, lid or 0, device, seq, ts, text, json.loads(lines), pic)

    def picture(self, sha256: str) -> bytes | None:
        with self._tx() as q:
            row = q.one("SELECT data FROM pictures WHERE sha256 = ?", sha256.lower())
        return bytes(row[0]) if row else None

    # -- search -------------------------------------------------------------------------------
    def search(self, query: str, limit: int = 20, device: str | None = None) -> list[Hit]:
        """See :mod:`edge_ocr.archive.search`: the rarest term drives (a prefix through the words
        it stands for, each read newest first), up to ``MAX_TERMS`` more narrow, a substring
        match confirms."""
        p = sz.plan(query)
        if p is None:
            return []
        with self._tx() as q:
            dev = None
            if device is not None:
                row = q.one("SELECT id FROM devices WHERE name = ?", device)
                if row is None:
                    return []
                dev = row[0]
            words = {t: self._words(q, t) for t in p.prefixes}
            counts = {t: q.one("SELECT count(*) FROM (SELECT 1 FROM terms WHERE term = ? LIMIT ?) x",
                               t, sz.COUNT_CAP)[0] for t in p.exact}
            for t, ws in words.items():
                counts[t] = sz.COUNT_CAP + 1 if ws is None else sum(
                    q.one("SELECT count(*) FROM (SELECT 1 FROM terms WHERE term = ? LIMIT ?) x", w, sz.COUNT_CAP)[0]
                    for w in ws)
            if min(counts.values()) == 0:
                return []
            drive = min(counts, key=lambda t: counts[t])
            narrow = sorted((t for t in p.exact if t != drive), key=lambda t: counts[t])[:sz.MAX_TERMS - 1]
            ids = self._candidates(q, drive, words.get(drive, [drive]), narrow, dev)
            rows = q.all("SELECT s.id, s.text, s.first_version, s.added_ts, l.id, l.title, d.name FROM spans s"
                         " JOIN lessons l ON l.id = s.lesson_id JOIN devices d ON d.id = s.device_id"
                         f" WHERE s.id {self._in(len(ids))}", *self._in_args(ids)) if ids else []
        rank = {sid: k for k, sid in enumerate(ids)}
        hits = []
        for sid, text, first, added, lid, title, name in rows:
            norm, where = sz.normalise(text)
            found = sz.matches(text, p, norm, where)
            if found:
                hits.append(Hit(name, lid, title, first, added, text, sid,
                                sz.score(text, norm, p, found, 1.0 - rank[sid] / len(ids)), found))
        hits.sort(key=lambda h: -h.score)
        return hits[:limit]

    def _words(self, q: Q, prefix: str) -> list[str] | None:
        """The indexed terms starting with ``prefix`` (one index seek each), None when more than
        ``sz.MAX_WORDS``: the range is then read whole."""
        lo, hi = sz.prefix_range(prefix)
        out: list[str] = []
        row = q.one("SELECT min(term) FROM terms WHERE term >= ? AND term < ?", lo, hi)
        while row and row[0] is not None:
            if len(out) == sz.MAX_WORDS:
                return None
            out.append(row[0])
            row = q.one("SELECT min(term) FROM terms WHERE term > ? AND term < ?", row[0], hi)
        return out

    def _candidates(self, q: Q, drive: str, terms: list[str] | None, narrow: list[str], dev: int | None) -> list[int]:
        """Span ids holding ``drive`` (each of ``terms``; None: the prefix range) and every
        ``narrow`` term, on device ``dev`` if given: the newest ``CANDIDATES``, newest first."""
        extra = "".join(" AND EXISTS (SELECT 1 FROM terms t2 WHERE t2.term = ? AND t2.span_id = t.span_id)"
                        for _ in narrow)
        if dev is not None:
            extra += " AND EXISTS (SELECT 1 FROM spans s WHERE s.id = t.span_id AND s.device_id = ?)"
        args = [*narrow, *([dev] if dev is not None else [])]
        if terms is None:
            lo, hi = sz.prefix_range(drive)
            return [r[0] for r in q.all("SELECT DISTINCT t.span_id FROM terms t WHERE t.term >= ? AND t.term < ?"
                                        f"{extra} ORDER BY t.span_id DESC LIMIT ?", lo, hi, *args, sz.CANDIDATES)]
        per = [[r[0] for r in q.all(f"SELECT t.span_id FROM terms t WHERE t.term = ?{extra}"
                                    " ORDER BY t.span_id DESC LIMIT ?", term, *args, sz.CANDIDATES)]
               for term in terms]
        return sorted({sid for ids in per for sid in ids}, reverse=True)[:sz.CANDIDATES]

    # -- retention and counts -----------------------------------------------------------------
    def prune(self, keep_days: float, now: float) -> Pruned:
        """See :meth:`edge_ocr.archive.store.Store.prune`; events, snapshots and message ids
        older than the cut go too, unless a kept lesson covers them."""
        cut = now - keep_days * 86400.0
        before = self._size()
        with self._tx(write=True) as q:
            versions = q.one("SELECT count(*) FROM versions v JOIN lessons l ON l.id = v.lesson_id"
                             " WHERE l.end_ts < ?", cut)[0]
            lessons = self._drop_lessons(q, "end_ts < ?", (cut,), keep_versions=False)
            q.run("DELETE FROM events WHERE ts < ? AND NOT EXISTS (SELECT 1 FROM lessons l WHERE"
                  " l.device_id = events.device_id AND events.ts BETWEEN l.start_ts AND l.end_ts)", cut)
            q.run("DELETE FROM snapshots WHERE ts < ? AND NOT EXISTS (SELECT 1 FROM versions v WHERE"
                  " v.device_id = snapshots.device_id AND v.seq = snapshots.page_seq)", cut)
            pictures = len(q.all("DELETE FROM pictures WHERE NOT EXISTS (SELECT 1 FROM snapshots sn WHERE"
                                 " sn.sha256 = pictures.sha256) RETURNING sha256"))
            q.run("DELETE FROM messages WHERE received_ts < ?", cut)
        self._shrink()
        return Pruned(lessons, versions, pictures, before, self._size())

    def stats(self) -> dict[str, int]:
        with self._tx() as q:
            out = {t: q.one(f"SELECT count(*) FROM {t}")[0]
                   for t in ("devices", "lessons", "versions", "spans", "events", "pictures", "snapshots", "messages")}
        out["bytes"] = self._size()
        return out

    # -- bulk path (benchmarks) ---------------------------------------------------------------
    def bulk_lines(self, device: str, texts: Sequence[str], start_ts: float, per_version: int = 20,
                   per_lesson: int = 50, step_s: float = 30.0) -> None:
        """Store ``texts`` fast as finished lessons of ``device``: ``per_version`` new lines a
        version, ``step_s`` apart, ``per_lesson`` versions a lesson, each line one span indexed
        for search. No derivation or msg_id check: for filling a database to measure search."""
        with self._tx(write=True) as q:
            dev = self._device(q, device, start_ts)
            ids = {t: (q.one(f"SELECT max(id) FROM {t}")[0] or 0) for t in ("lessons", "versions", "spans")}
            seq0 = q.one("SELECT max(seq) FROM versions WHERE device_id = ?", dev)[0] or 0
            lessons, versions, spans, terms = [], [], [], []
            chunks = [texts[k:k + per_version] for k in range(0, len(texts), per_version)]
            for n, chunk in enumerate(chunks):
                vid, seq, ts = ids["versions"] + n + 1, seq0 + n + 1, start_ts + n * step_s
                lid = ids["lessons"] + n // per_lesson + 1
                if n % per_lesson == 0:
                    last = min(n + per_lesson, len(chunks)) - 1
                    lessons.append((lid, dev, f"{device} bulk {lid}", ts, start_ts + last * step_s, seq,
                                    seq0 + last + 1, "inactivity", last - n + 1, per_version))
                box = [[0, 0], [100, 0], [100, 20], [0, 20]]
                versions.append((vid, dev, seq, ts, f"bulk-{device}-{seq}", lid, "\n".join(chunk),
                                 _json([{"text": t, "box": box} for t in chunk]), len(chunk)))
                for t in chunk:
                    sid = ids["spans"] + len(spans) + 1
                    spans.append((sid, lid, dev, t, vid, vid, ts, ts + step_s))
                    terms.extend((term, sid) for term in sz.terms_of(t))
            self._copy(q, "lessons", ("id", "device_id", "title", "start_ts", "end_ts", "first_seq", "last_seq",
                                      "ended_by", "versions", "max_lines"), lessons)
            self._copy(q, "versions", ("id", "device_id", "seq", "ts", "msg_id", "lesson_id", "text", "lines",
                                       "n_lines"), versions)
            self._copy(q, "spans", ("id", "lesson_id", "device_id", "text", "first_version", "last_version",
                                    "added_ts", "removed_ts"), spans)
            terms.sort()
            self._copy(q, "terms", ("term", "span_id"), terms)
            self._after_bulk(q)

    # -- engine hooks -------------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _begin(self, q: Q, write: bool) -> None:
        raise NotImplementedError

    def _migration_lock(self, q: Q) -> None:
        """Held until the migrating transaction ends (SQLite: BEGIN IMMEDIATE already is)."""

    def _lost(self, error: BaseException) -> bool:
        """Whether the connection is gone (the next call reconnects)."""
        return False

    def _copy(self, q: Q, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        q.many(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})", rows)

    def _after_bulk(self, q: Q) -> None:
        """After rows were inserted with their ids given (PostgreSQL moves its sequences on)."""

    def _in(self, n: int) -> str:
        """``IN`` over ``n`` values (PostgreSQL: ``= ANY`` of one array parameter)."""
        return f"IN ({', '.join('?' for _ in range(n))})"

    def _in_args(self, values: list[int]) -> list[Any]:
        return values

    def _size(self) -> int:
        raise NotImplementedError

    def _shrink(self) -> None:
        raise NotImplementedError
