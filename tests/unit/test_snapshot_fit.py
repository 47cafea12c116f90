"""The board snapshot's JPEG made to fit its message limit (edge_ocr/daemon/snapshot.py): at the
start quality when it fits, else lower quality, else smaller, never above the limit, never cut;
the same picture always gives the same bytes."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np

from edge_ocr.daemon.fit import packet_size
from edge_ocr.daemon.snapshot import MIN_SIDE, fit_jpeg, fits_message, message
from edge_ocr.tools.bench import sample_board

TOPIC = "edge-ocr/test/snapshot"
HEAD = {"device": "test", "ts": 1.0, "page_seq": 0, "frame": {"seq": 1, "ts": 1.0}}


def _sent(limit: int) -> tuple[dict, int] | None:
    """The snapshot message of the sample board fitted to ``limit``, and its packet size as
    stamped with the widest msg_id and numbers."""
    board = sample_board((1280, 720))
    jpeg = fit_jpeg(board, 80, fits_message(HEAD, TOPIC, limit))
    if jpeg is None:
        return None
    doc = {"msg_id": "f" * 32, "seq": 10**18, **message(HEAD, jpeg), "page_seq": 10**18}
    return doc, packet_size(TOPIC, json.dumps(doc, separators=(",", ":")).encode(), 1, True)


def _decoded(doc: dict) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(doc["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (doc["height"], doc["width"])
    return image


def test_a_generous_limit_keeps_size_and_quality() -> None:
    doc, size = _sent(98_304)
    assert size <= 98_304 and (doc["width"], doc["height"]) == (1280, 720)
    _decoded(doc)


def test_a_tight_limit_lowers_quality_then_size_and_never_exceeds_it() -> None:
    full, full_size = _sent(98_304)
    for limit in (full_size // 2, full_size // 5, 6000):
        doc, size = _sent(limit)
        assert size <= limit, (limit, size)
        image = _decoded(doc)
        assert max(image.shape[:2]) >= MIN_SIDE
    assert _sent(6000)[0]["width"] < full["width"], "at 6 KB the picture is made smaller"


def test_a_limit_nothing_fits_sends_nothing() -> None:
    assert _sent(1024) is None


def test_same_picture_same_bytes() -> None:
    a, b = _sent(20_000)[0], _sent(20_000)[0]
    assert a["jpeg"] == b["jpeg"] and a["sha256"] == b["sha256"]
