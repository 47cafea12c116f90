"""Detected text boxes → text lines in reading order.

A DB detector finds lines, but cuts a line where the writer left a wide gap (and sometimes
finds a word alone). Boxes are joined into one line when they run along the same baseline:
similar slant and height, the centre of one within ``across`` heights of the other's axis,
and the gap between them along the axis under ``gap`` heights (defaults below); or when they
overlap by more than half of the smaller one (the same line found twice). Lines are grouped into
blocks (columns) and read block by block, top to bottom, pieces of a row left to right
(``edge_ocr.vision.lines.reading_order``).

A box taller than wide (``vertical``) is a column of vertical writing or a line of a page
turned by 90°; ``edge_ocr.vision.orientation`` decides which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge_ocr.vision.db import TextBox
from edge_ocr.vision.lines import LineRegion, connected_groups, reading_order

# Chosen on the whole real dev set (toolchain.bench.pages): a gap of 1.2 heights joined columns of
# a 4-column board (page CER 0.116 → 0.098 at 0.8); 0.4 split lines of a sparse board.
GAP = 0.8  # largest gap along the line, in line heights, that still joins two boxes
ACROSS = 0.45  # how far (line heights) a box's centre may sit off the other's axis
MAX_SLANT = 10.0  # degrees between the two boxes' directions
MAX_RATIO = 1.6  # largest ratio of the two boxes' heights
SPECK = 0.6  # a line shorter than this many median line heights is not text
OVERLAP = 0.5  # boxes sharing more than this of the smaller one are one line
SQUARE = 2.2  # a box less than this many times as long as wide is read horizontally (a digit: 2.0)


@dataclass
class TextLine:
    """A line: corners tl, tr, br, bl with tl→tr along the writing (for a vertical box, tl→bl),
    in the pixels of the image it was detected in."""

    quad: np.ndarray  # (4, 2) float32
    score: float
    vertical: bool = False
    block: int = 0

    @property
    def length(self) -> float:
        q = self.quad
        return float(np.linalg.norm(q[3] - q[0]) if self.vertical else np.linalg.norm(q[1] - q[0]))

    @property
    def thickness(self) -> float:
        q = self.quad
        return float(np.linalg.norm(q[1] - q[0]) if self.vertical else np.linalg.norm(q[3] - q[0]))


def _axis(rect: tuple) -> tuple[np.ndarray, float, float, bool]:
    """(unit direction of the long side pointing right/down, long, short, vertical).

    A box less than ``SQUARE`` times as long as wide (one or two characters; a column of
    vertical writing is longer) has no direction of its own: it is taken along its more
    horizontal side, as a word or a table cell's number is written. Taken by its longer side, a
    column of scores ("88" over "92" over "75", or single digits) was joined into one vertical
    line that is nowhere on the page (issue 27)."""
    (w, h), angle = rect[1], math.radians(rect[2])
    u = np.array([math.cos(angle), math.sin(angle)])
    if max(w, h) < SQUARE * min(w, h):
        if abs(u[1]) > abs(u[0]):
            u, w, h = np.array([-u[1], u[0]]), h, w
    elif h > w:
        u, w, h = np.array([-u[1], u[0]]), h, w
    vertical = bool(abs(u[1]) > abs(u[0]))
    if (vertical and u[1] < 0) or (not vertical and u[0] < 0):
        u = -u
    return u, float(w), float(h), vertical


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection of two convex quads over the smaller one's area."""
    inter, _ = cv2.intersectConvexConvex(a.reshape(-1, 1, 2), b.reshape(-1, 1, 2))
    smaller = min(cv2.contourArea(a.reshape(-1, 1, 2)), cv2.contourArea(b.reshape(-1, 1, 2)))
    return float(inter / smaller) if smaller > 0 else 0.0


