"""The archive's JSON API and web page, on bottle like the device's (edge_ocr/http/api.py), served by
the device's bounded waitress server (edge_ocr/http/server.py).

Endpoints (OpenAPI document at ``/openapi.json``, ``edge_ocr/archive/openapi.json``):
- ``GET /``                               the page (``web/index.html``, everything bundled);
- ``GET /api/boards``                     every board (device) with its newest lessons;
- ``GET /api/boards/<device>/lessons``    a board's lessons, newest first (``limit``, ``before``);
- ``GET /api/lessons/<id>``               a lesson: versions, spans (lines added/removed), erase points;
- ``GET /api/versions/<id>``              one version: the page as published;
- ``GET /api/pictures/<sha256>``          a board picture (JPEG; content-addressed, so immutable);
- ``GET /api/search?q=``                  lines holding ``q`` (``limit``, ``device``);
- ``GET /api/lessons/<id>/export.md|.html`` the lesson as Markdown or one self-contained HTML file.

Private by default: the service binds loopback unless a token is set (the device's ``[http]``
rule, :meth:`HttpConfig.validate`), and with a token every path but the page shell and the
OpenAPI document needs ``Authorization: Bearer <token>`` (compared in constant time). The page
holds no data of its own: it asks for the token and sends it with each call.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bottle

from edge_ocr.archive import export
from edge_ocr.archive.records import to_dict
from edge_ocr.archive.store import Store, StoreError
from edge_ocr.config import HttpConfig, is_loopback
from edge_ocr.http.auth import bearer_ok
from edge_ocr.log import Log

WEB = Path(__file__).resolve().parent / "web"
OPENAPI = Path(__file__).resolve().parent / "openapi.json"
SHA256 = re.compile(r"[0-9a-f]{64}")
BOARD_LESSONS = 20  # lessons listed with each board by /api/boards; more through /api/boards/<device>/lessons
MAX_LESSONS = 500
MAX_HITS = 100
IMMUTABLE = "private, max-age=31536000, immutable"  # private: behind the token when one is set
log = Log("edge_ocr.archive.web")


class RequestError(Exception):
    """A request the archive answers with ``status`` and ``{"success": false, "error": …}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status



