"""MQTT publishing: the outbox drained into the broker, with status, health and commands.

Topics under ``<base_topic>/<device_id>/``:
- ``status``  retained ``online``/``offline``; ``offline`` is the Last Will, ``online`` is
  re-published on every connect;
- ``page``    retained, QoS 1: the whole current page;
- ``events``  QoS 1: one message per line added, removed or changed;
- ``health``  retained: faults, outbox depth, counters (re-sent whenever it changes);
- ``command`` subscribed: ``capture`` (recognise the next frame) or ``reload`` (re-read the
  configuration), plain or as ``{"command": …}``.

Delivery is at least once: a message is deleted from the outbox in ``on_publish`` (the
PUBACK), never before. paho re-sends its in-flight messages itself after a reconnect; an
in-flight message still unacknowledged after ``RESEND_AFTER_S`` is handed over again,
and a restarted daemon re-sends everything still in the outbox. Subscribers drop the
resulting duplicates by ``msg_id``.
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from edge_ocr.config import MqttConfig
from edge_ocr.daemon.outbox import Outbox, OutboxError
from edge_ocr.daemon.sink import Sink
from edge_ocr.http.prometheus import Metric
from edge_ocr.log import Log

MAX_IN_FLIGHT = 20
RESEND_AFTER_S = 30.0
UNSUPPORTED_PROTOCOL = (132, 1)  # MQTT 5 reason code, MQTT 3.1.1 CONNACK return code
log = Log("edge_ocr.daemon.mqtt")


def make_client(cfg: MqttConfig, client_id: str = "",
                protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5) -> mqtt.Client:
    """A paho client with the configuration's credentials and TLS (CA, client certificate and
    key; the server certificate is always verified): the daemon and ``edge-ocr watch`` connect
    the same way."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password or None)
    if cfg.tls:
        client.tls_set(ca_certs=cfg.ca_file or None, certfile=cfg.cert_file or None, keyfile=cfg.key_file or None,
                       cert_reqs=ssl.CERT_REQUIRED)
    return client


class Topics:
    def __init__(self, base: str, device_id: str) -> None:
        root = f"{base.rstrip('/')}/{device_id}"
        self.status, self.page, self.events = f"{root}/status", f"{root}/page", f"{root}/events"
        self.health, self.command = f"{root}/health", f"{root}/command"


