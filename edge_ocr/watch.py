"""``edge-ocr watch``: a subscriber that shows pages and events as they arrive.

For people (``make run`` uses it) and for checking a deployment: it prints the status, each
page's text and every line event, drops QoS 1 duplicates by ``msg_id``, and with ``--json``
prints the raw messages as JSON lines. It connects as the daemon does (``edge_ocr.mqtt.
make_client``: the same ``[mqtt]`` settings, credentials and TLS). A message on a page or events
topic that is not an edge-ocr page or event (another program's JSON, a retained leftover) is
shown as one line saying why it was skipped, and watching goes on.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TextIO

from edge_ocr.config import MqttConfig
from edge_ocr.mqtt import make_client

MARKS = {"added": "+", "removed": "-", "changed": "~"}


def _kind_of(value: object) -> str:
    return {dict: "a JSON object", list: "a JSON list", str: "a JSON string", bool: "a JSON boolean",
            type(None): "JSON null"}.get(type(value), "a JSON number")


def problem(kind: str, doc: object) -> str | None:
    """Why ``doc`` (parsed JSON from a ``page`` or ``events`` topic) is not an edge-ocr message,
    or None when it is one (the fields ``show`` prints are there, with the right types)."""
    if not isinstance(doc, dict):
        return f"{_kind_of(doc)}, not an edge-ocr {kind} message"
    if kind == "page":
        lines = doc.get("lines")
        if not isinstance(lines, list):
            return "no 'lines' list: not an edge-ocr page"
        for i, line in enumerate(lines):
            if not (isinstance(line, dict) and isinstance(line.get("text"), str)
                    and isinstance(line.get("confidence"), int | float)):
                return f"line {i + 1} has no text and confidence: not an edge-ocr page"
        return None
    if doc.get("event") not in MARKS or not isinstance(doc.get("index"), int) or not isinstance(doc.get("text"), str):
        return "no event, index and text: not an edge-ocr line event"
    return None


def _field(doc: dict, *path: str) -> object:
    """``doc[path[0]][path[1]]…``, or None where a level is missing or not an object."""
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def show(kind: str, doc: dict, out: TextIO) -> None:
    """Print one edge-ocr page or event (one that :func:`problem` passed) for a person; optional
    fields that are missing or of another type are shown as "?"."""
    if kind == "page":
        total = _field(doc, "timings_ms", "total")
        ms = f"{total:.0f} ms" if isinstance(total, int | float) and not isinstance(total, bool) else "? ms"
        print(f"\n[page seq={_field(doc, 'seq')} frame={_field(doc, 'frame', 'seq')}] {len(doc['lines'])} lines, {ms}",
              file=out)
        for line in doc["lines"]:
            print(f"  {line['confidence']:.2f}  {line['text']}", file=out)
    else:
        prev = f"   (was: {doc.get('previous')})" if doc["event"] == "changed" else ""
        print(f"  {MARKS[doc['event']]} line {doc['index'] + 1}: {doc['text']}{prev}", file=out)
    out.flush()


def watch(cfg: MqttConfig, device: str = "+", as_json: bool = False, seconds: float | None = None,
          out: TextIO | None = None) -> int:
    """Subscribe to ``<base_topic>/<device>/#`` and print what arrives until ``seconds`` pass (or
    forever). Returns the exit code: 0, or 2 when the broker cannot be reached or refuses."""
    out = out or sys.stdout
    seen: set[str] = set()
    done = threading.Event()
    refused: list[str] = []

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
            print(f"edge-ocr watch: broker refused: {reason_code}", file=sys.stderr)
            done.set()
            return
        client.subscribe(f"{cfg.base_topic}/{device}/#", qos=1)

    def on_message(client, userdata, msg) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        if kind == "status":
            print(f"[status] {msg.topic.split('/')[-2]}: {msg.payload.decode(errors='replace')}", file=out, flush=True)
            return
        if kind not in ("page", "events"):
            return
        kind = "page" if kind == "page" else "event"
        try:
            doc = json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError):
            print(f"[{kind}] skipped on {msg.topic}: not JSON ({len(msg.payload)} bytes)", file=out, flush=True)
            return
        why = problem(kind, doc)
        if why is not None:
            retained = " (retained)" if msg.retain else ""
            print(f"[{kind}] skipped on {msg.topic}{retained}: {why}", file=out, flush=True)
            return
        if doc.get("msg_id") is not None:
            if doc["msg_id"] in seen:
                return
            seen.add(doc["msg_id"])
        try:
            if as_json:
                print(json.dumps({"topic": msg.topic, **doc}, ensure_ascii=False), file=out, flush=True)
            else:
                show(kind, doc, out)
        except Exception as exc:  # whatever a message holds, it must not end the watch
            print(f"[{kind}] skipped on {msg.topic}: cannot show it ({type(exc).__name__}: {exc})", file=out,
                  flush=True)

    client = make_client(cfg)
    client.on_connect, client.on_message = on_connect, on_message
    try:
        client.connect(cfg.host, cfg.port, cfg.keepalive)
    except (OSError, ValueError) as exc:
        print(f"edge-ocr watch: cannot reach broker {cfg.host}:{cfg.port}: {exc}", file=sys.stderr)
        return 2
    client.loop_start()
    try:
        deadline = None if seconds is None else time.monotonic() + seconds
        while not done.is_set() and (deadline is None or time.monotonic() < deadline):
            done.wait(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    return 2 if refused else 0
