"""waitress, bounded: slow or stalled clients, a flood of connections or of uploads cannot take the
API from anybody else, and ``/health`` keeps answering.

waitress reads every request on one asynchronous thread and hands only complete requests to its
worker threads. Left as it is, that still fails three ways (measured with
``field-cases/N04-slow-clients.py``): past ``connection_limit`` (100) it stops accepting, so 110
clients that trickle an upload (a byte every 5 s) leave everyone else unanswered; its
``channel_timeout`` counts inactivity, which a trickle never shows; and all workers share one
first-come queue, so 16 concurrent 12 MP uploads kept ``/health`` waiting 5.5 s. Here:

- a request must arrive within ``request_timeout_s`` plus one second per ``min_bytes_per_s``
  bytes received (Apache's ``mod_reqtimeout`` rule); slower ones get 408 and are closed;
- past ``max_connections`` a new connection gets 503 and is closed at once, never left waiting;
- requests with a body (uploads: ``POST``) run on ``threads`` workers of their own, at most
  ``upload_queue`` more wait, further ones get 503 with ``Retry-After``; every other request
  (``/health``, ``/metrics``, the page) runs on two workers that uploads never occupy.

Refusals are JSON like the API's own errors and counted (``/metrics``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.utilities import Error as ErrorResponse  # waitress's error answer (not an exception)

from edge_ocr.config import HttpConfig
from edge_ocr.log import Log

LIGHT_THREADS = 2  # workers for everything but uploads
RETRY_AFTER_S = 5
LOG_EVERY_S = 60.0
INBUF_BYTES = 128 * 1024  # a request body past this waits in a temporary file, not in memory
HEADER_BYTES = 64 * 1024  # request headers (held in memory; waitress allows 256 KiB): more get 431
log = Log("edge_ocr.http.server")


class Refusal(ErrorResponse):
    """An error response made by the server itself: JSON (``{"success": false, "error"}``) like the
    API's, with ``Retry-After`` when trying again later can help."""

    def __init__(self, code: int, reason: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.retry_after = code, reason, retry_after

    def to_response(self, ident: str | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
        headers = [("Content-Type", "application/json")]
        if self.retry_after is not None:
            headers.append(("Retry-After", str(self.retry_after)))
        return f"{self.code} {self.reason}", headers, json.dumps({"success": False, "error": self.body}).encode()

    def raw(self) -> bytes:
        """The whole HTTP response, for a connection no request task will answer."""
        status, headers, body = self.to_response()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        return (f"HTTP/1.1 {status}\r\n{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class Channel(HTTPChannel):
    """waitress's connection, which also knows since when its current request has been arriving
    (from the connection's opening, or from the first byte after the previous request) and how
    many bytes of it came: the read deadline's measure."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started: float | None = time.monotonic()
        self.got = 0

    def received(self, data: bytes) -> bool:
        if self.started is None:
            self.started, self.got = time.monotonic(), 0
        self.got += len(data)
        done = super().received(data)
        if self.request is None:  # complete (handed to a worker) or only blank lines: nothing arriving
            self.started = None
        return done

    def overdue(self, now: float, timeout_s: float, bytes_per_s: int) -> bool:
        return (self.started is not None and not self.requests and not self.will_close
                and not self.close_when_flushed and now - self.started > timeout_s + self.got / bytes_per_s)

    def refuse(self, refusal: Refusal) -> None:
        """Answer ``refusal`` in place of the request still arriving, and close (main thread)."""
        payload = refusal.raw()
        with self.outbuf_lock:
            self.outbufs[-1].append(payload)
            self.current_outbuf_count += len(payload)
            self.total_outbufs_len += len(payload)
        self.close_when_flushed = True
        if self.request is not None:
            self.request.close()  # its body buffer (perhaps a temporary file)
            self.request = None
        self.started = None


class Lane:
    """A pool of worker threads that holds at most ``threads + queue`` requests (running or waiting)."""

    def __init__(self, threads: int, queue: int | None) -> None:
        self.dispatcher = ThreadedTaskDispatcher()
        self.dispatcher.set_thread_count(threads)
        self.limit = None if queue is None else threads + queue
        self.pending = 0
        self._lock = threading.Lock()

    def offer(self, channel: HTTPChannel) -> bool:
        with self._lock:
            if self.limit is not None and self.pending >= self.limit:
                return False
            self.pending += 1
        self.dispatcher.add_task(_Task(channel, self))
        return True

    def done(self) -> None:
        with self._lock:
            self.pending -= 1


class _Task:
    """One request of ``channel`` run by a lane's worker; the lane counts it until it is answered."""

    def __init__(self, channel: HTTPChannel, lane: Lane) -> None:
        self.channel, self.lane = channel, lane

    def service(self) -> None:
        try:
            self.channel.service()
        finally:
            self.lane.done()

    def cancel(self) -> None:
        self.lane.done()
        self.channel.cancel()


class Server(TcpWSGIServer):
    """One listening socket of :class:`BoundedServer` (waitress's TCP server, with the limits)."""

    channel_class = Channel

    def __init__(self, owner: BoundedServer, *args: Any, **kwargs: Any) -> None:
        self.owner = owner
        super().__init__(*args, **kwargs)

    def readable(self) -> bool:
        """Always accept (``handle_accept`` refuses past the limit, where waitress stops
        accepting and leaves clients hanging); maintenance at every ``cleanup_interval``."""
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return bool(self.accepting)

    def handle_accept(self) -> None:
        if self.owner.connections() < self.owner.cfg.max_connections:
            super().handle_accept()
            return
        try:
            accepted = self.accept()
        except OSError:
            return
        if accepted is None:
            return
        conn = accepted[0]
        self.owner.count("connections_refused")
        try:
            conn.setblocking(False)
            conn.send(Refusal(503, "Service Unavailable", f"too many connections (http.max_connections = "
                              f"{self.owner.cfg.max_connections}); try again shortly", RETRY_AFTER_S).raw())
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        conn.close()

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # idle keep-alive connections: idle_timeout_s
        self.owner.time_out(self.active_channels.values())

    def add_task(self, task: HTTPChannel) -> None:
        self.owner.dispatch(task)


class BoundedServer:
    """waitress serving ``app`` on ``cfg.host``:``cfg.port`` (every address the host name has),
    with the limits of ``cfg``; ``counts`` gets one more at every refusal."""

    def __init__(self, app: Callable[..., Any], cfg: HttpConfig, counts: dict[str, int]) -> None:
        self.cfg, self.counts = cfg, counts
        self._logged: dict[str, float] = {}
        self.adj = Adjustments(
            host=cfg.host.strip().removeprefix("[").removesuffix("]"), port=cfg.port, ident="edge-ocr",
            connection_limit=cfg.max_connections, channel_timeout=cfg.idle_timeout_s, cleanup_interval=1,
            asyncore_use_poll=True, inbuf_overflow=INBUF_BYTES, max_request_header_size=HEADER_BYTES,
            # waitress itself refuses bodies past twice the limit (before buffering them); between
            # the limit and that, the API answers with a JSON 413 that says what the limit is.
            max_request_body_size=int(cfg.max_body_mb * 2e6) + 65536)
        self.map: dict[int, Any] = {}
        self.light = Lane(LIGHT_THREADS, None)
        self.uploads = Lane(cfg.threads, cfg.upload_queue)
        self.servers = [Server(self, app, self.map, dispatcher=self.light.dispatcher, adj=self.adj, sockinfo=info)
                        for info in self.adj.listen]
        self.port = self.servers[0].effective_port

    def count(self, name: str) -> None:
        """One more refusal of kind ``name``; logged at most once a minute per kind (a flood of
        them must not flood the log)."""
        self.counts[name] = self.counts.get(name, 0) + 1
        now = time.monotonic()
        if now - self._logged.get(name, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[name] = now
            log.warning("http_refused", reason=name, total=self.counts[name])

    def connections(self) -> int:
        return sum(isinstance(d, Channel) for d in self.map.values())

    def dispatch(self, channel: HTTPChannel) -> None:
        """A complete request to its lane: a body (``POST``) to the uploads' workers, or a 503
        when they have ``upload_queue`` waiting already; anything else to the light workers."""
        request = channel.requests[0]
        if request.command == "POST" and request.error is None:
            if self.uploads.offer(channel):
                return
            self.count("uploads_refused")
            request.error = Refusal(503, "Service Unavailable", f"busy: {self.uploads.pending} uploads in "
                                    "progress or waiting (http.threads + http.upload_queue); try again shortly",
                                    RETRY_AFTER_S)
        self.light.offer(channel)

    def time_out(self, channels: Any) -> None:
        now = time.monotonic()
        for channel in list(channels):
            if isinstance(channel, Channel) and channel.overdue(now, self.cfg.request_timeout_s,
                                                                 self.cfg.min_bytes_per_s):
                self.count("requests_timed_out")
                channel.refuse(Refusal(408, "Request Timeout", f"request not received within "
                                       f"{self.cfg.request_timeout_s:g} s + 1 s per {self.cfg.min_bytes_per_s} "
                                       f"bytes (http.request_timeout_s, http.min_bytes_per_s)"))

    def run(self, stop: threading.Event | None = None) -> None:
        """Serve until ``stop`` is set (checked at least every half second), or for ever."""
        try:
            while self.map and not (stop is not None and stop.is_set()):
                wasyncore.loop(timeout=0.5, map=self.map, use_poll=True, count=1)
        finally:
            self.close()

    def close(self) -> None:
        for lane in (self.uploads, self.light):
            lane.dispatcher.shutdown(timeout=1)
        wasyncore.close_all(self.map)
