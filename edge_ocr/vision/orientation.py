"""Which way up the text is: pages turned by 90°, 180° or 270° in their pixels, and vertical
columns of Chinese.

The page's turn ``k`` (quarter turns counter-clockwise that make it upright, as
``np.rot90``) is found once per page: box shapes say whether the lines run across (k = 0 or 2)
or down (k = 1 or 3, or vertical writing), and the recogniser's confidence on a few long
lines read each way decides between the rest (``edge_ocr.page.reader.PageReader`` runs that vote).
Line boxes are then grouped and ordered in the upright page's coordinates and mapped back,
corners in the upright text's order, so that a perspective crop of a box is upright text.

A vertical column of Chinese keeps its characters upright; it is read by cutting it into
characters at the gaps of its row profile and laying them side by side (``column_to_row``).
"""

from __future__ import annotations

import cv2
import numpy as np


def rotate_points(points: np.ndarray, k: int, size: tuple[int, int]) -> np.ndarray:
    """Points (N, 2) of an image of ``size`` (w, h) in the image turned by ``k`` quarter
    turns counter-clockwise (``np.rot90(image, k)``)."""
    w, h = size
    p = np.asarray(points, np.float32).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    k %= 4
    if k == 0:
        out = np.stack([x, y], 1)
    elif k == 1:
        out = np.stack([y, w - 1 - x], 1)
    elif k == 2:
        out = np.stack([w - 1 - x, h - 1 - y], 1)
    else:
        out = np.stack([h - 1 - y, x], 1)
    return out.astype(np.float32)


def turned_size(size: tuple[int, int], k: int) -> tuple[int, int]:
    """(w, h) of an image of ``size`` after ``k`` quarter turns."""
    return size if k % 2 == 0 else (size[1], size[0])


def unrotate_points(points: np.ndarray, k: int, size: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`rotate_points` (``size`` is the unturned image's)."""
    return rotate_points(points, -k % 4, turned_size(size, k))


def column_to_row(column: np.ndarray, gap_px: int | None = None) -> np.ndarray:
    """A crop of vertical writing (tall, characters upright, read top to bottom) → one row.

    Characters are the runs of inked rows; runs of one character (the strokes of 二 and 三, a
    radical above its body) are joined while their union is no taller than the column's ink
    is wide. Each character keeps its size; they are placed left to right on the background.
    """
    gray = column if column.ndim == 2 else cv2.cvtColor(column[:, :, :3], cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    if h < w or w < 4:
        return column
    med = float(np.median(gray))
    dark_text = med > float(gray.mean()) - 1 or med > 127
    ink = (gray < med - 40) if dark_text else (gray > med + 40)
    rows = ink.sum(axis=1) > max(1, w // 40)
    runs, start = [], None
    for y, on in enumerate(np.append(rows, False)):
        if on and start is None:
            start = y
        elif not on and start is not None:
            runs.append([start, y])
            start = None
    if not runs:
        return column
    # A character is about as tall as the column's ink is wide: strokes join while they fit.
    inked = np.flatnonzero(ink.any(axis=0))
    limit = 1.1 * (inked[-1] - inked[0] + 1 if len(inked) else w)
    merged = [runs[0]]
    for r in runs[1:]:
        if r[1] - merged[-1][0] <= limit:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    gap = gap_px if gap_px is not None else max(2, w // 6)
    pad = max(1, w // 10)
    cells = [column[max(0, a - pad) : min(h, b + pad)] for a, b in merged]
    height = max(c.shape[0] for c in cells)
    bg = np.full((height, gap) + column.shape[2:], int(np.median(column)), column.dtype)
    parts = []
    for c in cells:
        top = (height - c.shape[0]) // 2
        cell = np.full((height, c.shape[1]) + column.shape[2:], int(np.median(column)), column.dtype)
        cell[top : top + c.shape[0]] = c
        parts += [cell, bg]
    return np.concatenate(parts[:-1], axis=1)
