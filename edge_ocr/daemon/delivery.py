"""Delivery: the one step between a read page and everything that receives it.

A page and its line events become messages (``schemas/page.schema.json``, ``event.schema.json``),
numbered and stored in the durable outbox, then handed to every **sink** — one small interface
(after Frigate's ``comms/base_communicator.py``): the MQTT publisher (it drains the outbox into
the broker), stdout (``service.stdout_pages``) and the latest page the HTTP layer shows. The
outbox's degraded modes live here too: an unusable state directory gives an in-memory stand-in,
a disk that refuses writes keeps messages in memory (bounded); both are retried every 10 s and
reported as the ``outbox`` fault.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable

import numpy as np

from edge_ocr import rounding
from edge_ocr.config import Config
from edge_ocr.daemon import snapshot
from edge_ocr.daemon.health import Health, merge_faults
from edge_ocr.daemon.mqtt import MqttPublisher, Topics
from edge_ocr.daemon.outbox import Body, Outbox, OutboxError
from edge_ocr.daemon.sink import Sink
from edge_ocr.http.prometheus import Metric
from edge_ocr.log import Log
from edge_ocr.page.diff import LineEvent
from edge_ocr.page.result import PageResult

HEALTH_EVERY_S = 10.0
OUTBOX_RETRY_S = 10.0
UNSTORED_MAX = 1000  # messages kept in memory while the disk refuses them
log = Log("edge_ocr.daemon.delivery")


class StdoutSink(Sink):
    """Every message as one JSON line on stdout (``service.stdout_pages``: for pipes and logs)."""

    def deliver(self, page: PageResult, stored: list[dict]) -> None:
        for doc in stored:
            sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
        sys.stdout.flush()


class LatestPage(Sink):
    """The last published page: its message (``GET /api/page``) and its typed result with the
    rectified surface (``GET /api/live.jpg``)."""

    def __init__(self) -> None:
        self.doc: dict | None = None
        self.result: PageResult | None = None

    def deliver(self, page: PageResult, stored: list[dict]) -> None:
        self.doc, self.result = stored[0], page

    def page(self) -> dict | None:
        return self.doc

    def live(self) -> tuple[int | None, PageResult] | None:
        doc, result = self.doc, self.result
        return None if doc is None or result is None else (doc["seq"], result)


class Delivery:
    """Numbers, stores and hands out what the daemon publishes; reports into ``health``."""

    def __init__(self, cfg: Config, health: Health, on_command: Callable[[str], None] = lambda c: None) -> None:
        self.cfg, self.health, self.on_command = cfg, health, on_command
        self.latest = LatestPage()
        self._unstored: list[tuple[str, dict, bool]] = []
        self._outbox_fault: str | None = None
        self._retry_at = 0.0
        self._health_at = 0.0
        self._health_seq = 0
        self.outbox = self._open_outbox()
        self.sinks = self._make_sinks()
        health.sources.append(self)

    @property
    def topics(self) -> Topics:
        return Topics(self.cfg.mqtt.base_topic, self.cfg.device.id)

    def _make_sinks(self) -> list[Sink]:
        sinks: list[Sink] = [self.latest]
        if self.cfg.mqtt.enabled:
            sinks.append(MqttPublisher(self.cfg.mqtt, self.cfg.device.id, self.outbox, self.on_command))
        if self.cfg.service.stdout_pages:
            sinks.append(StdoutSink())
        return sinks

    def _open_outbox(self) -> Outbox:
        """The durable outbox; if the state directory is unusable, an in-memory stand-in (a
        fault on health and in the logs; the durable one is tried again every 10 s)."""
        try:
            outbox = Outbox(self.cfg.outbox_path, self.cfg.outbox.max_messages)
        except OutboxError as exc:
            self._outbox_fault = f"{exc} (messages kept in memory until it works)"
            log.error("outbox_unusable", error=str(exc), fallback="memory")
            self._retry_at = time.monotonic() + OUTBOX_RETRY_S
            return Outbox.in_memory(self.cfg.outbox.max_messages)
        if outbox.recovered_from is not None:
            log.error("outbox_damaged", kept=str(outbox.recovered_from), started="empty")
        return outbox

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        for sink in self.sinks:
            sink.start()

    def stop(self, drain_timeout_s: float) -> int:
        """Send health a last time, stop every sink (the MQTT one drains the outbox and that
        health for up to ``drain_timeout_s``) and close the outbox; returns the messages left for
        the next run."""
        self.send_health(force=True)
        left = sum(sink.stop(drain_timeout_s) for sink in self.sinks)
        self.outbox.close()
        return left

    def reconfigure(self, new: Config) -> None:
        """Apply a reloaded configuration's ``[mqtt]``, ``[device]``, ``[outbox]`` and
        ``service.stdout_pages``: the sinks are rebuilt; the outbox is reopened only if its
        settings changed (what it holds stays for the new sinks)."""
        old, self.cfg = self.cfg, new
        for sink in self.sinks:
            sink.stop(drain_timeout_s=2.0)
        if new.outbox != old.outbox or new.service.state_dir != old.service.state_dir:
            self.outbox.close()
            self.outbox = self._open_outbox()
        self.sinks = self._make_sinks()
        self.start()

    # -- publishing ----------------------------------------------------------------------

    def publish(self, page: PageResult, events: list[LineEvent], frame_seq: int, frame_ts: float,
                picture: np.ndarray | None = None) -> list[dict]:
        """The page and its events as messages: numbered, stored (when a sink sends from the
        outbox) and handed to every sink. Returns them as stored (``seq`` None while the disk
        refuses them). ``picture`` (BGR, the board read without anyone in front:
        :mod:`edge_ocr.daemon.snapshot`) goes as the page's snapshot, stored in the same
        transaction, when ``[snapshot]`` is on and a sink sends from the durable outbox; not to
        the other sinks, nor kept in memory while the disk refuses writes."""
        now = rounding.seconds(time.time())
        frame = {"seq": frame_seq, "ts": rounding.seconds(frame_ts)}
        body = {"device": self.cfg.device.id, "ts": now, "frame": frame, **page.to_dict()}
        items: list[tuple[str, Body, bool]] = [(self.topics.page, body, True)]
        items += [(self.topics.events, {"device": self.cfg.device.id, "ts": now, "frame": frame, **e.to_dict()}, False)
                  for e in events]
        readers = any(sink.reads_outbox for sink in self.sinks)
        wanted = picture is not None and self.cfg.snapshot.enabled and readers and self.outbox.durable
        snap = self._snapshot(picture, {"device": self.cfg.device.id, "ts": now}, frame) \
            if wanted and picture is not None and not self._unstored else ([], {})
        try:
            if not readers:  # nothing sends from it: number, keep nothing
                stored = [self.outbox.stamp(b, "seq") for _, b, _ in items if isinstance(b, dict)]
            elif self._unstored:
                raise OutboxError("earlier messages are still waiting for the disk")
            else:
                stored = self.outbox.enqueue(items + snap[0])[:len(items)]
        except OutboxError as exc:
            # Disk full or read-only: keep the messages (bounded) and store them, in order, when
            # the disk takes them again; the page state moves on meanwhile.
            self._unstored = (self._unstored + items)[-UNSTORED_MAX:]
            if not self._outbox_fault:
                self._outbox_fault = str(exc)
                log.error("outbox_write_failed", error=str(exc), waiting=len(self._unstored))
                self.send_health(force=True)
            self._retry_at = min(self._retry_at, time.monotonic() + 2.0)
            stored = [{"seq": None, **b} for _, b, _ in items if isinstance(b, dict)]
            snap = ([], {})
        self.health.count("pages_published")
        self.health.count("events_published", len(events))
        self.health.count("snapshots_published", len(snap[0]))
        for sink in self.sinks:
            sink.deliver(page, stored)
        log.info("page", frame=frame_seq, seq=stored[0]["seq"], lines=len(page.lines), events=len(events),
                 recognise_ms=page.timings_ms.get("recognise", 0.0), total_ms=page.timings_ms.get("total", 0.0),
                 **snap[1])
        return stored

    def _snapshot(self, picture: np.ndarray, head: dict, frame: dict) -> tuple[list[tuple[str, Body, bool]], dict]:
        """The snapshot message of ``picture`` (its ``page_seq`` taken from the page stored just
        before it), fitted to the smallest limit in force (``snapshot.max_bytes``, the
        broker's), and log fields (its size, quality and cost); no message when even the
        smallest picture does not fit: counted (``snapshots_too_large``) and logged."""
        t0 = time.perf_counter()
        limit = min(n for n in [self.cfg.snapshot_bytes] + [sink.limit() for sink in self.sinks] if n)
        fields = {**head, "page_seq": 0, "frame": frame}
        jpeg = snapshot.fit_jpeg(picture, self.cfg.snapshot.quality,
                                 snapshot.fits_message(fields, self.topics.snapshot, limit))
        ms = rounding.ms((time.perf_counter() - t0) * 1000)
        if jpeg is None:
            self.health.count("snapshots_too_large")
            log.warning("snapshot_too_large", frame=frame["seq"], limit=limit, width=picture.shape[1],
                        height=picture.shape[0], sent="page without its snapshot")
            return [], {"snapshot_ms": ms}
        doc = snapshot.message(fields, jpeg)
        made: Body = lambda stored: {**doc, "page_seq": stored[0]["seq"]}  # noqa: E731
        return [(self.topics.snapshot, made, False)], {"snapshot_bytes": len(jpeg.data),
                                                       "snapshot_quality": jpeg.quality, "snapshot_ms": ms}

    def tick(self) -> None:
        """Called every loop turn: retry a degraded outbox, send health when due (at once when
        a sink had a message replaced, refused or dropped)."""
        if self._outbox_fault or self._unstored:
            self._retry_outbox()
        self.send_health(force=any([sink.health_due() for sink in self.sinks]))

    def send_health(self, force: bool = False) -> None:
        """The health document to every sink, every ``HEALTH_EVERY_S`` or now (``force``)."""
        now = time.monotonic()
        if not force and now - self._health_at < HEALTH_EVERY_S:
            return
        self._health_at = now
        # Numbered in memory: health must get out when the disk is what failed.
        self._health_seq += 1
        doc = {"msg_id": uuid.uuid4().hex, "seq": self._health_seq, **self.health.document()}
        for sink in self.sinks:
            sink.send_health(doc)

    def _retry_outbox(self) -> None:
        """Bring a degraded outbox back: open the durable one, adopt what the stand-in holds,
        store what could not be stored."""
        if time.monotonic() < self._retry_at:
            return
        self._retry_at = time.monotonic() + OUTBOX_RETRY_S
        try:
            if not self.outbox.durable:
                durable = Outbox(self.cfg.outbox_path, self.cfg.outbox.max_messages)
                adopted = durable.adopt(self.outbox)
                old, self.outbox = self.outbox, durable
                for sink in self.sinks:
                    sink.use_outbox(durable)
                old.close()
                log.info("outbox_durable_again", adopted=adopted)
            while self._unstored:
                self.outbox.enqueue(self._unstored[:50])
                del self._unstored[:50]
        except OutboxError as exc:
            self._outbox_fault = str(exc)
            return
        self._outbox_fault = None
        log.info("outbox_recovered", depth=self.outbox.depth())
        for sink in self.sinks:
            sink.wake()
        self.send_health(force=True)

    # -- health source -------------------------------------------------------------------

    def status(self) -> dict:
        out = {"outbox_depth": self.outbox.depth(), "outbox_dropped": self.outbox.dropped, "mqtt_connected": False}
        for sink in self.sinks:
            out.update(sink.status())
        return out

    def faults(self) -> dict[str, str]:
        return merge_faults({"outbox": self._outbox_fault}, self.sinks)

    def metrics(self) -> list[Metric]:
        items: list[Metric] = [
            ("outbox_depth", "gauge", "messages waiting for the broker", self.outbox.depth()),
            ("outbox_dropped_total", "counter", "messages dropped because the outbox was full", self.outbox.dropped)]
        for sink in self.sinks:
            items += sink.metrics()
        return items
