"""A real PostgreSQL for the tests (Debian's ``postgresql`` package): a cluster made by
``initdb`` in a temporary folder, listening on a Unix socket there and on a free loopback port,
trust authentication, run as the ``postgres`` user when the tests run as root (PostgreSQL
refuses root). ``restart()``/``kill()`` are there for fault tests; each test gets its own
database from ``new_database()``."""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.broker import free_port


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class Postgres:
    def __init__(self) -> None:
        bindir = pg_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: apt install postgresql (make test does)")
        self.bin = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="edge-ocr-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self._names = itertools.count(1)
        if self.user:
            shutil.chown(self.dir, self.user)
        self._as(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                 "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")

    def _as(self, *cmd: str) -> subprocess.CompletedProcess:
        full = (["runuser", "-u", self.user, "--"] if self.user else []) + list(cmd)
        return subprocess.run(full, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> Postgres:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        self._as(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"),
                 "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._as(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """Stop (fast: connections cut) and start on the same port and data."""
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash: the next start recovers from the WAL)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        name = f"t{next(self._names)}"
        self._as(str(self.bin / "createdb"), "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
