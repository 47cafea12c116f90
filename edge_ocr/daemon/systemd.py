"""systemd notification without dependencies: READY, STATUS, STOPPING and a watchdog that
pings only while the pipeline makes progress.

``sd_notify`` is a datagram to the unix socket named by ``NOTIFY_SOCKET`` (``@`` means the
abstract namespace). The watchdog thread sends ``WATCHDOG=1`` every half ``WATCHDOG_USEC``,
but only if ``progress()`` was called since the last ping: a hung pipeline stops the pings
and systemd restarts the service.
"""

from __future__ import annotations

import os
import socket
import threading
import time


def notify(message: str, environ: dict[str, str] | None = None) -> bool:
    """Send one notification; False when not run under systemd (no NOTIFY_SOCKET)."""
    env = os.environ if environ is None else environ
    path = env.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.connect(address)
            s.sendall(message.encode())
        except OSError:
            return False
    return True


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Seconds between pings (half of WATCHDOG_USEC), or None when no watchdog is asked for."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


class Watchdog:
    """Pings systemd while ``progress()`` keeps being called."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.environ = environ
        self.interval = watchdog_interval(environ)
        self._last_progress = time.monotonic()
        self._last_ping = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0

    def progress(self) -> None:
        self._last_progress = time.monotonic()

    def start(self) -> None:
        if self.interval is not None:
            self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            if self._last_progress > self._last_ping and notify("WATCHDOG=1", self.environ):
                self._last_ping = time.monotonic()
                self.pings += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
