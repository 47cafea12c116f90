"""A fixed camera's board read again as it changes: the cost follows the change, not the board.

The gate knows which cells of the composite changed since the last read
(:meth:`edge_ocr.daemon.gate.Gate.changed_boxes`). :class:`BoardReader` detects text again only
in *bands* across the board (full width for text that runs across, full height for a board
turned by 90°) holding those cells, grown by a line height and then to the whole of every line
of the last read they touch (a line partly changed is detected and read whole); a band whose
new boxes reach its edge grows over them and is detected again. Every other box is the last
read's. Lines are grouped and ordered over all boxes as a full read would, and every line goes
through the recogniser's exact-pixel line cache: a line whose pixels did not change is a hit,
one whose pixels changed is read again, so the cache stays the safety net. The turn is the
board's, voted once (``PageReader.fixed_camera``).

A full read (everything detected) happens on the first frame, after :meth:`reset`, when the
surface moved (quad or frame size), when the turn is voted again, and when the bands would
cover more than ``FULL_SHARE`` of the board.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_ocr.page.reader import PageReader
from edge_ocr.page.result import PageResult
from edge_ocr.vision.db import TextBox
from edge_ocr.vision.detector import TextDetector
from edge_ocr.vision.surface import Surface, frame_quad

FULL_SHARE = 0.6  # bands over more of the board than this: detect it all (as costly, simpler)
EDGE = 2.0  # surface px: a new box this close to a band's inner edge may go on outside it
GROW_ROUNDS = 3  # times a band grows over boxes at its edge before the board is detected whole


def _merge(spans: list[list[float]]) -> list[list[float]]:
    """Overlapping or touching [a, b] intervals joined."""
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


class BoardReader(PageReader):
    """A :class:`PageReader` for the daemon's fixed camera: :meth:`read_changes` detects only
    where the board changed. ``partial_reads`` counts the reads that did."""

    def __init__(self, reader: PageReader) -> None:
        vars(self).update(vars(reader))  # the built reader's models, settings and cache
        self.fixed_camera = True
        self.partial_reads = 0
        self._changed: list[tuple[int, int, int, int]] | None = None
        self._found: list[TextBox] = []  # the last read's boxes, surface pixels
        self._found_key: tuple | None = None
        self._was_partial = False

    def reset(self) -> None:
        super().reset()
        self._found, self._found_key = [], None

    def read_changes(self, frame: np.ndarray, changed: list[tuple[int, int, int, int]] | None) -> PageResult:
        """Read ``frame`` (the gate's board) where it changed: ``changed`` holds frame-pixel
        rectangles (x0, y0, x1, y1) of the cells changed since the last read ([]: none), None
        to read it all."""
        self._changed, self._was_partial = changed, False
        try:
            page = self.read(frame)
        finally:
            self._changed = None
        self.partial_reads += self._was_partial
        return page

    def _detect(self, detector: TextDetector, frame: np.ndarray, quad: np.ndarray, detected: bool,
                surface: Surface) -> list[TextBox]:
        """Boxes in ``surface`` pixels: the last read's outside the changed bands, new ones inside
        them; the whole surface when there is no last read of this surface to keep."""
        key = (frame.shape, np.asarray(quad, np.float32).tobytes(), surface.image.shape)
        boxes = None
        if self._changed is not None and key == self._found_key and self._turn is not None:
            boxes = self._detect_bands(detector, frame, quad, detected, surface)
        if boxes is None:
            boxes = PageReader._detect(detector, frame, quad, detected, surface)
        else:
            self._was_partial = True
        self._found, self._found_key = boxes, key
        return boxes

    def _detect_bands(self, detector: TextDetector, frame: np.ndarray, quad: np.ndarray, detected: bool,
                      surface: Surface) -> list[TextBox] | None:
        """The last read's boxes with the changed bands detected again, or None (read it all)."""
        assert self._changed is not None and self._turn is not None
        sw, sh = surface.image.shape[1], surface.image.shape[0]
        axis = 1 if self._turn % 2 == 0 else 0  # text across: bands of rows (y); turned 90°: columns (x)
        extent = float(sh if axis else sw)
        old = self._found
        if not self._changed:
            return list(old)
        to_surface = np.linalg.inv(surface.to_frame)
        spans = []
        for x0, y0, x1, y1 in self._changed:
            pts = cv2.perspectiveTransform(np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]).reshape(-1, 1, 2),
                                           to_surface).reshape(-1, 2)[:, axis]
            spans.append([float(pts.min()), float(pts.max())])
        heights = [min(b.size) for b in old]
        margin = max(8.0, float(np.median(heights)) if heights else 0.0)
        view = _FullSurface(frame, quad, detected, surface) if detector.small_text else \
            _FullSurface(surface.image, frame_quad(surface.image), False, surface)  # one pass: the surface's pixels
        touched = [box for box in old if self._overlaps(box, spans, axis)]
        spans = [[a - margin, b + margin] for a, b in spans]
        for _ in range(GROW_ROUNDS):
            # Every old line the changes touch, whole; old lines beside them stay as they were.
            spans = _merge([[max(0.0, a), min(extent, b)]
                            for a, b in spans + [[*self._span(t, axis)] for t in touched]])
            if sum(b - a for a, b in spans) > FULL_SHARE * extent:
                return None
            kept = [box for box in old if not self._centred(box, spans, axis)]
            outlines = [k.quad.reshape(-1, 1, 2) for k in kept]
            new = [box for a, b in spans for box in view.detect(detector, a, b, axis)
                   if self._centred(box, spans, axis) and not any(
                       cv2.pointPolygonTest(o, tuple(float(v) for v in box.quad.mean(axis=0)), False) >= 0
                       for o in outlines)]
            redone = [box for box in old if self._centred(box, spans, axis)]
            beyond = [box for box in new + redone if self._beyond(box, spans, axis)]
            if not beyond:
                return kept + new
            touched += beyond  # a line goes on past the band: the band grows over it
        return None

    def _centred(self, box: TextBox, spans: list[list[float]], axis: int) -> bool:
        """Whether ``box``'s centre lies in one of the bands."""
        c = float(box.quad[:, axis].mean())
        return any(a <= c < b for a, b in spans)

    def _beyond(self, box: TextBox, spans: list[list[float]], axis: int) -> bool:
        """Whether ``box`` (centred in a band) reaches past its band's edge."""
        lo, hi = self._span(box, axis)
        c = float(box.quad[:, axis].mean())
        return any(a <= c < b and (lo < a - EDGE or hi > b + EDGE) for a, b in spans)

    @staticmethod
    def _span(box: TextBox, axis: int) -> tuple[float, float]:
        return float(box.quad[:, axis].min()), float(box.quad[:, axis].max())

    def _overlaps(self, box: TextBox, spans: list[list[float]], axis: int) -> bool:
        lo, hi = self._span(box, axis)
        return any(lo < b and hi > a for a, b in spans)

