"""Durable outbox: a message leaves it only when the broker has acknowledged it.

SQLite in WAL mode with ``synchronous=FULL``: a message the pipeline handed over survives a
broker outage, a daemon crash and a power cut, and is sent again on the next connection.
Each message gets its per-device sequence number and a message id in the same
transaction, so subscribers can drop the duplicates that at-least-once delivery brings.

Bounded: past ``max_messages`` the oldest messages are dropped and counted (``dropped``).
The newest state of the board matters most to subscribers, and a device that was offline
for days must not fill its SD card.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

Body = dict | Callable[[list[dict]], dict]  # a message body, or one made from the messages stored before it


def encode(doc: dict) -> bytes:
    """A message's payload: compact UTF-8 JSON (what is stored, and what is measured against a
    broker's size limit)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


class OutboxError(RuntimeError):
    """The outbox cannot be written (disk full, read-only state directory, …)."""


@dataclass(frozen=True)
class Message:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Outbox:
    def __init__(self, path: str | Path, max_messages: int = 10_000) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self._lock = threading.Lock()
        self.recovered_from: Path | None = None
        try:
            if self.durable:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            if "not a database" not in str(exc) and "malformed" not in str(exc):
                raise OutboxError(f"outbox {self.path}: {exc}") from exc
            # A damaged file (not SQLite at all) cannot be replayed; keep it for a person to look at.
            self.recovered_from = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            self.path.rename(self.recovered_from)
            self._db = self._connect()
        except OSError as exc:
            raise OutboxError(f"outbox {self.path}: {exc.strerror or exc}") from exc

    @classmethod
    def in_memory(cls, max_messages: int = 10_000) -> Outbox:
        """A stand-in while the state directory is unusable: same behaviour, not durable."""
        return cls(":memory:", max_messages)

    @property
    def durable(self) -> bool:
        return str(self.path) != ":memory:"

    def adopt(self, other: Outbox) -> int:
        """Take over ``other``'s pending messages, their payloads (message ids and numbers) as
        they are; later numbers continue after the highest adopted one. Returns how many."""
        rows = other.pending(other.depth() + 1)
        if not rows:
            return 0
        top = max(json.loads(m.payload).get("seq", 0) for m in rows)
        with self._write():
            self._db.executemany(
                "INSERT INTO messages(topic, payload, qos, retain, created) VALUES(?, ?, ?, ?, ?)",
                [(m.topic, m.payload, m.qos, int(m.retain), time.time()) for m in rows])
            self._bump("seq", max(0, top - self._counter("seq")))
        return len(rows)

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction under the lock; any SQLite failure (disk full, read-only, I/O)
        rolls it back and surfaces as OutboxError."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # SQLite may have rolled back by itself (I/O error)
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise OutboxError(f"outbox {self.path}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        db.execute("SELECT count(*) FROM messages").fetchone()  # fails now, not later, on a damaged file
        return db

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, name: str, by: int = 1) -> int:
        value = self._counter(name) + by
        self._db.execute("INSERT INTO counters(name, value) VALUES(?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))
        return value

    def enqueue(self, items: list[tuple[str, Body, bool]], qos: int = 1) -> list[dict]:
        """Store (topic, body, retain) messages atomically, each with ``msg_id`` and ``seq``
        added to its body; returns the bodies as stored. A body may be a function of the
        messages stored before it in this call (a snapshot names its page's ``seq``)."""
        out: list[dict] = []
        with self._write():
            for topic, body, retain in items:
                fields = body(out) if callable(body) else body
                doc = {"msg_id": uuid.uuid4().hex, "seq": self._bump("seq"), **fields}
                payload = encode(doc)
                self._db.execute("INSERT INTO messages(topic, payload, qos, retain, created) VALUES(?, ?, ?, ?, ?)",
                                 (topic, payload, qos, int(retain), time.time()))
                out.append(doc)
            excess = self._depth() - self.max_messages
            if excess > 0:
                self._db.execute("DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT ?)",
                                 (excess,))
                self._bump("dropped", excess)
        return out

    def stamp(self, body: dict, series: str = "state_seq") -> dict:
        """``body`` with a message id and the next number of ``series``, not stored (the
        daemon without a broker numbers its stdout pages this way)."""
        with self._write():
            seq = self._bump(series)
        return {"msg_id": uuid.uuid4().hex, "seq": seq, **body}

    def pending(self, limit: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[Message]:
        """The oldest unacknowledged messages, skipping ids in ``exclude`` (already in flight)."""
        with self._lock:
            rows = self._db.execute("SELECT id, topic, payload, qos, retain FROM messages ORDER BY id LIMIT ?",
                                    (limit + len(exclude),)).fetchall()
        return [Message(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows if r[0] not in exclude][:limit]

    def ack(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._write():
            self._db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    def _depth(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM messages").fetchone()[0])

    def depth(self) -> int:
        with self._lock:
            return self._depth()

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._counter("dropped")

    def close(self) -> None:
        with self._lock:
            self._db.close()
