"""One interface to the archive's database, two engines: SQLite (embedded, the default: one
file, WAL) and PostgreSQL (``archive.database = "postgresql://…"``). ``open_store`` picks the
engine from the URL; both apply the versioned migrations of ``migrations/`` on open."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from edge_ocr.archive.base import LessonRules, MessageError, Period, Pruned, StoreError
from edge_ocr.archive.records import DeviceSummary, Hit, Lesson, LessonSummary, Version

__all__ = ["LessonRules", "MessageError", "Period", "Pruned", "Store", "StoreError", "open_store"]


class Store(Protocol):
    engine: str  # "sqlite" | "postgresql"

    def ingest(self, kind: str, message: dict[str, Any], received_ts: float) -> bool:
        """Store one message of topic kind ``page``, ``events``, ``health``, ``status`` or
        ``snapshot`` (status: ``{"device": …, "status": "online"|"offline"}``). True when stored,
        False when its ``msg_id`` was stored before. Versions are ordered by ``seq`` per device
        whatever order they arrive in. Raises StoreError when the database fails, MessageError
        when the message is malformed (nothing stored)."""
        ...

    def devices(self) -> list[DeviceSummary]: ...

    def lessons(self, device: str | None = None, limit: int = 100, before: float | None = None) -> list[LessonSummary]:
        """Newest first."""
        ...

    def lesson(self, lesson_id: int) -> Lesson | None: ...

    def version(self, version_id: int) -> Version | None: ...

    def picture(self, sha256: str) -> bytes | None:
        """A stored board picture (JPEG bytes)."""
        ...

    def search(self, query: str, limit: int = 20, device: str | None = None) -> list[Hit]:
        """Lines containing ``query`` (Chinese from one character, English words and prefixes),
        best first."""
        ...

    def prune(self, keep_days: float, now: float) -> Pruned:
        """Remove lessons that ended more than ``keep_days`` ago, and pictures no version uses."""
        ...

    def stats(self) -> dict[str, int]:
        """Counts (devices, lessons, versions, spans, pictures, messages) and bytes on disk."""
        ...

    def bulk_lines(self, device: str, texts: Sequence[str], start_ts: float, per_version: int = 20,
                   per_lesson: int = 50, step_s: float = 30.0) -> None:
        """Store ``texts`` fast as finished lessons (no derivation, no msg_id): to fill a
        database for measuring search (toolchain/bench/archive_fill.py)."""
        ...

    def schema(self) -> str:
        """The newest migration applied, e.g. ``0001_initial``."""
        ...

    def close(self) -> None: ...


def open_store(database: str, rules: LessonRules | None = None) -> Store:
    """``postgresql://…`` → PostgreSQL; anything else is a SQLite file path (``sqlite:///`` prefix
    allowed). Migrates the schema. Raises StoreError when it cannot be opened."""
    if database.startswith(("postgresql://", "postgres://")):
        from edge_ocr.archive.postgres import PostgresStore

        return PostgresStore(database, rules)
    from edge_ocr.archive.sqlite import SqliteStore

    return SqliteStore(database.removeprefix("sqlite://"), rules)
