"""The REST API and the web page, on bottle (one file, no dependencies) served by waitress
(pure-Python, threaded WSGI server): both small enough for a Pi.

Endpoints (OpenAPI document at ``/openapi.json``):
- ``GET /``            the web page: upload an image, or watch the board live;
- ``POST /api/ocr``    multipart field ``image`` or JSON ``{"image_base64": …}``; ``mode`` line|page|auto;
- ``GET /api/page``    the latest page the daemon published (404 when none yet);
- ``GET /api/live.jpg`` the latest recognised frame, rectified, with its line boxes;
- ``GET /health``      status, model, uptime, last frame time, MQTT state, outbox depth;
- ``GET /metrics``     Prometheus text.

Recognition requests are served one at a time by the API's own recogniser (TFLite
interpreters are not thread-safe), never by the daemon's, so a request cannot disturb the
pipeline; the daemon's state is only read, and its reload hands the API a reader built from the
new configuration (:meth:`Api.use_reader`). Served by :mod:`edge_ocr.http.server` (waitress with
bounds on connections, read times and queued uploads).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import bottle
import cv2
import numpy as np

from edge_ocr import options, rounding
from edge_ocr.config import HttpConfig, is_loopback
from edge_ocr.http.auth import bearer_ok
from edge_ocr.http.prometheus import Histogram, Metric, render
from edge_ocr.imageio import ImageError, ImageTooLargeError, decoded
from edge_ocr.log import Log
from edge_ocr.page.reader import BLURRED_CONFIDENCE, PageReader, is_page
from edge_ocr.page.result import PageResult, found_fields, live_picture

WEB = Path(__file__).resolve().parent / "web"
OPENAPI = Path(__file__).resolve().parent / "openapi.json"
log = Log("edge_ocr.http.api")
URLSAFE = str.maketrans("-_", "+/")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HealthView(Protocol):
    """What the HTTP layer reads of the daemon's health (:class:`edge_ocr.daemon.health.Health`)."""

    def document(self) -> dict: ...

    def metrics(self) -> list[Metric]: ...


class PageView(Protocol):
    """What the HTTP layer reads of the daemon's output (:class:`edge_ocr.daemon.delivery.LatestPage`)."""

    def page(self) -> dict | None: ...

    def live(self) -> tuple[int | None, PageResult] | None: ...


class NoDaemon:
    """Health and pages for ``edge-ocr serve``: the API alone, no camera, no pages."""

    def __init__(self, model: str) -> None:
        self.model, self.started = model, time.time()

    def document(self) -> dict:
        return {"state": "ok", "model": self.model, "uptime_s": round(time.time() - self.started, 1),
                "last_frame_ts": None, "mqtt_connected": False, "outbox_depth": 0, "daemon": False}

    def metrics(self) -> list[Metric]:
        return []

    def page(self) -> dict | None:
        return None

    def live(self) -> tuple[int | None, PageResult] | None:
        return None


