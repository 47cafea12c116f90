import math

import numpy as np

from edge_ocr.ctc import beam_search, greedy, log_softmax


def _lp(rows: list[list[float]]) -> np.ndarray:
    p = np.asarray(rows, np.float64)
    return np.log(p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def test_greedy_merges_repeats_and_keeps_blank_separated_doubles() -> None:
    # classes: 0 blank, 1 'a', 2 'b'; path a a _ a b b _  -> "aab"
    path = [1, 1, 0, 1, 2, 2, 0]
    rows = [[0.9 if k == c else 0.05 for k in range(3)] for c in path]
    d = greedy(_lp(rows))
    assert d.ids == [1, 1, 2]
    assert len(d.char_conf) == 3 and all(0.0 < c <= 1.0 for c in d.char_conf)
    assert d.frames == [0, 3, 4]


def test_beam_search_finds_the_label_greedy_misses() -> None:
    # Per frame: blank 0.4, 'a' 0.35, 'b' 0.25. Greedy reads blank-blank = "" (p 0.16),
    # but "a" sums three paths (a_, _a, aa) to 0.1225 + 0.14 + 0.14 = 0.4025.
    rows = [[0.4, 0.35, 0.25], [0.4, 0.35, 0.25]]
    lp = _lp(rows)
    assert greedy(lp).ids == []
    best = beam_search(lp, beam_width=4, prune=-50, top_k=3)
    assert best.ids == [1]


def test_beam_search_agrees_with_greedy_on_confident_frames() -> None:
    rng = np.random.default_rng(0)
    path = rng.integers(0, 50, size=40)
    logits = rng.normal(0, 1, (40, 50)).astype(np.float32)
    logits[np.arange(40), path] += 12
    lp = log_softmax(logits)
    g, b = greedy(lp), beam_search(lp, beam_width=8)
    assert g.ids == b.ids
    assert np.allclose(g.char_conf, b.char_conf, atol=1e-4)


def test_log_softmax_is_normalised() -> None:
    x = np.random.default_rng(1).normal(0, 30, (5, 1000)).astype(np.float32)
    s = np.exp(log_softmax(x)).sum(axis=1)
    assert np.allclose(s, 1.0, atol=1e-4)
    assert math.isfinite(float(log_softmax(x).min()))
