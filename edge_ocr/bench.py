"""``edge-ocr bench``: what a frame costs inside the daemon's loop, and what an API call costs.

Frames are the last frame of the bundled sample video (a board with five lines) scaled to
1920×1080, with fresh sensor noise each time. Measured through ``Service._on_frame`` (gate,
vision, recogniser, diff, outbox), with MQTT off so that only this process is timed:
- the first frame after start (cold: the first recognition of every line);
- an unchanged board, frame after frame: the gate's cost, and whether anything was sent;
- a changed board (one line rewritten) recognised again, with the line cache warm.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edge_ocr import config as config_mod
from edge_ocr.capture import SAMPLE_VIDEO
from edge_ocr.service import Service


def sample_board(size: tuple[int, int] = (1920, 1080)) -> np.ndarray:
    cap = cv2.VideoCapture(str(SAMPLE_VIDEO))
    last = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        last = frame
    cap.release()
    if last is None:
        raise SystemExit(f"cannot read {SAMPLE_VIDEO}")
    return cv2.resize(last, size, interpolation=cv2.INTER_CUBIC)


def noisy(frame: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


def run(frames: int = 200) -> dict[str, float]:
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    board = sample_board()
    with tempfile.TemporaryDirectory() as state:
        env = {"EDGE_OCR_MQTT_ENABLED": "false", "EDGE_OCR_SERVICE_STATE_DIR": state,
               "EDGE_OCR_GATE_STABLE_FRAMES": "1"}
        svc = Service(config_mod.load(None, environ=env))
        seq = 0

        def step(image: np.ndarray) -> float:
            nonlocal seq
            seq += 1
            t0 = time.perf_counter()
            svc._on_frame(image, seq, time.time())
            return (time.perf_counter() - t0) * 1000

        step(noisy(board, rng))  # the gate's first look: "moving"
        cold = step(noisy(board, rng))
        published = svc.counters["pages_published"]
        unchanged = [step(noisy(board, rng)) for _ in range(frames)]
        sent_while_unchanged = svc.counters["pages_published"] - published
        edited = board.copy()
        h, w = edited.shape[:2]
        cv2.putText(edited, "x = 42", (int(w * 0.55), int(h * 0.62)), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (40, 40, 40), 5)
        changed = [step(noisy(edited if k % 2 == 0 else board, rng)) for k in range(6)]  # each frame a change
    assert svc.counters["frames_recognised"] == 1 + len(changed), "every alternated frame was recognised"
    return {"cold_ms": cold, "unchanged_median_ms": statistics.median(unchanged),
            "unchanged_p90_ms": float(np.percentile(unchanged, 90)), "unchanged_frames": frames,
            "sent_while_unchanged": sent_while_unchanged, "changed_median_ms": statistics.median(changed),
            "cache_hit_rate": svc.reader.cache.hit_rate}


def api_latency(requests: int = 100) -> dict[str, float]:
    """Client-side time of ``POST /api/ocr`` with one sample line (multipart, keep-alive),
    through a real socket to the API in this process."""
    import http.client
    import socket
    import threading

    from edge_ocr.api import build_api
    from edge_ocr.config import HttpConfig
    from edge_ocr.recognizer import Recognizer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = SAMPLE_VIDEO.parent / "lines"
    line = sorted(root.glob("*.png"))[0]
    data = line.read_bytes()
    api = build_api(HttpConfig(port=port, threads=1), Recognizer(Path(__file__).resolve().parent.parent
                                                                 / "models" / "crnn_zh_en_int8.tflite"))
    stop = threading.Event()
    threading.Thread(target=api.serve, args=(stop,), daemon=True).start()
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"image\"; filename=\"line.png\"\r\n\r\n"
            + data + b"\r\n--b0undary--\r\n")
    headers = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/openapi.json")
            conn.getresponse().read()
            break
        except OSError:
            time.sleep(0.05)
    times, server = [], []
    for _ in range(requests):
        t0 = time.perf_counter()
        conn.request("POST", "/api/ocr?mode=line", body=body, headers=headers)
        reply = conn.getresponse().read()
        times.append((time.perf_counter() - t0) * 1000)
        server.append(json.loads(reply)["processing_time_ms"])
    stop.set()
    return {"api_median_ms": statistics.median(times), "api_p90_ms": float(np.percentile(times, 90)),
            "api_server_median_ms": statistics.median(server), "api_requests": requests, "api_line": line.name}


def report(r: dict[str, float]) -> str:
    return "\n".join([
        "# Daemon frame costs (1920×1080 sample board, 1 thread)", "",
        "| frame | ms |", "|---|---|",
        f"| first after start (cold) | {r['cold_ms']:.1f} |",
        f"| unchanged board, median of {r['unchanged_frames']} | {r['unchanged_median_ms']:.2f} |",
        f"| unchanged board, p90 | {r['unchanged_p90_ms']:.2f} |",
        f"| one line changed (cache warm), median | {r['changed_median_ms']:.1f} |", "",
        f"`POST /api/ocr` with one line ({r['api_line']}), {r['api_requests']} requests over one keep-alive "
        f"connection, 1 thread: median {r['api_median_ms']:.1f} ms, p90 {r['api_p90_ms']:.1f} ms at the client "
        f"({r['api_server_median_ms']:.1f} ms of it recognition).", "",
        f"Messages sent while the board was unchanged: {r['sent_while_unchanged']}. "
        f"Line cache hit rate: {r['cache_hit_rate']:.2f}.", ""])


def emit(text: str, path: Path | None) -> None:
    """Print a Markdown report and, if asked, write it to ``path``."""
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