class Api:
    def __init__(self, cfg: HttpConfig, reader: PageReader, health: HealthView | None = None,
                 pages: PageView | None = None) -> None:
        cfg.validate()  # whoever built it: an API open to the network by accident is refused (ConfigError)
        self.cfg, self.reader = cfg, reader
        alone = NoDaemon(reader.recognizer.contract.id)
        self.daemon = health is not None
        self.health_view, self.pages = health or alone, pages or alone
        self.lock = threading.Lock()
        self.latency = Histogram()
        self.requests = {"ok": 0, "client_error": 0, "unauthorised": 0}
        self.refused = dict.fromkeys(("connections_refused", "requests_timed_out", "uploads_refused"), 0)
        self._live: tuple[int, bytes] | None = None
        self.app = self._routes()

    # -- plumbing ------------------------------------------------------------------------

    def _json(self, status: int, doc: dict) -> str:
        bottle.response.status = status
        bottle.response.content_type = "application/json"
        return json.dumps(doc, ensure_ascii=False)

    def _authorised(self) -> bool:
        if not self.cfg.token:
            return True
        return bearer_ok(bottle.request.get_header("Authorization", ""), self.cfg.token)

    def _guarded(self, handler: Callable[..., object]) -> Callable[..., object]:
        """Token check and bad-input errors as JSON, around a route callback."""

        def wrapped(*args: object, **kwargs: object) -> object:
            if not self._authorised():
                self.requests["unauthorised"] += 1
                bottle.response.set_header("WWW-Authenticate", 'Bearer realm="edge-ocr"')
                return self._json(401, {"success": False, "error": "missing or wrong bearer token"})
            try:
                return handler(*args, **kwargs)
            except ApiError as exc:
                self.requests["client_error"] += 1
                return self._json(exc.status, {"success": False, "error": str(exc)})
        return wrapped

    def _routes(self) -> bottle.Bottle:
        app = bottle.Bottle()
        app.route("/", "GET", lambda: bottle.static_file("index.html", root=str(WEB)))
        app.route("/openapi.json", "GET", lambda: bottle.static_file("openapi.json", root=str(OPENAPI.parent)))
        app.route("/health", "GET", self._guarded(self.health))
        app.route("/metrics", "GET", self._guarded(self.metrics))
        app.route("/api/ocr", "POST", self._guarded(self.ocr))
        app.route("/api/page", "GET", self._guarded(self.page))
        app.route("/api/live.jpg", "GET", self._guarded(self.live))
        app.error(404)(lambda e: self._json(404, {"success": False, "error": "no such endpoint"}))
        app.error(405)(lambda e: self._json(405, {"success": False, "error": "method not allowed"}))
        # Anything else bottle or waitress answers by itself (a body it cannot parse…) is JSON too.
        app.default_error_handler = lambda e: self._json(e.status_code, {"success": False, "error": str(e.body)})
        return app

    # -- endpoints -----------------------------------------------------------------------

    def _upload(self) -> tuple[bytes, str, str]:
        """The uploaded file's bytes, its name and the mode asked for; ApiError when the request
        is malformed (400), too large (413) or of another content type (415)."""
        limit = int(self.cfg.max_body_mb * 1e6)
        if bottle.request.content_length > limit:
            raise ApiError(413, f"request body of {bottle.request.content_length} bytes exceeds {limit}")
        ctype = bottle.request.content_type or ""
        mode = bottle.request.query.get("mode", "")
        if ctype.startswith("multipart/form-data"):
            try:
                upload = bottle.request.files.get("image")
            except bottle.HTTPError as exc:  # bottle's multipart parser refusing the body (found by fuzzing)
                raise ApiError(400, f"malformed multipart body: {exc.body}") from None
            if upload is None:
                raise ApiError(400, "multipart request without a file field named 'image'")
            data, name = upload.file.read(limit + 1), upload.raw_filename or "image"
            mode = mode or bottle.request.forms.get("mode", "")
        elif ctype.startswith("application/json"):
            try:  # strict=False: raw line breaks inside the string, as `"$(base64 FILE)"` in a shell puts them
                doc = json.loads(bottle.request.body.read(limit + 1), strict=False)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError(400, f"body is not valid JSON ({exc})") from None
            if not isinstance(doc, dict) or not isinstance(doc.get("image_base64"), str):
                raise ApiError(400, "JSON body needs a string field 'image_base64'")
            data, name, mode = b64_image(doc["image_base64"]), "image_base64", mode or str(doc.get("mode", ""))
        else:
            raise ApiError(415, "send multipart/form-data with a field 'image', or JSON with 'image_base64'")
        if len(data) > limit:
            raise ApiError(413, f"image exceeds {limit} bytes")
        mode = mode or "auto"
        if mode not in options.MODES:
            raise ApiError(400, f"mode must be one of {', '.join(options.MODES)}, got {mode!r}")
        return data, name, mode

    def _read(self, image: np.ndarray, mode: str) -> dict:
        """One image (a page of the upload) read in ``mode``: its part of the answer."""
        if is_page(image, mode, self.reader.detector):
            self.reader.reset()  # an upload is read on its own, whatever came before
            try:
                page = self.reader.read(image)
            except ImageError as exc:
                raise ApiError(422, str(exc)) from None
            lines = [ln.to_dict() for ln in page.lines]
            mode, extra = "page", {"rotation": page.rotation, "detector": page.detector}
            sharpness, blurred = page.sharpness, page.blurred
        else:
            line, sharpness, blurred = self.reader.read_line(image)
            lines, mode, extra = [line.to_dict()], "line", {}
        return {"text": "\n".join(ln["text"] for ln in lines), "lines": lines,
                "confidence": min((ln["confidence"] for ln in lines), default=0.0), "mode": mode,
                "size": [image.shape[1], image.shape[0]], **extra, **sharpness_fields(sharpness, blurred),
                **found_fields(lines)}

    def ocr(self) -> str:
        data, name, mode = self._upload()
        try:
            with decoded(data, name) as images:  # sized from its header first; memory shared with other requests
                t0 = time.perf_counter()
                with self.lock:
                    model = self.reader.recognizer.contract.id  # the reader this request is read by (a reload swaps it)
                    pages = [self._read(image, mode) for image in images]
        except ImageError as exc:
            raise ApiError(413 if isinstance(exc, ImageTooLargeError) else 415, str(exc)) from None
        ms = (time.perf_counter() - t0) * 1000
        self.latency.observe(ms)
        self.requests["ok"] += 1
        doc = pages[0] if len(pages) == 1 else pages_answer(pages)
        return self._json(200, {"success": True, **doc, "processing_time_ms": rounding.ms(ms), "model": model})

    def page(self) -> str:
        doc = self.pages.page()
        if doc is None:
            raise ApiError(404, "no page published yet" if self.daemon else "no daemon here (edge-ocr serve)")
        return self._json(200, doc)

    def live(self) -> bytes:
        live = self.pages.live()
        if live is None:
            raise ApiError(404, "no recognised frame yet")
        seq, page = live
        if self._live is None or self._live[0] != seq:
            _, buf = cv2.imencode(".jpg", live_picture(page), [cv2.IMWRITE_JPEG_QUALITY, 80])
            self._live = (seq, buf.tobytes())
        bottle.response.content_type = "image/jpeg"
        bottle.response.set_header("Cache-Control", "no-store")
        return self._live[1]

    def health(self) -> str:
        doc = self.health_view.document()
        return self._json(200, {"status": doc["state"], **doc})

    def metrics(self) -> str:
        items: list[Metric] = [
            ("api_requests_total", "counter", "API recognition requests answered", self.requests["ok"]),
            ("api_client_errors_total", "counter", "API requests refused as bad input", self.requests["client_error"]),
            ("api_unauthorised_total", "counter", "API requests without a valid token", self.requests["unauthorised"]),
            ("api_latency_ms", "histogram", "POST /api/ocr processing time in ms", self.latency),
            ("http_connections_refused_total", "counter", "connections answered 503 past http.max_connections",
             self.refused["connections_refused"]),
            ("http_requests_timed_out_total", "counter", "requests answered 408: not received in time",
             self.refused["requests_timed_out"]),
            ("http_uploads_refused_total", "counter", "uploads answered 503: workers and queue full",
             self.refused["uploads_refused"])]
        bottle.response.content_type = "text/plain; version=0.0.4; charset=utf-8"
        return render(items + self.health_view.metrics())

    # -- serving -------------------------------------------------------------------------

    def use_reader(self, reader: PageReader) -> None:
        """Read later uploads with ``reader`` (the daemon's reload); a request being read finishes
        with the reader it started with."""
        with self.lock:
            self.reader = reader

    def serve(self, stop: threading.Event | None = None) -> None:
        """Serve until the process ends (or ``stop`` is set, for the daemon's thread), within the
        limits of :mod:`edge_ocr.http.server`."""
        from edge_ocr.http.server import BoundedServer

        server = BoundedServer(self.app, self.cfg, self.refused)
        self.port = server.port
        log.info("http_listening", host=self.cfg.host, port=self.port, token=bool(self.cfg.token),
                 open=not self.cfg.token and not is_loopback(self.cfg.host))
        server.run(stop)


