"""``make replay LECTURE=lecture_02``: a real lecture replayed through the daemon (issue 27).

    python -m tests.replay lecture_02 [--keyframes 4] [--hold 6] [--no-person] [--json out.json]

A lecture's keyframes (``../shared/classroom/frames``, in name order = time order) become a video
the daemon reads as its camera (MJPG AVI at the daemon's 2 fps, under a temp dir, never
committed): per keyframe, ``walk`` frames of a person passing in front of the board
(``toolchain.synth.board_video``'s person) while the board changes to that keyframe, then
``hold`` still frames with camera noise. The real daemon (``python -m edge_ocr run``) reads it
against a real mosquitto (``tests.broker``); every page and event that arrives is judged against
the frames themselves, not the daemon's output:

- an event's **keyframe** is the one on screen at its ``frame.seq``;
- writing **kept** from keyframe ``j`` to ``k`` inside a box: the share of ``j``'s ink pixels (darker
  than the board around them by ``INK_DELTA`` grey levels) still ink in ``k`` (dilated 2 px);
- a ``removed`` is a **real erase** when less than ``KEPT`` of the writing the line was published
  from (its last ``added``/``changed``) is left, in its keyframe and in the next (a lecturer
  standing in a keyframe hides writing without erasing it); where the keyframe is labelled
  (``toolchain/bench/classroom/labels.tsv``) a removed text the labels still hold (CER ≤ 1/3) is
  counted apart as *still labelled*;
- an ``added`` is a **re-publish** when a line was published earlier at the same place (box IoU
  > 0.5) from writing that is still there (kept ≥ ``KEPT``): the same writing published twice;
- a ``changed`` is **spurious** when its writing did not change (kept ≥ ``SAME`` both ways);
- per labelled keyframe, the page current when it leaves the screen against its labels: line
  count, lines matched (line CER ≤ 1/2), page CER.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_ocr.imageio import read_image
from edge_ocr.page.diff import box_iou
from edge_ocr.paths import ROOT
from tests.broker import Broker, Subscriber, free_port
from toolchain.bench.classroom import CLASSROOM, SPLIT, frames, labels
from toolchain.scoring import edit_distance, match_lines, page_cer, squash
from toolchain.synth.board_video import FPS, person_mask, with_person

INK_DELTA = 30  # grey levels below the board around it: marker, not board texture or glare
KEPT = 0.5  # share of a line's ink still there: below it the line was erased
SAME = 0.8  # share kept both ways: the same writing


@dataclass
class Replay:
    """The video written and what is on screen when: ``starts[k]`` is the first frame (1-based,
    as the daemon numbers them) of keyframe ``k``; ``n`` frames in all."""

    lecture: str
    keyframes: list[Path]
    video: Path
    starts: list[int]
    n: int
    images: list[np.ndarray] = field(repr=False, default_factory=list)

    def keyframe_at(self, seq: int) -> int:
        """The keyframe on screen at video frame ``seq`` (1-based)."""
        return max(k for k, s in enumerate(self.starts) if s <= seq)


def lecture_frames(lecture: str, keyframes: int | None = None) -> list[Path]:
    """The lecture's keyframes in time order (the first ``keyframes`` when given)."""
    if lecture not in SPLIT:
        raise ValueError(f"{lecture!r} is not a classroom lecture; one of {sorted(SPLIT)}")
    paths = [p for p in frames() if p.name.rsplit("_", 1)[0] == lecture]
    return paths[:keyframes] if keyframes else paths


