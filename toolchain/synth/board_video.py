"""A daemon test video from a real board photo: its lines revealed one by one on a blank board,
a hand passing in front while each is written.

    python -m toolchain.synth.board_video --photo ../shared/devset/pages/wbpg_d07.jpg --out /tmp/board.avi

The photo's line regions (given, or found by edge-ocr's reader; grown by a fifth of their
height, as strokes poke out of boxes) are wiped to make the blank
board (each colour channel closed: dark strokes vanish, the light and the board's texture
stay), then copied back region by region in reading order. Per line: ``hand_frames`` frames
of a hand moving in, the line appearing under it, then ``hold`` still frames (with camera
noise) for the gate. MJPG in AVI at 2 fps: OpenCV's pip wheel writes and reads it. Only
OpenCV and numpy: the runtime's tests build their videos with it, and nothing is committed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edge_ocr.vision.surface import order_corners

FPS = 2.0


def hand(frame: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    """A blurred skin-coloured arm-and-hand shape entering from the right, at ``t`` ∈ [0, 1] of its path."""
    h, w = frame.shape[:2]
    out = frame.copy()
    cx, cy = int(w * (1.05 - 0.6 * t)), int(h * (0.35 + 0.3 * rng.random()))
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (cx, cy), (int(w * 0.06), int(h * 0.09)), 20, 0, 360, 255, -1)
    cv2.line(mask, (cx, cy), (w + 50, h + 50), 255, int(w * 0.07))
    mask = cv2.GaussianBlur(mask, (0, 0), 6).astype(np.float32)[:, :, None] / 255
    skin = np.array([90, 120, 170], np.float32)  # BGR
    return (out * (1 - mask) + skin * mask).astype(np.uint8)


def grown(quad: np.ndarray, frac: float = 0.2) -> np.ndarray:
    """``quad`` grown by ``frac`` of its shorter side on every side, corners tl, tr, br, bl
    (strokes poke out of a detector's boxes; the training lines have such a margin too)."""
    q = np.asarray(quad, np.float32).reshape(4, 2)
    (cx, cy), (w, h), angle = cv2.minAreaRect(q)
    pad = frac * min(w, h)
    return order_corners(cv2.boxPoints(((cx, cy), (w + 2 * pad, h + 2 * pad), angle)))


def blank_board(photo: np.ndarray, regions: list[np.ndarray]) -> np.ndarray:
    """The photo with the writing inside ``regions`` (quads, photo pixels) wiped away."""
    mask = np.zeros(photo.shape[:2], np.uint8)
    for q in regions:
        cv2.fillPoly(mask, [np.round(q).astype(np.int32)], 255)
    heights = [min(np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[1] - q[0])) for q in regions] or [20.0]
    k = int(max(9, np.median(heights) * 0.6)) | 1
    closed = cv2.morphologyEx(photo, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    closed = cv2.GaussianBlur(closed, (0, 0), k / 4)
    soft = cv2.GaussianBlur(cv2.dilate(mask, np.ones((5, 5), np.uint8)), (0, 0), 2).astype(np.float32)[:, :, None] / 255
    return (photo * (1 - soft) + closed * soft).astype(np.uint8)


def reveal_video(photo: np.ndarray, regions: list[np.ndarray], out: Path, hold: int = 5, hand_frames: int = 3,
                 seed: int = 0) -> list[int]:
    """Write the video; returns, per region, the first frame (1-based) in which it is visible."""
    rng = np.random.default_rng(seed)
    regions = [grown(q) for q in regions]
    blank = blank_board(photo, regions)
    h, w = photo.shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write {out}")
    shown = np.zeros((h, w), np.uint8)
    current, n, visible = blank.copy(), 0, []
    for _ in range(hold):
        writer.write(current)
        n += 1
    for q in regions:
        cv2.fillPoly(shown, [np.round(q).astype(np.int32)], 255)
        nxt = np.where(shown[:, :, None] > 0, photo, blank)
        for i in range(hand_frames):
            writer.write(hand(current if i < hand_frames - 1 else nxt, (i + 1) / (hand_frames + 1), rng))
            n += 1
        visible.append(n)
        current = nxt
        for _ in range(hold):
            noisy = current.astype(np.int16) + rng.normal(0, 1.5, current.shape).astype(np.int16)
            writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
            n += 1
    writer.release()
    return visible


def main() -> None:
    from edge_ocr.config import Config
    from edge_ocr.imageio import read_image
    from edge_ocr.page.build import build_reader

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--side", type=int, default=1280, help="long side of the video frames")
    a = ap.parse_args()
    photo = read_image(a.photo)
    s = a.side / max(photo.shape[:2])
    photo = cv2.resize(photo, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    page = build_reader(Config()).read(photo)
    visible = reveal_video(photo, [np.asarray(ln.box, np.float32) for ln in page.lines], a.out)
    print(f"{a.out}: {len(page.lines)} lines, visible from frames {visible}")


if __name__ == "__main__":
    main()
