"""MQTT publishing: the outbox drained into the broker, with status, health and commands.

Topics under ``<base_topic>/<device_id>/`` (retained ones only while ``[mqtt] retain``, for
brokers that keep no retained messages; the Will follows the same setting):
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

No message blocks the ones behind it. One larger than the broker takes (the Maximum Packet
Size of its CONNACK, ``[mqtt] max_message_bytes``) is trimmed or replaced by a notice before it
is sent (:mod:`edge_ocr.daemon.fit`). One the broker keeps refusing without saying why (a limit
it does not announce: it disconnects, or answers what paho cannot parse) is found as the oldest
message in flight when the connection is lost, and sent again alone; after ``GIVE_UP_AFTER``
more losses (or as many ``RESEND_AFTER_S`` without PUBACK) the limit is halved and it goes
trimmed, or, already small, it is dropped: counted on health (``mqtt_given_up``), logged.
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from edge_ocr.config import MqttConfig
from edge_ocr.daemon.fit import Fitted, fit, packet_size
from edge_ocr.daemon.outbox import Outbox, OutboxError, encode
from edge_ocr.daemon.sink import Sink
from edge_ocr.http.prometheus import Metric
from edge_ocr.log import Log

MAX_IN_FLIGHT = 20
RESEND_AFTER_S = 30.0
GIVE_UP_AFTER = 2  # failed attempts alone on a working connection (or without PUBACK) before giving up
HEALTH_ROW = 0  # health's place among the messages in flight (outbox ids start at 1)
UNSUPPORTED_PROTOCOL = (132, 1)  # MQTT 5 reason code, MQTT 3.1.1 CONNACK return code
RETAIN_NOT_SUPPORTED = 154  # MQTT 5 CONNACK reason code 0x9A
NO_RETAIN_HINT = "the broker keeps no retained messages: set mqtt.retain = false"
LOST = -1  # the connection-lost marker in the acknowledgement queue, beside PUBACK message ids
MIN_LEARNED_BYTES = 1024  # a limit learned from a message the broker kept refusing goes no lower
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
        self.snapshot = f"{root}/snapshot"


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


def _seq(payload: bytes | None) -> object:
    """The ``seq`` of a JSON message, for a log line; None when it has none."""
    try:
        doc = json.loads(payload or b"")
    except ValueError:
        return None
    return doc.get("seq") if isinstance(doc, dict) else None


@dataclass(frozen=True)
class _Flight:
    """A message handed to paho and not yet acknowledged: an outbox row, or health."""

    row: int  # outbox id, or HEALTH_ROW
    at: float  # when handed over (time.monotonic)
    fitted: Fitted
    topic: str
    size: int  # packet size as sent
    alone: bool  # sent as the only message in flight on a connection the broker had shown working


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
        self.published = self.acked = self.rejected = self.connects = 0
        self.trimmed = self.too_large = self.given_up = 0
        self.broker_max: int | None = None  # Maximum Packet Size from the last CONNACK (MQTT 5)
        self.learned_max: int | None = None  # half the size of a message the broker kept refusing
        self.last_error: str | None = None  # about the broker connection
        self.outbox_error: str | None = None  # acknowledging into the outbox failed (disk full…)
        # (client, mid, ok) from paho's thread: a PUBACK (mid) or the connection lost (LOST).
        self._acks: queue.SimpleQueue[tuple[mqtt.Client, int, bool]] = queue.SimpleQueue()
        self._in_flight: dict[int, _Flight] = {}  # mid -> message
        self._failures: dict[int, int] = {}  # row -> failed attempts
        self._probe: int | None = None  # row to send alone: the oldest in flight when a connection was lost
        self._proven = False  # the broker acknowledged this connection's ``online``: it works
        self._online_mid: int | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._health: bytes | None = None
        self._health_sent = True
        self._health_fit = "as_is"
        self._health_due = False  # a message was trimmed, replaced or dropped since health last asked
        self._downgrade = False
        self._renew = False
        self._swap: Outbox | None = None
        self._client: mqtt.Client | None = None
        self._thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._connect()
        self._thread.start()

    def _connect(self) -> None:
        self._client = self._make_client()
        self._client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive)
        self._client.loop_start()

    def stop(self, drain_timeout_s: float = 0.0) -> int:
        """Send what the outbox holds (and health, if due) for up to ``drain_timeout_s``, publish
        ``offline`` and disconnect. Returns the number of messages left for the next run.

        A broker that is away is waited for within the same deadline: a stop that came while the
        client was reconnecting (a broker restart) would otherwise leave the outbox to the next run."""
        deadline = time.monotonic() + drain_timeout_s
        busy = lambda: self.outbox.depth() or not self._health_sent  # noqa: E731
        while time.monotonic() < deadline and busy():
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        client = self._client
        if client is not None:
            if self.connected.is_set():
                client.publish(self.topics.status, "offline", qos=1, retain=self.cfg.retain).wait_for_publish(timeout=2)
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

    def limit(self) -> int | None:
        """The largest PUBLISH packet to send: the smallest of ``max_message_bytes``, the broker's
        announced Maximum Packet Size and one learned from a message it kept refusing
        (``_failed``); None when none says."""
        limits = [n for n in (self.cfg.max_message_bytes, self.broker_max, self.learned_max) if n]
        return min(limits) if limits else None

    def health_due(self) -> bool:
        due, self._health_due = self._health_due, False
        return due

    def status(self) -> dict:
        return {"mqtt_connected": self.connected.is_set(), "mqtt_connects": self.connects,
                "mqtt_message_limit": self.limit(), "mqtt_trimmed": self.trimmed, "mqtt_too_large": self.too_large,
                "mqtt_rejected": self.rejected, "mqtt_given_up": self.given_up}

    def faults(self) -> dict[str, str]:
        return {k: v for k, v in (("mqtt", self.last_error), ("outbox", self.outbox_error)) if v}

    def metrics(self) -> list[Metric]:
        return [("mqtt_published_total", "counter", "messages handed to the broker", self.published),
                ("mqtt_acked_total", "counter", "messages acknowledged by the broker (PUBACK)", self.acked),
                ("mqtt_connects_total", "counter", "connections the broker accepted", self.connects),
                ("mqtt_trimmed_total", "counter", "pages acknowledged trimmed to the broker's size limit",
                 self.trimmed),
                ("mqtt_too_large_total", "counter", "messages replaced by a too-large notice or not sent",
                 self.too_large),
                ("mqtt_rejected_total", "counter", "messages the broker refused in its PUBACK", self.rejected),
                ("mqtt_given_up_total", "counter", "messages dropped: the broker kept refusing them",
                 self.given_up),
                ("mqtt_connected", "gauge", "1 while connected to the broker", int(self.connected.is_set()))]

    def send_health(self, doc: dict) -> None:
        """Health document, re-sent whenever it changes (and on every connect)."""
        payload = encode(doc)
        if payload != self._health:
            self._health, self._health_sent = payload, False
            self._wake.set()

    # -- paho ----------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = make_client(self.cfg, f"edge-ocr-{self.device_id}", self.protocol)
        client.enable_logger(None)
        client.will_set(self.topics.status, "offline", qos=1, retain=self.cfg.retain)
        client.reconnect_delay_set(1, 30)
        client.max_inflight_messages_set(MAX_IN_FLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self._client:
            return  # a client being replaced
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            if reason_code.value == RETAIN_NOT_SUPPORTED:
                self.last_error += f"; {NO_RETAIN_HINT}"
            if self.cfg.protocol == "auto" and reason_code.value in UNSUPPORTED_PROTOCOL \
                    and self.protocol == MQTTProtocolVersion.MQTTv5:
                self._downgrade = True
                self._wake.set()
            log.error("mqtt_refused", host=self.cfg.host, port=self.cfg.port, reason=str(reason_code))
            return
        self.last_error = None
        self.broker_max = getattr(properties, "MaximumPacketSize", None)
        if getattr(properties, "RetainAvailable", 1) == 0 and self.cfg.retain:
            log.warning("mqtt_retain_unavailable", hint=NO_RETAIN_HINT)
        self.connects += 1
        self._online_mid = client.publish(self.topics.status, "online", qos=1, retain=self.cfg.retain).mid
        client.subscribe(self.topics.command, qos=1)
        if self.cfg.home_assistant:
            client.subscribe(f"{self.cfg.discovery_prefix}/status", qos=1)
            self._send_discovery(client)
        self._health_sent = False
        self.connected.set()
        self._wake.set()
        log.info("mqtt_connected", host=self.cfg.host, port=self.cfg.port,
                 protocol="5" if self.mqtt5 else "3.1.1", max_packet=self.broker_max, limit=self.limit())

    def _on_connect_fail(self, client, userdata) -> None:
        if client is not self._client:
            return
        self.last_error = f"cannot reach broker {self.cfg.host}:{self.cfg.port}"
        log.warning("mqtt_unreachable", host=self.cfg.host, port=self.cfg.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self._client:
            return
        if not self.connected.is_set():
            if not self._stop.is_set() and self.last_error is None:
                # Closed before a CONNACK: mosquitto does this to a retained Will when it keeps no
                # retained messages (MQTT 3.1.1; MQTT 5 refuses with a reason code instead).
                self.last_error = f"broker {self.cfg.host}:{self.cfg.port} closed the connection before accepting it"
                if self.cfg.retain:
                    self.last_error += f" (a broker without retained messages does this: {NO_RETAIN_HINT})"
                log.error("mqtt_closed_at_connect", host=self.cfg.host, port=self.cfg.port, reason=str(reason_code))
            return
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("mqtt_disconnected", reason=str(reason_code))
            self._acks.put((client, LOST, False))
            self._wake.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if client is not self._client:
            return
        self._acks.put((client, mid, not reason_code.is_failure))
        self._wake.set()

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == f"{self.cfg.discovery_prefix}/status":
            if self.cfg.home_assistant and msg.payload == b"online":  # Home Assistant (re)started
                self._send_discovery(client)
            return
        command = parse_command(msg.payload)
        if command is None:
            log.warning("mqtt_bad_command", topic=msg.topic, size=len(msg.payload))
            return
        log.info("mqtt_command", command=command)
        self.on_command(command)

    @property
    def mqtt5(self) -> bool:
        return self.protocol == MQTTProtocolVersion.MQTTv5

    # -- sender --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                if self._swap is not None:
                    self.outbox, self._swap = self._swap, None
                    self._in_flight.clear()
                self._take_acks()
                if self._downgrade:
                    self._downgrade = False
                    self.protocol = MQTTProtocolVersion.MQTTv311
                    log.info("mqtt_protocol_fallback", protocol="3.1.1")
                    self._renew_client()
                elif self._renew:
                    self._renew = False
                    self._renew_client()
                if self.connected.is_set():
                    self._send()
                self.outbox_error = None
            except OutboxError as exc:
                if self.outbox_error != str(exc):
                    log.error("outbox_error", error=str(exc))
                self.outbox_error = str(exc)
                self._stop.wait(1.0)

    def _renew_client(self) -> None:
        """A fresh paho client: the old one's queue (which it re-sends on every reconnect) is
        dropped; what was in flight goes again from the outbox."""
        old, self._client = self._client, None
        self.connected.clear()
        self._in_flight.clear()
        self._proven = False
        if old is not None:
            old.disconnect()
            old.loop_stop()
        self._connect()

    def _take_acks(self) -> None:
        done = []
        while True:
            try:
                client, mid, ok = self._acks.get_nowait()
            except queue.Empty:
                break
            if client is not self._client:
                continue  # from a client since replaced
            if mid == LOST:
                self._proven = False
                self._blame(done)
            elif mid == self._online_mid:
                self._proven = True
            elif (flight := self._in_flight.pop(mid, None)) is not None:
                if flight.row != HEALTH_ROW:
                    done.append(flight.row)
                self._failures.pop(flight.row, None)
                if flight.row == self._probe:
                    self._probe = None
                self._count(flight, ok)
            # else: a status or discovery publish, or a message already handed over again
        self.outbox.ack(done)

    def _count(self, flight: _Flight, ok: bool) -> None:
        """Count an answered outbox message, and log what did not arrive whole."""
        if flight.row == HEALTH_ROW:
            return
        if not ok or flight.fitted.outcome == "too_large":
            self._health_due = True  # a trimmed page says so itself; a lost message only here
        if not ok:
            # The broker answered and said no (e.g. not authorised for the topic): re-sending
            # would be refused forever. Count it and say so.
            self.rejected += 1
            log.error("mqtt_publish_rejected", outbox_id=flight.row, topic=flight.topic)
            return
        self.acked += 1
        fitted = flight.fitted
        if fitted.outcome == "trimmed":
            self.trimmed += 1
            log.warning("mqtt_page_trimmed", topic=flight.topic, seq=_seq(fitted.payload), bytes=fitted.size,
                        limit=fitted.limit, lines_kept=fitted.kept)
        elif fitted.outcome == "too_large":
            self.too_large += 1
            log.error("mqtt_message_too_large", topic=flight.topic, seq=_seq(fitted.payload), bytes=fitted.size,
                      limit=fitted.limit, sent="notice")

    def _blame(self, done: list[int]) -> None:
        """The connection was lost with messages in flight. The broker takes messages in order,
        so one it cannot take (too large for a limit it does not announce, a PUBACK paho cannot
        parse) is the oldest unacknowledged: it is sent again alone, once the next connection
        has shown it works (the broker acknowledged ``online``), from a fresh client (paho would
        re-send its whole window, which the broker may have taken already). Lost again while it
        is alone, the connection fails through it: an attempt that failed. A broker that dies
        for its own reasons (restarts, crash loops) would have to die in the one round trip the
        message is alone, each time, to cost it anything."""
        if not self._in_flight:
            return
        oldest = min(self._in_flight.values(), key=lambda f: f.row)
        self._probe = oldest.row
        if oldest.alone:
            self._failed(oldest, done, "connection lost each time it was sent alone")
        self._renew = True

    def _failed(self, flight: _Flight, done: list[int], why: str) -> None:
        """One more failed attempt for ``flight``'s message. At ``GIVE_UP_AFTER`` the broker
        evidently refuses it: if it was larger than ``MIN_LEARNED_BYTES``, the limit becomes half
        its size (not less than that), and it goes again fitted to that (trimmed, or a notice);
        otherwise it is dropped, counted and logged, so that it cannot block what follows. Either
        way paho's copy goes with a fresh client."""
        row = flight.row
        self._failures[row] = self._failures.get(row, 0) + 1
        if self._failures[row] < GIVE_UP_AFTER:
            return
        del self._failures[row]
        self._in_flight = {mid: f for mid, f in self._in_flight.items() if f.row != row}
        self._renew = True
        self._health_due = True
        hint = "a broker that limits message size without saying so: set mqtt.max_message_bytes below its limit"
        if flight.size > MIN_LEARNED_BYTES:
            self.learned_max = max(MIN_LEARNED_BYTES, flight.size // 2)
            if row == HEALTH_ROW:
                self._health_sent = False
            log.error("mqtt_limit_learned", outbox_id=row, topic=flight.topic, seq=_seq(flight.fitted.payload),
                      bytes=flight.size, why=why, limit=self.limit(), hint=hint)
            return
        self._probe = None
        if row != HEALTH_ROW:
            done.append(row)
        self.given_up += 1
        log.error("mqtt_gave_up", outbox_id=row, topic=flight.topic, seq=_seq(flight.fitted.payload), bytes=flight.size,
                  why=why, limit=self.limit(), hint=hint)

    def _send(self) -> None:
        """Health and what the outbox holds, or only the message under suspicion, alone, once
        the broker has acknowledged this connection's ``online``."""
        now = time.monotonic()
        done: list[int] = []
        for mid in [m for m, f in self._in_flight.items() if now - f.at > RESEND_AFTER_S]:
            flight = self._in_flight.pop(mid)  # no PUBACK on a live connection: handed over again
            self._failed(flight, done, f"no PUBACK in {RESEND_AFTER_S:.0f} s")
            if flight.row == HEALTH_ROW:
                self._health_sent = False
        self.outbox.ack(done)
        if self._client is None or self._renew:
            return
        if self._probe is None:
            self._send_health(now, alone=False)
            self._send_pending(now, MAX_IN_FLIGHT - len(self._in_flight), alone=False)
        elif self._proven and not self._in_flight:
            if self._probe == HEALTH_ROW:
                self._health_sent = False
                self._send_health(now, alone=True)
            elif (first := self.outbox.pending(1)) and first[0].id == self._probe:
                self._send_pending(now, 1, alone=True)
            else:  # gone meanwhile (dropped when the outbox overflowed)
                self._probe = None
                self._wake.set()

    def _send_health(self, now: float, alone: bool) -> None:
        """The health document; over the size limit without its board grid, and not at all (it
        has no notice form) when even that is too large. Logged when that first happens."""
        if self._health_sent or self._health is None or self._client is None:
            return
        self._health_sent = True
        fitted = fit(self.topics.health, self._health, 1, self.mqtt5, self.limit())
        if fitted.outcome != self._health_fit:
            self._health_fit = fitted.outcome
            if fitted.outcome != "as_is":
                log.warning(f"mqtt_health_{fitted.outcome}", bytes=fitted.size, limit=fitted.limit)
        if fitted.outcome == "too_large" or fitted.payload is None:
            return
        info = self._client.publish(self.topics.health, fitted.payload, qos=1, retain=self.cfg.retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            size = packet_size(self.topics.health, fitted.payload, 1, self.mqtt5)
            self._in_flight[info.mid] = _Flight(HEALTH_ROW, now, fitted, self.topics.health, size, alone)

    def _send_pending(self, now: float, room: int, alone: bool) -> None:
        if room <= 0 or self._client is None:
            return
        busy = {f.row for f in self._in_flight.values()}
        limit = self.limit()
        for m in self.outbox.pending(room, busy):
            fitted = fit(m.topic, m.payload, m.qos, self.mqtt5, limit)
            if fitted.payload is None:  # not even a notice fits (a limit below ~200 bytes)
                self.too_large += 1
                self._health_due = True
                log.error("mqtt_message_too_large", topic=m.topic, seq=_seq(m.payload), bytes=fitted.size,
                          limit=limit, sent="nothing")
                self.outbox.ack([m.id])
                continue
            info = self._client.publish(m.topic, fitted.payload, qos=m.qos, retain=m.retain and self.cfg.retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break  # disconnected meanwhile; on_connect wakes us again
            size = packet_size(m.topic, fitted.payload, m.qos, self.mqtt5)
            self._in_flight[info.mid] = _Flight(m.id, now, fitted, m.topic, size, alone)
            self.published += 1

    def _send_discovery(self, client: mqtt.Client) -> None:
        for topic, doc in self._discovery():
            payload = encode(doc)
            if fit(topic, payload, 1, self.mqtt5, self.limit()).outcome != "as_is":
                log.error("mqtt_discovery_too_large", topic=topic, bytes=len(payload), limit=self.limit())
                continue
            client.publish(topic, payload, qos=1, retain=self.cfg.retain)

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
