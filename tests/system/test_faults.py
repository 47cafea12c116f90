"""Faults a device meets in months unattended, against a real mosquitto and the real daemon:
killed at random points, a full disk, an unusable state directory, a broker that is not there
yet, a camera that is not there yet, garbage frames, and secrets that must not reach logs."""

from __future__ import annotations

import json
import os
import random
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_ocr import config as config_mod
from edge_ocr.daemon import delivery as delivery_mod
from edge_ocr.daemon import service as service_mod
from edge_ocr.daemon.service import Service
from edge_ocr.paths import ROOT
from tests.broker import Broker, Subscriber, free_port
from tests.system.test_daemon import VIDEO, _daemon, _env


def _seqs(sub: Subscriber) -> set[int]:
    return {d["seq"] for d in sub.numbered()}


def _produced(state: Path) -> int:
    with sqlite3.connect(state / "outbox.sqlite3") as db:
        row = db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
    return int(row[0]) if row else 0


def _drain(broker: Broker, sub: Subscriber, state: Path, tmp_path: Path) -> tuple[int, set[int]]:
    """Restart the daemon on the outbox ``state`` left, with no frames, until the subscriber
    holds every number produced (30 s at most); returns (produced, numbers missing) and closes
    the subscriber."""
    produced = _produced(state)
    empty = tmp_path / "no-frames"
    empty.mkdir()
    proc = _daemon(_env(broker.port, state, EDGE_OCR_CAPTURE_SOURCE=str(empty)))
    sub.wait_for(lambda: set(range(1, produced + 1)) <= _seqs(sub), 30)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    sub.close()
    return produced, set(range(1, produced + 1)) - _seqs(sub)


