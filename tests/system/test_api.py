"""The REST API over a real socket: every endpoint, bad inputs, a token, 20 concurrent requests,
and the daemon's live state."""

from __future__ import annotations

import base64
import http.client
import json
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest

from edge_ocr import config as config_mod
from edge_ocr.config import Config, HttpConfig
from edge_ocr.daemon.service import Service
from edge_ocr.http.api import OPENAPI, Api, build_api
from edge_ocr.page.build import build_reader
from edge_ocr.page.diff import comparable
from tests import bombs
from tests.broker import free_port
from tests.conftest import ROOT
from tests.render import BOARD_AFTER, BOARD_BEFORE, edited_board, multi_page_tiff
from tests.unit.test_page import _board


def _start(api: Api) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=api.serve, args=(stop,), daemon=True).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", api.cfg.port, timeout=1).request("GET", "/openapi.json")
            return stop
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("API did not start")


@pytest.fixture(scope="module")
def api():
    a = build_api(HttpConfig(port=free_port(), max_body_mb=2.0), build_reader(Config()))
    stop = _start(a)
    yield a
    stop.set()


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    ctype = r.getheader("Content-Type", "")
    return r.status, (json.loads(data) if ctype.startswith("application/json") else data), r


def multipart(data: bytes, name: str = "line.png", field: str = "image") -> tuple[bytes, dict]:
    b = uuid.uuid4().hex
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={b}"}


def png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))


def test_line_upload_reads_the_rendered_text(api: Api, samples) -> None:
    path, expected = samples[0]  # its label, rendered truth: "10/3/2012"
    status, doc, _ = call(api.cfg.port, "POST", "/api/ocr", *multipart(path.read_bytes()))
    assert status == 200 and doc["success"] and doc["mode"] == "line"
    assert doc["text"] == expected == doc["lines"][0]["text"] and len(doc["lines"][0]["box"]) == 4
    assert doc["processing_time_ms"] > 0 and doc["model"] == "ppocrv6_small_int8"


def test_page_as_base64_json(api: Api, samples) -> None:
    frame, labels = _board(samples)
    buf = cv2.imencode(".jpg", frame)[1]
    body = json.dumps({"image_base64": "data:image/jpeg;base64," + base64.b64encode(buf).decode()}).encode()
    status, doc, _ = call(api.cfg.port, "POST", "/api/ocr?mode=page", body, {"Content-Type": "application/json"})
    assert status == 200 and doc["mode"] == "page" and len(doc["lines"]) == len(labels)
    assert doc["text"].count("\n") == len(labels) - 1
    assert doc["rotation"] == 0 and doc["detector"] == api.reader.detector.contract.id  # as the CLI's --json says


@pytest.mark.parametrize(("body", "ctype", "status", "words"), [
    (b"hello, not an image", "multipart", 415, "not a decodable"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40, "multipart", 415, "not a decodable"),
    (png_header(64, 64)[:20], "multipart", 415, "not a decodable"),
    (b"", "multipart", 415, "empty"),
    (png_header(100_000, 100_000), "multipart", 413, "too large"),
    (b"{not json", "application/json", 400, "not valid JSON"),
    (b'{"image": "x"}', "application/json", 400, "image_base64"),
    (b'{"image_base64": "@@@"}', "application/json", 400, "not valid base64"),
    (b"raw bytes", "application/octet-stream", 415, "multipart/form-data"),
    (b"x" * 2_100_000, "multipart", 413, "exceeds"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 40, "multipart", 415,
     "HEIC/HEIF images are not supported; an iPhone photo?"),
])
def test_bad_inputs_get_clear_4xx(api: Api, body: bytes, ctype: str, status: int, words: str) -> None:
    if ctype == "multipart":
        body, headers = multipart(body)
    else:
        headers = {"Content-Type": ctype}
    got, doc, _ = call(api.cfg.port, "POST", "/api/ocr", body, headers)
    assert got == status and doc["success"] is False and words in doc["error"], doc


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def test_an_upload_is_read_on_its_own(api: Api) -> None:
    """Field case A01 through the API: after the board before the edit, the board after it reads
    as the after-board, exactly as it does on its own (no line from an earlier upload)."""
    def texts(image: np.ndarray) -> list[str]:
        status, doc, _ = call(api.cfg.port, "POST", "/api/ocr?mode=page", *multipart(_png(image), "board.png"))
        assert status == 200 and doc["success"], doc
        return [comparable(ln["text"]) for ln in doc["lines"]]

    after = texts(edited_board(BOARD_AFTER))
    assert after == [comparable(t) for t in BOARD_AFTER]
    assert texts(edited_board(BOARD_BEFORE)) == [comparable(t) for t in BOARD_BEFORE]
    assert texts(edited_board(BOARD_AFTER)) == after


