"""``make soak``: the daemon on the looping sample video against a real mosquitto for a while,
the broker SIGKILLed and restarted now and then; then count what arrived.

    python -m tests.soak --minutes 30 --report reports/soak.md

Page and event messages carry gap-free sequence numbers from 1 in a fresh state directory,
so "produced" is the daemon's last number, "delivered" the distinct numbers that reached a
persistent-session subscriber, "lost" the numbers that never did, "duplicates" the extra
copies (QoS 1 at-least-once). RSS, open file descriptors and threads of the daemon are read
from /proc after a warm-up minute and at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_ocr.paths import ROOT
from tests.broker import Broker, Subscriber


def proc_stats(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--kill-every", type=float, default=90.0, help="mean seconds between broker kills")
    ap.add_argument("--report", type=Path, default=ROOT / "reports" / "soak.md")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        broker = Broker(tmp / "broker").start()
        sub = Subscriber(broker.port, "edge-ocr/soak/+", client_id="soak-subscriber")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("EDGE_OCR_", "NOTIFY_SOCKET"))},
               "EDGE_OCR_MQTT_PORT": str(broker.port), "EDGE_OCR_MQTT_HOST": "127.0.0.1",
               "EDGE_OCR_DEVICE_ID": "soak", "EDGE_OCR_CAPTURE_SOURCE": str(ROOT / "samples" / "board.mp4"),
               "EDGE_OCR_CAPTURE_LOOP": "true", "EDGE_OCR_CAPTURE_FPS": "4",
               "EDGE_OCR_SERVICE_STATE_DIR": str(tmp / "state"), "EDGE_OCR_SERVICE_LOG_LEVEL": "warning",
               "EDGE_OCR_SERVICE_DRAIN_TIMEOUT_S": "30"}
        log = (tmp / "daemon.log").open("w")
        daemon = subprocess.Popen([sys.executable, "-m", "edge_ocr", "run"], env=env, cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT)
        start = time.monotonic()
        end = start + a.minutes * 60
        warm = min(60.0, a.minutes * 60 / 4)
        first = last = None
        kills = []
        next_kill = start + rng.uniform(0.5, 1.5) * a.kill_every
        while time.monotonic() < end:
            now = time.monotonic()
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon died: {(tmp / 'daemon.log').read_text()[-3000:]}")
            if first is None and now - start >= warm:
                first = proc_stats(daemon.pid)
            if now >= next_kill and now < end - 20:
                broker.kill()
                down = rng.uniform(1.0, 6.0)
                time.sleep(down)
                broker.start()
                kills.append(round(down, 1))
                next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * a.kill_every
            time.sleep(1.0)
        last = proc_stats(daemon.pid)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(120)
        log.close()
        with sqlite3.connect(tmp / "state" / "outbox.sqlite3") as db:
            produced = db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0]
            left = db.execute("SELECT count(*) FROM messages").fetchone()[0]

        def seqs() -> list[int]:
            return [d["seq"] for d in sub.json("/page") + sub.json("/events") + sub.json("/snapshot")]

        sub.wait_for(lambda: set(range(1, produced + 1)) <= set(seqs()), timeout=60)
        got = seqs()
        sub.close()
        broker.stop()
        lost = sorted(set(range(1, produced + 1)) - set(got))
        result = {"minutes": a.minutes, "broker_kills": len(kills), "downtimes_s": kills, "produced": produced,
                  "delivered": len(set(got)), "lost": len(lost), "lost_seqs": lost[:20],
                  "duplicates": len(got) - len(set(got)), "outbox_left": left, "start": first, "end": last,
                  "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 1)}
    text = "\n".join([
        f"# Soak: {a.minutes:g} minutes, broker SIGKILLed {len(kills)} times", "",
        "The daemon on the looping sample video (4 frames/s), a persistent-session QoS 1 subscriber, mosquitto "
        f"killed about every {a.kill_every:g} s and restarted after 1-6 s.", "",
        "| messages (pages, events, snapshots) | count |", "|---|---|",
        f"| produced | {produced} |", f"| delivered (distinct) | {len(set(got))} |", f"| lost | {len(lost)} |",
        f"| duplicates (dropped by msg_id) | {len(got) - len(set(got))} |", f"| left in the outbox | {left} |", "",
        "| daemon | after warm-up | at the end |", "|---|---|---|",
        f"| RSS MB | {first['rss_mb']:.1f} | {last['rss_mb']:.1f} |",
        f"| open file descriptors | {first['fds']} | {last['fds']} |",
        f"| threads | {first['threads']} | {last['threads']} |", "",
        f"RSS growth {result['rss_growth_mb']:+.1f} MB. Broker downtimes (s): {kills}.", ""])
    print(text)
    a.report.parent.mkdir(parents=True, exist_ok=True)
    a.report.write_text(text, encoding="utf-8")
    a.report.with_suffix(".json").write_text(json.dumps(result, indent=1))
    return 0 if not lost and result["rss_growth_mb"] <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
