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
from dataclasses import dataclass
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


SKIN, CLOTHES, HAIR = (100, 140, 190), (90, 50, 40), (40, 40, 50)  # BGR


@dataclass(frozen=True)
class Look:
    """How the person and the light look: clothes colour (BGR; light grey or white clothes are
    close to the board's own colour), a soft shadow cast on the board beside the person, and the
    camera's auto-exposure scaling the whole frame's brightness towards ``exposure`` the more of
    the view the person fills."""

    clothes: tuple[int, int, int] = CLOTHES
    shadow: bool = False
    exposure: float = 1.0


LOOKS = {"dark": Look(), "light-grey": Look(clothes=(200, 200, 200)), "white-shadow": Look((232, 232, 228), True),
         "exposure": Look(exposure=0.85)}


def person_mask(shape: tuple[int, ...], x: float, arm_to: tuple[float, float] | None = None) -> np.ndarray:
    """A person standing in front of the board with the body's centre at ``x`` (frame pixels):
    0 = not there, 1 = clothes, 2 = skin, 3 = hair; an arm reaching to ``arm_to`` when given."""
    h, w = shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cx, head_y, r = int(x), int(0.30 * h), int(0.06 * h)
    cv2.ellipse(mask, (cx, int(0.80 * h)), (int(0.11 * w), int(0.44 * h)), 0, 0, 360, 1, -1)
    cv2.circle(mask, (cx, head_y), r, 2, -1)
    cv2.ellipse(mask, (cx, head_y - r // 3), (r, int(0.7 * r)), 0, 180, 360, 3, -1)
    if arm_to is not None:
        shoulder = (cx + int(0.08 * w), int(0.42 * h))
        cv2.line(mask, shoulder, (int(arm_to[0]), int(arm_to[1])), 2, max(8, int(0.04 * w)))
    return mask


def shadow(mask: np.ndarray) -> np.ndarray:
    """How much the person of ``mask`` darkens the board (0..0.3): light from the upper left
    casts a soft shadow to the lower right."""
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    h, w = mask.shape
    cast = cv2.warpAffine((mask > 0).astype(np.float32), np.float32([[1, 0, 0.06 * w], [0, 1, 0.03 * h]]), (w, h))
    return 0.3 * cv2.GaussianBlur(cast, (0, 0), 0.02 * w)


def with_person(frame: np.ndarray, mask: np.ndarray, look: Look = Look()) -> np.ndarray:
    """``frame`` with the person of ``mask`` (:func:`person_mask`) drawn in, edges softened, as
    ``look`` says (clothes colour, shadow on the board, exposure)."""
    out = frame.astype(np.float32)
    if look.shadow:
        out *= 1 - shadow(mask)[:, :, None]
    for value, colour in ((1, look.clothes), (2, SKIN), (3, HAIR)):
        alpha = cv2.GaussianBlur((mask == value).astype(np.float32), (0, 0), 2)[:, :, None]
        out = out * (1 - alpha) + np.float32(colour) * alpha
    # Auto-exposure follows how much of the view the person fills (a tenth of it: the full step).
    out *= 1.0 - (1.0 - look.exposure) * min(1.0, float((mask > 0).mean()) / 0.1)
    return np.clip(out, 0, 255).astype(np.uint8)


def covers(mask: np.ndarray, quad: np.ndarray) -> bool:
    """Whether the person of ``mask`` overlaps the region ``quad``."""
    region = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(region, [np.round(quad).astype(np.int32)], 1)
    return bool((region & (mask > 0)).any())


class Lesson:
    """A lesson on a real board photo, frame by frame at the daemon's default 2 fps: which lines
    are written, where the person is; written to MJPG AVI with camera noise. ``visible[i]`` is
    the first frame (1-based, as the daemon numbers them) line ``i`` is on the board,
    ``uncovered[i]`` the first frame from then on that the person does not overlap it."""

    def __init__(self, photo: np.ndarray, regions: list[np.ndarray], out: Path, seed: int = 0,
                 look: Look = Look()) -> None:
        self.photo, self.regions, self.look = photo, [grown(q) for q in regions], look
        self.blank = blank_board(photo, self.regions)
        self.rng = np.random.default_rng(seed)
        h, w = photo.shape[:2]
        self.writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
        if not self.writer.isOpened():
            raise OSError(f"cannot write {out}")
        self.shown = [False] * len(regions)
        self.frames = 0
        self.visible: list[int | None] = [None] * len(regions)
        self.uncovered: list[int | None] = [None] * len(regions)
        self.erased_at: int | None = None
        self.erased: int | None = None  # the line erased, once it is
        self.cleared_at: int | None = None  # the first frame its place is in view after the erase
        self.last_seen = 0  # the last frame with the person in view
        self.people: list[tuple[float | None, tuple[float, float] | None]] = []  # per frame: (x, arm_to)

    def board(self) -> np.ndarray:
        shown = np.zeros(self.photo.shape[:2], np.uint8)
        for q, on in zip(self.regions, self.shown):
            if on:
                cv2.fillPoly(shown, [np.round(q).astype(np.int32)], 255)
        return np.where(shown[:, :, None] > 0, self.photo, self.blank)

    def frame(self, x: float | None = None, arm_to: tuple[float, float] | None = None) -> None:
        """One frame of the board as it is, with the person at ``x`` (None: not in the frame)."""
        self.frames += 1
        self.people.append((x, arm_to))
        image = self.board()
        mask = person_mask(image.shape, x, arm_to) if x is not None else np.zeros(image.shape[:2], np.uint8)
        image = with_person(image, mask, self.look)
        if mask.any():
            self.last_seen = self.frames
        if self.look.shadow:  # a line in the person's shadow is hidden too, for the camera
            mask = np.where((mask == 0) & (shadow(mask) > 0.05), 4, mask).astype(np.uint8)
        for i, q in enumerate(self.regions):
            if self.shown[i] and self.visible[i] is None:
                self.visible[i] = self.frames
            if self.shown[i] and self.uncovered[i] is None and not covers(mask, q):
                self.uncovered[i] = self.frames
        if self.erased is not None and self.cleared_at is None and not covers(mask, self.regions[self.erased]):
            self.cleared_at = self.frames
        noisy = image.astype(np.int16) + self.rng.normal(0, 1.5, image.shape).astype(np.int16)
        self.writer.write(np.clip(noisy, 0, 255).astype(np.uint8))

    def close(self) -> None:
        self.writer.release()


def moving_teacher(photo: np.ndarray, regions: list[np.ndarray], out: Path, seed: int = 0,
                   look: Look = Look()) -> Lesson:
    """A teacher who never stops moving: walks to each line's end, writes it with an outstretched
    arm (the line appears under the hand), walks back to the right of the writing and paces
    there; half-way through, walks across the whole board and back in front of what is written."""
    lesson = Lesson(photo, regions, out, seed, look)
    w = photo.shape[1]
    # Home: clear of every line by a tenth of the width (a person next to a line's end may hide
    # its rest, so the line waits until they are further).
    home = min(0.95 * w, max(float(q[:, 0].max()) for q in lesson.regions) + 0.21 * w)
    step, x = 0.06 * w, home

    def walk_to(target: float) -> None:
        nonlocal x
        while abs(target - x) > step:
            x += step if target > x else -step
            lesson.frame(x)

    def pace(frames: int) -> None:
        nonlocal x
        for k in range(frames):
            x = home + (0.03 * w if k % 2 else -0.03 * w)
            lesson.frame(x)

    pace(4)
    for i, q in enumerate(lesson.regions):
        right, mid_y = float(q[:, 0].max()), float(q[:, 1].mean())
        walk_to(min(0.9 * w, right + 0.14 * w))
        for j in range(3):  # the hand moves along the line; the line is there from the second frame
            lesson.shown[i] = lesson.shown[i] or j == 1
            lesson.frame(x + (j - 1) * 0.01 * w, (right - (2 - j) * 0.08 * w, mid_y))
        walk_to(home)
        pace(4)
        if i == len(lesson.regions) // 2:
            walk_to(0.1 * w)
            walk_to(home)
    pace(8)
    lesson.close()
    return lesson


def standing_teacher(photo: np.ndarray, regions: list[np.ndarray], out: Path, stand_x: float, erase: int,
                     stand: int = 16, seed: int = 0, look: Look = Look()) -> Lesson:
    """The whole board written; a person walks in and stands still at ``stand_x`` for
    ``stand`` frames, erasing line ``erase`` with an outstretched arm half-way through, then
    walks out. Returns the lesson (``erased_at``: the first frame line ``erase`` is gone;
    ``cleared_at``: the first frame from then on that its place is in view)."""
    lesson = Lesson(photo, regions, out, seed, look)
    lesson.shown = [True] * len(regions)
    w = photo.shape[1]
    target = np.asarray(lesson.regions[erase], np.float32).mean(axis=0)
    for _ in range(6):
        lesson.frame(None)
    for x in np.linspace(1.05 * w, stand_x, 5):
        lesson.frame(float(x))
    for k in range(stand):
        reach = stand // 2 <= k < stand // 2 + 3
        if k == stand // 2 + 2:
            lesson.shown[erase] = False
            lesson.erased, lesson.erased_at = erase, lesson.frames + 1
        lesson.frame(stand_x, tuple(target) if reach else None)
    for x in np.linspace(stand_x, -0.2 * w, 5):
        lesson.frame(float(x))
    for _ in range(6):
        lesson.frame(None)
    lesson.close()
    return lesson


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
