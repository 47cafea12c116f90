"""The rule for messages over a broker's size limit (edge_ocr/daemon/fit.py), against sizes worked
out by hand from the MQTT specification and pages built the way the rule is documented."""

from __future__ import annotations

import json

from edge_ocr.daemon.fit import fit, packet_size
from edge_ocr.daemon.outbox import encode

TOPIC = "edge-ocr/dev/page"


def _page(n: int, chars: int = 20) -> dict:
    lines = [{"text": f"line {i} " + "x" * chars, "confidence": 0.9, "box": [[0, i], [9, i], [9, i + 1], [0, i + 1]],
              "block": 0, "char_confidences": [0.9] * (chars + 7), "cached": False} for i in range(n)]
    return {"msg_id": "a" * 32, "seq": 7, "device": "dev", "ts": 1.5, "frame": {"seq": 3, "ts": 1.0},
            "text": "\n".join(ln["text"] for ln in lines), "lines": lines, "model": "m"}


def _size(doc: dict) -> int:
    return packet_size(TOPIC, encode(doc), 1, True)


def test_packet_size_by_the_specification() -> None:
    # "a/b", 5 bytes, QoS 1: remaining = 2+3 (topic) + 2 (packet id) + 1 (MQTT 5 properties) + 5 = 13
    assert packet_size("a/b", b"12345", 1, True) == 1 + 1 + 13
    assert packet_size("a/b", b"12345", 1, False) == 1 + 1 + 12
    assert packet_size("a/b", b"12345", 0, False) == 1 + 1 + 10
    # the remaining length takes a second byte from 128
    assert packet_size("a/b", b"x" * 119, 1, True) == 1 + 1 + 127
    assert packet_size("a/b", b"x" * 120, 1, True) == 1 + 2 + 128


def test_what_fits_goes_as_it_is() -> None:
    payload = encode(_page(5))
    assert fit(TOPIC, payload, 1, True, None).payload is payload
    assert fit(TOPIC, payload, 1, True, _size(_page(5))).outcome == "as_is"


def test_a_page_loses_character_confidences_then_lines_from_the_end() -> None:
    page = _page(12)
    size = _size(page)
    bare = [{**ln, "char_confidences": []} for ln in page["lines"]]

    def trimmed(k: int, limit: int) -> dict:  # the documented form of the page with its first k lines
        return {**page, "text": "\n".join(ln["text"] for ln in bare[:k]), "lines": bare[:k],
                "truncated": {"bytes": size, "limit": limit, "lines": 12}}

    limit = _size(trimmed(12, 1000))  # confidences out, every line fits (limits of 4 digits throughout)
    out = fit(TOPIC, encode(page), 1, True, limit)
    assert out.outcome == "trimmed" and json.loads(out.payload) == trimmed(12, limit) and out.kept == 12

    limit = _size(trimmed(5, 1000)) + 10  # five lines fit, six do not
    out = fit(TOPIC, encode(page), 1, True, limit)
    assert _size(trimmed(6, limit)) > limit
    assert json.loads(out.payload) == trimmed(5, limit) and out.kept == 5 and out.size == size
    assert packet_size(TOPIC, out.payload, 1, True) <= limit


def test_what_cannot_be_trimmed_becomes_a_notice_with_its_number() -> None:
    event = {"msg_id": "b" * 32, "seq": 9, "device": "dev", "ts": 2.5, "event": "added", "index": 0,
             "text": "长" * 600, "previous": None}
    out = fit("edge-ocr/dev/events", encode(event), 1, False, 1024)
    size = packet_size("edge-ocr/dev/events", encode(event), 1, False)
    assert out.outcome == "too_large" and size > 1024
    assert json.loads(out.payload) == {"msg_id": "b" * 32, "seq": 9, "device": "dev", "ts": 2.5,
                                       "too_large": {"bytes": size, "limit": 1024}}
    page = _page(1, chars=2000)  # not even without lines? it fits without them: trimmed to none
    assert json.loads(fit(TOPIC, encode(page), 1, True, 1024).payload)["lines"] == []
    assert fit(TOPIC, b"\xff not json" * 200, 1, True, 1024).payload is None


def test_health_loses_its_board_grid() -> None:
    health = {"msg_id": "c" * 32, "seq": 2, "state": "ok", "board": {"occluded": 0.0, "stale_s": [[0.0] * 30] * 20}}
    out = fit("edge-ocr/dev/health", encode(health), 1, True, 1024)
    assert out.outcome == "trimmed"
    assert json.loads(out.payload) == {**health, "board": {"occluded": 0.0, "stale_s": []},
                                       "truncated": {"bytes": out.size, "limit": 1024}}
