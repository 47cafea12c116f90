"""``edge-ocr watch``: a subscriber that shows pages and events as they arrive.

For people (``make run`` uses it) and for checking a deployment: it prints the status, each
page's text and every line event, drops QoS 1 duplicates by ``msg_id``, and with ``--json``
prints the raw messages as JSON lines. It connects as the daemon does (``edge_ocr.daemon.mqtt.
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
from edge_ocr.daemon.mqtt import make_client
from edge_ocr.page.diff import LineEvent
from edge_ocr.page.result import PageResult

MARKS = {"added": "+", "removed": "-", "changed": "~"}


def too_large(doc: object) -> dict | None:
    """The ``too_large`` part of a notice the daemon sent in place of a message larger than the
    broker accepts (``edge_ocr/daemon/fit.py``), or None."""
    part = doc.get("too_large") if isinstance(doc, dict) else None
    return part if isinstance(part, dict) else None


def problem(kind: str, doc: object) -> str | None:
    """Why ``doc`` (parsed JSON from a ``page`` or ``events`` topic) is not an edge-ocr message,
    or None when it is one (:meth:`PageResult.from_dict` / :meth:`LineEvent.from_dict` accept it,
    or it is a too-large notice)."""
    if too_large(doc) is not None:
        return None
    try:
        (PageResult if kind == "page" else LineEvent).from_dict(doc)
    except ValueError as exc:
        return str(exc)
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
    if (notice := too_large(doc)) is not None:
        print(f"\n[{kind} seq={_field(doc, 'seq')}] too large for the broker ({notice.get('bytes')} bytes, "
              f"limit {notice.get('limit')}): not delivered", file=out)
    elif kind == "page":
        page = PageResult.from_dict(doc)
        ms = f"{page.timings_ms['total']:.0f} ms" if "total" in page.timings_ms else "? ms"
        cut = _field(doc, "truncated", "lines")
        cut = f" (trimmed for the broker: {len(page.lines)} of {cut} lines)" if cut is not None else ""
        n = len(page.lines)
        print(f"\n[page seq={_field(doc, 'seq')} frame={_field(doc, 'frame', 'seq')}] {n} line{'' if n == 1 else 's'}, "
              f"{ms}{cut}", file=out)
        for line in page.lines:
            print(f"  {line.confidence:.2f}  {line.text}", file=out)
    else:
        event = LineEvent.from_dict(doc)
        prev = f"   (was: {event.previous})" if event.kind == "changed" else ""
        print(f"  {MARKS[event.kind]} line {event.index + 1}: {event.text}{prev}", file=out)
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
