"""Reading order on the real detector and reader: a handwritten line cut at a wide gap is read
left piece first whichever way its baseline drifts, with lines above and below it (the field
regression: a note's first line split in two and its right half emitted first)."""

from __future__ import annotations

import pytest

from edge_ocr.config import Config
from edge_ocr.page.build import build_reader
from edge_ocr.page.reader import PageReader
from tests.render import slanted
from toolchain.scoring import edit_distance, squash

TRUTH = ["Bring the red folder", "Meet at the gym", "after lunch", "and your running shoes"]


@pytest.fixture(scope="module")
def reader() -> PageReader:
    return build_reader(Config())


# drift: degrees counter-clockwise (> 0: the baseline rises to the right, so the right piece sits
# higher); gap: spaces between the two pieces (8 ≈ 2.5 line heights, 20 ≈ 6: past the lines below).
@pytest.mark.parametrize("drift", [3.0, 1.5, -1.5, -3.0])
@pytest.mark.parametrize("gap", [8, 20])
def test_a_line_cut_at_a_wide_gap_reads_left_piece_first(reader: PageReader, drift: float, gap: int) -> None:
    board = slanted([TRUTH[0], TRUTH[1] + " " * gap + TRUTH[2], TRUTH[3]], [drift] * 3)
    reader.reset()
    texts = [ln.text for ln in reader.read(board).lines]
    read, truth = squash("".join(texts)), squash("".join(TRUTH))
    assert edit_distance(read, truth) <= 0.03 * len(truth), texts
    assert read.index("folder") < read.index("gym") < read.index("after") < read.index("running"), texts


def test_columns_side_by_side_still_read_column_by_column(reader: PageReader) -> None:
    """The row rule must not interleave two columns whose lines share rows."""
    import numpy as np

    left = slanted(["Monday maths", "Tuesday music", "Wednesday art"], [0.0] * 3, width=640)
    right = slanted(["bring a ruler", "bring a flute", "bring paint"], [0.0] * 3, width=640)
    board = np.concatenate([left, np.full((left.shape[0], 200, 3), 255, np.uint8), right], axis=1)
    reader.reset()
    texts = [squash(ln.text) for ln in reader.read(board).lines]
    assert texts == [squash(t) for t in ("Monday maths", "Tuesday music", "Wednesday art", "bring a ruler",
                                         "bring a flute", "bring paint")], texts
