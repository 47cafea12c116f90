"""The archive at school scale: simulated devices publish through one mosquitto into
``edge-ocr archive`` (a process of its own), on SQLite and on PostgreSQL; then search over a
million stored lines (the store's bulk path, :mod:`toolchain.bench.archive_fill`). Prints a
Markdown table (``make bench-archive``).

Each device publishes what the daemon does for one page version: the page (its lines grow, and the
board is wiped every ``WIPE_EVERY`` versions), one ``added`` event per new line, and the board's
picture (a 1280-px JPEG of a real classroom board at quality 80, with a few bytes of its own
appended, so every picture is stored: the worst case for storage). QoS 1 throughout.

- **real time**: ``--devices`` boards, a version every ``--every-s`` each (300 and 30 s: 10
  versions a second), for ``--seconds``; the lag is publish → committed (the message's ``ts`` to
  the archive's commit, the ``/health`` percentiles of its last 2048 messages);
- **backlog**: ``--burst`` versions published at once (the archive away, then back: what
  accumulates): the sustained rate the archive stores at, messages and versions a second;
- **storage per board-day**: bytes on disk per version × ``SCHOOL_DAY_VERSIONS`` (8 h at one
  version every 30 s).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import cv2
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_ocr.archive.store import open_store
from edge_ocr.paths import ROOT
from toolchain.bench.archive_fill import fill, lines, time_searches

WIPE_EVERY = 12
SCHOOL_DAY_VERSIONS = 8 * 3600 // 30
PUBLISHERS = 10  # MQTT connections the devices' messages go through (the broker sees topics, not sockets)
FRAMES = ROOT.parent / "shared" / "classroom" / "frames"


def pictures(n: int = 8) -> list[bytes]:
    """Real board frames as the daemon sends them: long side 1280 px, JPEG quality 80."""
    out = []
    for path in sorted(FRAMES.glob("*.jpg"))[:n]:
        image = cv2.imread(str(path))
        scale = 1280 / max(image.shape[:2])
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    return out


class Devices:
    """``n`` simulated devices; ``version(i)`` is device ``i``'s next page version as the
    messages the daemon publishes for it (topic, payload)."""

    def __init__(self, n: int, base: str = "edge-ocr") -> None:
        self.n, self.base = n, base
        self.seq = [0] * n
        self.pages = [0] * n
        self.text = lines(4096, seed=7)
        self.jpegs = pictures()

    def version(self, i: int) -> list[tuple[str, bytes]]:
        device = f"board-{i:03d}"
        self.pages[i] += 1
        k = self.pages[i] % WIPE_EVERY
        now = time.time()
        frame = {"seq": self.pages[i], "ts": now}
        rows = [{"text": self.text[(i * 31 + j) % len(self.text)], "confidence": 0.93,
                 "box": [[40, 60 * j + 20], [900, 60 * j + 20], [900, 60 * j + 70], [40, 60 * j + 70]],
                 "block": 0, "char_confidences": [], "cached": False, "vertical": False, "occluded": False}
                for j in range(k)]
        out = []

        def add(kind: str, body: dict) -> None:
            self.seq[i] += 1
            doc = {"msg_id": uuid.uuid4().hex, "seq": self.seq[i], "device": device, "ts": now, "frame": frame,
                   **body}
            out.append((f"{self.base}/{device}/{kind}", json.dumps(doc, ensure_ascii=False).encode()))

        add("page", {"text": "\n".join(r["text"] for r in rows), "lines": rows,
                     "surface": [[0, 0], [1920, 0], [1920, 1080], [0, 1080]], "surface_detected": True,
                     "frame_size": [1920, 1080], "model": "bench", "detector": "bench", "rotation": 0,
                     "timings_ms": {"surface": 1, "split": 1, "recognise": 5, "total": 7}, "sharpness": 0.7,
                     "blurred": False})
        page_seq = self.seq[i]
        if k:
            add("events", {"event": "added", "index": k - 1, "text": rows[-1]["text"], "previous": None,
                           "box": rows[-1]["box"], "confidence": 0.93})
        jpeg = self.jpegs[i % len(self.jpegs)] + uuid.uuid4().bytes  # after the JPEG's end: a picture of its own
        add("snapshot", {"page_seq": page_seq, "width": 1280, "height": 720, "sha256": hashlib.sha256(jpeg).hexdigest(),
                         "jpeg": base64.b64encode(jpeg).decode()})
        return out


class Publishers:
    """``PUBLISHERS`` MQTT 5 connections publishing at QoS 1."""

    def __init__(self, port: int) -> None:
        self.clients = []
        for k in range(PUBLISHERS):
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{k}", protocol=mqtt.MQTTv5)
            c.max_inflight_messages_set(100)
            c.max_queued_messages_set(0)
            c.connect("127.0.0.1", port)
            c.loop_start()
            self.clients.append(c)
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self.sent = 0

    def send(self, i: int, messages: list[tuple[str, bytes]]) -> None:
        client = self.clients[i % len(self.clients)]
        for topic, payload in messages:
            self.infos.append(client.publish(topic, payload, qos=1))
            self.sent += 1

    def wait(self) -> None:
        for info in self.infos:
            info.wait_for_publish(60)
        self.infos.clear()

    def close(self) -> None:
        for c in self.clients:
            c.disconnect()
            c.loop_stop()


def _archive(port: int, database: str, state: Path, http_port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_OCR_")}
    env.update({"EDGE_OCR_MQTT_HOST": "127.0.0.1", "EDGE_OCR_MQTT_PORT": str(port),
                "EDGE_OCR_SERVICE_STATE_DIR": str(state), "EDGE_OCR_ARCHIVE_DATABASE": database,
                "EDGE_OCR_ARCHIVE_CLIENT_ID": "bench-archive", "EDGE_OCR_ARCHIVE_HTTP_PORT": str(http_port)})
    return subprocess.Popen([sys.executable, "-m", "edge_ocr", "archive"], env=env, cwd=ROOT,
                            stdout=(state / "archive.log").open("ab"), stderr=subprocess.STDOUT)


def _health(http_port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:  # 503 while degraded: still a health document
        return json.loads(exc.read())


def _wait_stored(http_port: int, total: int, timeout: float) -> float:
    """Seconds until the archive has handled ``total`` messages (stored + duplicates)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        h = _health(http_port)
        if h["stored"] + h["duplicates"] + h["rejected"] >= total:
            break
        time.sleep(0.1)
    return time.monotonic() - t0


