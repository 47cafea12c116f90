"""Property-based fuzzing (hypothesis) of everything that takes outside input: image decoding,
the vision pipeline, the HTTP API's request parsing, and the configuration loader. Each
property: the code answers (a result or its own clear error type), never crashes or hangs.
Example counts are fixed (about 11,000 in all); ``FUZZ_SCALE=10`` runs ten times as many."""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edge_ocr.config import ConfigError, HttpConfig, from_dict, load
from edge_ocr.http.api import Api
from edge_ocr.imageio import ImageError, decode_image, to_bgr8
from edge_ocr.page.reader import PageReader
from edge_ocr.recognition.recognizer import Recognizer
from edge_ocr.vision.clean import clean
from edge_ocr.vision.lines import find_lines
from edge_ocr.vision.surface import find_surface
from tests.conftest import MODEL

SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
COUNTS: dict[str, int] = {}


def fuzz(n: int) -> settings:
    return settings(max_examples=n * SCALE, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    total = sum(COUNTS.values())
    print(f"\nfuzz inputs: {COUNTS} — {total} in all")


def _png(w: int, h: int) -> bytes:
    return cv2.imencode(".png", np.full((max(1, h), max(1, w), 3), 200, np.uint8))[1].tobytes()


VALID = [_png(40, 20), cv2.imencode(".jpg", np.full((24, 64, 3), 90, np.uint8))[1].tobytes(),
         cv2.imencode(".bmp", np.zeros((8, 8), np.uint8))[1].tobytes()]


def _bomb(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


@st.composite
def image_bytes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "mutated", "truncated", "bomb"]))
    if kind == "random":
        return draw(st.binary(max_size=2048))
    base = bytearray(draw(st.sampled_from(VALID)))
    if kind == "truncated":
        return bytes(base[: draw(st.integers(0, len(base)))])
    if kind == "bomb":
        return _bomb(draw(st.integers(0, 2**31 - 1)), draw(st.integers(0, 2**31 - 1)))
    for _ in range(draw(st.integers(1, 8))):
        base[draw(st.integers(0, len(base) - 1))] = draw(st.integers(0, 255))
    return bytes(base)


def _tall_bmp() -> bytes:
    """Regression: a BMP whose height field is absurd made cv2.imdecode raise cv2.error."""
    bmp = bytearray(VALID[2])
    bmp[22:26] = struct.pack("<i", 0x01010000)
    return bytes(bmp)


@fuzz(5000)
@given(image_bytes())
@example(_tall_bmp())
@example(b"")
@example(_bomb(100_000, 100_000))
def test_decoding_never_crashes(data: bytes) -> None:
    _count("decode")
    try:
        image = decode_image(data, "fuzz")
    except ImageError as exc:
        assert "fuzz" in str(exc)
        return
    assert image.size > 0 and image.shape[0] * image.shape[1] <= 50_000_000


@pytest.fixture(scope="module")
def reader() -> PageReader:
    return PageReader(Recognizer(MODEL))


frames = st.one_of(
    arrays(np.uint8, st.tuples(st.integers(1, 120), st.integers(1, 160), st.sampled_from([3]))),
    arrays(np.uint8, st.tuples(st.integers(1, 90), st.integers(1, 90))),
    arrays(np.uint16, st.tuples(st.integers(16, 64), st.integers(16, 64))),
    arrays(np.float32, st.tuples(st.integers(16, 48), st.integers(16, 48), st.just(4)),
           elements=st.floats(-2, 2, width=32)),
)


@fuzz(1000)
@given(frames)
@example(np.zeros((16, 16, 3), np.uint8))
@example(np.full((40, 300, 3), 255, np.uint8))
def test_page_pipeline_never_crashes(reader: PageReader, frame: np.ndarray) -> None:
    _count("vision")
    try:
        page = reader.read(frame)
    except ImageError as exc:
        assert str(exc)
        return
    assert all(len(ln.box) == 4 for ln in page.lines) and page.timings_ms["total"] >= 0


@fuzz(1500)
@given(arrays(np.uint8, st.tuples(st.integers(1, 80), st.integers(1, 80), st.sampled_from([1, 3]))))
def test_vision_stages_on_raw_arrays(image: np.ndarray) -> None:
    _count("stages")
    image = image[:, :, 0] if image.shape[2] == 1 else image
    surface = find_surface(image)
    cleaned = clean(surface.image)
    assert cleaned.mask.shape == cleaned.flat.shape
    for region in find_lines(cleaned.mask):
        assert region.box.shape == (4, 2)


@pytest.fixture(scope="module")
def app(reader: PageReader):
    return Api(HttpConfig(max_body_mb=0.05, token=""), reader).app


