"""Line cache: an unchanged line crop is never recognised twice.

A board changes a line at a time; most crops of a new frame show the same pixels as last
time, give or take sensor noise and a pixel of segmentation jitter. Lines are compared as
16-px-high thumbnails, block by block (a block is half a character): a hit needs every
block to match, so noise and jitter pass but one changed character does not. Measured
(``tests/test_cache.py``): noise σ=4 scores 0.0, a crop moved by half a pixel at most 0.21,
the smallest change tried ("=" → "-") 0.5, an added full stop 1.5, any changed letter or
digit ≥ 1.8; the threshold is 0.35. A false hit would publish stale text, a false miss
costs one recognition: the threshold leans towards missing.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Generic, TypeVar

import cv2
import numpy as np

V = TypeVar("V")
THUMB_H = 16
BLOCK_W = THUMB_H // 2
PAPER = 192.0
MARGIN = 16.0
_NEIGHBOURS = np.ones((3, 3), np.uint8)


def thumbnail(line: np.ndarray) -> np.ndarray:
    """A 16-px-high, lightly blurred gray thumbnail in which anything lighter than ``PAPER``
    is paper (grain and smudges differ between frames; only ink matters)."""
    h, w = line.shape[:2]
    tw = max(THUMB_H, round(w * THUMB_H / max(1, h)))
    small = cv2.resize(line.astype(np.float32), (tw, THUMB_H), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(np.minimum(small, PAPER), (0, 0), 0.7, borderType=cv2.BORDER_REPLICATE)


def _outside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How far (beyond ``MARGIN``) each pixel of ``x`` lies outside the range of ``y``'s 3×3
    neighbourhood.

    A crop moved by a fraction of a pixel differs from the original at every sharp ink edge,
    but its pixels stay within about the range of the original's neighbours; new ink does not.
    """
    return (cv2.max(x - cv2.dilate(y, _NEIGHBOURS) - MARGIN, 0)
            + cv2.max(cv2.erode(y, _NEIGHBOURS) - x - MARGIN, 0))


def _worst_block(diff: np.ndarray) -> float:
    n = -(-diff.shape[1] // BLOCK_W)
    pad = n * BLOCK_W - diff.shape[1]
    if pad:
        diff = np.pad(diff, ((0, 0), (0, pad)), mode="edge")
    return float(diff.reshape(THUMB_H, n, BLOCK_W).mean(axis=(0, 2)).max())


def block_difference(a: np.ndarray, b: np.ndarray, max_shift: int = 4) -> float:
    """Worst block's mean difference beyond a pixel's tolerance, at the best alignment.

    Tried: ``a`` scaled to ``b``'s width, and both padded with paper to a common width at
    horizontal shifts up to ``max_shift`` px: a speck or a rule remnant at a line's edge
    moves or rescales its crop by a few pixels without changing its text.
    """
    scaled = cv2.resize(a, (b.shape[1], THUMB_H), interpolation=cv2.INTER_LINEAR)
    w = max(a.shape[1], b.shape[1]) + max_shift
    pairs = [(scaled, b)]
    for shift in range(-max_shift, max_shift + 1):
        a_left, b_left = max(0, shift), max(0, -shift)
        pairs.append((np.pad(a, ((0, 0), (a_left, w - a.shape[1] - a_left)), constant_values=PAPER),
                      np.pad(b, ((0, 0), (b_left, w - b.shape[1] - b_left)), constant_values=PAPER)))
    return min(max(_worst_block(_outside(x, y)), _worst_block(_outside(y, x))) for x, y in pairs)


class LineCache(Generic[V]):
    """Bounded LRU of (thumbnail → value) with hit/miss counters."""

    def __init__(self, capacity: int = 512, threshold: float = 0.35, width_slack: float = 0.08) -> None:
        if capacity < 1:
            raise ValueError("cache capacity must be ≥ 1")
        self.capacity, self.threshold, self.width_slack = capacity, threshold, width_slack
        self._entries: OrderedDict[int, tuple[np.ndarray, V]] = OrderedDict()
        self._by_width: dict[int, set[int]] = {}
        self._ids = itertools.count()
        self.hits = self.misses = 0

    def lookup(self, line: np.ndarray) -> V | None:
        thumb = thumbnail(line)
        w = thumb.shape[1]
        best: tuple[float, int] | None = None
        slack = max(4, round(w * self.width_slack))
        for width in range(w - slack, w + slack + 1):
            for key in self._by_width.get(width, ()):
                d = block_difference(thumb, self._entries[key][0])
                if d < self.threshold and (best is None or d < best[0]):
                    best = (d, key)
        if best is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(best[1])
        return self._entries[best[1]][1]

    def store(self, line: np.ndarray, value: V) -> None:
        thumb = thumbnail(line)
        key = next(self._ids)
        self._entries[key] = (thumb, value)
        self._by_width.setdefault(thumb.shape[1], set()).add(key)
        while len(self._entries) > self.capacity:
            old, (t, _) = self._entries.popitem(last=False)
            self._by_width[t.shape[1]].discard(old)

    def clear(self) -> None:
        """Forget every entry (an unrelated image follows); the counters keep counting."""
        self._entries.clear()
        self._by_width.clear()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
