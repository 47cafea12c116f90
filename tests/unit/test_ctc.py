import math

import numpy as np

from edge_ocr.recognition.ctc import beam_search, greedy, greedy_logits, log_softmax


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


def test_language_model_settles_an_ambiguous_frame(tmp_path) -> None:
    from edge_ocr.recognition.lm import CharBigramLM

    # classes: 0 blank, 1 'a', 2 'b'. Frame 3 reads 'a' slightly more than 'b';
    # the LM knows 'b' follows 'a' and 'a' rarely follows itself.
    rows = [[0.05, 0.9, 0.05], [0.9, 0.05, 0.05], [0.1, 0.55, 0.35], [0.9, 0.05, 0.05]]
    lp = _lp(rows)
    assert greedy(lp).ids == [1, 1]
    path = tmp_path / "lm.npz"
    np.savez(path, unigram_logp=np.log(np.array([1e-9, 0.5, 0.5], np.float32)),
             pair_keys=np.array([1 * 3 + 1, 1 * 3 + 2], np.int64),
             pair_logp=np.log(np.array([0.02, 0.98])).astype(np.float16), lam=np.float32(0.9))
    lm = CharBigramLM.load(path)
    assert lm.score(1, 2) > lm.score(1, 1)
    assert beam_search(lp, beam_width=8, prune=-50, top_k=3).ids == [1, 1]
    assert beam_search(lp, beam_width=8, prune=-50, top_k=3, lm=lm, lm_weight=0.5).ids == [1, 2]


def test_greedy_on_logits_equals_greedy_on_log_probs() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        logits = rng.normal(0, 3, (40, 50)).astype(np.float32)
        logits[rng.random(40) < 0.5, 0] += 8  # many blank frames, as in real output
        a, b = greedy(log_softmax(logits)), greedy_logits(logits)
        assert a.ids == b.ids and a.frames == b.frames and np.allclose(a.char_conf, b.char_conf)
    empty = greedy_logits(np.tile(np.array([[9.0, 0.0, 0.0]], np.float32), (5, 1)))
    assert empty.ids == [] and empty.confidence == 0.0  # an empty answer never looks confident
