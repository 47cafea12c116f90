"""``edge-ocr bench``: speed, memory and start-up on this device, as a Markdown report and JSON.

Everything runs with the shipped model through the real code paths, 1 thread unless said:
- per-line latency (median, p90) over short (~5 characters), ~20 and ~40 character lines, for
  every installed runtime, the default model (PP-OCRv6 small int8) and our CRNN (int8, and float
  when ``models/crnn_zh_en_float.tflite`` exists),
  1 and 2 threads, and lines per second;
- finding the lines of a 1920×1080 board: each DB detector against the classical splitter;
- a 1920×1080 board with 15 new lines: the first frame after start (models still warming
  up), then, in the running daemon, time per stage (gate, surface, detect, orient, split,
  recognise, publish into the outbox) when the board is wiped and 15 other lines appear, an
  unchanged frame (the gate skips it), one changed line (every line is read again: the cache
  only answers for pixel-identical crops, see ``edge_ocr.page.cache``);
- growth: total frame time against number of lines (1, 5, 15, 40) and frame size (720p,
  1080p, 12 MP);
- ``POST /api/ocr`` with one line over a real socket;
- the daemon as a process: start-up to READY=1, peak and steady RSS over a looping video,
  model file size.
Lines are the bundled sample lines (held-out fonts); boards are built from them with OpenCV.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from edge_ocr import config as config_mod
from edge_ocr.daemon.service import Service
from edge_ocr.imageio import read_image
from edge_ocr.labels import read_labels
from edge_ocr.model.interpreter import available_runtimes
from edge_ocr.page.build import build_reader
from edge_ocr.paths import DEFAULT_DETECTOR, DEFAULT_MODEL, ROOT, SAMPLE_VIDEO, SAMPLES
from edge_ocr.recognition.recognizer import Recognizer

# The default model first (frames, API and daemon figures use it), then our own CRNNs: the student
# distilled from PP-OCRv6 (toolchain/crnn/student.py) and the first one, trained on rendered lines only.
MODELS = {"default int8": DEFAULT_MODEL,
          "CRNN student int8": ROOT / "models" / "crnn_student_zh_en_int8.tflite",
          "CRNN int8": ROOT / "models" / "crnn_zh_en_int8.tflite",
          "CRNN float": ROOT / "models" / "crnn_zh_en_float.tflite"}
DEFAULT = MODELS["default int8"]
LINES = SAMPLES / "lines"
T = TypeVar("T")


def sample_board(size: tuple[int, int] = (1920, 1080)) -> np.ndarray:
    """The last frame of the bundled sample video (a board with five lines), resized."""
    cap = cv2.VideoCapture(str(SAMPLE_VIDEO))
    last = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        last = frame
    cap.release()
    if last is None:
        raise RuntimeError(f"cannot read {SAMPLE_VIDEO}")
    return cv2.resize(last, size, interpolation=cv2.INTER_CUBIC)


def _stats(ms: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(ms), "p90_ms": float(np.percentile(ms, 90)), "n": len(ms)}


def sample_lines() -> list[tuple[str, np.ndarray]]:
    return [(r["text"], read_image(LINES / r["file"])) for r in read_labels(LINES)]


def joined(parts: list[np.ndarray], height: int = 32) -> np.ndarray:
    """Line images side by side at one height, with a word gap: a longer line."""
    gray = [cv2.cvtColor(p, cv2.COLOR_BGR2GRAY) if p.ndim == 3 else p for p in parts]
    scaled = [cv2.resize(g, (max(1, round(g.shape[1] * height / g.shape[0])), height)) for g in gray]
    gap = np.full((height, height // 2), int(np.percentile(scaled[0], 90)), np.uint8)
    return np.hstack([x for s in scaled for x in (s, gap)][:-1])


def width_classes(with_text: bool = False) -> dict[str, list]:
    """Short, ~20-character and ~40-character lines built from the samples (with their text)."""
    lines = sample_lines()
    short = [(t, im) for t, im in lines if len(t) <= 10]
    twenty = [(t, im) for t, im in lines if 15 <= len(t) <= 30]
    forty = [(f"{ta} {tb}", joined([a, b])) for (ta, a), (tb, b) in zip(twenty, twenty[1:] + twenty[:1])]
    classes = {"short (≤ 10 chars)": short, "~20 chars": twenty, "~40 chars": forty}
    return classes if with_text else {k: [im for _, im in v] for k, v in classes.items()}


def line_latency(repeats: int = 20) -> list[dict]:
    out = []
    classes = width_classes()
    chars = {k: statistics.mean(len(t) for t, _ in v) for k, v in width_classes(with_text=True).items()}
    for quant, path in MODELS.items():
        if not path.exists():
            continue
        for runtime in available_runtimes():
            for threads in (1, 2):
                rec = Recognizer(path, num_threads=threads, runtime=runtime)
                for name, images in classes.items():
                    prepared = [rec.prepare(im) for im in images]
                    rec.recognize_prepared(prepared)  # warm-up: allocations for each width
                    ms = []
                    for _ in range(repeats):
                        for p in prepared:
                            t0 = time.perf_counter()
                            rec.recognize_prepared([p])
                            ms.append((time.perf_counter() - t0) * 1000)
                    s = _stats(ms)
                    out.append({"model": quant, "runtime": runtime, "threads": threads, "lines": name,
                                "chars": chars[name], "width_px": statistics.mean(p.shape[1] for p in prepared),
                                **s, "lines_per_s": 1000 / s["median_ms"]})
    return out


def board(n_lines: int, size: tuple[int, int] = (1920, 1080), seed: int = 0, first: int = 0) -> np.ndarray:
    """A white board filling most of a darker frame, ``n_lines`` sample lines (from sample line
    ``first`` on) in one or two columns."""
    w, h = size
    frame = np.full((h, w, 3), 70, np.uint8)
    x0, y0, x1, y1 = int(w * 0.06), int(h * 0.06), int(w * 0.94), int(h * 0.94)
    frame[y0:y1, x0:x1] = 238
    cols = 1 if n_lines <= 20 else 2
    rows = -(-n_lines // cols)
    pitch = (y1 - y0) / (rows + 0.5)
    line_h = int(min(64 * h / 1080, pitch / 1.8))
    lines = sample_lines()
    rng = np.random.default_rng(seed)
    col_w = (x1 - x0) // cols
    for i in range(n_lines):
        c, r = divmod(i, rows)
        im = joined([lines[(first + i + k) % len(lines)][1] for k in range(2)], line_h)
        im = im[:, : max(8, min(im.shape[1], col_w - 2 * line_h))]
        ink = cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
        ys, xs = int(y0 + pitch * (r + 0.5)), x0 + c * col_w + line_h
        roi = frame[ys : ys + line_h, xs : xs + ink.shape[1]]
        frame[ys : ys + line_h, xs : xs + ink.shape[1]] = np.minimum(roi, ink[: roi.shape[0], : roi.shape[1]])
    noise = rng.normal(0, 2.0, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def frame_costs(repeats: int = 3) -> dict:
    """Stage times on a 1080p board with 15 new lines, cold/unchanged/changed frames, and growth."""
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as state:
        # MQTT on but never started: pages go through the real outbox (the "publish" stage).
        env = {"EDGE_OCR_MQTT_PORT": str(_free_port()), "EDGE_OCR_SERVICE_STATE_DIR": state,
               "EDGE_OCR_GATE_STABLE_FRAMES": "1"}
        cfg = config_mod.load(None, environ=env)
        frame = board(15)
        stages: dict[str, list[float]] = {}
        for _ in range(repeats):
            svc = Service(cfg)
            svc.delivery.outbox.enqueue = _timed(svc.delivery.outbox.enqueue, stages, "publish")
            t0 = time.perf_counter()
            svc.gate.check(frame)
            stages.setdefault("gate", []).append((time.perf_counter() - t0) * 1000)
            seq = 0

            def step(image: np.ndarray, svc: Service = svc) -> float:
                nonlocal seq
                seq += 1
                t = time.perf_counter()
                svc._on_frame(image, seq, time.time())
                return (time.perf_counter() - t) * 1000

            stages.setdefault("first frame after start (15 new lines)", []).append(step(frame))
            lines_found = len(svc.delivery.latest.doc["lines"])
            unchanged = [step(frame) for _ in range(100)]
            stages.setdefault("unchanged frame", []).extend(unchanged)
            edited = frame.copy()
            cv2.putText(edited, "x = 42", (int(1920 * 0.7), int(1080 * 0.9)), cv2.FONT_HERSHEY_SIMPLEX, 1.6,
                        (30, 30, 30), 4)
            step(edited)  # the new writing moves its cells; read once they are still
            stages.setdefault("one line changed (all lines read again)", []).append(step(edited))
            # The board wiped and 15 other lines written: the gate sees it move, then still.
            other = board(15, first=7)
            step(other)
            new = step(other)
            for k, v in svc.delivery.latest.doc["timings_ms"].items():
                if k != "total":
                    stages.setdefault(k, []).append(v)
            stages.setdefault("total (15 new lines)", []).append(new)
            stages.setdefault("gate, a person walking in front", []).extend(_gate_with_person(svc, frame))
            svc.delivery.outbox.close()
        growth_lines = {n: _page_ms(board(n), repeats) for n in (1, 5, 15, 40)}
        growth_size = {name: _page_ms(board(15, size), repeats)
                       for name, size in (("720p", (1280, 720)), ("1080p", (1920, 1080)), ("12 MP", (4000, 3000)))}
    return {"stages_ms": {k: statistics.median(v) for k, v in stages.items()},
            "unchanged_p90_ms": float(np.percentile(stages["unchanged frame"], 90)),
            "lines_found_of_15": lines_found, "growth_lines_ms": growth_lines, "growth_size_ms": growth_size}


def _gate_with_person(svc: Service, frame: np.ndarray, frames: int = 40) -> list[float]:
    """Gate times (ms) while a dark person-sized shape walks across ``frame``: every frame the
    gate classifies all cells and updates the board model; nothing is read."""
    h, w = frame.shape[:2]
    out = []
    for k in range(frames):
        shown = frame.copy()
        cv2.ellipse(shown, (int(w * (0.1 + 0.02 * k)), int(0.8 * h)), (int(0.1 * w), int(0.45 * h)), 0, 0, 360,
                    (90, 50, 40), -1)
        t0 = time.perf_counter()
        svc.gate.check(shown)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _timed(fn: Callable[..., T], sink: dict[str, list[float]], name: str) -> Callable[..., T]:
    def wrapped(*args: object, **kwargs: object) -> T:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sink.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
    return wrapped


def _page_ms(frame: np.ndarray, repeats: int) -> dict[str, float]:
    reader = build_reader(config_mod.Config())
    ms, lines = [], 0
    for _ in range(repeats):
        reader.reset()  # a new scene: every line new, the page's turn voted again
        t0 = time.perf_counter()
        page = reader.read(frame)
        ms.append((time.perf_counter() - t0) * 1000)
        lines = len(page.lines)
    return {"ms": statistics.median(ms), "lines": lines}


def profile_frame(n_lines: int = 15, top: int = 8) -> list[tuple[str, float, float]]:
    """cProfile of one 1080p page read with ``n_lines`` new lines: (function, own ms, cumulative ms)."""
    import cProfile
    import pstats

    reader = build_reader(config_mod.Config())
    frame = board(n_lines)
    reader.read(frame)
    reader.reset()
    prof = cProfile.Profile()
    prof.enable()
    reader.read(frame)
    prof.disable()
    stats = pstats.Stats(prof).stats
    rows = [(f"{Path(f).name}:{line} {name}", tt * 1000, ct * 1000) for (f, line, name), (_, _, tt, ct, _) in
            stats.items()]
    return sorted(rows, key=lambda r: -r[1])[:top]


def api_latency(requests: int = 100) -> dict[str, float]:
    """Client-side time of ``POST /api/ocr`` with one sample line (multipart, keep-alive)."""
    from edge_ocr.config import HttpConfig
    from edge_ocr.http.api import build_api

    port = _free_port()
    line = sorted(LINES.glob("*.png"))[0]
    api = build_api(HttpConfig(port=port, threads=1), build_reader(config_mod.Config()))
    stop = threading.Event()
    threading.Thread(target=api.serve, args=(stop,), daemon=True).start()
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"image\"; filename=\"line.png\"\r\n\r\n"
            + line.read_bytes() + b"\r\n--b0undary--\r\n")
    headers = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    conn = _connect(port)
    times, server = [], []
    for _ in range(requests):
        t0 = time.perf_counter()
        conn.request("POST", "/api/ocr?mode=line", body=body, headers=headers)
        reply = conn.getresponse().read()
        times.append((time.perf_counter() - t0) * 1000)
        server.append(json.loads(reply)["processing_time_ms"])
    stop.set()
    return {**_stats(times), "server_median_ms": statistics.median(server), "line": line.name}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connect(port: int) -> http.client.HTTPConnection:
    for _ in range(200):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/openapi.json")
            conn.getresponse().read()
            return conn
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("API did not start")


def _rss_kb(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def daemon_footprint(seconds: float = 20.0) -> dict[str, float]:
    """Start-up to READY=1 and RSS of ``edge-ocr run`` on the looping sample video (MQTT off)."""
    with tempfile.TemporaryDirectory() as tmp:
        sock_path = Path(tmp) / "notify"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        sock.settimeout(30)
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "EDGE_OCR_MQTT_ENABLED": "false",
               "EDGE_OCR_CAPTURE_SOURCE": str(SAMPLE_VIDEO), "EDGE_OCR_CAPTURE_LOOP": "true",
               "EDGE_OCR_CAPTURE_FPS": "4", "EDGE_OCR_SERVICE_STATE_DIR": str(Path(tmp) / "state"),
               "EDGE_OCR_SERVICE_LOG_LEVEL": "warning"}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "edge_ocr", "run"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while not sock.recv(4096).startswith(b"READY=1"):
                pass
            ready_s = time.perf_counter() - t0
            samples = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                samples.append(_rss_kb(proc.pid)[0])
                time.sleep(0.5)
            peak = _rss_kb(proc.pid)[1]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    return {"ready_s": ready_s, "rss_start_mb": samples[0] / 1024, "rss_steady_mb": statistics.median(
        samples[len(samples) // 2:]) / 1024, "rss_peak_mb": peak / 1024, "seconds": seconds}


# Each detector named by its file; the configured default first, so the labels follow the config.
SHIPPED_DETECTOR = f"{DEFAULT_DETECTOR.stem} (default)"
DETECTORS = {SHIPPED_DETECTOR: DEFAULT_DETECTOR, **{
    path.stem: path for path in (ROOT / "models" / "ppocrv4_det_int8.tflite", ROOT / "models" / "db_lite_int8.tflite",
                                 ROOT / "build" / "ppocr" / "ppocrv4_det_float.tflite") if path != DEFAULT_DETECTOR}}


def detection_costs(repeats: int = 10) -> list[dict]:
    """Finding the lines of a 1920×1080 board with 15 lines, 1 thread: each DB detector (model +
    post-processing) and, as the peer in the same run, the classical splitter (surface, clean, split)."""
    from edge_ocr.vision.clean import clean, ink_gray
    from edge_ocr.vision.detector import TextDetector
    from edge_ocr.vision.lines import find_lines
    from edge_ocr.vision.surface import find_surface

    cv2.setNumThreads(1)
    frame = board(15)
    out = []
    for name, path in DETECTORS.items():
        if not path.exists():
            continue
        det = TextDetector(path, num_threads=1)
        det.detect(frame)
        ms = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            boxes = det.detect(frame)
            ms.append((time.perf_counter() - t0) * 1000)
        out.append({"detector": name, **_stats(ms), "boxes": len(boxes), "mb": path.stat().st_size / 1e6})
    ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        regions = find_lines(clean(find_surface(ink_gray(frame)).image).mask)
        ms.append((time.perf_counter() - t0) * 1000)
    out.append({"detector": "classical splitter", **_stats(ms), "boxes": len(regions), "mb": 0.0})
    return out


def machine() -> dict[str, object]:
    model = platform.processor() or platform.machine()
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        model = fields.get("model name") or fields.get("model") or fields.get("hardware") or model
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "load_avg": os.getloadavg(), "python": platform.python_version(),
            "machine": platform.machine(), "model_mb": DEFAULT.stat().st_size / 1e6,
            "detector_mb": DETECTORS[SHIPPED_DETECTOR].stat().st_size / 1e6}


def run(quick: bool = False) -> dict:
    """Everything above; ``quick`` shortens the repeats (a smoke run, not for quoting)."""
    result = {"machine": machine(), "lines": line_latency(3 if quick else 20)}
    result["detection"] = detection_costs(3 if quick else 10)
    result["frames"] = frame_costs(1 if quick else 3)
    result["profile"] = profile_frame()
    result["api"] = api_latency(10 if quick else 100)
    result["daemon"] = daemon_footprint(3.0 if quick else 20.0)
    result["machine"]["load_avg_after"] = os.getloadavg()
    return result


TARGETS = {"line_20_int8_ms": 8.0, "detect_1080p_ms": 100.0, "frame_15_lines_ms": 350.0, "unchanged_ms": 5.0,
           "gate_1080p_ms": 5.0,
           "rss_steady_mb": 170.0, "model_mb": 6.0, "ready_s": 3.0, "api_ms": 50.0}


def report(r: dict) -> str:
    m, f, d = r["machine"], r["frames"], r["daemon"]
    ours = next(x for x in r["lines"] if x["model"] == "default int8" and x["threads"] == 1
                and x["lines"] == "~20 chars" and x["runtime"] == available_runtimes()[0])
    new15 = f["stages_ms"]["total (15 new lines)"]
    det = r["detection"][0]
    checks = [("one ~20-character line, int8, 1 thread", f"{ours['median_ms']:.1f} ms", TARGETS["line_20_int8_ms"],
               ours["median_ms"]),
              (f"detection, 1920×1080 frame, {det['detector']}", f"{det['median_ms']:.0f} ms",
               TARGETS["detect_1080p_ms"], det["median_ms"]),
              ("1080p frame, 15 new lines (warm daemon)", f"{new15:.0f} ms", TARGETS["frame_15_lines_ms"], new15),
              ("unchanged frame", f"{f['stages_ms']['unchanged frame']:.2f} ms", TARGETS["unchanged_ms"],
               f["stages_ms"]["unchanged frame"]),
              ("gate, 1080p, a person walking in front", f"{f['stages_ms']['gate, a person walking in front']:.2f} ms",
               TARGETS["gate_1080p_ms"], f["stages_ms"]["gate, a person walking in front"]),
              ("daemon steady RSS", f"{d['rss_steady_mb']:.0f} MB", TARGETS["rss_steady_mb"], d["rss_steady_mb"]),
              ("recogniser model file", f"{m['model_mb']:.2f} MB", TARGETS["model_mb"], m["model_mb"]),
              ("detector model file", f"{m['detector_mb']:.2f} MB", TARGETS["model_mb"], m["detector_mb"]),
              ("start-up to READY", f"{d['ready_s']:.2f} s", TARGETS["ready_s"], d["ready_s"]),
              ("POST /api/ocr, one line", f"{r['api']['median_ms']:.1f} ms", TARGETS["api_ms"], r["api"]["median_ms"])]
    out = [f"# edge-ocr benchmark on {m['cpu']} ({m['cores']} cores, {m['machine']}, Python {m['python']})", "",
           f"Load average before {m['load_avg'][0]:.2f}, after {m['load_avg_after'][0]:.2f}. Medians; 1 thread "
           "unless said.", "", "## Targets", "", "| what | measured | target | |", "|---|---|---|---|"]
    out += [f"| {name} | {shown} | ≤ {target:g} | {'✓' if value <= target else '✗ missed'} |"
            for name, shown, target, value in checks]
    out += ["", "## Per line (characters and width, at each model's input height, are the class means)", "",
            "| model | runtime | threads | lines | chars | px | median ms | p90 ms | lines/s |",
            "|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {x['model']} | {x['runtime']} | {x['threads']} | {x['lines']} | {x['chars']:.0f} | "
            f"{x['width_px']:.0f} | {x['median_ms']:.1f} | {x['p90_ms']:.1f} | {x['lines_per_s']:.0f} |"
            for x in r["lines"]]
    base = r["detection"][-1]["median_ms"]
    out += ["", "## Finding the lines of a 1920×1080 board (15 lines), 1 thread", "",
            "| detector | median ms | p90 ms | × classical | boxes | model MB |", "|---|---|---|---|---|---|"]
    out += [f"| {x['detector']} | {x['median_ms']:.0f} | {x['p90_ms']:.0f} | {x['median_ms'] / base:.1f} | "
            f"{x['boxes']} | {x['mb']:.2f} |" for x in r["detection"]]
    out += ["", f"## A 1920×1080 board ({f['lines_found_of_15']} of 15 lines found)", "", "| stage | ms |", "|---|---|"]
    out += [f"| {k} | {v:.2f} |" for k, v in f["stages_ms"].items()]
    out += ["", "Where a 15-line frame's time goes (cProfile, the functions with the most time of their own):", "",
            "| function | own ms | cumulative ms |", "|---|---|---|"]
    out += [f"| `{name}` | {own:.1f} | {cum:.1f} |" for name, own, cum in r["profile"]]
    out += ["", "## Growth (vision + recognition, every line new)", "", "| lines (1080p) | ms | lines found |",
            "|---|---|---|"]
    out += [f"| {n} | {v['ms']:.0f} | {v['lines']} |" for n, v in f["growth_lines_ms"].items()]
    out += ["", "| frame size (15 lines) | ms | lines found |", "|---|---|---|"]
    out += [f"| {n} | {v['ms']:.0f} | {v['lines']} |" for n, v in f["growth_size_ms"].items()]
    out += ["", "## The daemon as a process", "",
            f"Start-up to READY=1: {d['ready_s']:.2f} s. RSS: {d['rss_start_mb']:.0f} MB at READY, "
            f"{d['rss_steady_mb']:.0f} MB steady, {d['rss_peak_mb']:.0f} MB peak (sample video looping at 4 fps for "
            f"{d['seconds']:.0f} s). Model file {m['model_mb']:.2f} MB.", "",
            f"`POST /api/ocr` with one line ({r['api']['line']}), keep-alive: median {r['api']['median_ms']:.1f} ms, "
            f"p90 {r['api']['p90_ms']:.1f} ms at the client ({r['api']['server_median_ms']:.1f} ms of it in the "
            "server's recogniser).", ""]
    return "\n".join(out)


def emit(text: str, path: Path | None) -> None:
    """Print a Markdown report and, if asked, write it to ``path``."""
    print(text)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
