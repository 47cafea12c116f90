"""``edge-ocr archive``: the subscriber, the periodic prune and the web server in one process,
under systemd like the daemon (READY, STATUS, STOPPING, a watchdog fed by progress).

Signals only set a flag: SIGTERM/SIGINT stop; the message being stored is finished and
acknowledged, the rest stays with the broker for the next start. ``/health`` (JSON) and
``/metrics`` (Prometheus) answer beside the web app's endpoints, behind its token when one is set:
messages stored, duplicates, rejected, database faults, the lag from publish to stored.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import bottle

from edge_ocr.archive.store import LessonRules, Period, Store, StoreError, open_store
from edge_ocr.archive.subscriber import Subscriber
from edge_ocr.archive.web import make_app
from edge_ocr.config import Config
from edge_ocr.daemon import systemd
from edge_ocr.http.auth import bearer_ok
from edge_ocr.http.prometheus import render
from edge_ocr.log import Log

log = Log("edge_ocr.archive.service")
STATUS_EVERY_S = 30.0  # how often the systemd STATUS line and the stats log line are refreshed


def lesson_rules(cfg: Config) -> LessonRules:
    """``[archive]``'s lesson settings as the store takes them (minutes → seconds)."""
    a = cfg.archive
    periods = tuple(Period(p["name"], tuple(p["weekdays"]), p["start"], p["end"], tuple(p["devices"]))
                    for p in a.periods())
    return LessonRules(timetable=periods, timezone=a.timezone, inactivity_s=a.inactivity_min * 60,
                       wiped_s=a.wiped_min * 60)


class ArchiveService:
    """Opens the store (raises StoreError when it cannot), then ``run`` until stopped."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stop = threading.Event()
        self._http_stop = threading.Event()
        self.watchdog = systemd.Watchdog()
        self.started = time.time()
        self.pruned_at: float | None = None
        self.prune_error: str | None = None
        if not cfg.archive.database:  # the default file in the state directory, made as the daemon makes it
            Path(cfg.service.state_dir).mkdir(parents=True, exist_ok=True)
        self.store: Store = open_store(cfg.archive_database, lesson_rules(cfg))
        self.subscriber = Subscriber(cfg.mqtt, cfg.archive, cfg.archive_topic, self.store, self.watchdog.progress)
        self.web = make_app(self.store, cfg.archive.http(), cfg.archive.timezone)
        self.web.app.route("/health", "GET", self._health)
        self.web.app.route("/metrics", "GET", self._metrics)

    def request_stop(self, *_: object) -> None:
        self.stop.set()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    # -- health --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        faults = self.subscriber.faults()
        if self.prune_error:
            faults["prune"] = self.prune_error
        if self.subscriber.fatal:
            state = "failed"
        else:
            state = "ok" if not faults and self.subscriber.connected.is_set() else "degraded"
        return {"state": state, "faults": faults, "engine": self.store.engine, "client_id": self.cfg.archive.client_id,
                "share_group": self.cfg.archive.share_group or None, "uptime_s": round(time.time() - self.started, 1),
                "pruned_at": self.pruned_at, **self.subscriber.status()}

    def _authorised(self) -> bool:
        token = self.cfg.archive.token
        if token and not bearer_ok(bottle.request.get_header("Authorization", ""), token):
            bottle.response.status = 401
            bottle.response.set_header("WWW-Authenticate", 'Bearer realm="edge-ocr-archive"')
            return False
        return True

    def _health(self) -> str:
        bottle.response.content_type = "application/json"
        if not self._authorised():
            return json.dumps({"success": False, "error": "missing or wrong bearer token"})
        doc = self.health()
        bottle.response.status = 200 if doc["state"] == "ok" else 503
        return json.dumps(doc, ensure_ascii=False)

    def _metrics(self) -> str:
        if not self._authorised():
            bottle.response.content_type = "application/json"
            return json.dumps({"success": False, "error": "missing or wrong bearer token"})
        bottle.response.content_type = "text/plain; version=0.0.4"
        return render(self.subscriber.metrics())

    # -- run -----------------------------------------------------------------------------

    def run(self) -> int:
        """Until stopped; 0, or 2 when the broker cannot serve an archive (MQTT 3.1.1 only)."""
        self.subscriber.start()
        http = threading.Thread(target=self.web.serve, args=(self._http_stop,), name="archive-http", daemon=True)
        http.start()
        self.watchdog.start()
        systemd.notify("READY=1\nSTATUS=archiving " + self.cfg.archive_topic)
        log.info("started", engine=self.store.engine, topic=self.cfg.archive_topic,
                 client_id=self.cfg.archive.client_id, share_group=self.cfg.archive.share_group or None,
                 http=f"{self.cfg.archive.http_host}:{self.cfg.archive.http_port}")
        next_status = time.monotonic() + STATUS_EVERY_S
        try:
            while not self.stop.wait(1.0):
                self.watchdog.progress()  # the loop is alive; a stalled store shows in health, not here
                if self.subscriber.fatal:
                    log.error("stopped", error=self.subscriber.fatal)
                    return 2
                self._prune_if_due()
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + STATUS_EVERY_S
                    status = self.subscriber.status()
                    systemd.notify(f"STATUS=stored {status['stored']}, duplicates {status['duplicates']}, "
                                   f"faults {self.subscriber.faults() or 'none'}")
                    log.info("archive_stats", **status)
        finally:
            self._shutdown()
        return 0

    def _prune_if_due(self) -> None:
        """Lessons older than ``keep_days`` removed every ``prune_every_min`` (first at start)."""
        a = self.cfg.archive
        now = time.time()
        if not a.keep_days or (self.pruned_at is not None and now - self.pruned_at < a.prune_every_min * 60):
            return
        self.pruned_at = now
        try:
            pruned = self.store.prune(a.keep_days, now)
        except StoreError as exc:
            self.prune_error = str(exc)
            log.error("prune_failed", error=str(exc))
            return
        self.prune_error = None
        log.info("pruned", keep_days=a.keep_days, lessons=pruned.lessons, versions=pruned.versions,
                 pictures=pruned.pictures, bytes_before=pruned.bytes_before, bytes_after=pruned.bytes_after)

    def _shutdown(self) -> None:
        systemd.notify("STOPPING=1")
        self.subscriber.stop()
        self._http_stop.set()
        self.watchdog.stop()
        self.store.close()
        log.info("stopped", **self.subscriber.status())