def _wsgi(app, method: str, path: str, query: str, ctype: str, body: bytes) -> tuple[int, bytes]:
    status: list[str] = []
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "CONTENT_TYPE": ctype,
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
               "SERVER_NAME": "fuzz", "SERVER_PORT": "80", "wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1"}
    out = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    return int(status[0].split()[0]), out


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, str, str, bytes]:
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]))
    path = draw(st.sampled_from(["/api/ocr", "/api/ocr", "/api/page", "/health", "/metrics", "/x", "/api/live.jpg"]))
    query = draw(st.sampled_from(["", "mode=line", "mode=page", "mode=auto", "mode=%00", "mode=" + "x" * 50]))
    kind = draw(st.sampled_from(["multipart", "json", "junk"]))
    if kind == "json":
        doc = draw(st.one_of(
            st.fixed_dictionaries({"image_base64": st.one_of(st.text(max_size=200), st.sampled_from(
                [base64.b64encode(v).decode() for v in VALID])), "mode": st.text(max_size=10)}),
            st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                         lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                         max_leaves=10)))
        body = json.dumps(doc).encode() if draw(st.booleans()) else draw(st.binary(max_size=300))
        return method, path, query, "application/json", body
    if kind == "multipart":
        boundary = draw(st.sampled_from(["b0undary", "x", "", "--"]))
        field = draw(st.sampled_from(["image", "image", "img", ""]))
        payload = draw(st.one_of(st.sampled_from(VALID), image_bytes()))
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"a.png\"\r\n\r\n"
                .encode() + payload + f"\r\n--{boundary}--\r\n".encode())
        if draw(st.booleans()):
            body = body[: draw(st.integers(0, len(body)))]
        return method, path, query, f"multipart/form-data; boundary={boundary}", body
    ctype = draw(st.sampled_from(["text/plain", "", "image/png", "application/x-www-form-urlencoded"]))
    return method, path, query, ctype, draw(st.binary(max_size=400))


@fuzz(2000)
@given(requests())
@example(("POST", "/api/ocr", "", "multipart/form-data; boundary=b0undary", b""))
def test_api_parsing_never_errs_500(app, request_parts: tuple[str, str, str, str, bytes]) -> None:
    _count("api")
    status, body = _wsgi(app, *request_parts)
    assert status in (200, 400, 404, 405, 413, 415, 422), (status, body[:300])
    path = request_parts[1]
    if path != "/metrics" or status != 200:
        doc = json.loads(body)  # every answer but the metrics text and the live picture is JSON
        if path == "/api/ocr":
            assert doc["success"] is (status == 200)


toml_values = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=30), st.booleans(), st.lists(st.integers(0, 5), max_size=4),
                        st.lists(st.lists(st.floats(0, 1), min_size=2, max_size=2), max_size=5))
sections = st.sampled_from(["device", "capture", "vision", "recognizer", "gate", "mqtt", "outbox", "http", "service",
                            "mqt", "cam"])
keys = st.sampled_from(["id", "source", "fps", "port", "host", "motion", "change", "fixed_region", "binarizer",
                        "threads", "decoder", "tls", "password", "max_messages", "log_level", "width", "hots", "x"])


@fuzz(2000)
@given(st.dictionaries(sections, st.one_of(st.dictionaries(keys, toml_values, max_size=4), toml_values), max_size=4))
def test_config_from_any_table(table: dict) -> None:
    _count("config")
    try:
        from_dict(table).validate()
    except ConfigError as exc:
        assert "." in str(exc) or ":" in str(exc)


@fuzz(1000)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@example(b"\xff\xfe[mqtt]")
@example(b"[mqtt]\nport = 99999999999999999999999\n")
def test_config_files_of_any_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    _count("config_text")
    path = Path(tmp_path_factory.mktemp("cfg")) / "c.toml"
    path.write_bytes(data)
    try:
        load(path, environ={})
    except ConfigError as exc:
        assert str(exc)


@fuzz(500)
@given(st.dictionaries(st.sampled_from(["EDGE_OCR_MQTT_PORT", "EDGE_OCR_GATE_MOTION", "EDGE_OCR_CAPTURE_LOOP",
                                        "EDGE_OCR_VISION_FIXED_REGION", "EDGE_OCR_MQTT_HOTS", "EDGE_OCR_X",
                                        "EDGE_OCR_HTTP_TOKEN"]), st.text(max_size=20), max_size=4))
def test_environment_overrides_of_any_text(env: dict) -> None:
    _count("env")
    try:
        load(None, environ=env)
    except ConfigError as exc:
        assert str(exc)


def test_to_bgr8_on_odd_arrays() -> None:
    for a in (np.zeros((5, 5, 2), np.uint8), np.zeros((0, 3), np.uint8), np.full((4, 4), np.nan, np.float32)):
        try:
            out = to_bgr8(a)
            assert out.dtype == np.uint8 and out.ndim == 3
        except ImageError:
            pass
