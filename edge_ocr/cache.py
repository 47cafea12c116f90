"""Line cache: an unchanged line crop is never recognised twice.

A board changes a line at a time; most crops of a new frame show the same pixels as last
time, give or take sensor noise and a pixel of segmentation jitter. Lines are compared as
16-px-high thumbnails, block by block (a block is about one character): a hit needs every
block to match, so noise passes but one changed character does not (measured: noise σ=4
gives 2, a→b in one character 11, the threshold is 6).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Generic, TypeVar

import cv2
import numpy as np

V = TypeVar("V")
THUMB_H = 16


def thumbnail(line: np.ndarray) -> np.ndarray:
    h, w = line.shape[:2]
    tw = max(THUMB_H, round(w * THUMB_H / max(1, h)))
    return cv2.resize(line.astype(np.float32), (tw, THUMB_H), interpolation=cv2.INTER_AREA)


def _blocks(diff: np.ndarray) -> float:
    n = -(-diff.shape[1] // THUMB_H)
    pad = n * THUMB_H - diff.shape[1]
    if pad:
        diff = np.pad(diff, ((0, 0), (0, pad)), mode="edge")
    return float(diff.reshape(THUMB_H, n, THUMB_H).mean(axis=(0, 2)).max())


def _shift_rows(a: np.ndarray, dy: int) -> np.ndarray:
    if dy == 0:
        return a
    out = np.full_like(a, 255.0)
    if dy > 0:
        out[dy:] = a[:-dy]
    else:
        out[:dy] = a[-dy:]
    return out


def block_difference(a: np.ndarray, b: np.ndarray, max_shift: int = 4, max_dy: int = 1) -> float:
    """Largest mean absolute difference over THUMB_H-wide blocks, at the best alignment.

    Tried: ``a`` scaled to ``b``'s width, and both padded with background to a common width,
    each at horizontal shifts up to ``max_shift`` and vertical shifts up to ``max_dy`` px: a
    speck or a rule remnant at a line's edge moves or rescales its crop by a few pixels
    without changing its text.
    """
    scaled = cv2.resize(a, (b.shape[1], THUMB_H), interpolation=cv2.INTER_LINEAR)
    w = max(a.shape[1], b.shape[1]) + max_shift
    pairs = [(scaled, b)]
    for shift in range(-max_shift, max_shift + 1):
        a_left, b_left = max(0, shift), max(0, -shift)
        pairs.append((np.pad(a, ((0, 0), (a_left, w - a.shape[1] - a_left)), constant_values=255.0),
                      np.pad(b, ((0, 0), (b_left, w - b.shape[1] - b_left)), constant_values=255.0)))
    best = np.inf
    for dy in range(-max_dy, max_dy + 1):
        for x, y in pairs:
            best = min(best, _blocks(np.abs(_shift_rows(x, dy) - y)))
    return best


class LineCache(Generic[V]):
    """Bounded LRU of (thumbnail → value) with hit/miss counters."""

    def __init__(self, capacity: int = 512, threshold: float = 6.0, width_slack: float = 0.08) -> None:
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

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