def build(lecture: str, out: Path, keyframes: int | None = None, hold: int = 6, walk: int = 8,
          person: bool = True, seed: int = 0) -> Replay:
    """Write the replay video to ``out``: per keyframe ``walk`` frames with a person crossing the
    board (alternately leftwards and rightwards; none with ``person=False``), then ``hold``
    still frames; Gaussian camera noise (σ 1.5) on every frame."""
    paths = lecture_frames(lecture, keyframes)
    images = [read_image(p) for p in paths]
    h, w = images[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write {out}")
    rng = np.random.default_rng(seed)
    starts, n = [], 0
    for k, image in enumerate(images):
        if image.shape[:2] != (h, w):
            raise ValueError(f"{paths[k]}: {image.shape[1]}x{image.shape[0]}, the lecture's frames are {w}x{h}")
        starts.append(n + 1)
        xs = np.linspace(1.1 * w, -0.1 * w, walk) if person else []
        shown = [with_person(image, person_mask(image.shape, float(x))) for x in (xs if k % 2 == 0 else xs[::-1])]
        for frame in shown + [image] * hold:
            noisy = frame.astype(np.int16) + rng.normal(0, 1.5, frame.shape).astype(np.int16)
            writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
            n += 1
    writer.release()
    return Replay(lecture, paths, out, starts, n, images)


def run_daemon(video: Path, workdir: Path, broker: Broker | None = None, device: str = "replay",
               timeout_s: float = 600) -> tuple[list[dict], list[dict], str]:
    """The real daemon as ``device`` on ``video`` until the video ends, against ``broker`` (else a
    fresh mosquitto of its own): (pages, events, the daemon's log), each message once (QoS 1
    copies dropped by ``msg_id``)."""
    own = broker is None
    broker = broker or Broker(workdir / "broker").start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_OCR_", "NOTIFY_SOCKET", "WATCHDOG_"))}
        env.update({"EDGE_OCR_MQTT_PORT": str(broker.port), "EDGE_OCR_MQTT_HOST": "127.0.0.1",
                    "EDGE_OCR_DEVICE_ID": device, "EDGE_OCR_SERVICE_STATE_DIR": str(workdir / f"state-{device}"),
                    "EDGE_OCR_CAPTURE_SOURCE": str(video), "EDGE_OCR_CAPTURE_FPS": "50"})
        sub = Subscriber(broker.port, "#", client_id=f"replay-subscriber-{device}")
        proc = subprocess.run([sys.executable, "-m", "edge_ocr", "run"], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"the daemon exited with {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        if not sub.wait_for(lambda: b"offline" in sub.raw(f"/{device}/status")):
            raise RuntimeError("the daemon's 'offline' status never arrived")
        sub.close()
        return _once(sub.json(f"/{device}/page")), _once(sub.json(f"/{device}/events")), proc.stdout
    finally:
        if own:
            broker.stop()


@contextmanager
def archive_service(broker: Broker, workdir: Path) -> Iterator[str]:
    """The real ``edge-ocr archive`` (SQLite under ``workdir``) subscribed to ``broker``, its web
    API on a free loopback port; yields the API's base URL once its subscriber is connected."""
    port = free_port()
    (workdir / "archive").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_OCR_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update({"EDGE_OCR_MQTT_PORT": str(broker.port), "EDGE_OCR_MQTT_HOST": "127.0.0.1",
                "EDGE_OCR_SERVICE_STATE_DIR": str(workdir / "archive"), "EDGE_OCR_ARCHIVE_HTTP_PORT": str(port),
                "EDGE_OCR_ARCHIVE_CLIENT_ID": "replay-archive"})
    log = (workdir / "archive.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "edge_ocr", "archive"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"edge-ocr archive exited with {proc.returncode}: "
                                   f"{(workdir / 'archive.log').read_text()[-2000:]}")
            try:
                if get_json(base, "/health")["state"] == "ok":
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("edge-ocr archive did not become ready in 60 s")
        yield base
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def get_json(base: str, path: str, **query: object) -> dict:
    """GET ``base + path`` with ``query``; the JSON answer (urllib's errors on a non-2xx)."""
    url = base + path + ("?" + urllib.parse.urlencode(query) if query else "")
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def get_bytes(base: str, path: str) -> bytes:
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return r.read()


def archived(base: str, device: str, pages: int, timeout_s: float = 60) -> dict:
    """The device's board in the archive once it holds ``pages`` versions (else after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        board = next((b for b in get_json(base, "/api/boards")["boards"] if b["device"] == device), None)
        if (board is not None and board["versions"] >= pages) or time.monotonic() > deadline:
            return board or {}
        time.sleep(0.3)


@dataclass
class Archived:
    """What the archive holds of one board after a replay, fetched over its web API."""

    device: str
    pages: list[dict]  # as the daemon published them (from the broker)
    events: list[dict]
    board: dict  # /api/boards entry
    lessons: list[dict]  # /api/boards/<device>/lessons
    lesson: dict  # /api/lessons/<id> of the newest
    pictures: dict[str, bytes]  # sha256 -> JPEG, every picture the lesson's versions name
    markdown: str
    html: str
    hits: dict[str, list[dict]]  # query -> /api/search hits


def archive_board(base: str, device: str, pages: list[dict], events: list[dict], queries: list[str]) -> Archived:
    """Everything the archive answers about ``device``'s board once it holds all ``pages``."""
    board = archived(base, device, len(pages))
    lessons = get_json(base, f"/api/boards/{device}/lessons")["lessons"]
    lesson = get_json(base, f"/api/lessons/{lessons[0]['id']}") if lessons else {}
    shas = {v["picture"] for v in lesson.get("versions", []) if v["picture"]}
    pictures = {sha: get_bytes(base, f"/api/pictures/{sha}") for sha in shas}
    lid = lessons[0]["id"] if lessons else 0
    markdown = get_bytes(base, f"/api/lessons/{lid}/export.md").decode() if lessons else ""
    html = get_bytes(base, f"/api/lessons/{lid}/export.html").decode() if lessons else ""
    hits = {q: get_json(base, "/api/search", q=q, device=device)["hits"] for q in queries}
    return Archived(device, pages, events, board, lessons, lesson, pictures, markdown, html, hits)


def screenshot_lesson(base: str, out: Path, profile: Path, device: str) -> None:
    """The archive's page in headless Chromium with ``device``'s newest lesson open, saved to
    ``out`` as a small palette PNG."""
    import io

    from PIL import Image

    from tests.chromium import browser

    with browser(profile, "1200,860") as cdp:
        cdp.navigate(base + "/")
        link = f"[...document.querySelectorAll('#boards li a')].find(a => a.textContent.startsWith({device!r}))"
        if not cdp.wait(f"{link} !== undefined"):
            raise RuntimeError(f"the archive's page lists no lesson of {device}")
        cdp.eval(f"{link}.click()")
        if not cdp.wait("document.querySelectorAll('#lines li').length > 0"):
            raise RuntimeError("the lesson's lines never showed")
        time.sleep(1.0)  # the board picture
        shot = profile / "lesson.png"
        cdp.screenshot(shot)
    small = io.BytesIO()
    Image.open(shot).convert("RGB").quantize(128).save(small, "PNG", optimize=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(small.getvalue())


def _once(messages: list[dict]) -> list[dict]:
    seen: set[str] = set()
    out = []
    for m in messages:
        if m["msg_id"] not in seen:
            seen.add(m["msg_id"])
            out.append(m)
    return sorted(out, key=lambda m: m["seq"])


def ink(image: np.ndarray, box: list[list[float]]) -> np.ndarray:
    """Marker pixels inside ``box`` (frame pixels, 4 corners): darker than the board around them
    (a grey closing of 15 px, wider than strokes) by ``INK_DELTA``; a bool mask of the box's
    bounding rectangle grown by 4 px."""
    q = np.asarray(box, np.float32)
    h, w = image.shape[:2]
    x0, y0 = np.maximum(np.floor(q.min(axis=0)).astype(int) - 4, 0)
    x1, y1 = np.minimum(np.ceil(q.max(axis=0)).astype(int) + 4, [w, h])
    grey = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    board = cv2.morphologyEx(grey, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
    return (board.astype(np.int16) - grey) > INK_DELTA


def kept(before: np.ndarray, after: np.ndarray, box: list[list[float]]) -> float:
    """Share of ``before``'s ink in ``box`` still ink in ``after`` (1.0 when there was none)."""
    a, b = ink(before, box), cv2.dilate(ink(after, box).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return float((a & b).sum()) / a.sum() if a.any() else 1.0


def _labelled(lecture: str) -> dict[int, list[str]]:
    return {int(Path(r["file"]).stem.rsplit("_", 1)[1]): r["text"].split("\\n")
            for r in labels() if r["lecture"] == lecture}


def _in_labels(text: str, truth: list[str]) -> bool:
    t = squash(text)
    return bool(t) and any(edit_distance(t, squash(x)) <= len(t) / 3 for x in truth)


def _source(published: list[tuple[dict, int]], prior: list[tuple[dict, int]], text: str, k: int) -> int:
    """The keyframe a line of ``text`` was last published from: by its text (a changed line's box
    moves), else the last publish at its place, else ``k``."""
    return next((j for p, j in reversed(published) if p["text"] == text), prior[-1][1] if prior else k)


def judge(replay: Replay, pages: list[dict], events: list[dict]) -> dict:
    """The figures of one replay (see the module's docstring)."""
    imgs, last = replay.images, len(replay.images) - 1
    labelled = _labelled(replay.lecture)
    frame_no = [int(p.stem.rsplit("_", 1)[1]) for p in replay.keyframes]
    published: list[tuple[dict, int]] = []  # (added/changed event, its keyframe)
    removals, republished, spurious = [], [], []
    for e in events:
        k = replay.keyframe_at(e["frame"]["seq"])
        prior = [(p, j) for p, j in published if box_iou(p["box"], e["box"]) > 0.5]
        if e["event"] == "removed":
            src = _source(published, prior, e["text"], k)
            left = max(kept(imgs[src], imgs[k], e["box"]), kept(imgs[src], imgs[min(k + 1, last)], e["box"]))
            truth = labelled.get(frame_no[k])
            removals.append({"text": e["text"], "box": e["box"], "frame": e["frame"]["seq"],
                             "keyframe": replay.keyframes[k].name, "ink_px": int(ink(imgs[src], e["box"]).sum()),
                             "kept": round(left, 2), "erased": bool(left < KEPT),
                             "still_labelled": None if truth is None else _in_labels(e["text"], truth)})
        elif e["event"] == "added":
            again = [(p, j) for p, j in prior if kept(imgs[j], imgs[k], p["box"]) >= KEPT]
            if again:
                republished.append({"text": e["text"], "before": again[-1][0]["text"], "frame": e["frame"]["seq"]})
            published.append((e, k))
        else:
            src = _source(published, prior, e["previous"], k)
            if kept(imgs[src], imgs[k], e["box"]) >= SAME and kept(imgs[k], imgs[src], e["box"]) >= SAME:
                spurious.append({"text": e["text"], "previous": e["previous"], "frame": e["frame"]["seq"]})
            published.append((e, k))
    frames_out = []
    for k, no in enumerate(frame_no):
        if no not in labelled:
            continue
        end = replay.starts[k + 1] if k < last else replay.n + 1
        page = [p for p in pages if p["frame"]["seq"] < end]
        lines = [ln["text"] for ln in page[-1]["lines"]] if page else []
        truth = labelled[no]
        matched = [(i, j) for i, j in match_lines(truth, lines)
                   if edit_distance(squash(truth[i]), squash(lines[j])) <= len(squash(truth[i])) / 2]
        frames_out.append({"keyframe": replay.keyframes[k].name, "label_lines": len(truth), "page_lines": len(lines),
                           "matched": len(matched), "page_cer": round(page_cer(truth, lines), 3)})
    count = {kind: sum(e["event"] == kind for e in events) for kind in ("added", "removed", "changed")}
    return {"lecture": replay.lecture, "keyframes": len(replay.keyframes), "video_frames": replay.n,
            "pages": len(pages), "events": count,
            "removed_not_erased": sum(not r["erased"] for r in removals),
            "removed_still_labelled": sum(bool(r["still_labelled"]) for r in removals),
            "republished": len(republished), "changed_spurious": len(spurious),
            "labelled": frames_out, "removals": removals, "republishes": republished, "spurious": spurious}


def replay_lecture(lecture: str, keyframes: int | None = None, hold: int = 6, person: bool = True,
                   workdir: Path | None = None) -> dict:
    """Build, run and judge one lecture; the figures (with ``seconds``: video built and daemon run)."""
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="replay-", dir=workdir) as tmp:
        replay = build(lecture, Path(tmp) / f"{lecture}.avi", keyframes, hold=hold, person=person)
        pages, events, _ = run_daemon(replay.video, Path(tmp))
        figures = judge(replay, pages, events)
    figures["raw"] = {"pages": pages, "events": events}
    figures["seconds"] = round(time.monotonic() - t0, 1)
    return figures


def _summary(f: dict) -> str:
    ev = f["events"]
    lab = " ".join(f"{x['keyframe']}:{x['matched']}/{x['label_lines']}(cer {x['page_cer']})" for x in f["labelled"])
    return (f"{f['lecture']}: {f['keyframes']} keyframes, {f['video_frames']} frames, {f['pages']} pages, "
            f"added {ev['added']} removed {ev['removed']} changed {ev['changed']}; removed not erased "
            f"{f['removed_not_erased']} (still in labels {f['removed_still_labelled']}), re-published "
            f"{f['republished']}, spurious changes {f['changed_spurious']}; labelled frames matched {lab}; "
            f"{f['seconds']} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lectures", nargs="*", help="lectures (default: every measuring lecture)")
    ap.add_argument("--keyframes", type=int, default=None, help="only the first N keyframes of each")
    ap.add_argument("--hold", type=int, default=6, help="still frames per keyframe (2 per second)")
    ap.add_argument("--no-person", action="store_true", help="nobody passes in front")
    ap.add_argument("--json", type=Path, help="write the figures, judged events and messages received here")
    a = ap.parse_args()
    if not CLASSROOM.is_dir():
        sys.exit(f"{CLASSROOM}: no classroom frames (../shared/classroom beside the checkout)")
    lectures = a.lectures or sorted(k for k, v in SPLIT.items() if v == "measure")
    results = []
    for lecture in lectures:
        results.append(replay_lecture(lecture, a.keyframes, a.hold, not a.no_person))
        print(_summary(results[-1]), flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
