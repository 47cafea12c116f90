"""``edge-ocr archive`` against faults, with real parts: mosquitto (persistence on, so sessions
survive it), the daemon's own delivery for the devices (outbox → MQTT, QoS 1, the page and line
event messages the daemon publishes, checked against schemas/), the archive as a process, SQLite
and a PostgreSQL server started for the test. Each case ends counted against what the devices
published: every page and event message stored, none stored twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from edge_ocr import config as config_mod
from edge_ocr.daemon.delivery import Delivery
from edge_ocr.daemon.health import Health
from edge_ocr.page.diff import reconcile
from edge_ocr.page.result import PageLine, PageResult
from edge_ocr.paths import ROOT
from tests.broker import Broker, Mqtt311OnlyProxy, free_port

SCHEMAS = {kind: json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
           for kind, name in (("page", "page"), ("events", "event"))}
WIPE_EVERY = 9  # pages: the board fills a line at a time, then is wiped


class Device:
    """One simulated device: the daemon's :class:`Delivery` (its durable outbox and MQTT sender)
    fed the pages of a board that gains a line per page and is wiped every ``WIPE_EVERY``; the
    events come from the daemon's diff. ``published`` holds every message as the outbox stored
    it (msg_id, seq): what the archive must end up with."""

    def __init__(self, name: str, port: int, state: Path) -> None:
        self.name = name
        cfg = config_mod.load(None, environ={"EDGE_OCR_DEVICE_ID": name, "EDGE_OCR_MQTT_HOST": "127.0.0.1",
                                             "EDGE_OCR_MQTT_PORT": str(port), "EDGE_OCR_SERVICE_STATE_DIR": str(state)})
        self.delivery = Delivery(cfg, Health(name, "test-model"))
        self.delivery.start()
        self.published: list[tuple[str, dict]] = []
        self.lines: list[PageLine] = []
        self.pages = 0

    def write(self) -> None:
        self.pages += 1
        n = self.pages % WIPE_EVERY
        new = [PageLine(f"{self.name} 第{i}行 line {i} of page {self.pages - n + i}", 0.93,
                        [[40.0, 60.0 * i + 20], [900.0, 60.0 * i + 20], [900.0, 60.0 * i + 70], [40.0, 60.0 * i + 70]])
               for i in range(1, n + 1)]
        self.lines, events = reconcile(self.lines, new)
        page = PageResult(self.lines, [[0, 0], [1920, 0], [1920, 1080], [0, 1080]], True, (1920, 1080),
                          "test-model", {"surface": 1.0, "split": 1.0, "recognise": 5.0, "total": 7.0},
                          detector="test-det", sharpness=0.7)
        stored = self.delivery.publish(page, events, self.pages, time.time())
        self.published += [("page", stored[0])] + [("events", doc) for doc in stored[1:]]

    def drained(self) -> bool:
        return self.delivery.outbox.depth() == 0

    def stop(self) -> None:
        self.delivery.stop(5.0)


class Stream:
    """Devices writing a page every ``every_s`` each, on a thread, until stopped."""

    def __init__(self, devices: list[Device], every_s: float = 0.05) -> None:
        self.devices, self.every_s = devices, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for device in self.devices:
                device.write()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _archive(port: int, database: str, state: Path, client_id: str = "archive-test", share: str = "",
             **extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_OCR_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update({"EDGE_OCR_MQTT_HOST": "127.0.0.1", "EDGE_OCR_MQTT_PORT": str(port),
                "EDGE_OCR_SERVICE_STATE_DIR": str(state), "EDGE_OCR_ARCHIVE_DATABASE": database,
                "EDGE_OCR_ARCHIVE_CLIENT_ID": client_id, "EDGE_OCR_ARCHIVE_SHARE_GROUP": share,
                "EDGE_OCR_ARCHIVE_HTTP_PORT": str(free_port()), **extra})
    state.mkdir(parents=True, exist_ok=True)
    log = (state / "archive.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "edge_ocr", "archive"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)


def _subscribed(state: Path, connects: int = 1, timeout: float = 20.0) -> None:
    """Wait until the archive logging to ``state`` has connected ``connects`` times: its session
    (and subscription) exists, so the broker keeps what is published from now on."""
    log = state / "archive.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count("event=mqtt_connected") >= connects:
            return
        time.sleep(0.1)
    raise AssertionError(f"the archive did not connect: {log.read_text()[-1500:] if log.exists() else 'no log'}")


def _query(database: str, sql: str) -> list[tuple]:
    """Rows straight from the archive's database (not through the store's code)."""
    if database.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(database, connect_timeout=5) as db:
            return db.execute(sql).fetchall()
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(sql).fetchall()


def _engine(database: str) -> str:
    return "postgresql" if database.startswith("postgresql://") else "sqlite"


def _stored(database: str) -> Counter:
    """msg_id → rows holding it, over the stored page versions and line events."""
    try:
        rows = _query(database, "SELECT msg_id FROM versions UNION ALL SELECT msg_id FROM events")
    except Exception:  # not created yet (the archive has not started), or the server restarting
        return Counter()
    return Counter(r[0] for r in rows)


def _settle(devices: list[Device], database: str, timeout: float = 60.0) -> tuple[set[str], dict[str, int], int]:
    """Wait until every device's outbox is empty and the database holds every message published
    (``timeout`` at most); returns (missing msg_ids, those stored more than once, published)."""
    wanted = {doc["msg_id"] for d in devices for _, doc in d.published}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(d.drained() for d in devices) and wanted <= set(_stored(database)):
            break
        time.sleep(0.25)
    stored = _stored(database)
    return wanted - set(stored), {m: n for m, n in stored.items() if n > 1}, len(wanted)


def _valid(devices: list[Device]) -> None:
    """What the devices published is what the daemon publishes: schema-valid pages and events."""
    for device in devices:
        for kind, doc in device.published[:40]:
            jsonschema.validate(doc, SCHEMAS[kind])


def _end(proc: subprocess.Popen) -> int:
    """SIGTERM: the archive finishes the message in hand and exits 0."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "archive.sqlite3")
    return request.getfixturevalue("postgres_url")


