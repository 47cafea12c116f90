"""A known lesson for the archive's web and export tests, with its right values written down here.

The bundled sample video's board (samples/board.mp4, 1280×720) written line by line: one real
frame per version, taken when that many lines are on it and no hand is in front. Then the first
two lines are erased (their boxes inpainted from the board around them) and a new line is
written where the second stood (rendered in a Chinese font). Seven versions a minute apart, from
08:00 Asia/Shanghai on 9 March 2026; each page carries the lines' texts and boxes
(samples/board.json), each snapshot its JPEG, as the daemon publishes them (schemas/).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

import cv2
import numpy as np
from PIL import Image, ImageDraw

from edge_ocr.paths import ROOT
from tests.render import CJK, font

DEVICE = "room-101"
TIMEZONE = "Asia/Shanghai"
T0 = datetime(2026, 3, 9, 8, 0, tzinfo=ZoneInfo(TIMEZONE)).timestamp()
VIDEO_FRAMES = (8, 17, 26, 35, 44)  # one line more on the board at each (checked by eye: no hand in front)
L0, L1, L2, L3, L4 = (line["text"] for line in json.loads((ROOT / "samples" / "board.json").read_text())["lines"])
L5 = "力的单位是牛顿 N"
TEXTS = ([L0], [L0, L1], [L0, L1, L2], [L0, L1, L2, L3], [L0, L1, L2, L3, L4],  # written line by line
         [L2, L3, L4],  # 08:05: the first two lines erased
         [L5, L2, L3, L4])  # 08:06: a new line where the second stood
CLOCK = ("08:00:00", "08:01:00", "08:02:00", "08:03:00", "08:04:00", "08:05:00", "08:06:00")
FULLEST_BEFORE_ERASE = 4  # index of the version with all five lines: the board before the erase at 08:05


@dataclass(frozen=True)
class KnownVersion:
    seq: int
    ts: float
    texts: list[str]
    boxes: list[list[list[float]]]
    jpeg: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.jpeg).hexdigest()


def _video_frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(ROOT / "samples" / "board.mp4"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return [frames[i] for i in VIDEO_FRAMES]


def _erased(frame: np.ndarray, boxes: list[list[list[float]]]) -> np.ndarray:
    mask = np.zeros(frame.shape[:2], np.uint8)
    for box in boxes:
        cv2.fillPoly(mask, [np.round(np.array(box)).astype(np.int32)], 255)
    return cv2.inpaint(frame, cv2.dilate(mask, np.ones((9, 9), np.uint8)), 7, cv2.INPAINT_TELEA)


def _written(frame: np.ndarray, text: str, at: list[float], height: float) -> tuple[np.ndarray, list[list[float]]]:
    """``text`` in dark blue marker-like ink from ``at`` (top-left), and its box."""
    f = font(CJK, round(height * 1.1))
    image = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    ImageDraw.Draw(image).text((at[0], at[1]), text, font=f, fill=(40, 50, 140))
    left, top, right, bottom = f.getbbox(text)
    box = [[at[0] + left, at[1] + top], [at[0] + right, at[1] + top], [at[0] + right, at[1] + bottom],
           [at[0] + left, at[1] + bottom]]
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), box


@cache
def versions() -> tuple[KnownVersion, ...]:
    """The seven versions: seq 10, 20, … (the daemon's seq counts events too), texts, boxes, JPEG."""
    lines = json.loads((ROOT / "samples" / "board.json").read_text())["lines"]
    box = {line["text"]: line["box"] for line in lines}
    frames = _video_frames()
    erased = _erased(frames[-1], [box[L0], box[L1]])
    written, box[L5] = _written(erased, L5, box[L1][0], box[L1][3][1] - box[L1][0][1])
    pictures = [*frames, erased, written]
    return tuple(KnownVersion(10 * (k + 1), T0 + 60 * k, texts, [box[t] for t in texts],
                              cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
                 for k, (texts, picture) in enumerate(zip(TEXTS, pictures)))


def page_message(v: KnownVersion, device: str = DEVICE) -> dict:
    """The page as the daemon publishes it (schemas/page.schema.json)."""
    lines = [{"text": t, "confidence": 0.95, "box": b, "block": 0, "char_confidences": [0.95] * len(t),
              "cached": False, "vertical": False, "occluded": False} for t, b in zip(v.texts, v.boxes)]
    return {"msg_id": uuid.uuid4().hex, "seq": v.seq, "device": device, "ts": v.ts,
            "frame": {"seq": v.seq * 3, "ts": v.ts - 0.4}, "text": "\n".join(v.texts), "lines": lines,
            "surface": [[143.3, 41.6], [1098.2, 53.4], [1102.0, 620.3], [196.5, 651.4]], "surface_detected": True,
            "frame_size": [1280, 720], "model": "ppocrv6_small_int8", "detector": "db_mobilenet_int8", "rotation": 0,
            "timings_ms": {"surface": 4.0, "split": 30.0, "recognise": 120.0, "total": 160.0},
            "sharpness": 0.7, "blurred": False}


def snapshot_message(v: KnownVersion, device: str = DEVICE) -> dict:
    """The board picture published with the page (topic <base>/<device>/snapshot)."""
    return {"msg_id": uuid.uuid4().hex, "seq": v.seq + 1, "device": device, "ts": v.ts + 0.1, "page_seq": v.seq,
            "frame": {"seq": v.seq * 3, "ts": v.ts - 0.4}, "width": 1280, "height": 720, "sha256": v.sha256,
            "jpeg": base64.b64encode(v.jpeg).decode()}


def fill(store, device: str = DEVICE) -> None:
    """Ingest the lesson into ``store``: each version's page, then its picture."""
    for v in versions():
        assert store.ingest("page", page_message(v, device), v.ts + 0.2)
        assert store.ingest("snapshot", snapshot_message(v, device), v.ts + 0.3)