def test_text_in_the_alpha_channel_is_read(api: Api) -> None:
    """Field cases F03/F05: glyphs that live in a PNG's alpha channel, over black or gray 0."""
    board = edited_board(["TREND PLOT REPORT"])[:130, :700]
    alpha = 255 - cv2.cvtColor(board, cv2.COLOR_BGR2GRAY)
    rgba = np.dstack([np.zeros_like(board), alpha])
    status, doc, _ = call(api.cfg.port, "POST", "/api/ocr", *multipart(_png(rgba), "alpha.png"))
    assert status == 200 and doc["text"] == "TREND PLOT REPORT" and doc["confidence"] > 0.5, doc
    status, doc, _ = call(api.cfg.port, "POST", "/api/ocr", *multipart(_png(np.zeros((40, 200, 4), np.uint8))))
    assert status == 200 and doc["text"] == "" and doc["confidence"] == 0.0, "an empty answer is never sure"


def test_other_bad_requests(api: Api, samples) -> None:
    path, _ = samples[0]
    body, headers = multipart(path.read_bytes(), field="photo")
    assert call(api.cfg.port, "POST", "/api/ocr", body, headers)[0] == 400
    body, headers = multipart(path.read_bytes())
    status, doc, _ = call(api.cfg.port, "POST", "/api/ocr?mode=word", body, headers)
    assert status == 400 and "mode must be" in doc["error"]
    assert call(api.cfg.port, "GET", "/api/ocr")[0] == 405
    assert call(api.cfg.port, "GET", "/nope")[0] == 404
    status, doc, _ = call(api.cfg.port, "GET", "/api/page")
    assert status == 404 and "no daemon" in doc["error"]


def test_health_metrics_openapi_and_page(api: Api) -> None:
    status, doc, _ = call(api.cfg.port, "GET", "/health")
    assert status == 200 and doc["status"] == "ok" and doc["model"] == "ppocrv6_small_int8" and doc["uptime_s"] >= 0
    status, text, r = call(api.cfg.port, "GET", "/metrics")
    assert status == 200 and r.getheader("Content-Type").startswith("text/plain")
    assert b"# TYPE edge_ocr_api_latency_ms histogram" in text and b'edge_ocr_api_latency_ms_bucket{le="+Inf"}' in text
    status, spec, _ = call(api.cfg.port, "GET", "/openapi.json")
    assert status == 200 and {"/api/ocr", "/health", "/metrics", "/api/page"} <= set(spec["paths"])
    status, html, _ = call(api.cfg.port, "GET", "/")
    assert status == 200 and b"/api/ocr" in html


def test_twenty_concurrent_requests(api: Api, samples) -> None:
    payloads = [(p.read_bytes(), api.reader.recognizer.recognize([cv2.imread(str(p))])[0].text) for p, _ in samples]
    jobs = [payloads[i % len(payloads)] for i in range(20)]

    def one(job):
        status, doc, _ = call(api.cfg.port, "POST", "/api/ocr?mode=line", *multipart(job[0]))
        return status, doc["text"], job[1]

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, jobs))
    assert all(s == 200 for s, _, _ in results)
    assert all(got == want for _, got, want in results), "each answer belongs to its own request"


