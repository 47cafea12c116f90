import cv2
import numpy as np
import pytest

from edge_ocr.cache import LineCache


def _line(text: str) -> np.ndarray:
    img = np.full((32, 300), 255, np.uint8)
    cv2.putText(img, text, (4, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)
    return img.astype(np.float32)


def test_noise_and_jitter_hit_but_one_changed_character_misses() -> None:
    cache: LineCache[str] = LineCache(capacity=8)
    base = _line("F=ma 2024")
    cache.store(base, "F=ma 2024")
    noisy = np.clip(base + np.random.default_rng(0).normal(0, 4, base.shape), 0, 255)
    assert cache.lookup(noisy) == "F=ma 2024"
    wider = np.pad(base, ((0, 0), (0, 4)), constant_values=255)
    assert cache.lookup(wider) == "F=ma 2024"
    for dx, dy in ((0.4, 0.3), (0.5, 0.5), (0.0, 0.5)):
        shifted = cv2.warpAffine(base, np.float32([[1, 0, dx], [0, 1, dy]]), (300, 32), borderValue=255)
        assert cache.lookup(shifted) == "F=ma 2024", "a fraction of a pixel of jitter is the same line"
    for changed in ("F=mb 2024", "F=ma 2025", "F-ma 2024", "F=ma 2024."):
        assert cache.lookup(_line(changed)) is None, changed
    assert cache.hits == 5 and cache.misses == 4 and cache.hit_rate == pytest.approx(5 / 9)


def test_capacity_bound_evicts_least_recently_used() -> None:
    cache: LineCache[int] = LineCache(capacity=2)
    a, b, c = _line("aaa"), _line("bbb 12"), _line("ccc 345 x")
    cache.store(a, 1)
    cache.store(b, 2)
    assert cache.lookup(a) == 1  # a is now the most recent
    cache.store(c, 3)
    assert len(cache) == 2
    assert cache.lookup(b) is None and cache.lookup(a) == 1 and cache.lookup(c) == 3
    with pytest.raises(ValueError):
        LineCache(capacity=0)
