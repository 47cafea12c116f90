"""The student's batches: lines of one length, or pairs joined end to end with their frames,
teacher targets and texts in order (a pair with an unlabelled line is unlabelled)."""

from __future__ import annotations

import numpy as np

from edge_ocr.paths import ROOT
from edge_ocr.recognition.charset import Charset
from toolchain.crnn.student import Frames, Sampler

TEXTS = ["ab", "", "cde", "f", "", "gh"]
LENGTHS = [6, 6, 10, 4, 10, 16]


def frames() -> Frames:
    """Six lines whose every frame holds its line number and position (features, hints, ids)."""
    items = []
    for n, (text, t) in enumerate(zip(TEXTS, LENGTHS)):
        mark = np.stack([np.full(t, n), np.arange(t)], 1)
        feats = np.tile(mark, (1, 192)).astype(np.float16)
        hints = np.tile(mark, (1, 60)).astype(np.float16)
        ids = np.tile(mark, (1, 4)).astype(np.uint16)
        probs = np.full((t, 8), 0.125, np.float16)
        items.append((feats, hints, ids, probs, text, n, 1.0, not text))
    return Frames.from_items(items)


def test_joined_rows_carry_both_lines_frames_targets_and_texts() -> None:
    data, encode = frames(), Charset.load(ROOT / "models" / "ppocrv6_small.charset.txt").encode
    sample = Sampler(data, np.arange(len(TEXTS)), batch=8, join=1.0, rng=np.random.default_rng(0))
    joined = 0
    for _ in range(50):
        rows = sample()
        x, hint, ids, _, y, labelled, distil = data.batch(rows, encode)
        assert x.shape[:2] == hint.shape[:2] == ids.shape[:2] == (len(rows), x.shape[1])
        for r, row in enumerate(rows):
            expected = np.concatenate([np.stack([np.full(LENGTHS[i], i), np.arange(LENGTHS[i])], 1) for i in row])
            assert np.array_equal(x[r, :, :2], expected)
            assert np.array_equal(hint[r, :, :2], expected)
            assert np.array_equal(ids[r, :, :2], expected)
            text = "".join(TEXTS[i] for i in row)
            assert labelled[r] == all(TEXTS[i] for i in row)
            if labelled[r]:
                assert list(y[r, : len(text)]) == encode(text) and not y[r, len(text):].any()
            joined += len(row) == 2
        assert (distil == 1).all()
    assert joined > 100, "join=1.0 joins whenever two lines add up to the drawn length"


def test_without_join_every_row_is_one_line_of_the_drawn_length() -> None:
    data = frames()
    sample = Sampler(data, np.array([0, 1, 2, 4]), batch=8, join=0.0, rng=np.random.default_rng(1))
    seen = set()
    for _ in range(40):
        rows = sample()
        assert all(len(row) == 1 for row in rows)
        assert len({LENGTHS[row[0]] for row in rows}) == 1
        seen.update(row[0] for row in rows)
    assert seen == {0, 1, 2, 4}, "only the lines given, all of them"
