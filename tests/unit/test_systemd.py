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


def _settings(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if "=" in line and not line.startswith("#")}


def test_archive_unit_is_hardened_like_the_daemons_without_its_devices() -> None:
    """Every hardening line of the daemon's unit is in the archive's, except the camera's device
    access; the archive adds what the camera made impossible (no devices, no W+X memory)."""
    from edge_ocr.paths import ROOT

    daemon = _settings(ROOT / "systemd" / "edge-ocr.service")
    archive = _settings(ROOT / "systemd" / "edge-ocr-archive.service")
    camera = {s for s in daemon if s.startswith(("DeviceAllow=", "SupplementaryGroups=", "RestrictAddressFamilies="))}
    own = {s for s in daemon if s.startswith(("Description=", "Documentation=", "ExecStart=", "ExecReload=",
                                              "EnvironmentFile=", "StateDirectory=", "After=", "SystemCallFilter=~"))}
    assert daemon - camera - own <= archive, sorted(daemon - camera - own - archive)
    assert {"PrivateDevices=yes", "MemoryDenyWriteExecute=yes", "PrivateUsers=yes",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "StateDirectory=edge-ocr-archive"} <= archive
    assert not {s for s in archive if s.startswith(("DeviceAllow=", "SupplementaryGroups=", "ExecReload="))}
    assert "ExecStart=@PREFIX@/venv/bin/edge-ocr archive --config /etc/edge-ocr/edge-ocr.toml" in archive