def _bytes(database: str) -> int:
    store = open_store(database)
    try:
        return store.stats()["bytes"]
    finally:
        store.close()


def run_engine(name: str, database: str, args: argparse.Namespace, work: Path) -> dict:
    from tests.broker import Broker, free_port

    broker = Broker(work / f"broker-{name}", extra="max_inflight_messages 100").start()
    state = work / f"state-{name}"
    state.mkdir()
    http_port = free_port()
    proc = _archive(broker.port, database, state, http_port)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if _health(http_port).get("mqtt_connected"):
                    break
            except OSError:
                pass
            time.sleep(0.2)
        devices = Devices(args.devices)
        pubs = Publishers(broker.port)
        # Real time: each device a version every every_s, spread evenly.
        interval = args.every_s / args.devices
        t0 = time.monotonic()
        k = 0
        while time.monotonic() - t0 < args.seconds:
            pubs.send(k % args.devices, devices.version(k % args.devices))
            k += 1
            time.sleep(max(0.0, t0 + k * interval - time.monotonic()))
        pubs.wait()
        _wait_stored(http_port, pubs.sent, 120)
        real = _health(http_port)
        versions_real, sent_real = k, pubs.sent
        bytes_before = _bytes(database)
        # Backlog: the archive away, a burst published, the archive back.
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        for j in range(args.burst):
            pubs.send(j % args.devices, devices.version(j % args.devices))
        pubs.wait()
        burst_sent = pubs.sent - sent_real
        proc = _archive(broker.port, database, state, http_port)
        t1 = time.monotonic()
        while time.monotonic() - t1 < 30:
            try:
                _health(http_port)
                break
            except OSError:
                time.sleep(0.05)
        took = time.monotonic() - t1 + _wait_stored(http_port, burst_sent, 600)
        burst = _health(http_port)
        pubs.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        per_version = (_bytes(database) - bytes_before) / max(1, args.burst)
    finally:
        if proc.poll() is None:
            proc.kill()
        broker.stop()
    store = open_store(database)
    try:
        t_fill = fill(store, args.lines)
        searches = time_searches(store, args.runs) if args.lines else {}
        stats = store.stats()
    finally:
        store.close()
    return {"engine": name, "versions_real": versions_real, "messages_real": sent_real,
            "stored_real": real["stored"], "lag_p50_s": real["lag_p50_s"], "lag_p95_s": real["lag_p95_s"],
            "burst_messages": burst_sent, "burst_stored": burst["stored"], "burst_s": took,
            "rate_msgs_s": burst_sent / took, "rate_versions_s": args.burst / took,
            "bytes_per_version": per_version, "board_day_mb": per_version * SCHOOL_DAY_VERSIONS / 1e6,
            "fill_lines": args.lines, "fill_s": t_fill, "searches": searches, "db_bytes": stats.get("bytes")}


