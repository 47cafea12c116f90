"""The PostgreSQL engine (``archive.database = "postgresql://…"``): several archive workers on a
shared subscription write at once; each message's transaction locks its device's row first, so
one device's versions are stored in turn while other devices go on. Migrations hold an advisory
lock. psycopg 3 is imported only here, only for PostgreSQL URLs. A lost connection is dropped
and the next call connects again."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from edge_ocr.archive.base import LessonRules, StoreError
from edge_ocr.archive.core import Q, SqlStore

MIGRATION_LOCK = 0x6564_6765_6F63_72  # pg_advisory_xact_lock key: "edgeocr"
CONNECT_TIMEOUT_S = 10


def _without_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class PostgresStore(SqlStore):
    engine = "postgresql"
    convert = True

    def __init__(self, url: str, rules: LessonRules | None = None) -> None:
        try:
            import psycopg
        except ImportError as e:
            raise StoreError("postgresql: psycopg is not installed (pip install 'psycopg[binary]')") from e
        self._psycopg = psycopg
        self.errors = (psycopg.Error,)
        self.url = url
        super().__init__(_without_password(url), rules)

    def _connect(self) -> Any:
        return self._psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S, application_name="edge-ocr-archive")

    def _begin(self, q: Q, write: bool) -> None:
        """psycopg opens the transaction with the first statement."""

    def _migration_lock(self, q: Q) -> None:
        q.run("SELECT pg_advisory_xact_lock(?)", MIGRATION_LOCK)

    def _lost(self, error: BaseException) -> bool:
        return isinstance(error, self._psycopg.OperationalError) or bool(self._conn is not None and self._conn.closed)

    def _copy(self, q: Q, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        with q.cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)

    def _after_bulk(self, q: Q) -> None:
        for t in ("lessons", "versions", "spans"):
            q.run(f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT coalesce(max(id), 1) FROM {t}))")

    def _in(self, n: int) -> str:
        return "= ANY(?)"

    def _in_args(self, values: list[int]) -> list[Any]:
        return [values]

    def _size(self) -> int:
        with self._tx() as q:
            return int(q.one("SELECT pg_database_size(current_database())")[0])

    def _shrink(self) -> None:
        """VACUUM (outside a transaction) makes the freed rows' space reusable; the files do not
        shrink (VACUUM FULL would lock the tables)."""
        with self._lock:
            conn = None
            try:
                conn = self._psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
                for t in ("versions", "spans", "terms", "pictures", "events", "snapshots", "messages", "lessons"):
                    conn.execute(f"VACUUM {t}")
            except self._psycopg.Error as e:
                raise StoreError(f"postgresql {self.where}: {e}") from e
            finally:
                if conn is not None:
                    conn.close()
