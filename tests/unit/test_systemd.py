"""sd_notify over a real unix datagram socket, and a watchdog that pings only on progress."""

import os
import socket
import time
from pathlib import Path

from edge_ocr.daemon import systemd


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.path = path

    def drain(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return out


def test_notify_sends_to_the_socket_and_is_silent_without_one(tmp_path: Path) -> None:
    ns = NotifySocket(tmp_path / "notify")
    assert systemd.notify("READY=1\nSTATUS=watching", {"NOTIFY_SOCKET": str(ns.path)})
    assert ns.drain() == ["READY=1\nSTATUS=watching"]
    assert not systemd.notify("READY=1", {})


def test_watchdog_pings_while_progressing_and_stops_when_stalled(tmp_path: Path) -> None:
    ns = NotifySocket(tmp_path / "notify")
    env = {"NOTIFY_SOCKET": str(ns.path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    assert systemd.watchdog_interval(env) == 0.1
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}) is None
    wd = systemd.Watchdog(env)
    wd.start()
    for _ in range(10):
        wd.progress()
        time.sleep(0.05)
    alive = ns.drain()
    time.sleep(0.6)  # the pipeline hangs: no progress
    stalled = ns.drain()
    wd.stop()
    assert alive.count("WATCHDOG=1") >= 3
    assert stalled.count("WATCHDOG=1") <= 1, "at most the ping already due when progress stopped"