def report(results: list[dict], args: argparse.Namespace) -> str:
    out = [f"Archive bench: {args.devices} devices, a version every {args.every_s:g} s each for {args.seconds:g} s "
           f"(real time), then a backlog of {args.burst} versions; search over {args.lines:,} bulk-stored lines. "
           f"One mosquitto, `edge-ocr archive` as a process, {os.cpu_count()} CPUs shared with the publishers.", "",
           "| engine | real time: versions (messages) | lag p50 / p95 s | backlog: messages/s (versions/s) | "
           "bytes/version | MB per board-day | search p50 / p95 ms (worst query) |",
           "|---|---|---|---|---|---|---|"]
    for r in results:
        search = "not run (--lines 0)"
        if r["searches"]:
            worst = max(r["searches"].items(), key=lambda kv: kv[1][1])
            p50 = sorted(v[0] for v in r["searches"].values())[len(r["searches"]) // 2]
            search = f"{p50:.1f} / {worst[1][1]:.1f} ({worst[0]!r})"
        out.append(f"| {r['engine']} | {r['versions_real']} ({r['messages_real']}) | {r['lag_p50_s']:.3f} / "
                   f"{r['lag_p95_s']:.3f} | {r['rate_msgs_s']:.0f} ({r['rate_versions_s']:.0f}) | "
                   f"{r['bytes_per_version']:,.0f} | {r['board_day_mb']:.0f} | {search} |")
    out += ["", "Search per query (p50 / p95 ms, hits):", ""]
    for r in results:
        out.append(f"- {r['engine']}: " + "; ".join(f"{q!r} {a:.1f} / {b:.1f} ({n})"
                                                   for q, (a, b, n) in r["searches"].items()))
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=300)
    ap.add_argument("--every-s", type=float, default=30.0, help="seconds between a device's versions")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the real-time phase")
    ap.add_argument("--burst", type=int, default=3000, help="versions in the backlog phase")
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines bulk-stored before the searches; 0: none")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--report", type=Path, default=None, help="also write the Markdown here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    results = []
    try:
        for engine in args.engines.split(","):
            if engine == "sqlite":
                results.append(run_engine("sqlite", str(work / "archive.sqlite3"), args, work))
            else:
                from tests.postgres import Postgres

                pg = Postgres().start()
                try:
                    results.append(run_engine("postgresql", pg.new_database(), args, work))
                finally:
                    pg.close()
            print(json.dumps({k: v for k, v in results[-1].items() if k != "searches"}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = report(results, args)
    print(text)
    if args.report:
        args.report.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