def test_daemon_sigkilled_ten_times_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    """Killed at random moments (mid-recognition, mid-write, mid-send), restarted each time."""
    sub = Subscriber(broker.port, "edge-ocr/test/+")
    state = tmp_path / "state"
    rng = random.Random(7)
    env = _env(broker.port, state, EDGE_OCR_CAPTURE_LOOP="true", EDGE_OCR_CAPTURE_FPS="40")
    for _ in range(10):
        proc = _daemon(env)
        time.sleep(rng.uniform(1.0, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    produced, missing = _drain(broker, sub, state, tmp_path)
    received = sub.numbered()
    duplicates = len(received) - len({d["msg_id"] for d in received})
    print(f"daemon SIGKILLed 10×: produced {produced}, lost {len(missing)}, duplicates {duplicates}")
    assert produced >= 20 and not missing, sorted(missing)[:10]
    # A kill may repeat what was handed to the broker but not yet marked sent (≤ 20 in flight).
    assert duplicates <= 20 * 10 and duplicates <= produced // 2, f"{duplicates} duplicates of {produced}"
    assert sqlite3.connect(state / "outbox.sqlite3").execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_daemon_sigkill_sends_the_offline_will(broker: Broker, tmp_path: Path) -> None:
    """No goodbye from a killed daemon: the broker publishes its Last Will (retained ``offline``)."""
    sub = Subscriber(broker.port, "edge-ocr/test/status")
    proc = _daemon(_env(broker.port, tmp_path / "state", EDGE_OCR_CAPTURE_LOOP="true"))
    try:
        assert sub.wait_for(lambda: sub.raw("/status")[-1:] == [b"online"], 30)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert sub.wait_for(lambda: sub.raw("/status")[-1:] == [b"offline"], 10), sub.raw("/status")
    finally:
        proc.kill()
        proc.wait()
    sub.close()
    late = Subscriber(broker.port, "edge-ocr/test/status", client_id="late-subscriber")
    assert late.wait_for(lambda: late.raw("/status") == [b"offline"]), "the Will is retained for late subscribers"
    late.close()


def test_broker_and_daemon_killed_together_lose_nothing(broker: Broker, tmp_path: Path) -> None:
    """A power cut: daemon and broker SIGKILLed at the same moment, three times, then both back."""
    sub = Subscriber(broker.port, "edge-ocr/test/+")
    state = tmp_path / "state"
    env = _env(broker.port, state, EDGE_OCR_CAPTURE_LOOP="true", EDGE_OCR_CAPTURE_FPS="40")
    for delay in (1.5, 2.5, 2.0):
        proc = _daemon(env)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        broker.kill()
        proc.wait()
        broker.start()
    produced, missing = _drain(broker, sub, state, tmp_path)
    print(f"daemon and broker killed together 3×: produced {produced}, lost {len(missing)}")
    assert produced >= 5 and not missing, sorted(missing)[:10]


def _start_with_file_size_limit(limit: int, env: dict[str, str]) -> subprocess.Popen:
    """The daemon under RLIMIT_FSIZE, with SIGXFSZ ignored so a write past the limit fails with
    EFBIG instead of killing it. Set with util-linux's prlimit and an inherited signal disposition,
    not a preexec_fn: a preexec_fn runs Python in the forked child, whose garbage collector can
    then finalise the parent's temporary files (it unlinked bottle's upload spools, and the parent
    printed FileNotFoundError tracebacks at exit)."""
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        return subprocess.Popen(["prlimit", f"--fsize={limit}:", "--", sys.executable, "-m", "edge_ocr", "run"],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                restore_signals=False)
    finally:
        signal.signal(signal.SIGXFSZ, previous)


def test_full_disk_is_a_fault_not_a_crash_and_recovers(broker: Broker, tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes every write past 48 kB fail as on a full disk; raising it is the space
    coming back."""
    sub = Subscriber(broker.port, "edge-ocr/test/+")
    state = tmp_path / "state"
    env = _env(broker.port, state, EDGE_OCR_CAPTURE_LOOP="true", EDGE_OCR_CAPTURE_FPS="40")
    proc = _start_with_file_size_limit(48_000, env)
    try:
        assert sub.wait_for(lambda: any(h["faults"].get("outbox") for h in sub.json("/health")), 60), \
            "the full disk is reported on health"
        time.sleep(3)
        assert proc.poll() is None, "no crash"
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert sub.wait_for(lambda: sub.json("/health")[-1]["state"] == "ok", 30), "recovered when space returned"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    produced = _produced(state)
    assert sub.wait_for(lambda: set(range(1, produced + 1)) <= _seqs(sub), 30), "what waited in memory got out"
    # Counted from the daemon's own log, not the outbox: a message kept in memory while the disk
    # refused it and then dropped would never get a number there. Each page line is 1 + events.
    made = [re.search(r"seq=(\S+) .*events=(\d+)", ln) for ln in out.splitlines() if "event=page " in ln]
    held = sum(1 + int(m.group(2)) for m in made if m and m.group(1) == "None")
    received = {d["msg_id"] for d in sub.numbered()}
    # A snapshot is stored with its page (its log line says snapshot_bytes=), never kept in memory.
    pictures = sum("snapshot_bytes=" in ln for ln in out.splitlines() if "event=page " in ln)
    sub.close()
    print(f"full disk: {len(made)} pages logged, {held} messages held in memory, {produced} numbered, "
          f"{len(received)} received")
    assert held > 0, "some messages waited in memory while the disk refused them"
    assert len(received) == produced == sum(1 + int(m.group(2)) for m in made if m) + pictures, \
        "every message made was delivered"
    assert "event=outbox_write_failed" in out and "event=outbox_recovered" in out
    assert proc.returncode == 0


def test_unusable_state_directory_degrades_to_memory_then_recovers(broker: Broker, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery_mod, "OUTBOX_RETRY_S", 1.0)
    state = tmp_path / "state"
    state.write_text("a file where the state directory should be")
    sub = Subscriber(broker.port, "edge-ocr/test/+")
    env = {k: v for k, v in _env(broker.port, state, EDGE_OCR_CAPTURE_LOOP="true",
                                  EDGE_OCR_CAPTURE_FPS="30").items() if k.startswith("EDGE_OCR_")}
    svc = Service(config_mod.load(None, environ=env))
    assert not svc.delivery.outbox.durable and "state" in svc.health.faults()["outbox"]
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    try:
        assert sub.wait_for(lambda: len(sub.json("/page")) >= 2, 30), "pages still flow, from memory"
        assert any(h["faults"].get("outbox") for h in sub.json("/health"))
        state.unlink()  # the administrator fixes it
        assert sub.wait_for(lambda: svc.delivery.outbox.durable and not svc.health.faults().get("outbox"), 15)
        before = len(sub.json("/page"))
        assert sub.wait_for(lambda: len(sub.json("/page")) > before + 1, 30), "and keep flowing, durably"
    finally:
        svc.request_stop()
        t.join(30)
    sub.close()
    assert (state / "outbox.sqlite3").exists()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_broker_missing_at_start_then_there(tmp_path: Path) -> None:
    port = free_port()
    empty = tmp_path / "frames"
    empty.mkdir()
    proc = _daemon(_env(port, tmp_path / "state", EDGE_OCR_CAPTURE_SOURCE=str(empty)))
    try:
        time.sleep(3)
        cpu0 = _cpu_s(proc.pid)
        time.sleep(5)
        idle_cpu = _cpu_s(proc.pid) - cpu0
        broker = Broker(tmp_path / "broker", port=port).start()
        sub = Subscriber(port, "edge-ocr/test/#")
        assert sub.wait_for(lambda: b"online" in sub.raw("/status"), 40), "connects once the broker is there"
        sub.close()
        broker.stop()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    print(f"waiting for a missing broker: {idle_cpu:.2f} s CPU in 5 s")
    assert idle_cpu < 0.5, "backoff, not a busy loop"
    assert "event=mqtt_unreachable" in out and out.count("event=mqtt_unreachable") <= 6


def test_camera_missing_at_start_then_plugged_in(broker: Broker, tmp_path: Path) -> None:
    video = tmp_path / "later.mp4"
    sub = Subscriber(broker.port, "edge-ocr/test/+")
    proc = _daemon(_env(broker.port, tmp_path / "state", EDGE_OCR_CAPTURE_SOURCE=str(video)))
    try:
        assert sub.wait_for(lambda: any("later.mp4" in h["faults"].get("camera", "") for h in sub.json("/health")),
                            20)
        assert proc.poll() is None
        video.write_bytes(VIDEO.read_bytes())
        assert sub.wait_for(lambda: len(sub.json("/page")) >= 1, 30), "frames flow once the camera is there"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    sub.close()


class _GarbageCamera:
    """A stream that returns garbage: odd shapes, types and contents, then good frames."""

    name = "garbage"
    stills = False

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.frames = [np.zeros((1, 1, 3), np.uint8), np.zeros((0, 0, 3), np.uint8), np.zeros((5, 4000, 3), np.uint8),
                       rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), np.full((480, 640), 65535, np.uint16),
                       np.full((64, 64, 4), np.nan, np.float32), np.zeros((480, 640, 2), np.uint8)] * 2
        from edge_ocr.tools.bench import sample_board

        self.frames += [sample_board((1280, 720))] * 3

    def open(self) -> None:
        pass

    def read(self):
        if not self.frames:
            from edge_ocr.daemon.capture import EndOfStreamError

            raise EndOfStreamError("done")
        return self.frames.pop(0)

    def close(self) -> None:
        pass


def test_garbage_frames_are_rejected_and_the_daemon_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    camera = _GarbageCamera()
    monkeypatch.setattr(service_mod, "make_camera", lambda cfg: camera)
    env = {"EDGE_OCR_MQTT_ENABLED": "false", "EDGE_OCR_SERVICE_STATE_DIR": str(tmp_path), "EDGE_OCR_CAPTURE_FPS": "100",
           "EDGE_OCR_GATE_STABLE_FRAMES": "1"}
    svc = Service(config_mod.load(None, environ=env))
    assert svc.run() == 0
    # Only the two 0×0 arrays hold no picture; every other kind converts (1×1, a strip, noise,
    # 16-bit, NaN floats as black, gray+alpha), so exactly two frames are errors.
    assert svc.health.counters["frames_seen"] == 17 and svc.health.counters["frame_errors"] == 2
    page = svc.delivery.latest.doc
    assert page is not None and len(page["lines"]) == 5, "good frames after garbage still read"


def test_secrets_never_reach_the_logs(broker: Broker, tmp_path: Path) -> None:
    password, token = "pa55-w0rd-xyzzy", "t0ken-plugh-42"
    env = _env(broker.port, tmp_path / "state", EDGE_OCR_MQTT_USERNAME="board", EDGE_OCR_MQTT_PASSWORD=password,
               EDGE_OCR_HTTP_ENABLED="true", EDGE_OCR_HTTP_PORT=str(free_port()), EDGE_OCR_HTTP_TOKEN=token,
               EDGE_OCR_SERVICE_LOG_LEVEL="debug")
    out, _ = _daemon(env).communicate(timeout=120)
    shown = subprocess.run([sys.executable, "-m", "edge_ocr", "config"], env=env, cwd=ROOT, capture_output=True,
                           text=True)
    assert "event=page" in out and "event=frame_skipped" in out, "debug logging was on"
    assert json.loads(shown.stdout)["mqtt"]["password"] == "***" and json.loads(shown.stdout)["http"]["token"] == "***"
    for text in (out, shown.stdout, shown.stderr):
        assert password not in text and token not in text