def test_token_protects_everything_but_the_page(samples) -> None:
    a = build_api(HttpConfig(port=free_port(), token="s3cret"), build_reader(Config()))
    stop = _start(a)
    try:
        body, headers = multipart(samples[0][0].read_bytes())
        assert call(a.cfg.port, "POST", "/api/ocr", body, headers)[0] == 401
        assert call(a.cfg.port, "GET", "/health", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert call(a.cfg.port, "GET", "/metrics")[0] == 401
        assert call(a.cfg.port, "GET", "/")[0] == 200
        ok = call(a.cfg.port, "POST", "/api/ocr", body, {**headers, "Authorization": "Bearer s3cret"})
        assert ok[0] == 200 and ok[1]["success"]
    finally:
        stop.set()


def test_daemon_serves_its_live_page(tmp_path: Path) -> None:
    from edge_ocr.tools.bench import sample_board

    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), sample_board((1280, 720)))  # one photo of the finished board: 5 lines
    port = free_port()
    env = {"EDGE_OCR_MQTT_ENABLED": "false", "EDGE_OCR_SERVICE_STATE_DIR": str(tmp_path / "state"),
           "EDGE_OCR_CAPTURE_SOURCE": str(frames), "EDGE_OCR_CAPTURE_FPS": "50", "EDGE_OCR_GATE_STABLE_FRAMES": "1",
           "EDGE_OCR_HTTP_ENABLED": "true", "EDGE_OCR_HTTP_PORT": str(port)}
    svc = Service(config_mod.load(None, environ=env))
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while svc.health.counters["pages_published"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        status, page, _ = call(port, "GET", "/api/page")
        assert status == 200 and page["seq"] == svc.delivery.latest.doc["seq"] and len(page["lines"]) == 5
        status, jpeg, r = call(port, "GET", "/api/live.jpg")
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert status == 200 and r.getheader("Content-Type") == "image/jpeg" and image.shape[1] > 400
        status, text, _ = call(port, "GET", "/metrics")
        metrics = dict(line.rsplit(" ", 1) for line in text.decode().splitlines() if not line.startswith("#"))
        assert float(metrics["edge_ocr_frames_seen_total"]) == 1
        assert float(metrics["edge_ocr_lines_recognised_total"]) == 5
        assert float(metrics["edge_ocr_recognition_latency_ms_count"]) == 1
        status, health, _ = call(port, "GET", "/health")
        assert health["frames_seen"] == 1 and health["outbox_depth"] == 0 and health["status"] == "ok"
        before = (dict(svc.health.counters), svc.delivery.latest.doc, svc.reader.cache.hits + svc.reader.cache.misses)
        body, headers = multipart(cv2.imencode(".png", sample_board((1280, 720)))[1].tobytes())
        with ThreadPoolExecutor(20) as pool:
            replies = list(pool.map(lambda _: call(port, "POST", "/api/ocr", body, headers), range(20)))
        assert all(r[0] == 200 and len(r[1]["lines"]) == 5 for r in replies)
        after = (dict(svc.health.counters), svc.delivery.latest.doc, svc.reader.cache.hits + svc.reader.cache.misses)
        assert after == before, "API requests never touch the daemon's reader, counters or page"
    finally:
        svc.request_stop()
        t.join(30)


def _json_body(b64: str, mode: str = "line") -> tuple[bytes, dict]:
    return json.dumps({"image_base64": b64, "mode": mode}).encode(), {"Content-Type": "application/json"}


def test_base64_with_line_breaks_is_read(api: Api, samples) -> None:
    """What ``base64 FILE`` and most libraries produce: a line break every 76 characters (LF or
    CRLF), escaped in the JSON or raw inside its string (a shell's "$(base64 FILE)"); the
    URL-safe alphabet and left-out padding too. Each reads as the file itself does."""
    data = samples[0][0].read_bytes()
    want = api.reader.recognizer.recognize([cv2.imread(str(samples[0][0]))])[0].text
    mime = base64.encodebytes(data).decode()
    assert "\n" in mime.strip()
    raw = b'{"mode": "line", "image_base64": "' + mime.encode() + b'"}'  # raw line breaks: not strict JSON
    for label, (body, headers) in {
        "LF, escaped": _json_body(mime), "CRLF, escaped": _json_body(mime.replace("\n", "\r\n")),
        "raw line breaks": (raw, {"Content-Type": "application/json"}),
        "URL-safe, no padding": _json_body(base64.urlsafe_b64encode(data).decode().rstrip("=")),
    }.items():
        status, doc, _ = call(api.cfg.port, "POST", "/api/ocr", body, headers)
        assert status == 200 and doc["text"] == want, (label, doc)
    status, doc, _ = call(api.cfg.port, "POST", "/api/ocr", *_json_body(mime[:-6] + "*" + mime[-5:]))
    assert status == 400 and "image_base64 is not valid base64" in doc["error"] and "line breaks" in doc["error"]


MULTI_PAGE = [["Lesson one", "Photosynthesis"], ["Lesson two", "Respiration"], ["Lesson three", "Evaporation"]]


def test_every_page_of_a_multi_page_tiff_is_read(api: Api) -> None:
    """A scanner's multi-page TIFF: one answer whose ``pages`` hold each page's lines, and over
    them all the text (pages split by a form feed), every line and the weakest confidence."""
    status, doc, _ = call(api.cfg.port, "POST", "/api/ocr", *multipart(multi_page_tiff(MULTI_PAGE), "scan.tif"))
    assert status == 200, doc
    assert [[comparable(ln["text"]) for ln in p["lines"]] for p in doc["pages"]] == \
        [[comparable(t) for t in lines] for lines in MULTI_PAGE]
    assert [p["page"] for p in doc["pages"]] == [1, 2, 3] and doc["mode"] == "page"
    assert [comparable(t) for t in doc["text"].split("\f")] == [comparable("\n".join(lines)) for lines in MULTI_PAGE]
    assert len(doc["lines"]) == 6 and doc["confidence"] == min(ln["confidence"] for ln in doc["lines"])
    spec = json.loads(OPENAPI.read_text())
    jsonschema.validate(doc, {"$ref": "#/components/schemas/OcrResult", "components": spec["components"]})


def test_bombs_leave_a_real_servers_memory_alone(tmp_path: Path) -> None:
    """Field case N02 against ``edge-ocr serve``: a bomb of every format is answered 413 from its
    header, and three images just under the limit sent at once take turns within the decode
    budget. The server's peak RSS (VmHWM, reset once it is warm) stays within 150 MB of its idle
    level: the limits, 12 MP and a 128 MB budget, come from the environment, as in a unit file."""
    port = free_port()
    env = {**os.environ, "EDGE_OCR_IMAGE_MAX_MEGAPIXELS": "12", "EDGE_OCR_IMAGE_DECODE_MEMORY_MB": "128"}
    server = subprocess.Popen([sys.executable, "-m", "edge_ocr", "serve", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if call(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert call(port, "POST", "/api/ocr?mode=line", *multipart(bombs.vp8l(400, 48)))[0] == 200  # warm
        bombs.reset_peak(server.pid)
        idle = bombs.status_kib("VmRSS", server.pid)
        for label, data in bombs.every_format().items():
            status, doc, _ = call(port, "POST", "/api/ocr", *multipart(data, label))
            assert status == 413 and "image too large" in doc["error"], (label, doc)
        just_under = bombs.vp8l(3800, 3000)  # 11.4 MP, 38 bytes: about 80 MB while decoded
        with ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(lambda _: call(port, "POST", "/api/ocr?mode=line", *multipart(just_under))[0],
                                    range(3)))
        assert replies == [200, 200, 200]
        rise = (bombs.status_kib("VmHWM", server.pid) - idle) / 1024
        print(f"serve: idle RSS {idle / 1024:.0f} MB, peak rise {rise:.0f} MB over {len(bombs.every_format())} "
              "bombs and 3 concurrent 11.4 MP decodes")
        assert rise <= 150, f"peak RSS rose {rise:.0f} MB"
    finally:
        server.terminate()
        server.wait(30)


def test_a_drawing_without_text_is_said_as_such(api: Api) -> None:
    """A board with only a diagram (issue 27: a circle was published as 'G' at 0.978): no lines,
    text_found false and a notice, in the documented shape; a board with text says text_found."""
    from tests.render import diagram

    spec = json.loads(OPENAPI.read_text())
    schema = {"$ref": "#/components/schemas/OcrResult", "components": spec["components"]}
    status, doc, _ = call(api.cfg.port, "POST", "/api/ocr", *multipart(_png(diagram("shapes")), "diagram.png"))
    assert status == 200 and doc["lines"] == [] and doc["text"] == "", doc
    assert doc["text_found"] is False and "no text found" in doc["notice"], doc
    jsonschema.validate(doc, schema)
    status, doc, _ = call(api.cfg.port, "POST", "/api/ocr", *multipart(_png(edited_board(BOARD_AFTER)), "b.png"))
    assert status == 200 and doc["text_found"] is True and "notice" not in doc, doc
    jsonschema.validate(doc, schema)
