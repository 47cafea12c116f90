"""Find the whiteboard or page in a frame and rectify it to a fronto-parallel image.

Boards and pages are the large, bright, roughly convex quadrilateral of the scene. Detection
runs on a downscaled copy (a few ms for 1080p); when no confident quadrilateral exists the
whole frame is used. Mounted cameras never move, so a fixed region from configuration
skips detection entirely.

The rectified surface is an *analysis* image: at most ``ANALYSIS_SIDE`` pixels on its long
side, enough to find lines, so that cleaning and splitting cost the same for a 720p frame
and a 12 MP still. Line crops for the recogniser are cut from the full-resolution frame
through ``Surface.to_frame``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DETECT_SIDE = 480
ANALYSIS_SIDE = 1024
MIN_AREA, MAX_AREA = 0.15, 0.985


@dataclass(frozen=True)
class Surface:
    """The rectified surface and how to map its pixels back into the frame."""

    image: np.ndarray  # rectified, at most the rectify call's max_side on its long side
    quad: np.ndarray  # (4, 2) float32 corners in frame pixels: tl, tr, br, bl
    to_frame: np.ndarray  # 3×3 homography, rectified → frame
    detected: bool  # False when the whole frame (or a fixed region) was used

    def points_to_frame(self, pts: np.ndarray) -> np.ndarray:
        """Map (N, 2) rectified-image points to frame coordinates."""
        p = np.asarray(pts, np.float32).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(p, self.to_frame).reshape(-1, 2)


def order_corners(pts: np.ndarray) -> np.ndarray:
    """Corners as tl, tr, br, bl (by coordinate sums and differences; a square turned by exactly
    45° ties those, and then the corners go clockwise from the one with the smallest sum)."""
    pts = np.asarray(pts, np.float32).reshape(4, 2)
    s, d = pts.sum(axis=1), np.diff(pts, axis=1).ravel()
    quad = np.array([pts[s.argmin()], pts[d.argmin()], pts[s.argmax()], pts[d.argmax()]], np.float32)
    if len({tuple(p) for p in quad.tolist()}) == 4:
        return quad
    c = pts.mean(axis=0)
    order = np.argsort(np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0]))
    return pts[np.roll(order, -int(np.argmin(pts[order].sum(axis=1))))]


def edge_contrast(gray: np.ndarray, quad: np.ndarray, offset: float = 6.0) -> float:
    """Weakest brightness step (inside − outside) across the quad's sides.

    A board or page ends in a sharp step against the wall or desk; the boundary of a bright
    patch of light on a page does not. Sides lying on the frame border (the surface is cut
    by the frame) are not judged.
    """
    h, w = gray.shape
    centre = quad.mean(axis=0)
    steps = []
    for i in range(4):
        p, q = quad[i], quad[(i + 1) % 4]
        if all(min(pt[0], pt[1], w - 1 - pt[0], h - 1 - pt[1]) < offset + 2 for pt in (p, q)):
            continue
        t = np.linspace(0.1, 0.9, 24)[:, None]
        pts = p + (q - p) * t
        normal = np.array([-(q - p)[1], (q - p)[0]], np.float32)
        normal /= max(1e-6, float(np.linalg.norm(normal)))
        if np.dot(centre - (p + q) / 2, normal) < 0:
            normal = -normal
        inside = np.clip(pts + normal * offset, 0, [w - 1, h - 1]).astype(int)
        outside = np.clip(pts - normal * offset, 0, [w - 1, h - 1]).astype(int)
        diff = gray[inside[:, 1], inside[:, 0]].astype(np.float32) - gray[outside[:, 1], outside[:, 0]]
        steps.append(float(np.median(diff)))
    return min(steps) if steps else 0.0


def find_quad(frame: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The most board-like quadrilateral (frame pixels) and a confidence in 0..1, or None."""
    h, w = frame.shape[:2]
    scale = DETECT_SIDE / max(h, w)
    small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    gray = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    gray = cv2.GaussianBlur(gray, (5, 5), 0)
    area = gray.shape[0] * gray.shape[1]
    # Bright region: the writing is dark on it, so close it away before taking contours.
    _, bright = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    bright = cv2.morphologyEx(bright, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    edges = cv2.dilate(cv2.Canny(gray, 40, 120), np.ones((3, 3), np.uint8))
    best: tuple[np.ndarray, float] | None = None
    for mask, flag in ((bright, cv2.RETR_EXTERNAL), (edges, cv2.RETR_LIST)):
        contours, _ = cv2.findContours(mask, flag, cv2.CHAIN_APPROX_SIMPLE)
        for c in sorted(contours, key=cv2.contourArea, reverse=True)[:5]:
            a = cv2.contourArea(c)
            if not MIN_AREA * area <= a <= MAX_AREA * area:
                continue
            hull = cv2.convexHull(c)
            peri = cv2.arcLength(hull, True)
            approx = cv2.approxPolyDP(hull, 0.02 * peri, True)
            if len(approx) != 4:
                continue
            quad_area = cv2.contourArea(approx)
            fill = a / max(quad_area, 1.0)
            step = edge_contrast(gray, order_corners(approx.reshape(4, 2)))
            conf = float(min(1.0, fill) * min(1.0, quad_area / (0.3 * area)) * min(1.0, step / 25.0))
            if fill > 0.85 and (best is None or conf > best[1]):
                best = (order_corners(approx.reshape(4, 2) / scale), conf)
    return best


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (w, h): halved by Gaussian pyramid steps while that stays
    above the target, then area-averaged (INTER_AREA alone on 1080p took 15 ms on one thread)."""
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        image = cv2.pyrDown(image)
    shrinking = image.shape[1] > size[0]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def rectify(image: np.ndarray, quad: np.ndarray, max_side: int | None = None, detected: bool = True) -> Surface:
    """Warp ``quad`` to a rectangle whose sides match the quad's mean edge lengths.

    When that rectangle must shrink below half size, the image is first reduced by area
    averaging: a bilinear warp alone would step over thin strokes.
    """
    q = order_corners(quad)
    width = (np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2
    height = (np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2
    f = min(1.0, max_side / max(width, height, 1.0)) if max_side else 1.0
    w, h = max(8, round(width * f)), max(8, round(height * f))
    dst = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
    to_frame = cv2.getPerspectiveTransform(dst, q).astype(np.float64)
    src, src_q = image, q
    if f < 0.5:
        src = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        src_q = q * np.float32([src.shape[1] / image.shape[1], src.shape[0] / image.shape[0]])
    m = cv2.getPerspectiveTransform(src_q, dst)
    warped = cv2.warpPerspective(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return Surface(warped, q, to_frame, detected)


def frame_quad(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)


def locate_surface(
    frame: np.ndarray, fixed_region: np.ndarray | None = None, min_confidence: float = 0.5
) -> tuple[np.ndarray, bool]:
    """(quad in frame pixels, detected): the fixed region if given (fractions or pixels),
    else the detected board or page, else the whole frame."""
    if fixed_region is not None:
        region = np.asarray(fixed_region, np.float32).reshape(4, 2)
        if region.max() <= 1.0:
            region = region * np.array([frame.shape[1] - 1, frame.shape[0] - 1], np.float32)
        return order_corners(region), False
    found = find_quad(frame)
    if found is None or found[1] < min_confidence:
        return frame_quad(frame), False
    return found[0], True


def steady_quad(previous: np.ndarray | None, quad: np.ndarray, frame_shape: tuple[int, ...],
                tolerance: float = 0.006) -> np.ndarray:
    """``previous`` when every corner of ``quad`` lies within ``tolerance`` × the frame's long
    side of it, else ``quad``.

    Detection on the downscaled frame moves a corner by a few pixels from frame to frame; a
    moved quad moves every line crop, and the line cache then misses on an unchanged board.
    """
    if previous is None or previous.shape != quad.shape:
        return quad
    limit = max(4.0, tolerance * max(frame_shape[:2]))
    return previous if float(np.abs(previous - quad).max()) <= limit else quad


def find_surface(
    frame: np.ndarray,
    fixed_region: np.ndarray | None = None,
    min_confidence: float = 0.5,
    max_side: int | None = ANALYSIS_SIDE,
) -> Surface:
    """Rectified board/page: the fixed region if given, else the detected quad, else the frame."""
    quad, detected = locate_surface(frame, fixed_region, min_confidence)
    if not detected and fixed_region is None and (not max_side or max(frame.shape[:2]) <= max_side):
        return Surface(frame, quad, np.eye(3, dtype=np.float64), False)
    return rectify(frame, quad, max_side, detected)
