"""Which frames deserve OCR: skip while the scene moves, skip while the board is unchanged.

Works on a 320-px-wide gray thumbnail (area-averaged, so sensor noise mostly cancels):
a frame whose thumbnail differs from the previous one in more than ``motion`` of its
pixels shows movement (a presenter, a hand); after ``stable_frames`` still frames the board
is stable, and it is recognised when it differs from the last recognised frame in more than
``change`` of its pixels. About a millisecond per 1080p frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from edge_ocr.config import GateConfig

THUMB_W = 320


@dataclass(frozen=True)
class GateDecision:
    recognise: bool
    reason: str  # moving | settling | unchanged | changed | first | forced
    motion: float  # changed fraction against the previous frame
    change: float  # changed fraction against the last recognised frame (-1: none yet)
    ms: float


def thumbnail(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    tw = min(THUMB_W, w)
    small = cv2.resize(frame, (tw, max(1, round(h * tw / w))), interpolation=cv2.INTER_AREA)
    return small if small.ndim == 2 else cv2.cvtColor(small[:, :, :3], cv2.COLOR_BGR2GRAY)


def changed_fraction(a: np.ndarray, b: np.ndarray, delta: int) -> float:
    if a.shape != b.shape:
        return 1.0
    return cv2.countNonZero(cv2.threshold(cv2.absdiff(a, b), delta, 255, cv2.THRESH_BINARY)[1]) / a.size


class Gate:
    def __init__(self, cfg: GateConfig) -> None:
        self.cfg = cfg
        self._previous: np.ndarray | None = None
        self._current: np.ndarray | None = None
        self._reference: np.ndarray | None = None
        self._still = 0
        self._forced = False

    def check(self, frame: np.ndarray) -> GateDecision:
        t0 = time.perf_counter()
        small = thumbnail(frame)
        c = self.cfg
        motion = 1.0 if self._previous is None else changed_fraction(small, self._previous, c.pixel_delta)
        self._previous = self._current = small
        self._still = self._still + 1 if motion <= c.motion else 0
        change = -1.0 if self._reference is None else changed_fraction(small, self._reference, c.pixel_delta)

        def done(recognise: bool, reason: str) -> GateDecision:
            return GateDecision(recognise, reason, motion, change, (time.perf_counter() - t0) * 1000)

        if self._forced:
            return done(True, "forced")
        if self._still < c.stable_frames:
            return done(False, "moving" if self._still == 0 else "settling")
        if self._reference is None:
            return done(True, "first")
        return done(change > c.change, "changed" if change > c.change else "unchanged")

    def accept(self) -> None:
        """The last checked frame was recognised: later frames are compared with it."""
        self._reference = self._current
        self._forced = False

    def force(self) -> None:
        """Recognise the next frame whatever it shows (the capture-now command)."""
        self._forced = True
