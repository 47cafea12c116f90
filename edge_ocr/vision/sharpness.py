"""How sharp a frame's text is, cheaply: a no-reference blur measure for "nobody can read this".

After Crété-Roffet et al., *The Blur Effect: Perception and Estimation with a New No-Reference
Perceptual Blur Metric* (SPIE 6492, 2007): blur the picture again and see how much of its
variation survives. A sharp edge loses much of its slope to a re-blur; an edge already smeared
loses little. Here per direction (``DIRECTIONS``), since motion blur smears one direction only,
and the frame's sharpness is its worst direction's share of slope lost:

    sharpness = min over θ of  Σ max(0, |∂θ I| − |∂θ (K_θ * I)|) / Σ |∂θ I|

with ``K_θ`` a line of ``REBLUR`` pixels at angle θ. It is a ratio of slopes, so exposure and
contrast cancel; it is measured where the text is (the page's line boxes, on pixels with ink
edges: a blank wall or board says nothing) on the frame scaled so its median line is
``LINE_PX`` tall, so a 9-px smear counts for as much as it hurts reading: a lot on 20-px
handwriting, little on a 200-px heading. A frame without lines is not judged: a blank board and
an erased one must be published, and judged on their edges alone (the board's frame, a shadow)
they measured as blurred as a smeared page. The scaled region is at most ``WORK_PIXELS`` and at
most ``SAMPLES`` pixels are summed (a fixed grid of them), so a 12 MP photo costs what a small
one does.
"""

from __future__ import annotations

import cv2
import numpy as np

DIRECTIONS = 8  # angles 0°, 22.5°, … 157.5°
LINE_PX = 24  # the frame is scaled so that its median text line is this tall …
REBLUR = 7  # … and re-blurred along a line of this many pixels (about a stroke gap)
SAMPLES = 20_000  # ink pixels summed at most
WORK_PIXELS = 1_500_000  # the scaled text region's area at most (tiny text in a large frame scales less)
MIN_INK = 200  # fewer ink pixels than this: nothing to judge (None)


def _taps(angle: float) -> list[tuple[int, int]]:
    """Integer (dx, dy) offsets of a ``REBLUR``-pixel line through the origin at ``angle``."""
    half = (REBLUR - 1) / 2
    dx, dy = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    return [(round(t * dx), round(t * dy)) for t in np.linspace(-half, half, REBLUR)]


TAPS = [(np.radians(a), _taps(a)) for a in np.arange(DIRECTIONS) * 180.0 / DIRECTIONS]


def _ink(gray: np.ndarray) -> np.ndarray:
    """Pixels near a clear edge (slope above a quarter of the picture's strongest, after a
    2-px smoothing that a smear does not change much): strokes and their borders, not noise."""
    smooth = cv2.GaussianBlur(gray, (0, 0), 2)
    slope = cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    edge = (slope > 0.25 * np.percentile(slope, 99.5)).astype(np.uint8)
    return cv2.dilate(edge, np.ones((5, 5), np.uint8)).astype(bool)


def _measure(gray: np.ndarray, mask: np.ndarray) -> float | None:
    """The worst direction's share of slope lost to a re-blur, over (a grid of) ``mask``."""
    pad = REBLUR // 2 + 1
    mask[:pad], mask[-pad:], mask[:, :pad], mask[:, -pad:] = False, False, False, False
    index = np.flatnonzero(mask)
    if len(index) < MIN_INK:
        return None
    index = index[:: max(1, len(index) // SAMPLES)]
    width = gray.shape[1]
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3).ravel()
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3).ravel()
    near = {(dx, dy): (gx[index + dy * width + dx], gy[index + dy * width + dx])
            for _, taps in TAPS for dx, dy in taps}
    worst = 1.0
    for angle, taps in TAPS:
        c, s = np.cos(angle), np.sin(angle)
        here = np.abs(c * near[0, 0][0] + s * near[0, 0][1])  # |∂θ I|; ∂θ (K * I) = K * ∂θ I
        smeared = np.abs(sum(c * near[t][0] + s * near[t][1] for t in taps)) / len(taps)
        worst = min(worst, float(np.maximum(0.0, here - smeared).sum() / max(float(here.sum()), 1e-6)))
    return worst


def text_sharpness(gray: np.ndarray, boxes: list[np.ndarray]) -> float | None:
    """Sharpness (0 smeared … about 0.7 for a sharp photo) of the text in the grey ``gray`` (H×W uint8)
    inside ``boxes`` (4×2 corners in its pixels). None when there is nothing to judge: no
    boxes, or too little ink in them."""
    if not boxes:
        return None
    quads = [np.asarray(b, np.float32).reshape(4, 2) for b in boxes]
    heights = [float(np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2 for q in quads]
    scale = LINE_PX / max(1.0, float(np.median(heights)))
    pts = np.concatenate(quads)
    x0, y0 = np.clip(np.floor(pts.min(0)).astype(int) - REBLUR, 0, None)
    x1, y1 = np.ceil(pts.max(0)).astype(int) + REBLUR
    gray, origin = gray[y0:y1, x0:x1], np.array([x0, y0], np.float32)
    h, w = gray.shape
    scale = min(scale, (WORK_PIXELS / (h * w)) ** 0.5)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if min(size) <= 2 * REBLUR:
        return None
    small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    small = small.astype(np.float32)
    region = np.zeros(small.shape, np.uint8)
    cv2.fillPoly(region, [np.round((q - origin) * scale).astype(np.int32) for q in quads], 1)
    return _measure(small, _ink(small) & region.astype(bool))