class _FullSurface:
    """The surface at the frame's own resolution, as the full read detects on it
    (``PageReader._detect``), cut into bands on demand: the frame itself when the surface is the
    whole frame, else a perspective warp of only the band's pixels."""

    def __init__(self, frame: np.ndarray, quad: np.ndarray, detected: bool, surface: Surface) -> None:
        self.frame = frame
        sw, sh = surface.image.shape[1], surface.image.shape[0]
        self.whole = not detected and np.allclose(quad, frame_quad(frame))
        if self.whole:
            self.w, self.h, self.to_frame = frame.shape[1], frame.shape[0], np.eye(3)
        else:
            q = surface.quad
            self.w = max(8, round((np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2))
            self.h = max(8, round((np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2))
            dst = np.float32([[0, 0], [self.w - 1, 0], [self.w - 1, self.h - 1], [0, self.h - 1]])
            self.to_frame = cv2.getPerspectiveTransform(dst, np.float32(q)).astype(np.float64)
        self.scale = np.float32([(self.w - 1) / max(1, sw - 1), (self.h - 1) / max(1, sh - 1)])

    def detect(self, detector: TextDetector, a: float, b: float, axis: int) -> list[TextBox]:
        """Boxes (surface pixels) detected in the band [a, b] (surface pixels along ``axis``: 1
        rows, 0 columns)."""
        length = self.h if axis else self.w
        lo = max(0, int(np.floor(a * self.scale[axis])))
        hi = min(length, int(np.ceil(b * self.scale[axis])) + 1)
        if hi - lo < 8:
            return []
        if self.whole:  # a plain cut, pixel for pixel what the full read sees
            band = self.frame[lo:hi] if axis else self.frame[:, lo:hi]
        else:
            shift = np.float64([[1, 0, 0 if axis else lo], [0, 1, lo if axis else 0], [0, 0, 1]])
            size = (self.w, hi - lo) if axis else (hi - lo, self.h)
            band = cv2.warpPerspective(self.frame, self.to_frame @ shift, size,
                                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        offset = np.float32([0, lo] if axis else [lo, 0])
        return [TextBox((box.quad + offset) / self.scale, box.score)
                for box in detector.detect(np.ascontiguousarray(band))]
