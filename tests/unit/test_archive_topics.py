"""The archive's subscriptions and how a topic and payload become a store message."""

from __future__ import annotations

import pytest

from edge_ocr.archive.subscriber import decode, topics


def test_subscriptions_cover_every_kind_plain_or_shared() -> None:
    assert topics("school/edge-ocr") == ["school/edge-ocr/+/page", "school/edge-ocr/+/events",
                                         "school/edge-ocr/+/health", "school/edge-ocr/+/status",
                                         "school/edge-ocr/+/snapshot"]
    assert topics("edge-ocr", "g1")[0] == "$share/g1/edge-ocr/+/page"


def test_status_is_plain_text_and_the_device_comes_from_the_topic() -> None:
    assert decode("edge-ocr", "edge-ocr/room-12/status", b"offline") == (
        "status", {"device": "room-12", "status": "offline"})
    kind, doc = decode("a/b", "a/b/room-3/page", b'{"msg_id": "x", "seq": 4}')
    assert kind == "page" and doc == {"msg_id": "x", "seq": 4, "device": "room-3"}


@pytest.mark.parametrize(("topic", "payload", "why"), [
    ("edge-ocr/room/page", b"{not json", "not JSON"),
    ("edge-ocr/room/page", b"[1, 2]", "expected a JSON object"),
    ("edge-ocr/room/status", b"maybe", "neither online nor offline"),
    ("edge-ocr/room/command", b"capture", "not an archive topic"),
    ("other/room/page", b"{}", "not an archive topic"),
    ("edge-ocr/page", b"{}", "not an archive topic"),
])
def test_what_cannot_be_stored_is_refused_with_the_reason(topic: str, payload: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decode("edge-ocr", topic, payload)


def test_a_message_over_the_limit_is_refused_before_it_is_read() -> None:
    """No device sends more than mqtt.max_message_bytes; a larger one is refused by its size."""
    payload = b'{"msg_id": "x", "seq": 4, "lines": []}'
    assert decode("e", "e/room-1/page", payload, max_bytes=len(payload))[0] == "page"
    with pytest.raises(ValueError, match=r"over archive\.max_message_bytes"):
        decode("e", "e/room-1/page", payload, max_bytes=len(payload) - 1)
