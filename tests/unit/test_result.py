"""The typed page and its one JSON shape; delivery to sinks and the one health owner, on a real
page read from a rendered board."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from edge_ocr.config import Config, load
from edge_ocr.daemon.delivery import Delivery
from edge_ocr.daemon.health import Health
from edge_ocr.page.build import build_reader
from edge_ocr.page.diff import LineEvent, reconcile
from edge_ocr.page.result import PageLine, PageResult, live_picture
from tests.unit.test_page import _board


@pytest.fixture(scope="module")
def page(samples) -> PageResult:
    frame, _ = _board(samples)
    return build_reader(Config()).read(frame)


def test_a_page_survives_its_json(page: PageResult) -> None:
    doc = json.loads(page.to_json())
    assert len(doc["lines"]) == 4
    again = PageResult.from_dict(doc)
    assert again.to_dict() == doc and [ln.text for ln in again.lines] == [ln.text for ln in page.lines]
    numbers = [c for ln in doc["lines"] for c in [ln["confidence"], *ln["char_confidences"]]]
    assert all(len(str(c).split(".")[-1]) <= 4 for c in numbers)
    assert all(len(str(v).split(".")[-1]) <= 1 for ln in doc["lines"] for p in ln["box"] for v in p)


@pytest.mark.parametrize(("doc", "why"), [
    (None, "JSON null, not an edge-ocr page message"),
    ({"text": "x"}, "no 'lines' list: not an edge-ocr page"),
    ({"lines": [{"text": "a", "confidence": 0.9}, {"text": "b"}]}, "line 2 has no text and confidence"),
])
def test_from_dict_says_why_a_doc_is_not_a_page(doc: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        PageResult.from_dict(doc)


def test_events_survive_their_json(page: PageResult) -> None:
    _, events = reconcile([], page.lines)
    assert [LineEvent.from_dict(e.to_dict()).to_dict() for e in events] == [e.to_dict() for e in events]
    with pytest.raises(ValueError, match="no event, index and text"):
        LineEvent.from_dict({"event": "moved", "index": 0, "text": "x"})


def test_the_live_view_draws_each_line_on_the_surface(page: PageResult) -> None:
    picture = live_picture(page)
    assert picture.shape[:2] == page.surface_image.shape[:2]
    red = (picture[:, :, 2] > 200) & (picture[:, :, 0] < 60) & (picture[:, :, 1] < 60)
    for ln in page.lines:
        x0, y0 = np.min(ln.surface_box, axis=0).astype(int)
        x1, y1 = np.max(ln.surface_box, axis=0).astype(int)
        assert red[max(0, y0 - 3): y1 + 4, max(0, x0 - 3): x1 + 4].any(), ln.text


def test_a_line_read_whole_has_the_image_as_its_box() -> None:
    line = PageLine.whole(np.zeros((32, 100, 3), np.uint8), "ab", 0.91234567, [0.9, 0.92])
    assert line.to_dict() == {"text": "ab", "confidence": 0.9123, "box": [[0, 0], [99, 0], [99, 31], [0, 31]],
                              "block": 0, "char_confidences": [0.9, 0.92], "cached": False, "vertical": False,
                              "occluded": False}


def test_delivery_numbers_hands_out_and_reports_into_health(page: PageResult, tmp_path: Path) -> None:
    """No broker configured: messages are numbered without being kept, every sink gets them
    (stdout prints each as a JSON line, the latest page keeps the page), and the one health
    document and metrics carry the outbox's figures and no MQTT fault."""
    cfg = load(None, environ={"EDGE_OCR_MQTT_ENABLED": "false", "EDGE_OCR_SERVICE_STDOUT_PAGES": "true",
                              "EDGE_OCR_SERVICE_STATE_DIR": str(tmp_path)})
    health = Health(cfg.device.id, page.model)
    delivery = Delivery(cfg, health)
    _, events = reconcile([], page.lines)
    out = io.StringIO()
    with redirect_stdout(out):
        first = delivery.publish(page, events, 1, 10.0)
        second = delivery.publish(page, [], 2, 11.0)
    printed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["seq"] for d in printed] == [d["seq"] for d in first + second] == list(range(1, 7))
    assert printed[0]["lines"] == page.to_dict()["lines"] and printed[1]["event"] == "added"
    assert delivery.latest.page() == second[0] and delivery.latest.live() == (6, page)
    doc = health.document()
    assert doc["state"] == "ok" and doc["mqtt_connected"] is False and doc["outbox_depth"] == 0
    assert doc["pages_published"] == 2 and doc["events_published"] == 4
    names = {m[0] for m in health.metrics()}
    assert {"outbox_depth", "pages_published_total", "recognition_latency_ms"} <= names
    assert not any(n.startswith("mqtt_") for n in names)
    delivery.stop(0.0)
