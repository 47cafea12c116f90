"""MQTT into the store: an MQTT 5 persistent session, QoS 1, every message acknowledged only once
it is stored.

The archive connects with ``clean_start`` false and a Session Expiry Interval
(``archive.session_expiry_s``), so the broker keeps its subscription and queues what devices
publish while it is away (stopped, killed, its database down). paho runs with ``manual_ack``: the
PUBACK of a message goes after ``Store.ingest`` has committed it (or found its ``msg_id`` stored
before), never before, so a message the archive received but did not store (killed mid-stream)
is delivered again. When the store fails (``StoreError``) nothing more is acknowledged: the
client disconnects, waits (1 s, doubling to ``MAX_BACKOFF_S``) and resumes the session, and the
broker delivers the unacknowledged messages again. Messages are handled in the order they arrive,
on paho's network thread, so PUBACKs go in order too (MQTT 5, 4.6).

A message that can never be stored (not JSON, not an object, a topic kind it does not know) is
acknowledged, counted as rejected and logged: it would otherwise come back forever.

``archive.share_group`` subscribes through ``$share/<group>/…``: the broker hands each message to
one archive of the group. MQTT 3.1.1 has neither a session expiry nor shared subscriptions: a
broker that only speaks 3.1.1 is refused with an error that says so (no fallback).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge_ocr.archive.store import Store, StoreError
from edge_ocr.config import ArchiveConfig, MqttConfig
from edge_ocr.daemon.mqtt import UNSUPPORTED_PROTOCOL, make_client
from edge_ocr.http.prometheus import Metric
from edge_ocr.log import Log

KINDS = ("page", "events", "health", "status", "snapshot")
MAX_BACKOFF_S = 60.0
LAG_WINDOW = 2048  # the last messages' delays (their ts → committed, seconds) kept for p50/p95
MQTT5_NEEDED = ("the broker only speaks MQTT 3.1.1: the archive needs MQTT 5 (a persistent session with an "
                "expiry, shared subscriptions); use mosquitto ≥ 1.6, EMQX, HiveMQ or another MQTT 5 broker")
log = Log("edge_ocr.archive.subscriber")


def topics(base: str, share_group: str = "") -> list[str]:
    """The subscriptions: ``<base>/+/<kind>`` for every kind, through ``$share/<group>/`` when shared."""
    prefix = f"$share/{share_group}/" if share_group else ""
    return [f"{prefix}{base.rstrip('/')}/+/{kind}" for kind in KINDS]


def decode(base: str, topic: str, payload: bytes, max_bytes: int = 0) -> tuple[str, dict[str, Any]]:
    """(kind, message) from a topic under ``base`` and its payload. ``status`` is plain text
    (``online``/``offline``), the others JSON objects; ``device`` comes from the topic when the
    message has none. Raises ValueError (with the reason) for anything else, and for a payload
    over ``max_bytes`` (0: no limit) before reading it: no device sends one, and storing it would
    hold every message behind it."""
    if max_bytes and len(payload) > max_bytes:
        raise ValueError(f"{len(payload)} bytes: over archive.max_message_bytes ({max_bytes})")
    rest = topic[len(base.rstrip("/")) + 1:] if topic.startswith(base.rstrip("/") + "/") else ""
    device, _, kind = rest.partition("/")
    if not device or kind not in KINDS:
        raise ValueError(f"not an archive topic under {base!r}: {topic!r}")
    if kind == "status":
        text = payload.decode("utf-8", "replace").strip()
        if text not in ("online", "offline"):
            raise ValueError(f"status is neither online nor offline: {text[:40]!r}")
        return kind, {"device": device, "status": text}
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    doc.setdefault("device", device)
    return kind, doc


class Subscriber:
    """The archive's MQTT client: subscribes under ``base`` and hands each message to ``store``;
    ``progress`` is called after every message handled and every connection (the watchdog)."""

    def __init__(self, mqtt_cfg: MqttConfig, cfg: ArchiveConfig, base: str, store: Store,
                 progress: Any = lambda: None) -> None:
        self.mqtt_cfg, self.cfg, self.base, self.store, self.progress = mqtt_cfg, cfg, base, store, progress
        self.connected = threading.Event()
        self.stored = self.duplicates = self.rejected = self.store_faults = self.connects = 0
        self.sessions_lost = 0  # connects that found no session (messages published meanwhile may be gone)
        self.mqtt_error: str | None = None
        self.store_error: str | None = None
        self.fatal: str | None = None  # a broker the archive cannot work with (MQTT 3.1.1 only)
        self.lags: deque[float] = deque(maxlen=LAG_WINDOW)
        self._lock = threading.Lock()
        self._halted = False  # the store failed: acknowledge nothing until the client is renewed
        self._backoff = 1.0
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._client: mqtt.Client | None = None
        self._thread = threading.Thread(target=self._run, name="archive-mqtt", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._connect()
        self._thread.start()

    def stop(self) -> None:
        """Finish the message being stored (and acknowledge it), then disconnect: what was not
        acknowledged stays with the broker for the next start."""
        self._stop.set()
        self._kick.set()
        self._thread.join(timeout=10)
        self._close()

    def _connect(self) -> None:
        client = make_client(self.mqtt_cfg, self.cfg.client_id, mqtt.MQTTv5)
        client.manual_ack_set(True)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        self._halted = False
        self._client = client
        client.connect_async(self.mqtt_cfg.host, self.mqtt_cfg.port, self.mqtt_cfg.keepalive, clean_start=False,
                             properties=props)
        client.loop_start()

    def _close(self) -> None:
        client, self._client = self._client, None
        self.connected.clear()
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def _run(self) -> None:
        """Renew the client after a store failure, backing off; stop on a fatal broker answer."""
        while not self._stop.is_set():
            self._kick.wait(1.0)
            self._kick.clear()
            if self.fatal is not None:
                self._close()
                return
            if self._halted and not self._stop.is_set():
                self._close()
                log.warning("archive_paused", reason="store failed", retry_in_s=self._backoff, error=self.store_error)
                if self._stop.wait(self._backoff):
                    return
                self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
                self._connect()

    # -- paho ----------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self._client:
            return
        if reason_code.is_failure:
            if reason_code.value in UNSUPPORTED_PROTOCOL:
                self.fatal = self.mqtt_error = MQTT5_NEEDED
                log.error("mqtt_unsupported", host=self.mqtt_cfg.host, port=self.mqtt_cfg.port, error=MQTT5_NEEDED)
                self._kick.set()
                return
            self.mqtt_error = f"broker refused the connection: {reason_code}"
            log.error("mqtt_refused", host=self.mqtt_cfg.host, port=self.mqtt_cfg.port, reason=str(reason_code))
            return
        if self.cfg.share_group and getattr(properties, "SharedSubscriptionAvailable", 1) == 0:
            self.fatal = self.mqtt_error = ("the broker has no shared subscriptions (archive.share_group): "
                                            "leave share_group empty and run one archive")
            log.error("mqtt_unsupported", error=self.fatal)
            self._kick.set()
            return
        self.mqtt_error = None
        self.connects += 1
        if not flags.session_present:
            self.sessions_lost += self.connects > 1
            if self.connects > 1:  # the broker forgot the session: what was queued for it is gone
                log.warning("mqtt_session_lost", client_id=self.cfg.client_id,
                            hint="run the broker with persistence (mosquitto: persistence true)")
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(t, options) for t in topics(self.base, self.cfg.share_group)])
        self.connected.set()
        self.progress()
        log.info("mqtt_connected", host=self.mqtt_cfg.host, port=self.mqtt_cfg.port, client_id=self.cfg.client_id,
                 session_present=bool(flags.session_present), share_group=self.cfg.share_group or None)

    def _on_connect_fail(self, client, userdata) -> None:
        if client is self._client:
            self.mqtt_error = f"cannot reach broker {self.mqtt_cfg.host}:{self.mqtt_cfg.port}"
            log.warning("mqtt_unreachable", host=self.mqtt_cfg.host, port=self.mqtt_cfg.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self._client:
            return
        if self.connected.is_set() and not self._stop.is_set() and not self._halted:
            log.warning("mqtt_disconnected", reason=str(reason_code))
        self.connected.clear()

    def _on_message(self, client, userdata, msg) -> None:
        if self._halted or client is not self._client:
            return  # not acknowledged: the broker delivers it again after the client is renewed
        received = time.time()
        try:
            kind, doc = decode(self.base, msg.topic, msg.payload, self.cfg.max_message_bytes)
            new = self.store.ingest(kind, doc, received)
        except ValueError as exc:
            with self._lock:
                self.rejected += 1
            log.error("message_rejected", topic=msg.topic, bytes=len(msg.payload), error=str(exc))
            client.ack(msg.mid, msg.qos)
            return
        except Exception as exc:  # StoreError, or a bug: either way not stored, so not acknowledged
            self._halted = True
            error = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.store_faults += 1
            if self.store_error != error:
                log.error("store_failed", topic=msg.topic, error=error, acknowledged=False)
            self.store_error = error
            self._kick.set()
            return
        client.ack(msg.mid, msg.qos)
        with self._lock:
            if new:
                self.stored += 1
                ts = doc.get("ts")
                if isinstance(ts, int | float) and kind != "status":
                    self.lags.append(time.time() - float(ts))  # published → committed
            else:
                self.duplicates += 1
        if self.store_error is not None:
            log.info("store_recovered")
            self.store_error = None
        self._backoff = 1.0
        self.progress()

    # -- what the service reports ----------------------------------------------------------

    def lag(self) -> tuple[float | None, float | None]:
        """p50 and p95 of the last messages' delay from publish (their ``ts``) to stored, seconds."""
        with self._lock:
            lags = sorted(self.lags)
        if not lags:
            return None, None
        return lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.95))]

    def status(self) -> dict[str, Any]:
        p50, p95 = self.lag()
        return {"mqtt_connected": self.connected.is_set(), "mqtt_connects": self.connects,
                "mqtt_sessions_lost": self.sessions_lost, "stored": self.stored, "duplicates": self.duplicates,
                "rejected": self.rejected, "store_faults": self.store_faults, "lag_p50_s": p50, "lag_p95_s": p95}

    def faults(self) -> dict[str, str]:
        return {k: v for k, v in (("mqtt", self.mqtt_error), ("store", self.store_error)) if v}

    def metrics(self) -> list[Metric]:
        p50, p95 = self.lag()
        return [("archive_stored_total", "counter", "messages stored", self.stored),
                ("archive_duplicates_total", "counter", "messages already stored (same msg_id)", self.duplicates),
                ("archive_rejected_total", "counter", "messages that could not be read, acknowledged and dropped",
                 self.rejected),
                ("archive_store_faults_total", "counter", "messages the database failed to store (not acknowledged)",
                 self.store_faults),
                ("archive_mqtt_connects_total", "counter", "connections the broker accepted", self.connects),
                ("archive_mqtt_connected", "gauge", "1 while connected to the broker", int(self.connected.is_set())),
                ("archive_lag_p50_seconds", "gauge", "publish to stored, median of the last messages", p50 or 0.0),
                ("archive_lag_p95_seconds", "gauge", "publish to stored, 95th percentile of the last messages",
                 p95 or 0.0)]
