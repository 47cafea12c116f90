"""The daemon: capture → gate → vision/recognise → page diff → delivery (outbox → MQTT, stdout, web).

One loop on the main thread; MQTT sending and the systemd watchdog run beside it. Signals
only set flags: SIGTERM/SIGINT stop (the outbox is drained for ``service.drain_timeout_s``),
SIGHUP reloads the configuration (an invalid file is reported and the old one kept).
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from pathlib import Path

import numpy as np

from edge_ocr import config as config_mod
from edge_ocr.config import Config, ConfigError
from edge_ocr.daemon import snapshot, systemd
from edge_ocr.daemon.capture import Capture, make_camera
from edge_ocr.daemon.delivery import Delivery
from edge_ocr.daemon.gate import Gate
from edge_ocr.daemon.health import Health
from edge_ocr.http.api import build_api
from edge_ocr.imageio import ImageError, to_bgr8
from edge_ocr.imageio import configure as configure_images
from edge_ocr.log import Log, setup
from edge_ocr.page.build import build_reader
from edge_ocr.page.diff import reconcile_board
from edge_ocr.page.incremental import BoardReader
from edge_ocr.page.result import PageResult

OCCLUSION_EVERY = 4  # frames between pages that only say hidden lines are in view again (2 s at 2 fps)
log = Log("edge_ocr.daemon.service")


class Service:
    """The loop (capture → gate → read → diff → delivery), configuration reload and signals; the
    output side is :class:`Delivery`, the health :class:`Health`."""

    def __init__(self, cfg: Config, config_path: str | Path | None = None) -> None:
        self.cfg, self.config_path = cfg, config_path
        self.stop = threading.Event()
        self._capture_stop = threading.Event()
        self._reload = threading.Event()
        self._capture_now = threading.Event()
        self._http_stop = threading.Event()
        self.watchdog = systemd.Watchdog()
        configure_images(cfg.image)  # the image limits of the folder source and the API
        self.reader = BoardReader(build_reader(cfg))  # reads only where the board changed
        self.gate = Gate(cfg.gate, self.reader.fixed_region)
        self.health = Health(cfg.device.id, self.reader.recognizer.contract.id)
        self.health.sources.append(self.gate)
        self.delivery = Delivery(cfg, self.health, self._command)
        self.api = build_api(cfg.http, build_reader(cfg), self.health, self.delivery.latest) if cfg.http.enabled \
            else None
        self._page: PageResult | None = None  # the last page published
        self._picture: np.ndarray | None = None  # its snapshot picture (the board it was read from)
        self._occlusion_at = 0

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
            self.health.count("reload_failures")
            self.health.config_fault = f"reload refused, previous configuration kept: {exc}"
            return
        self.health.config_fault = None
        old, self.cfg = self.cfg, new
        setup(new.service.log_level)
        configure_images(new.image)
        if (new.recognizer, new.vision) != (old.recognizer, old.vision):
            self._use_readers(new)
        if (new.gate, new.vision.fixed_region) != (old.gate, old.vision.fixed_region):
            self.gate.cfg, self.gate.fixed_region = new.gate, self.reader.fixed_region
            self.gate.reset()
        if new.capture != old.capture:
            self.gate.reset()  # another source: another scene
            self._capture_stop.set()  # the capture loop reopens with the new source
        if (new.mqtt, new.device, new.outbox, new.service) != (old.mqtt, old.device, old.outbox, old.service):
            self.delivery.reconfigure(new)
        self.delivery.cfg = new  # [snapshot] is read at each page
        if new.http != old.http:
            log.warning("reload_partial", section="http", reason="the API's address, token and limits "
                        "take effect at the next start")
        log.info("reloaded", config=str(self.config_path))

    def _use_readers(self, cfg: Config) -> None:
        """New readers from ``cfg`` for the loop and for the API (its own: interpreters are not
        thread-safe), and the model health names: a reload reaches every reader."""
        self.reader = BoardReader(build_reader(cfg))
        self.health.model = self.reader.recognizer.contract.id
        if self.api is not None:
            self.api.use_reader(build_reader(cfg))

    # -- main loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped or a finite source ends; returns the process exit code."""
        self.delivery.start()
        if self.api is not None:
            threading.Thread(target=self.api.serve, args=(self._http_stop,), name="http", daemon=True).start()
        self.watchdog.start()
        systemd.notify("READY=1\nSTATUS=watching " + self.cfg.capture.source)
        log.info("started", device=self.cfg.device.id, source=self.cfg.capture.source,
                 model=self.reader.recognizer.contract.id, outbox=str(self.cfg.outbox_path),
                 outbox_depth=self.delivery.outbox.depth())
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
        if self._reload.is_set():
            self._apply_reload()
        self.delivery.tick()

    def _camera_fault(self, message: str) -> None:
        self.health.camera_fault = message
        log.error("camera_fault", error=message)
        systemd.notify(f"STATUS=camera fault: {message}")
        self.delivery.send_health(force=True)

    def _camera_back(self) -> None:
        self.health.camera_fault = None
        log.info("camera_recovered")
        systemd.notify("STATUS=watching " + self.cfg.capture.source)
        self.delivery.send_health(force=True)

    def _bad_frame(self, message: str, seq: int | None = None) -> None:
        """An input that could not be used: logged and counted, the daemon goes on."""
        self.health.count("frame_errors")
        log.error("frame_rejected", **({"frame": seq} if seq is not None else {}), error=message)

    def _on_frame(self, image: np.ndarray, seq: int, ts: float, still: bool = False) -> None:
        """One frame through gate, reader, diff and delivery: the reader reads the gate's board
        (the last clean state of every cell: no person, no half-written line). A ``still`` (a
        photo of its own, from a folder) is read once as it is: the gate and the reader forget
        the photo before (board model, outline, turn)."""
        self.health.count("frames_seen")
        self.health.last_frame_ts = ts
        try:
            image = to_bgr8(image)  # a camera may hand over anything: odd shapes, types, channels
        except ImageError as exc:
            self._bad_frame(str(exc), seq)
            return
        if still:
            self.gate.reset()  # a photo of its own: no board model from the photo before
            self.reader.reset()
        if self._capture_now.is_set() or still:
            self._capture_now.clear()
            self.gate.force()
        decision = self.gate.check(image)
        if not decision.recognise:
            self._occlusion(seq, ts)
            log.debug("frame_skipped", frame=seq, reason=decision.reason, motion=round(decision.motion, 3),
                      change=round(decision.change, 5), occluded=round(decision.occluded, 3))
            return
        try:
            votes, partial = self.reader.votes, self.reader.partial_reads
            changed = self.gate.changed_boxes() if self.cfg.gate.partial_reads else None
            page = self.reader.read_changes(decision.board, changed)
        except ImageError as exc:
            self._bad_frame(str(exc), seq)
            return
        self.gate.accept()  # a blurred board too: read again once it changes, not every frame
        cached = sum(ln.cached for ln in page.lines)
        self.health.count("frames_recognised")
        self.health.count("orientation_votes", self.reader.votes - votes)
        self.health.count("partial_reads", self.reader.partial_reads - partial)
        self.health.count("lines_cached", cached)
        self.health.count("lines_recognised", len(page.lines) - cached)
        self.health.recognise_ms.observe(page.timings_ms["total"])
        if self._blurred(page, seq):
            return
        if page.surface_detected:
            self.gate.set_region(page.surface)
        old = self._page.lines if self._page is not None else []
        page.lines, events, held = reconcile_board(old, page.lines, self.gate.state)
        self.gate.watch([ln.box for ln in held],
                        [ln.box for ln in page.lines if self.gate.state(ln.box) in ("occluded", "settling")])
        if held:
            log.debug("lines_held", frame=seq, lines=len(held), reason="not clean yet")
        if self._page is not None and not events and decision.reason != "forced":
            log.debug("page_unchanged", frame=seq, lines=len(page.lines))
            return
        picture = self._snapshot(page)
        self.delivery.publish(page, events, seq, ts, picture)
        self._page, self._picture, self._occlusion_at = page, picture, seq

    def _snapshot(self, page: PageResult) -> np.ndarray | None:
        """The page's board quad, cut from the gate's clean board (no one in front of it); None
        when snapshots are off, there is no broker, or no cell has been clean yet."""
        if not (self.cfg.snapshot.enabled and self.cfg.mqtt.enabled):
            return None
        board = self.gate.clean_board()
        return None if board is None else snapshot.picture(board, page.surface, page.rotation,
                                                          self.cfg.snapshot.max_side)

    def _blurred(self, page: PageResult, seq: int) -> bool:
        """Whether the page read is too blurred to publish (``vision.min_sharpness``): its text
        would replace good lines with garbage, so the last page stays, the frame is counted and
        logged, and health says so until a sharp frame is read."""
        if not page.blurred:
            if self.health.blur_fault is not None:
                self.health.blur_fault = None
                self.delivery.send_health(force=True)
            return False
        self.health.count("frames_blurred")
        log.warning("frame_blurred", frame=seq, sharpness=page.sharpness, min_sharpness=self.cfg.vision.min_sharpness,
                    lines=len(page.lines), kept="last page" if self._page is not None else "no page yet")
        if self.health.blur_fault is None:
            self.health.blur_fault = (f"the last frame read was blurred (sharpness {page.sharpness:.2f} < "
                                      f"{self.cfg.vision.min_sharpness}): the page shown is the last sharp one")
            self.delivery.send_health(force=True)
        return True

    def _occlusion(self, seq: int, ts: float) -> None:
        """Re-publish the last page (no events) once lines it marks ``occluded`` are in view again,
        so the retained page does not go on saying they are hidden; at most every
        ``OCCLUSION_EVERY`` frames. Someone stepping in front publishes nothing by itself: the
        flags say what was hidden when the page was read."""
        if self._page is None or seq - self._occlusion_at < OCCLUSION_EVERY:
            return
        flags = [ln.occluded and self.gate.state(ln.box) == "occluded" for ln in self._page.lines]
        if flags == [ln.occluded for ln in self._page.lines]:
            return
        lines = [dataclasses.replace(ln, occluded=f) for ln, f in zip(self._page.lines, flags)]
        page = dataclasses.replace(self._page, lines=lines)
        self.delivery.publish(page, [], seq, ts, self._picture)
        self._page, self._occlusion_at = page, seq

    def _shutdown(self) -> None:
        systemd.notify("STOPPING=1")
        self._http_stop.set()
        self.watchdog.stop()
        left = self.delivery.stop(self.cfg.service.drain_timeout_s)
        log.info("stopped", outbox_left=left, **self.health.counters)
