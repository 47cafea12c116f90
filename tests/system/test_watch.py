"""`edge-ocr watch` against a real mosquitto: foreign JSON on a page or events topic (field cases
M03, M04), retained or not, is skipped with one line saying why, and later pages still show."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_ocr.paths import ROOT
from edge_ocr.tools.watch import problem
from tests.broker import Broker

PAGE = {"msg_id": "p1", "seq": 7, "frame": {"seq": 3}, "timings_ms": {"total": 12.0},
        "lines": [{"text": "x = 18 + 5", "confidence": 0.97}]}
EVENT = {"msg_id": "e1", "event": "changed", "index": 0, "text": "x = 18 + 5", "previous": "x = 13 + 5"}


def _publish(port: int, items: list[tuple[str, bytes, bool]]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="publisher")
    c.connect("127.0.0.1", port)
    c.loop_start()
    for topic, payload, retain in items:
        c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def test_foreign_messages_are_skipped_and_watching_goes_on(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker").start()
    try:
        _publish(broker.port, [("edge-ocr/dev/page", b'{"msg_id": "foreign-1", "text": "hello"}', True),
                               ("edge-ocr/other/page", b"[1, 2, 3]", True)])
        proc = subprocess.Popen([sys.executable, "-m", "edge_ocr", "watch", "--port", str(broker.port),
                                 "--seconds", "6"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)  # the retained foreign messages arrive first, then these
        odd = {"msg_id": "t1", "lines": [{"text": "odd fields", "confidence": 0.5}], "timings_ms": {"total": None},
               "frame": "not an object", "seq": "x"}
        _publish(broker.port, [("edge-ocr/dev/events", b'"just a string"', False),
                               ("edge-ocr/dev/page", json.dumps(odd).encode(), False),
                               ("edge-ocr/dev/page", json.dumps(PAGE).encode(), True),
                               ("edge-ocr/dev/events", json.dumps(EVENT).encode(), False)])
        out, err = proc.communicate(timeout=30)
    finally:
        broker.stop()
    assert proc.returncode == 0, err
    assert "[page] skipped on edge-ocr/dev/page (retained): no 'lines' list: not an edge-ocr page" in out
    assert "[page] skipped on edge-ocr/other/page (retained): a JSON list, not an edge-ocr page message" in out
    assert "[event] skipped on edge-ocr/dev/events: a JSON string, not an edge-ocr event message" in out
    assert "[page seq=x frame=None] 1 line, ? ms" in out and "0.50  odd fields" in out, "odd optional fields"
    assert "0.97  x = 18 + 5" in out and "~ line 1: x = 18 + 5   (was: x = 13 + 5)" in out
    assert "Traceback" not in out + err


def test_problem_names_what_is_wrong() -> None:
    assert problem("page", PAGE) is None and problem("event", EVENT) is None
    assert problem("page", {"lines": [{"text": 3, "confidence": 1}]}) == \
        "line 1 has no text and confidence: not an edge-ocr page"
    assert problem("event", {**EVENT, "event": "moved"}) == "no event, index and text: not an edge-ocr line event"
    assert problem("page", None) == "JSON null, not an edge-ocr page message"
