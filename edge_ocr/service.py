"""The daemon: capture → gate → vision/recognise → document diff → outbox → MQTT.

One loop on the main thread; MQTT sending and the systemd watchdog run beside it. Signals
only set flags: SIGTERM/SIGINT stop (the outbox is drained for ``service.drain_timeout_s``),
SIGHUP reloads the configuration (an invalid file is reported and the old one kept).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from edge_ocr import config as config_mod
from edge_ocr import systemd
from edge_ocr.api import Api, build_api
from edge_ocr.capture import Capture, make_camera
from edge_ocr.config import Config, ConfigError
from edge_ocr.document import reconcile
from edge_ocr.gate import Gate
from edge_ocr.imageio import ImageError, to_bgr8
from edge_ocr.log import Log, setup
from edge_ocr.metrics import Histogram
from edge_ocr.mqtt import MqttPublisher
from edge_ocr.outbox import Outbox, OutboxError
from edge_ocr.page import PageLine, PageResult
from edge_ocr.reader import build_reader

HEALTH_EVERY_S = 10.0
OUTBOX_RETRY_S = 10.0
UNSTORED_MAX = 1000  # messages kept in memory while the disk refuses them
log = Log("edge_ocr.service")


class Service:
    def __init__(self, cfg: Config, config_path: str | Path | None = None) -> None:
        self.cfg, self.config_path = cfg, config_path
        self.stop = threading.Event()
        self._capture_stop = threading.Event()
        self._reload = threading.Event()
        self._capture_now = threading.Event()
        self.watchdog = systemd.Watchdog()
        self.started = time.time()
        self.counters = {"frames_seen": 0, "frames_recognised": 0, "lines_recognised": 0, "lines_cached": 0,
                         "pages_published": 0, "events_published": 0, "frame_errors": 0}
        self.recognise_ms = Histogram()
        self.faults: dict[str, str | None] = {"camera": None, "outbox": None, "mqtt": None}
        self.last_frame_ts: float | None = None
        self.last_page: dict | None = None
        self.live: tuple[np.ndarray, dict] | None = None  # the last published frame and page, for the web view
        self._lines: list[PageLine] | None = None
        self._previous_image: np.ndarray | None = None
        self._health_at = 0.0
        self._health_seq = 0
        self.reader = build_reader(cfg)
        self.gate = Gate(cfg.gate)
        self._unstored: list[tuple[str, dict, bool]] = []
        self._outbox_retry_at = 0.0
        self.outbox = self._open_outbox(cfg)
        self.publisher = self._make_publisher(cfg)
        self._http_stop = threading.Event()
        self.api: Api | None = None
        if cfg.http.enabled:
            self.api = build_api(cfg.http, build_reader(cfg), self)

    def _open_outbox(self, cfg: Config) -> Outbox:
        """The durable outbox; if the state directory is unusable, an in-memory stand-in (a
        fault on health and in the logs; the durable one is tried again every 10 s)."""
        try:
            outbox = Outbox(cfg.outbox_path, cfg.outbox.max_messages)
        except OutboxError as exc:
            self.faults["outbox"] = f"{exc} (messages kept in memory until it works)"
            log.error("outbox_unusable", error=str(exc), fallback="memory")
            self._outbox_retry_at = time.monotonic() + OUTBOX_RETRY_S
            return Outbox.in_memory(cfg.outbox.max_messages)
        if outbox.recovered_from is not None:
            log.error("outbox_damaged", kept=str(outbox.recovered_from), started="empty")
        return outbox

    def _retry_outbox(self) -> None:
        """Bring a degraded outbox back: open the durable one, adopt what the stand-in holds,
        store what could not be stored."""
        if time.monotonic() < self._outbox_retry_at:
            return
        self._outbox_retry_at = time.monotonic() + OUTBOX_RETRY_S
        try:
            if not self.outbox.durable:
                durable = Outbox(self.cfg.outbox_path, self.cfg.outbox.max_messages)
                adopted = durable.adopt(self.outbox)
                old, self.outbox = self.outbox, durable
                if self.publisher is not None:
                    self.publisher.swap_outbox(durable)
                old.close()
                log.info("outbox_durable_again", adopted=adopted)
            while self._unstored:
                self.outbox.enqueue(self._unstored[:50])
                del self._unstored[:50]
        except OutboxError as exc:
            self.faults["outbox"] = str(exc)
            return
        self.faults["outbox"] = None
        log.info("outbox_recovered", depth=self.outbox.depth())
        if self.publisher is not None:
            self.publisher.wake()
        self._update_health(force=True)

    def _make_publisher(self, cfg: Config) -> MqttPublisher | None:
        if not cfg.mqtt.enabled:
            return None
        return MqttPublisher(cfg.mqtt, cfg.device.id, self.outbox, self._command)

    # -- control -------------------------------------------------------------------------

    def _command(self, command: str) -> None:
        if command == "capture":
            self._capture_now.set()
        elif command == "reload":
            self._reload.set()

    def request_stop(self, *_: object) -> None:
        self.stop.set()
        self._capture_stop.set()

    def request_reload(self, *_: object) -> None:
        self._reload.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    def _apply_reload(self) -> None:
        self._reload.clear()
        if self.config_path is None:
            log.warning("reload_ignored", reason="no configuration file")
            return
        try:
            new = config_mod.load(self.config_path)
        except ConfigError as exc:
            log.error("reload_failed", error=str(exc), kept="previous configuration")
            return
        old, self.cfg = self.cfg, new
        setup(new.service.log_level)
        if (new.recognizer, new.vision) != (old.recognizer, old.vision):
            self.reader = build_reader(new)
        if new.gate != old.gate:
            self.gate = Gate(new.gate)
        if new.capture != old.capture:
            self._capture_stop.set()  # the capture loop reopens with the new source
        if (new.mqtt, new.device) != (old.mqtt, old.device) or new.outbox != old.outbox:
            if self.publisher is not None:
                self.publisher.stop(drain_timeout_s=2.0)
            if new.outbox != old.outbox:
                self.outbox.close()
                self.outbox = Outbox(new.outbox_path, new.outbox.max_messages)
            self.publisher = self._make_publisher(new)
            if self.publisher is not None:
                self.publisher.start()
        log.info("reloaded", config=str(self.config_path))

    # -- main loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped or a finite source ends; returns the process exit code."""
        if self.publisher is not None:
            self.publisher.start()
        if self.api is not None:
            threading.Thread(target=self.api.serve, args=(self._http_stop,), name="http", daemon=True).start()
        self.watchdog.start()
        systemd.notify("READY=1\nSTATUS=watching " + self.cfg.capture.source)
        log.info("started", device=self.cfg.device.id, source=self.cfg.capture.source,
                 model=self.reader.recognizer.contract.id, outbox=str(self.cfg.outbox_path),
                 outbox_depth=self.outbox.depth())
        try:
            while not self.stop.is_set():
                self._capture_stop.clear()
                camera = make_camera(self.cfg.capture)
                capture = Capture(camera, self.cfg.capture.fps, self.cfg.capture.retry_max_s, self._capture_stop,
                                  on_fault=self._camera_fault, on_recover=self._camera_back, tick=self._tick,
                                  on_bad_frame=self._bad_frame)
                log.info("capture_open", camera=camera.name)
                for frame in capture.frames():
                    self._on_frame(frame.image, frame.seq, frame.ts, frame.still)
                if not self._capture_stop.is_set():
                    log.info("end_of_stream", camera=camera.name, frames=capture.seq)
                    break
        finally:
            self._shutdown()
        return 0

    def _tick(self) -> None:
        self.watchdog.progress()
        if self.faults["outbox"] or self._unstored:
            self._retry_outbox()
        if self._reload.is_set():
            self._apply_reload()
        self._update_health()

    def _camera_fault(self, message: str) -> None:
        self.faults["camera"] = message
        log.error("camera_fault", error=message)
        systemd.notify(f"STATUS=camera fault: {message}")
        self._update_health(force=True)

    def _camera_back(self) -> None:
        self.faults["camera"] = None
        log.info("camera_recovered")
        systemd.notify("STATUS=watching " + self.cfg.capture.source)
        self._update_health(force=True)

    def _bad_frame(self, message: str, seq: int | None = None) -> None:
        """An input that could not be used: logged and counted, the daemon goes on."""
        self.counters["frame_errors"] += 1
        log.error("frame_rejected", **({"frame": seq} if seq is not None else {}), error=message)

    def _on_frame(self, image: np.ndarray, seq: int, ts: float, still: bool = False) -> None:
        """One frame through gate, reader, diff and delivery. A ``still`` (a photo of its own, from
        a folder) is read once as it is: no motion to wait for, no averaging with the one before,
        and the reader forgets the last photo's board outline and turn."""
        self.counters["frames_seen"] += 1
        self.last_frame_ts = ts
        try:
            image = to_bgr8(image)  # a camera may hand over anything: odd shapes, types, channels
        except ImageError as exc:
            self._bad_frame(str(exc), seq)
            return
        if self._capture_now.is_set() or still:
            self._capture_now.clear()
            self.gate.force()
        decision = self.gate.check(image)
        previous, self._previous_image = self._previous_image, image
        if not decision.recognise:
            log.debug("frame_skipped", frame=seq, reason=decision.reason, motion=decision.motion,
                      change=decision.change)
            return
        if still:
            self.reader.reset()
        elif decision.reason in ("changed", "first") and previous is not None and previous.shape == image.shape:
            # The gate found the scene still: the mean of the last two frames halves the sensor
            # noise's variance, which otherwise makes a stroke at the detector's threshold come
            # and go between frames (a line "added" then "removed" on a real board video).
            image = cv2.addWeighted(previous, 0.5, image, 0.5, 0)
        try:
            page = self.reader.read(image)
        except ImageError as exc:
            self._bad_frame(str(exc), seq)
            return
        self.gate.accept()
        self.counters["frames_recognised"] += 1
        cached = sum(ln.cached for ln in page.lines)
        self.counters["lines_cached"] += cached
        self.counters["lines_recognised"] += len(page.lines) - cached
        self.recognise_ms.observe(page.timings_ms["total"])
        page.lines, events = reconcile(self._lines or [], page.lines)
        if self._lines is not None and not events and decision.reason != "forced":
            log.debug("page_unchanged", frame=seq, lines=len(page.lines))
            return
        self._publish(page, events, seq, ts, image)

    def _publish(self, page: PageResult, events: list, seq: int, ts: float, image: np.ndarray) -> None:
        body = {"device": self.cfg.device.id, "ts": round(time.time(), 3),
                "frame": {"seq": seq, "ts": round(ts, 3)}, **page.to_dict()}
        topics = self.publisher.topics if self.publisher else None
        items = [(topics.page if topics else "page", body, True)]
        items += [(topics.events if topics else "events",
                   {"device": self.cfg.device.id, "ts": body["ts"], "frame": body["frame"], **e.to_dict()}, False)
                  for e in events]
        try:
            if self.publisher is None:  # no broker to deliver to: number the messages, keep nothing
                stored = [self.outbox.stamp(b, "seq") for _, b, _ in items]
            elif self._unstored:
                raise OutboxError("earlier messages are still waiting for the disk")
            else:
                stored = self.outbox.enqueue(items)
        except OutboxError as exc:
            # Disk full or read-only: keep the messages (bounded) and store them, in order, when
            # the disk takes them again; the page state moves on meanwhile.
            self._unstored = (self._unstored + items)[-UNSTORED_MAX:]
            if not self.faults["outbox"]:
                self.faults["outbox"] = str(exc)
                log.error("outbox_write_failed", error=str(exc), waiting=len(self._unstored))
                self._update_health(force=True)
            self._outbox_retry_at = min(self._outbox_retry_at, time.monotonic() + 2.0)
            stored = [{"seq": None, **body} for _, body, _ in items]
        self._lines = page.lines
        self.last_page = stored[0]
        self.live = (image, stored[0])
        self.counters["pages_published"] += 1
        self.counters["events_published"] += len(events)
        if self.publisher is not None:
            self.publisher.wake()
        log.info("page", frame=seq, seq=stored[0]["seq"], lines=len(page.lines), events=len(events),
                 recognise_ms=page.timings_ms.get("recognise", 0.0), total_ms=page.timings_ms.get("total", 0.0))
        if self.cfg.service.stdout_pages:
            for doc in stored:
                sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
            sys.stdout.flush()

    def health(self) -> dict:
        pub = self.publisher
        faults = {k: v for k, v in {**self.faults, "mqtt": pub.last_error if pub else None}.items() if v}
        if pub is not None and pub.outbox_error and "outbox" not in faults:
            faults["outbox"] = pub.outbox_error
        return {"device": self.cfg.device.id, "state": "degraded" if faults else "ok", "faults": faults,
                "model": self.reader.recognizer.contract.id, "uptime_s": round(time.time() - self.started, 1),
                "last_frame_ts": self.last_frame_ts, "outbox_depth": self.outbox.depth(),
                "outbox_dropped": self.outbox.dropped,
                "mqtt_connected": bool(self.publisher and self.publisher.connected.is_set()), **self.counters}

    def _update_health(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.publisher is None or (not force and now - self._health_at < HEALTH_EVERY_S):
            return
        self._health_at = now
        # Numbered in memory: health must get out when the disk is what failed.
        self._health_seq += 1
        self.publisher.set_health({"msg_id": uuid.uuid4().hex, "seq": self._health_seq, **self.health()})

    def _shutdown(self) -> None:
        systemd.notify("STOPPING=1")
        self._http_stop.set()
        self.watchdog.stop()
        left = 0
        if self.publisher is not None:
            left = self.publisher.stop(self.cfg.service.drain_timeout_s)
        log.info("stopped", outbox_left=left, **self.counters)
        self.outbox.close()


def config_summary(cfg: Config) -> dict:
    """The configuration as a dict with secrets masked (for ``edge-ocr config``)."""
    doc = dataclasses.asdict(cfg)
    for section, key in (("mqtt", "password"), ("http", "token")):
        if doc[section][key]:
            doc[section][key] = "***"
    return doc