def int_param(name: str, default: int, low: int, high: int) -> int:
    """A query parameter as an integer in [low, high]; 400 otherwise."""
    text = bottle.request.query.get(name, "")
    if text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise RequestError(400, f"{name} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise RequestError(400, f"{name} must be from {low} to {high}, got {value}")
    return value


def record_id(kind: str, text: str) -> int:
    """A lesson or version id from the path; 400 when it is not a positive integer."""
    if not text.isdigit() or int(text) < 1:
        raise RequestError(400, f"{kind} id must be a positive integer, got {text!r}")
    return int(text)


class ArchiveWeb:
    """The app over ``store``. ``http`` gives host, port, token and the server's bounds (validated
    here too: an archive open to the network by accident is refused); ``timezone`` (IANA name, ""
    the machine's) is the exports' clock, the one lesson titles are made in (ValueError when unknown)."""

    def __init__(self, store: Store, http: HttpConfig, timezone: str = "") -> None:
        http.validate()
        self.store, self.cfg, self.tz = store, http, export.zone(timezone)
        self.refused = dict.fromkeys(("connections_refused", "requests_timed_out", "uploads_refused"), 0)
        self.requests = {"ok": 0, "client_error": 0, "unauthorised": 0}
        self.app = self._routes()

    # -- plumbing ------------------------------------------------------------------------

    def _json(self, status: int, doc: Any) -> str:
        bottle.response.status = status
        bottle.response.content_type = "application/json"
        return json.dumps(doc, ensure_ascii=False)

    def _guarded(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Token check and JSON errors around a route callback: the request's own (4xx), the
        database's (503, StoreError)."""

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if self.cfg.token and not bearer_ok(bottle.request.get_header("Authorization", ""), self.cfg.token):
                self.requests["unauthorised"] += 1
                bottle.response.set_header("WWW-Authenticate", 'Bearer realm="edge-ocr-archive"')
                return self._json(401, {"success": False, "error": "missing or wrong bearer token"})
            try:
                answer = handler(*args, **kwargs)
            except RequestError as exc:
                self.requests["client_error"] += 1
                return self._json(exc.status, {"success": False, "error": str(exc)})
            except StoreError as exc:  # the database failed: say so, never an empty answer
                log.error("archive_store_failed", path=bottle.request.path, error=str(exc))
                bottle.response.set_header("Retry-After", "5")
                return self._json(503, {"success": False, "error": f"the archive's database failed: {exc}"})
            self.requests["ok"] += 1
            return answer
        return wrapped

    def _routes(self) -> bottle.Bottle:
        app = bottle.Bottle()
        app.route("/", "GET", lambda: bottle.static_file("index.html", root=str(WEB)))
        app.route("/openapi.json", "GET", lambda: bottle.static_file(OPENAPI.name, root=str(OPENAPI.parent)))
        app.route("/api/boards", "GET", self._guarded(self.boards))
        app.route("/api/boards/<device>/lessons", "GET", self._guarded(self.board_lessons))
        app.route("/api/lessons/<lesson_id>", "GET", self._guarded(self.lesson))
        app.route("/api/lessons/<lesson_id>/export.md", "GET", self._guarded(self.export_markdown))
        app.route("/api/lessons/<lesson_id>/export.html", "GET", self._guarded(self.export_html))
        app.route("/api/versions/<version_id>", "GET", self._guarded(self.version))
        app.route("/api/pictures/<sha256>", "GET", self._guarded(self.picture))
        app.route("/api/search", "GET", self._guarded(self.search))
        app.error(404)(lambda e: self._json(404, {"success": False, "error": "no such endpoint"}))
        app.error(405)(lambda e: self._json(405, {"success": False, "error": "method not allowed"}))
        app.default_error_handler = lambda e: self._json(e.status_code, {"success": False, "error": str(e.body)})
        return app

    # -- endpoints -----------------------------------------------------------------------

    def boards(self) -> str:
        limit = int_param("lessons", BOARD_LESSONS, 0, MAX_LESSONS)
        boards = [{**to_dict(d), "newest_lessons": [to_dict(s) for s in self.store.lessons(d.device, limit)]
                   if limit else []} for d in self.store.devices()]
        return self._json(200, {"boards": boards, "timezone": getattr(self.tz, "key", None)})

    def board_lessons(self, device: str) -> str:
        limit = int_param("limit", 100, 1, MAX_LESSONS)
        before_text = bottle.request.query.get("before", "")
        try:
            before = float(before_text) if before_text else None
        except ValueError:
            raise RequestError(400, f"before must be a Unix time in seconds, got {before_text!r}") from None
        if device not in {d.device for d in self.store.devices()}:
            raise RequestError(404, f"no board named {device!r} in the archive")
        return self._json(200, {"device": device, "lessons": [to_dict(s) for s in
                                                              self.store.lessons(device, limit, before)]})

    def _lesson(self, text: str):
        lesson = self.store.lesson(record_id("lesson", text))
        if lesson is None:
            raise RequestError(404, f"no lesson {text} in the archive")
        return lesson

    def lesson(self, lesson_id: str) -> str:
        return self._json(200, to_dict(self._lesson(lesson_id)))

    def version(self, version_id: str) -> str:
        version = self.store.version(record_id("version", version_id))
        if version is None:
            raise RequestError(404, f"no version {version_id} in the archive")
        return self._json(200, to_dict(version))

    def picture(self, sha256: str) -> bytes:
        if not SHA256.fullmatch(sha256):
            raise RequestError(400, f"a picture is named by the sha256 of its bytes (64 lower-case hex digits), "
                                  f"got {sha256[:80]!r}")
        etag = f'"{sha256}"'
        if bottle.request.get_header("If-None-Match", "") == etag:
            bottle.response.status = 304
            bottle.response.set_header("ETag", etag)
            bottle.response.set_header("Cache-Control", IMMUTABLE)
            return b""
        data = self.store.picture(sha256)
        if data is None:
            raise RequestError(404, f"no picture {sha256} in the archive")
        bottle.response.content_type = "image/jpeg"
        bottle.response.set_header("ETag", etag)
        bottle.response.set_header("Cache-Control", IMMUTABLE)
        return data

    def search(self) -> str:
        query = bottle.request.query.getunicode("q", default="") or ""
        if not query.strip():
            raise RequestError(400, "q (the text to look for) must not be empty")
        limit = int_param("limit", 20, 1, MAX_HITS)
        device = bottle.request.query.getunicode("device", default="") or None
        hits = self.store.search(query.strip(), limit, device)
        return self._json(200, {"query": query.strip(), "device": device, "hits": [to_dict(h) for h in hits]})

    def _export(self, lesson_id: str, kind: str, ctype: str) -> str:
        lesson = self._lesson(lesson_id)
        boards = export.boards(self.store, lesson)
        text = export.markdown(lesson, boards, self.tz) if kind == "md" else export.html(lesson, boards, self.tz)
        bottle.response.content_type = ctype
        name = export.filename(lesson, kind, self.tz)
        bottle.response.set_header("Content-Disposition", f'attachment; filename="{name}"')
        return text

    def export_markdown(self, lesson_id: str) -> str:
        return self._export(lesson_id, "md", "text/markdown; charset=utf-8")

    def export_html(self, lesson_id: str) -> str:
        return self._export(lesson_id, "html", "text/html; charset=utf-8")

    # -- serving -------------------------------------------------------------------------

    def serve(self, stop: threading.Event | None = None) -> None:
        """Serve until ``stop`` is set (or the process ends), within the bounds of
        :mod:`edge_ocr.http.server`."""
        from edge_ocr.http.server import BoundedServer

        server = BoundedServer(self.app, self.cfg, self.refused)
        self.port = server.port
        log.info("archive_http_listening", host=self.cfg.host, port=self.port, token=bool(self.cfg.token),
                 open=not self.cfg.token and not is_loopback(self.cfg.host))
        server.run(stop)


def make_app(store: Store, http: HttpConfig, timezone: str = "") -> ArchiveWeb:
    """The archive's web app (``.app`` is the WSGI callable, ``.serve(stop)`` serves it)."""
    return ArchiveWeb(store, http, timezone)
