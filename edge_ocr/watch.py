"""``edge-ocr watch``: a subscriber that shows pages and events as they arrive.

For people (``make run`` uses it) and for checking a deployment: it prints the status, each
page's text and every line event, drops QoS 1 duplicates by ``msg_id``, and with ``--json``
prints the raw messages as JSON lines.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MARKS = {"added": "+", "removed": "-", "changed": "~"}


def watch(host: str, port: int, base: str, device: str, as_json: bool, seconds: float | None,
          username: str = "", password: str = "", out=None) -> int:
    out = out or sys.stdout
    seen: set[str] = set()
    done = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            print(f"edge-ocr watch: broker refused: {reason_code}", file=sys.stderr)
            done.set()
            return
        client.subscribe(f"{base}/{device}/#", qos=1)

    def on_message(client, userdata, msg) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        if kind == "status":
            print(f"[status] {msg.topic.split('/')[-2]}: {msg.payload.decode(errors='replace')}", file=out, flush=True)
            return
        if kind not in ("page", "events"):
            return
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            print(f"[{kind}] not JSON ({len(msg.payload)} bytes)", file=out, flush=True)
            return
        if doc.get("msg_id") in seen:
            return
        seen.add(doc.get("msg_id"))
        if as_json:
            print(json.dumps({"topic": msg.topic, **doc}, ensure_ascii=False), file=out, flush=True)
        elif kind == "page":
            print(f"\n[page seq={doc['seq']} frame={doc['frame']['seq']}] {len(doc['lines'])} lines, "
                  f"{doc['timings_ms'].get('total', 0):.0f} ms", file=out)
            for line in doc["lines"]:
                print(f"  {line['confidence']:.2f}  {line['text']}", file=out)
            out.flush()
        else:
            prev = f"   (was: {doc['previous']})" if doc["event"] == "changed" else ""
            mark = MARKS.get(doc["event"], "?")
            print(f"  {mark} line {doc['index'] + 1}: {doc['text']}{prev}", file=out, flush=True)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if username:
        client.username_pw_set(username, password or None)
    client.on_connect, client.on_message = on_connect, on_message
    try:
        client.connect(host, port, 30)
    except OSError as exc:
        print(f"edge-ocr watch: cannot reach broker {host}:{port}: {exc}", file=sys.stderr)
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
    return 0
