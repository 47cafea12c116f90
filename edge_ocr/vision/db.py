"""DB (Differentiable Binarization) post-processing: a text probability map → rotated text boxes.

As in Liao et al., *Real-time Scene Text Detection with Differentiable Binarization* (AAAI
2020) and PaddleOCR's ``DBPostProcess``: threshold the map, take each connected region's
minimum-area rectangle, score it by the mean probability inside, grow it back by the
*unclip* distance D = A·r / L (area A, perimeter L, ratio r) — the detector was trained on
text regions shrunk by that rule — with Clipper's polygon offsetting, and take the grown
region's minimum-area rectangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pyclipper

from edge_ocr.model.contract import DBParams
from edge_ocr.vision.surface import order_corners


@dataclass(frozen=True)
class TextBox:
    """One detected text region: corners tl, tr, br, bl (the long side along the text when it is
    wider than tall), float32 pixels of the image the map was computed for, and its DB score."""

    quad: np.ndarray  # (4, 2) float32
    score: float

    @property
    def size(self) -> tuple[float, float]:
        """(length along tl→tr, length along tl→bl) in pixels."""
        q = self.quad
        return float(np.linalg.norm(q[1] - q[0])), float(np.linalg.norm(q[3] - q[0]))


def ordered_box(rect: tuple) -> tuple[np.ndarray, float]:
    """``cv2.minAreaRect`` result → (corners tl, tr, br, bl in image axes, shorter side)."""
    return order_corners(cv2.boxPoints(rect)), float(min(rect[1]))


def box_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """Mean probability inside ``quad`` (PaddleOCR's "fast" score), in the map's own units."""
    h, w = prob.shape
    x0, y0 = np.clip(np.floor(quad.min(axis=0)).astype(int), 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(quad.max(axis=0)).astype(int), 0, [w - 1, h - 1])
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(mask, [np.round(quad - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def unclip(quad: np.ndarray, ratio: float) -> np.ndarray:
    """Grow a polygon by D = area·ratio / perimeter with round joins (Clipper). (N, 2) float32."""
    area = abs(cv2.contourArea(quad))
    length = cv2.arcLength(quad.reshape(-1, 1, 2), True)
    if length <= 0:
        return quad
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(np.round(quad).astype(np.int64).tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    grown = offset.Execute(area * ratio / length)
    if not grown:
        return quad
    return np.asarray(max(grown, key=len), np.float32)


PADDLE_DEFAULTS = DBParams()


def boxes_from_probability(prob: np.ndarray, params: DBParams = PADDLE_DEFAULTS) -> list[TextBox]:
    """Text boxes in the map's own pixels from a (H, W) probability map: float in 0..1, or uint8
    in 0..255 (a large map at a quarter of the memory: the scale-aware pass's)."""
    unit = 255.0 if prob.dtype == np.uint8 else 1.0
    bitmap = (prob > params.thresh * unit).astype(np.uint8)
    bitmap = cv2.dilate(bitmap, np.ones((2, 2), np.uint8))  # PaddleOCR's use_dilation
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in contours[: params.max_candidates]:
        quad, short = ordered_box(cv2.minAreaRect(contour))
        if short < params.min_size:
            continue
        score = box_score(prob, quad) / unit
        if score < params.box_thresh:
            continue
        grown = unclip(quad, params.unclip_ratio)
        quad, short = ordered_box(cv2.minAreaRect(grown.reshape(-1, 1, 2)))
        if short < params.min_size + 2:
            continue
        boxes.append(TextBox(quad, score))
    return boxes
