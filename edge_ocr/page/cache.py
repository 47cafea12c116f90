"""Line cache: a line crop seen before, pixel for pixel, is not recognised twice.

The key is the normalised line itself (a hash of its bytes), not a tolerant likeness. A
jitter-tolerant comparison was measured and dropped: on 220 rendered one-character edits
(digits, punctuation, a stroke added to a Chinese character, a letter) against the same lines
moved by a pixel, re-exposed, re-noised and re-encoded (``tests/line_pairs.py``), every
thumbnail comparison tried that let at least 75 % of the unchanged lines hit also let some
edits hit: 36 of 220 with the former 16-px thumbnails, still 3 at 48 px where only 59 % of the
unchanged lines hit; 未/末, 土/士 and 千/干 differ by less than a pixel of jitter does. A false
hit publishes text that is no longer on the board, so changed pixels are always read again and
the page diff compares texts (``edge_ocr.page.diff``). Exact hits still spare the work that
repeats within a frame (the orientation vote reads the lines it then publishes) and frames
that are identical in pixels.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Generic, TypeVar

import numpy as np

V = TypeVar("V")


def line_key(line: np.ndarray) -> bytes:
    """A digest of the line's shape, type and pixels."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((line.shape, line.dtype.str)).encode())
    h.update(np.ascontiguousarray(line).tobytes())
    return h.digest()


class LineCache(Generic[V]):
    """Bounded LRU of (line pixels → value) with hit/miss counters."""

    def __init__(self, capacity: int = 512) -> None:
        if capacity < 1:
            raise ValueError("cache capacity must be ≥ 1")
        self.capacity = capacity
        self._entries: OrderedDict[bytes, V] = OrderedDict()
        self.hits = self.misses = 0

    def lookup(self, line: np.ndarray) -> V | None:
        key = line_key(line)
        if key not in self._entries:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return self._entries[key]

    def store(self, line: np.ndarray, value: V) -> None:
        key = line_key(line)
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (an unrelated image follows); the counters keep counting."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
