import numpy as np
import pytest

from edge_ocr.page.cache import LineCache
from edge_ocr.page.diff import comparable, sure_difference
from edge_ocr.page.reader import PageReader
from edge_ocr.page.result import PageLine
from edge_ocr.recognition.recognizer import Recognizer
from tests.line_pairs import samples

MODEL = "models/ppocrv6_small_int8.tflite"


def _line(seed: int, width: int = 120) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (48, width)).astype(np.float32)


def test_identical_pixels_hit_and_any_changed_pixel_misses() -> None:
    cache: LineCache[str] = LineCache(capacity=8)
    base = _line(0)
    cache.store(base, "F=ma 2024")
    assert cache.lookup(base.copy()) == "F=ma 2024"
    nudged = base.copy()
    nudged[20, 60] += 1.0  # one pixel, one grey level
    assert cache.lookup(nudged) is None
    assert cache.lookup(base[:, :-8]) is None
    assert cache.lookup(base.astype(np.float64)) is None
    assert cache.hits == 1 and cache.misses == 3 and cache.hit_rate == pytest.approx(1 / 4)


def test_capacity_bound_evicts_least_recently_used() -> None:
    cache: LineCache[int] = LineCache(capacity=2)
    a, b, c = _line(1), _line(2), _line(3)
    cache.store(a, 1)
    cache.store(b, 2)
    assert cache.lookup(a) == 1  # a is now the most recent
    cache.store(c, 3)
    assert len(cache) == 2
    assert cache.lookup(b) is None and cache.lookup(a) == 1 and cache.lookup(c) == 3
    cache.clear()
    assert len(cache) == 0 and cache.lookup(a) is None
    with pytest.raises(ValueError):
        LineCache(capacity=0)


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer(MODEL)


@pytest.mark.parametrize("jitter", ["camera", "box"])
def test_a_one_character_edit_is_always_read_again(recognizer: Recognizer, jitter: str) -> None:
    """The issue's measure: ≥ 200 one-character edits (digits, punctuation, a stroke added to a
    Chinese character, a letter), each after its line was read; 0 may come from the cache."""
    edits, _ = samples(0, jitter)
    assert len(edits) >= 200
    reader = PageReader(recognizer)
    stale = []
    for before, after, what in edits:
        reader._recognize([before])
        hits = reader.cache.hits
        reader._recognize([after])
        if reader.cache.hits != hits:
            stale.append(what)
    assert stale == []


def _as_line(r) -> PageLine:
    return PageLine(r.text, r.confidence, [[0, 0], [1, 0], [1, 1], [0, 1]], 0, r.char_confidences)


@pytest.mark.parametrize("jitter", ["camera", "box"])
def test_unchanged_lines_under_jitter_keep_their_text_and_edits_change_it(recognizer: Recognizer,
                                                                         jitter: str) -> None:
    """The other side, as the page diff judges (``document.sure_difference``): re-read after a
    pixel of movement, new exposure, noise and JPEG, an unchanged line keeps its text (measured
    226-227 of 227; 96-98 % even by plain text comparison), while every edit that the recogniser
    reads differently is a change (one pair, 干 at 18 px, is read as 千 either way)."""
    edits, repeats = samples(0, jitter)
    kept = [not sure_difference(_as_line(a), _as_line(b)) for a, b in map(recognizer.recognize, repeats)]
    assert len(kept) >= 200 and np.mean(kept) >= 0.97
    reads = [recognizer.recognize([x, y]) for x, y, _ in edits]
    missed = [(a.text, b.text) for a, b in reads if not sure_difference(_as_line(a), _as_line(b))]
    read_alike = [(a.text, b.text) for a, b in reads if comparable(a.text) == comparable(b.text)]
    assert missed == read_alike and len(missed) <= 2, missed