def line_quad(points: np.ndarray) -> tuple[np.ndarray, bool]:
    """Minimum-area rectangle of ``points`` as (tl, tr, br, bl, vertical): tl→tr runs along a
    horizontal line's writing; for a vertical box tl→bl runs down its long side."""
    rect = cv2.minAreaRect(np.asarray(points, np.float32).reshape(-1, 1, 2))
    u, long, short, vertical = _axis(rect)
    c = np.asarray(rect[0], np.float64)
    n = np.array([-u[1], u[0]])  # u rotated +90° (image axes, y down): below the line
    if not vertical:
        tl = c - u * long / 2 - n * short / 2
        quad = [tl, tl + u * long, tl + u * long + n * short, tl + n * short]
    else:
        side = -n if n[0] > 0 else n  # points left
        tl = c - u * long / 2 + side * short / 2
        quad = [tl, tl - side * short, tl - side * short + u * long, tl + u * long]
    return np.asarray(quad, np.float32), vertical


def group_lines(boxes: list[TextBox], gap: float = GAP, across: float = ACROSS,
                max_slant: float = MAX_SLANT, max_ratio: float = MAX_RATIO) -> list[TextLine]:
    """Join boxes that continue each other along one baseline (see the module docstring)."""
    info = []
    for b in boxes:
        rect = cv2.minAreaRect(b.quad.reshape(-1, 1, 2))
        u, long, short, vertical = _axis(rect)
        info.append((np.asarray(rect[0]), u, long, short, vertical))

    def continues(i: int, j: int) -> bool:
        ci, ui, li, si, vi = info[i]
        cj, uj, lj, sj, vj = info[j]
        if math.degrees(math.acos(min(1.0, abs(float(ui @ uj))))) > max_slant:
            return False
        if overlap(boxes[i].quad, boxes[j].quad) > OVERLAP:
            return True  # one line found twice (a tall hand's upper and lower halves)
        if vi != vj or max(si, sj) > max_ratio * min(si, sj):
            return False
        u = ui if li >= lj else uj
        n = np.array([-u[1], u[0]])
        h = max(si, sj)
        if abs(float((cj - ci) @ n)) > across * h:
            return False
        return abs(float((cj - ci) @ u)) - (li + lj) / 2 <= gap * h

    lines = []
    for members in connected_groups(len(boxes), continues):
        pts = np.concatenate([boxes[i].quad for i in members])
        quad, vertical = line_quad(pts)
        score = float(np.average([boxes[i].score for i in members], weights=[info[i][2] for i in members]))
        lines.append(TextLine(quad, score, vertical))
    return lines


def drop_specks(lines: list[TextLine], fraction: float = SPECK) -> list[TextLine]:
    """Lines shorter than ``fraction`` of the page's median line height: a stroke's tip, a dot
    of a magnet, the edge of a hand — smaller than one character of the page's writing. Judged
    by the box's longer side: a lone narrow digit in a table cell ('5', '1') is short along its
    line but a character tall."""
    if len(lines) < 2:
        return lines
    typical = float(np.median([ln.thickness for ln in lines]))
    return [ln for ln in lines if max(ln.length, ln.thickness) >= fraction * typical]


def order_lines(lines: list[TextLine], vertical_rtl: bool = True) -> list[TextLine]:
    """Reading order: horizontal lines block by block, top to bottom; vertical columns right
    to left (Chinese and Japanese vertical writing) after them."""
    horizontal = [ln for ln in lines if not ln.vertical]
    regions = [LineRegion(ln.quad, 0.0, ln.thickness) for ln in horizontal]
    by_id = {id(r): ln for r, ln in zip(regions, horizontal)}
    ordered = []
    for r in reading_order(regions):
        ln = by_id[id(r)]
        ln.block = r.block
        ordered.append(ln)
    columns = sorted((ln for ln in lines if ln.vertical), key=lambda ln: -float(ln.quad[:, 0].mean()) if vertical_rtl
                     else float(ln.quad[:, 0].mean()))
    block = (ordered[-1].block + 1) if ordered else 0
    for ln in columns:
        ln.block = block
    return ordered + columns