def parse_command(payload: bytes) -> str | None:
    """``capture`` / ``reload`` from a plain or JSON payload; None for anything else."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if text.startswith("{"):
        try:
            text = str(json.loads(text).get("command", ""))
        except (ValueError, AttributeError):
            return None
    return text if text in ("capture", "reload") else None


class MqttPublisher(Sink):
    """The MQTT sink: owns the paho client and a sender thread that moves outbox rows to the
    broker."""

    reads_outbox = True

    def __init__(self, cfg: MqttConfig, device_id: str, outbox: Outbox,
                 on_command: Callable[[str], None] = lambda c: None) -> None:
        self.cfg, self.device_id, self.outbox, self.on_command = cfg, device_id, outbox, on_command
        self.topics = Topics(cfg.base_topic, device_id)
        self.connected = threading.Event()
        self.protocol = MQTTProtocolVersion.MQTTv311 if cfg.protocol == "3.1.1" else MQTTProtocolVersion.MQTTv5
        self.published = self.acked = self.rejected = 0
        self.last_error: str | None = None  # about the broker connection
        self.outbox_error: str | None = None  # acknowledging into the outbox failed (disk full…)
        self._acks: queue.SimpleQueue[tuple[int, bool]] = queue.SimpleQueue()
        self._in_flight: dict[int, tuple[int, float]] = {}  # mid -> (outbox id, handed-over time)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._health: bytes | None = None
        self._health_sent = True
        self._downgrade = False
        self._swap: Outbox | None = None
        self._client: mqtt.Client | None = None
        self._thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._client = self._make_client()
        self._client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive)
        self._client.loop_start()
        self._thread.start()

    def stop(self, drain_timeout_s: float = 0.0) -> int:
        """Send what the outbox holds for up to ``drain_timeout_s``, publish ``offline`` and
        disconnect. Returns the number of messages left for the next run."""
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline and self.connected.is_set() and self.outbox.depth():
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        client = self._client
        if client is not None:
            if self.connected.is_set():
                client.publish(self.topics.status, "offline", qos=1, retain=True).wait_for_publish(timeout=2)
            client.disconnect()
            client.loop_stop()
        return self.outbox.depth()

    def use_outbox(self, outbox: Outbox) -> None:
        """Send from ``outbox`` from now on (the durable one replacing an in-memory stand-in).
        The sender thread makes the switch and forgets what was in flight: those messages are
        in the new outbox too and go again (duplicates, dropped by msg_id)."""
        self._swap = outbox
        self._wake.set()

    def wake(self) -> None:
        """New messages are in the outbox."""
        self._wake.set()

    def deliver(self, page: object, stored: list[dict]) -> None:
        self._wake.set()  # the page and its events are in the outbox: send them

    def status(self) -> dict:
        return {"mqtt_connected": self.connected.is_set()}

    def faults(self) -> dict[str, str]:
        return {k: v for k, v in (("mqtt", self.last_error), ("outbox", self.outbox_error)) if v}

    def metrics(self) -> list[Metric]:
        return [("mqtt_published_total", "counter", "messages handed to the broker", self.published),
                ("mqtt_acked_total", "counter", "messages acknowledged by the broker (PUBACK)", self.acked),
                ("mqtt_connected", "gauge", "1 while connected to the broker", int(self.connected.is_set()))]

    def send_health(self, doc: dict) -> None:
        """Retained health document, re-sent whenever it changes (and on every connect)."""
        payload = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        if payload != self._health:
            self._health, self._health_sent = payload, False
            self._wake.set()

    # -- paho ----------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = make_client(self.cfg, f"edge-ocr-{self.device_id}", self.protocol)
        client.enable_logger(None)
        client.will_set(self.topics.status, "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, 30)
        client.max_inflight_messages_set(MAX_IN_FLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            if self.cfg.protocol == "auto" and reason_code.value in UNSUPPORTED_PROTOCOL \
                    and self.protocol == MQTTProtocolVersion.MQTTv5:
                self._downgrade = True
                self._wake.set()
            log.error("mqtt_refused", host=self.cfg.host, port=self.cfg.port, reason=str(reason_code))
            return
        self.last_error = None
        client.publish(self.topics.status, "online", qos=1, retain=True)
        client.subscribe(self.topics.command, qos=1)
        if self.cfg.home_assistant:
            for topic, doc in self._discovery():
                client.publish(topic, json.dumps(doc), qos=1, retain=True)
        self._health_sent = False
        self.connected.set()
        self._wake.set()
        log.info("mqtt_connected", host=self.cfg.host, port=self.cfg.port,
                 protocol="5" if self.protocol == MQTTProtocolVersion.MQTTv5 else "3.1.1")

    def _on_connect_fail(self, client, userdata) -> None:
        self.last_error = f"cannot reach broker {self.cfg.host}:{self.cfg.port}"
        log.warning("mqtt_unreachable", host=self.cfg.host, port=self.cfg.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set() and not self._stop.is_set():
            log.warning("mqtt_disconnected", reason=str(reason_code))
        self.connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.put((mid, not reason_code.is_failure))
        self._wake.set()

    def _on_message(self, client, userdata, msg) -> None:
        command = parse_command(msg.payload)
        if command is None:
            log.warning("mqtt_bad_command", topic=msg.topic, size=len(msg.payload))
            return
        log.info("mqtt_command", command=command)
        self.on_command(command)

    # -- sender --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                if self._swap is not None:
                    self.outbox, self._swap = self._swap, None
                    self._in_flight.clear()
                if self._downgrade:
                    self._restart_as_311()
                self._take_acks()
                if self.connected.is_set():
                    self._send_health()
                    self._send_pending()
                self.outbox_error = None
            except OutboxError as exc:
                if self.outbox_error != str(exc):
                    log.error("outbox_error", error=str(exc))
                self.outbox_error = str(exc)
                self._stop.wait(1.0)

    def _restart_as_311(self) -> None:
        self._downgrade = False
        old = self._client
        self.protocol = MQTTProtocolVersion.MQTTv311
        self._in_flight.clear()
        if old is not None:
            old.disconnect()
            old.loop_stop()
        log.info("mqtt_protocol_fallback", protocol="3.1.1")
        self._client = self._make_client()
        self._client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive)
        self._client.loop_start()

    def _take_acks(self) -> None:
        done = []
        while True:
            try:
                mid, ok = self._acks.get_nowait()
            except queue.Empty:
                break
            entry = self._in_flight.pop(mid, None)
            if entry is None:
                continue  # a status/health publish, or a message already handed over again
            done.append(entry[0])
            if ok:
                self.acked += 1
            else:
                # The broker answered and said no (e.g. not authorised for the topic): re-sending
                # would be refused forever. Count it and say so.
                self.rejected += 1
                log.error("mqtt_publish_rejected", outbox_id=entry[0])
        self.outbox.ack(done)

    def _send_health(self) -> None:
        if not self._health_sent and self._health is not None and self._client is not None:
            self._client.publish(self.topics.health, self._health, qos=1, retain=True)
            self._health_sent = True

    def _send_pending(self) -> None:
        now = time.monotonic()
        for mid in [m for m, (_, t) in self._in_flight.items() if now - t > RESEND_AFTER_S]:
            del self._in_flight[mid]
        room = MAX_IN_FLIGHT - len(self._in_flight)
        if room <= 0 or self._client is None:
            return
        busy = {row for row, _ in self._in_flight.values()}
        for m in self.outbox.pending(room, busy):
            info = self._client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break  # disconnected meanwhile; on_connect wakes us again
            self._in_flight[info.mid] = (m.id, now)
            self.published += 1

    def _discovery(self) -> list[tuple[str, dict]]:
        """Home Assistant MQTT discovery: a sensor with the board's text (HA keeps 255 chars of
        state; the whole page is in the attributes)."""
        uid = f"edge_ocr_{self.device_id}".replace("-", "_")
        device = {"identifiers": [uid], "name": f"edge-ocr {self.device_id}", "manufacturer": "edge-ocr",
                  "model": "board OCR"}
        avail = {"availability_topic": self.topics.status, "payload_available": "online",
                 "payload_not_available": "offline"}
        prefix = self.cfg.discovery_prefix
        return [
            (f"{prefix}/sensor/{uid}/text/config",
             {"name": "Board text", "unique_id": f"{uid}_text", "state_topic": self.topics.page,
              "value_template": "{{ value_json.text[:255] }}", "json_attributes_topic": self.topics.page,
              "json_attributes_template": "{{ {'lines': value_json.lines | map(attribute='text') | list, "
                                          "'seq': value_json.seq} | tojson }}",
              "icon": "mdi:text-recognition", "device": device, **avail}),
            (f"{prefix}/sensor/{uid}/lines/config",
             {"name": "Board lines", "unique_id": f"{uid}_lines", "state_topic": self.topics.page,
              "value_template": "{{ value_json.lines | length }}", "state_class": "measurement",
              "device": device, **avail}),
        ]