def b64_image(text: str) -> bytes:
    """The bytes of ``image_base64``: a data: URL prefix, whitespace (``base64 FILE`` and MIME
    encoders break lines every 76 characters, LF or CRLF), the URL-safe alphabet and left-out
    padding are all accepted; anything else is a 400 that says what was wrong."""
    text = "".join(text.split(",")[-1].split()).translate(URLSAFE)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"image_base64 is not valid base64 ({exc}; spaces and line breaks are ignored)") \
            from None


def pages_answer(pages: list[dict]) -> dict:
    """The answer for a multi-page upload (a TIFF): every page's under ``pages`` (numbered from
    1), and over them all the text with a form feed between pages, every line, the weakest
    line's confidence, "page" mode if any page was read as one, the first page's size."""
    lines = [ln for p in pages for ln in p["lines"]]
    judged = [p["sharpness"] for p in pages if p["sharpness"] is not None]
    return {"text": "\f".join(p["text"] for p in pages), "lines": lines,
            "confidence": min((ln["confidence"] for ln in lines), default=0.0),
            "mode": "page" if any(p["mode"] == "page" for p in pages) else "line", "size": pages[0]["size"],
            **sharpness_fields(min(judged, default=None), any(p["blurred"] for p in pages)),
            **found_fields(lines), "pages": [{"page": k, **p} for k, p in enumerate(pages, 1)]}


def sharpness_fields(sharpness: float | None, blurred: bool) -> dict:
    """``sharpness`` and ``blurred`` of an answer, and a ``warning`` when it is blurred: its text
    is unreliable and its confidences are capped (edge_ocr/page/reader.py)."""
    doc = {"sharpness": None if sharpness is None else rounding.confidence(sharpness), "blurred": blurred}
    if blurred:
        doc["warning"] = (f"the image is blurred (text sharpness {sharpness:.2f}, below vision.min_sharpness): "
                          f"its text is unreliable; confidences are capped at {BLURRED_CONFIDENCE}")
    return doc


def build_api(cfg: HttpConfig, reader: PageReader, health: HealthView | None = None,
              pages: PageView | None = None) -> Api:
    """The API over ``reader`` (built by :func:`edge_ocr.page.build.build_reader` from the
    configuration); ``health`` and ``pages`` are the daemon's when it hosts the API."""
    return Api(cfg, reader, health, pages)