def _devices(broker: Broker, tmp_path: Path, n: int = 2) -> list[Device]:
    return [Device(f"room-{i}", broker.port, tmp_path / f"dev{i}") for i in range(1, n + 1)]


def test_archive_sigkilled_mid_stream_loses_nothing(broker: Broker, tmp_path: Path, database: str) -> None:
    """Killed three times while two devices publish (and left down a while each time: what is
    published meanwhile waits in its session at the broker)."""
    devices = _devices(broker, tmp_path)
    proc = _archive(broker.port, database, tmp_path / "archive")
    _subscribed(tmp_path / "archive")
    stream = Stream(devices)
    stored_at_kill = []
    for i in range(3):
        if i:
            proc = _archive(broker.port, database, tmp_path / "archive")
        time.sleep(2.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stored_at_kill.append(sum(_stored(database).values()))
        time.sleep(1.0)
    proc = _archive(broker.port, database, tmp_path / "archive")
    time.sleep(1.0)
    stream.stop()
    missing, twice, published = _settle(devices, database)
    rc = _end(proc)
    for d in devices:
        d.stop()
    print(f"archive SIGKILLed 3× ({_engine(database)}): published {published}, stored at the kills "
          f"{stored_at_kill}, lost {len(missing)}, stored twice {len(twice)}")
    _valid(devices)
    assert stored_at_kill[0] > 0 and stored_at_kill[-1] < published, "the kills came mid-stream"
    assert not missing and not twice, (sorted(missing)[:5], twice)
    assert rc == 0


def test_broker_restarted_mid_stream_loses_nothing(broker: Broker, tmp_path: Path, database: str) -> None:
    """mosquitto restarted (SIGTERM: it writes its persistence file) twice mid-stream: the
    archive's session and what was queued in it survive, the devices' outboxes send again what
    was not acknowledged. (SIGKILLed instead, mosquitto loses what it acknowledged after its last
    autosave: 1 message of 766 in one run; docs/archive.md.)"""
    devices = _devices(broker, tmp_path)
    proc = _archive(broker.port, database, tmp_path / "archive")
    _subscribed(tmp_path / "archive")
    stream = Stream(devices)
    for _ in range(2):
        time.sleep(2.0)
        broker.stop()
        time.sleep(1.0)
        broker.start()
    time.sleep(2.0)
    stream.stop()
    missing, twice, published = _settle(devices, database)
    rc = _end(proc)
    for d in devices:
        d.stop()
    print(f"broker restarted 2× ({_engine(database)}): published {published}, lost {len(missing)}, "
          f"stored twice {len(twice)}")
    assert not missing and not twice, (sorted(missing)[:5], twice)
    assert rc == 0


def test_postgresql_restarted_mid_stream_loses_nothing(broker: Broker, tmp_path: Path, postgres, postgres_url: str
                                                       ) -> None:
    """The database goes away under the archive: nothing is acknowledged while it is gone, the
    archive backs off and resumes, the broker delivers again what was not stored."""
    devices = _devices(broker, tmp_path)
    proc = _archive(broker.port, postgres_url, tmp_path / "archive")
    _subscribed(tmp_path / "archive")
    stream = Stream(devices)
    time.sleep(2.0)
    before = sum(_stored(postgres_url).values())
    postgres.stop()  # fast: the archive's connection is cut
    time.sleep(2.0)
    postgres.start()
    time.sleep(2.0)
    stream.stop()
    missing, twice, published = _settle(devices, postgres_url, timeout=90)
    rc = _end(proc)
    for d in devices:
        d.stop()
    log = (tmp_path / "archive" / "archive.log").read_text()
    print(f"PostgreSQL restarted: published {published}, stored before {before}, lost {len(missing)}, "
          f"stored twice {len(twice)}, store faults logged {log.count('event=store_failed')}")
    assert 0 < before < published
    assert "event=store_failed" in log and "event=store_recovered" in log, "the fault was met, and left"
    assert not missing and not twice, (sorted(missing)[:5], twice)
    assert rc == 0


def test_two_archives_share_the_subscription_one_sigkilled(broker: Broker, tmp_path: Path, database: str) -> None:
    """``$share/<group>/…``: both archives store; one is SIGKILLed mid-stream and the other goes on.
    What the broker had handed to the killed one and it had not acknowledged waits in its session
    and is stored when it comes back (same client_id)."""
    devices = _devices(broker, tmp_path, 3)
    a = _archive(broker.port, database, tmp_path / "a", client_id="archive-a", share="school")
    b = _archive(broker.port, database, tmp_path / "b", client_id="archive-b", share="school")
    _subscribed(tmp_path / "a")
    _subscribed(tmp_path / "b")
    stream = Stream(devices)
    time.sleep(3.0)
    b.send_signal(signal.SIGKILL)
    b.wait()
    time.sleep(3.0)
    stream.stop()
    b = _archive(broker.port, database, tmp_path / "b", client_id="archive-b", share="school")
    missing, twice, published = _settle(devices, database)
    rcs = [_end(a), _end(b)]
    for d in devices:
        d.stop()
    logs = [(tmp_path / n / "archive.log").read_text() for n in ("a", "b")]
    print(f"two archives sharing, one SIGKILLed ({_engine(database)}): published {published}, "
          f"lost {len(missing)}, stored twice {len(twice)}")
    assert all("share_group=school" in log for log in logs)
    assert not missing and not twice, (sorted(missing)[:5], twice)
    assert rcs == [0, 0]


def test_mqtt_311_only_broker_is_refused_with_a_clear_error(broker: Broker, tmp_path: Path) -> None:
    """A persistent session with an expiry and shared subscriptions need MQTT 5: no fallback."""
    proxy = Mqtt311OnlyProxy(broker.port)
    proc = _archive(proxy.port, str(tmp_path / "a.sqlite3"), tmp_path / "archive")
    try:
        rc = proc.wait(30)
    finally:
        proxy.close()
    log = (tmp_path / "archive" / "archive.log").read_text()
    assert rc == 2 and proxy.refused_v5 >= 1
    assert "event=mqtt_unsupported" in log and "needs MQTT 5" in log, log[-1000:]


def test_health_and_metrics_count_what_was_stored_behind_the_token(broker: Broker, tmp_path: Path) -> None:
    """``/health`` and ``/metrics`` say how many messages were stored (counted here against what
    one device published), and answer only with the token when one is set."""
    import urllib.error
    import urllib.request

    port = free_port()
    proc = _archive(broker.port, str(tmp_path / "a.sqlite3"), tmp_path / "archive", EDGE_OCR_ARCHIVE_TOKEN="s3cret",
                    EDGE_OCR_ARCHIVE_HTTP_PORT=str(port))
    _subscribed(tmp_path / "archive")
    device = Device("room-9", broker.port, tmp_path / "dev")
    for _ in range(5):
        device.write()
    missing, twice, published = _settle([device], str(tmp_path / "a.sqlite3"))

    def get(path: str, token: str | None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                         headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    status, body = get("/health", None)
    assert status == 401 and get("/metrics", "wrong")[0] == 401
    status, body = get("/health", "s3cret")
    health = json.loads(body)
    metrics = get("/metrics", "s3cret")[1].decode()
    device.stop()
    rc = _end(proc)
    page_events = sum(1 for kind, _ in device.published if kind in ("page", "events"))
    assert not missing and not twice and published == page_events
    # The device's health and status messages are stored too: at least what it published as pages and events.
    assert status == 200 and health["state"] == "ok" and health["stored"] >= page_events, health
    assert health["engine"] == "sqlite" and health["lag_p95_s"] is not None
    assert "edge_ocr_archive_stored_total" in metrics and rc == 0


def test_an_oversized_or_huge_lined_message_holds_nothing_behind_it(broker: Broker, tmp_path: Path) -> None:
    """Field report: one well-formed 12 MB page (a line of 2,000,000 characters) stalled the
    archive for good, and again after every restart. A message over ``archive.max_message_bytes``
    is refused (acknowledged, counted, logged); one just under it, a single line of 150,000 CJK
    characters, is stored; the device's pages behind both are stored, and SIGTERM still exits 0."""
    import uuid

    import paho.mqtt.publish as publish

    database = str(tmp_path / "a.sqlite3")
    proc = _archive(broker.port, database, tmp_path / "archive")
    _subscribed(tmp_path / "archive")
    device = Device("room-8", broker.port, tmp_path / "dev")
    device.write()
    template = next(doc for kind, doc in device.published if kind == "page")

    def page(text: str, seq: int) -> bytes:
        doc = json.loads(json.dumps(template))
        doc.update(msg_id=str(uuid.uuid4()), seq=seq, ts=time.time())
        doc["lines"][0]["text"] = text
        if "text" in doc:
            doc["text"] = text
        return json.dumps(doc, ensure_ascii=False).encode()

    over, huge = page("光" * 400_000, 100), page("光合" * 75_000, 101)
    assert len(over) > 1_048_576 > len(huge), (len(over), len(huge))
    for payload in (over, huge):
        publish.single("edge-ocr/room-8/page", payload, qos=1, hostname="127.0.0.1", port=broker.port)
    for _ in range(4):
        device.write()
    missing, twice, _ = _settle([device], database, timeout=60)
    versions = {r[0] for r in _query(database, "SELECT seq FROM versions")}
    device.stop()
    rc = _end(proc)
    log = (tmp_path / "archive" / "archive.log").read_text()
    assert not missing and not twice, (sorted(missing)[:5], twice)
    assert 101 in versions and 100 not in versions, sorted(versions)
    assert log.count("event=message_rejected") == 1 and "over archive.max_message_bytes" in log, log[-1500:]
    assert rc == 0
