"""Messages larger than the broker accepts: trimmed by a fixed rule or replaced, never sent as they are.

A broker refuses a PUBLISH over its limit (MQTT 5 Maximum Packet Size in CONNACK, mosquitto's
``max_packet_size`` / ``message_size_limit``, cloud brokers' 128-256 KB): it disconnects, or drops
the message and still acknowledges it. Sent as it is, the message comes back after every reconnect
and blocks what follows, or is lost while counted as delivered. The rule, applied just before a
message is handed to the broker (the outbox keeps the message as it was stored):

1. a page loses its per-character confidences, then lines from the end, until it fits; it then
   carries ``truncated``: ``{"lines": <lines before>, "bytes": <size before>, "limit": <limit>}``;
2. health loses its per-cell board staleness (``board.stale_s``) the same way;
3. anything that still does not fit (an event, a page too large even without lines) becomes a
   notice with the same ``msg_id``, ``seq``, ``device`` and ``ts``:
   ``{"too_large": {"bytes": <size>, "limit": <limit>}}``, so a subscriber sees no gap in ``seq``
   and the retained page is never an older one that looks current.

Sizes are of the whole PUBLISH packet (MQTT 5 §3.3, 3.1.1 §3.3): what Maximum Packet Size counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from edge_ocr.daemon.outbox import encode


@dataclass(frozen=True)
class Fitted:
    payload: bytes | None  # None: not even a notice fits, send nothing
    outcome: str  # "as_is" | "trimmed" | "too_large"
    size: int  # packet size before fitting
    limit: int | None = None
    kept: int | None = None  # lines kept of a trimmed page


def packet_size(topic: str, payload: bytes, qos: int, mqtt5: bool) -> int:
    """Bytes of a PUBLISH packet without properties: fixed header (1 byte and the remaining length
    as a variable byte integer), topic with its 2-byte length, packet id (QoS > 0), the MQTT 5
    property length (1 byte for none), payload."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + (1 if mqtt5 else 0) + len(payload)
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16_384 else 3 if remaining < 2_097_152 else 4
    return 1 + length_bytes + remaining


def fit(topic: str, payload: bytes, qos: int, mqtt5: bool, limit: int | None) -> Fitted:
    """``payload`` made to fit ``limit`` bytes of packet (None: no limit) by the module's rule."""
    size = packet_size(topic, payload, qos, mqtt5)
    if limit is None or size <= limit:
        return Fitted(payload, "as_is", size, limit)
    overhead = size - len(payload)
    try:
        doc = json.loads(payload)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return Fitted(None, "too_large", size, limit)
    trimmed = _trim(doc, size, limit, limit - overhead)
    if trimmed is not None:
        return Fitted(trimmed[0], "trimmed", size, limit, trimmed[1])
    notice = encode({**{k: doc[k] for k in ("msg_id", "seq", "device", "ts") if k in doc},
                     "too_large": {"bytes": size, "limit": limit}})
    return Fitted(notice if len(notice) + overhead <= limit else None, "too_large", size, limit)


def _trim(doc: dict, size: int, limit: int, room: int) -> tuple[bytes, int | None] | None:
    """A page (a ``lines`` list) or health document (a ``board``) cut down to ``room`` payload
    bytes, with the number of lines kept (None for health); None when it cannot fit."""
    note = {"truncated": {"bytes": size, "limit": limit}}
    if isinstance(doc.get("board"), dict):
        payload = encode({**doc, "board": {**doc["board"], "stale_s": []}, **note})
        return (payload, None) if len(payload) <= room else None
    lines = doc.get("lines")
    if not isinstance(lines, list):
        return None
    bare = [{**ln, "char_confidences": []} if isinstance(ln, dict) else ln for ln in lines]
    note["truncated"]["lines"] = len(lines)

    def page(k: int) -> bytes:
        kept = bare[:k]
        text = "\n".join(str(ln.get("text", "")) for ln in kept if isinstance(ln, dict))
        return encode({**doc, "text": text, "lines": kept, **note})

    if len(page(0)) > room:
        return None
    lo, hi = 0, len(bare)  # the most lines that fit: size grows with the lines kept
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if len(page(mid)) <= room else (lo, mid - 1)
    return page(lo), lo
