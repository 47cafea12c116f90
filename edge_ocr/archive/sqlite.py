"""The SQLite engine (the default): one file, WAL (readers never wait for the writer), foreign
keys on, a busy timeout so two processes take turns, ``auto_vacuum = INCREMENTAL`` so pruning
gives pages back and the file shrinks. Writers are serialised by ``BEGIN IMMEDIATE``: one
device's versions are stored one at a time, and so is everything else."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from edge_ocr.archive.base import LessonRules, StoreError
from edge_ocr.archive.core import Q, SqlStore

BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another process's transaction


class SqliteStore(SqlStore):
    engine = "sqlite"
    errors = (sqlite3.Error,)

    def __init__(self, path: str | Path, rules: LessonRules | None = None) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise StoreError(f"sqlite {self.path}: its folder {self.path.parent} does not exist")
        super().__init__(str(self.path), rules)

    def _connect(self) -> Any:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect only before the first table
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _begin(self, q: Q, write: bool) -> None:
        q.run("BEGIN IMMEDIATE" if write else "BEGIN")

    def _size(self) -> int:
        return sum(os.path.getsize(p) for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def _shrink(self) -> None:
        """Free pages back to the file system, then fold the WAL in and truncate it."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                # executescript steps the pragma to the end; execute() would free one page
                self._conn.executescript("PRAGMA incremental_vacuum;")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"sqlite {self.path}: {e}") from e
