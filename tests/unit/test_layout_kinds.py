"""Layout kinds of issue 27 on rendered inputs whose right answer is known: a printed table reads
row by row (who scored what stays together), characters in exercise-book grid cells (田字格) are
all read to the last column, a drawing with no text gives no text and says so, and text beside
a drawing stays."""

from __future__ import annotations

import json

import cv2
import jsonschema
import numpy as np
import pytest

from edge_ocr.config import Config
from edge_ocr.page.build import build_reader
from edge_ocr.page.diff import comparable
from edge_ocr.page.reader import PageReader
from edge_ocr.page.result import PageResult
from edge_ocr.paths import ROOT
from edge_ocr.vision import figures
from tests import render
from toolchain.scoring import edit_distance, page_cer, squash

PAGE_SCHEMA = json.loads((ROOT / "schemas" / "page.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def reader() -> PageReader:
    return build_reader(Config())


def read(reader: PageReader, image: np.ndarray) -> PageResult:
    reader.reset()
    return reader.read(image)


SCORES = [["姓名", "语文", "数学", "英语"], ["张三", "88", "92", "75"], ["李四", "81", "67", "90"],
          ["王五", "73", "85", "94"], ["赵六", "99", "70", "62"]]
NAMES = [["Name", "Score"], ["Alice", "88"], ["Bob", "92"], ["Carol", "75"], ["Dave", "81"]]
PRICES = [["Item", "Qty", "Price"], ["pens", "12", "3.50"], ["paper", "5", "8.20"], ["glue", "2", "1.75"]]


@pytest.mark.parametrize(("rows", "ruled", "gap"), [(SCORES, True, 0), (NAMES, True, 0), (PRICES, True, 0),
                                                    (SCORES, False, 40), (PRICES, False, 60)],
                         ids=["scores-ruled", "names-ruled", "prices-ruled", "scores-open", "prices-open"])
def test_a_table_reads_row_by_row(reader: PageReader, rows: list[list[str]], ruled: bool, gap: int) -> None:
    """Every cell read, in row order, cells of a row left to right; no line runs down a column
    (the field fault: a column of scores read as one vertical line, emitted right to left)."""
    page = read(reader, render.table(rows, ruled=ruled, gap=gap))
    assert not any(ln.vertical for ln in page.lines), [ln.text for ln in page.lines]
    read_text = squash("".join(ln.text for ln in page.lines))
    truth = squash("".join(c for row in rows for c in row))
    assert edit_distance(read_text, truth) <= 0.05 * len(truth), (read_text, truth)
    at = 0
    for cell in (squash(c) for row in rows for c in row):  # every cell after the one before it
        found = read_text.find(cell, at)
        assert found >= 0, (cell, read_text[at:], read_text)
        at = found + len(cell)


def test_two_columns_of_prose_are_not_a_table(reader: PageReader) -> None:
    """The table rule needs short cells: two columns of long lines side by side stay columns."""
    left = render.page(["Bring the red folder today", "Meet at the gym after school", "Read the next chapter"],
                       width=760)
    right = render.page(["Practise the flute at home", "Return the library books", "Finish the maths sheet"],
                        width=760)
    page = read(reader, np.concatenate([left, right], axis=1))
    texts = [comparable(ln.text) for ln in page.lines]
    assert texts[:3] == [comparable(t) for t in ("Bring the red folder today", "Meet at the gym after school",
                                                  "Read the next chapter")], texts


GRID_ROWS = ["我们学习写字", "天上有白云朵", "小河流水哗哗", "春天来了花开"]


@pytest.mark.parametrize("cell", [48, 64, 80, 100])
@pytest.mark.parametrize("colour", [(200, 60, 60), (60, 160, 60), (40, 40, 40)], ids=["red", "green", "black"])
def test_characters_in_grid_cells_are_all_read(reader: PageReader, cell: int, colour: tuple[int, int, int]) -> None:
    """Rows of abutting 田字格 cells, a character in every cell to the last column: every row
    read whole (the field fault: the last character outside every box; abutting rows read as
    columns, or not at all)."""
    paper = render.grid_paper(GRID_ROWS, cell, colour)
    for image in (paper, render.in_frame(paper)):
        lines = [ln.text for ln in read(reader, image).lines]
        assert len(lines) == len(GRID_ROWS) and page_cer(GRID_ROWS, lines) <= 0.05, lines
        assert [ln[-1:] for ln in lines] == [row[-1] for row in GRID_ROWS], lines


def test_a_short_last_row_of_grid_cells_is_read(reader: PageReader) -> None:
    rows = ["我们学习写字", "天上有白云朵", "小河流"]
    lines = [ln.text for ln in read(reader, render.grid_paper(rows, 64, columns=6)).lines]
    assert lines == rows, lines


@pytest.mark.parametrize("kind", ["shapes", "arrows", "axes", "numberline"])
def test_a_drawing_without_text_gives_no_text_and_says_so(reader: PageReader, kind: str) -> None:
    """Circles, triangles, boxes, arrows, axes and ticks are not letters (the field fault: a circle
    published as 'G' at 0.978, a number line as '1—————>')."""
    for image in (render.diagram(kind), render.in_frame(render.diagram(kind))):
        page = read(reader, image)
        assert [ln.text for ln in page.lines] == [] and not page.text_found
        message = {"msg_id": "0" * 32, "seq": 1, "device": "d", "ts": 0.0, "frame": {"seq": 1, "ts": 0.0},
                   **page.to_dict()}  # as the daemon publishes it
        jsonschema.validate(message, PAGE_SCHEMA)
        assert message["text_found"] is False


def test_underlined_words_and_words_joined_by_arrows_stay(reader: PageReader) -> None:
    """A long straight stroke alone is a diagram's edge, not text (a box's edge read as '一' at
    0.92), but an underline under a word, or an arrow between two words, is not alone: the words
    are read."""
    lines = ["Homework due Friday", "Read chapter four", "input    output"]
    size, spacing, margin = 40, 1.8, 80
    board = render.page(lines, size=size, spacing=spacing, margin=margin)
    for i in range(2):  # underlined in a 5-px marker stroke, as on a board
        y = int(margin + i * size * spacing + size * 1.25)
        cv2.line(board, (margin, y), (board.shape[1] - margin - 40, y), (20, 20, 20), 5)
    y = int(margin + 2 * size * spacing + size * 0.6)
    cv2.arrowedLine(board, (margin + 120, y), (margin + 230, y), (20, 20, 20), 5, tipLength=0.15)
    texts = [comparable(ln.text) for ln in read(reader, board).lines]
    assert texts[:2] == [comparable(t) for t in lines[:2]], texts
    assert "input" in "".join(texts) and "output" in "".join(texts), texts


def test_text_beside_a_drawing_stays(reader: PageReader) -> None:
    """A board with a drawing on the left and notes on the right: the notes are read, the drawing
    is not."""
    notes = ["Area of a circle", "A = pi r squared", "r = 3 cm"]
    board = np.full((800, 1800, 3), 255, np.uint8)
    board[:, :1200] = render.diagram("shapes")[:, :1200]
    text = render.page(notes, width=600)
    board[100 : 100 + text.shape[0], 1200:] = text[:, :600]
    page = read(reader, board)
    assert page.text_found and page_cer(notes, [ln.text for ln in page.lines]) <= 0.05, [ln.text for ln in page.lines]


def test_a_circle_is_a_figure_and_a_letter_o_in_a_word_is_not() -> None:
    """The figure test on its own: a thin large ring is a drawing; the same ring with a word
    beside it is not; a line of printed text is not."""
    ring = np.full((300, 300), 255, np.uint8)
    cv2.circle(ring, (150, 150), 120, 0, 5)
    assert figures.is_drawing(ring)
    word = render.page(["Oval Octopus"], size=60, margin=10)
    assert not figures.is_drawing(word)
    gray = cv2.cvtColor(word, cv2.COLOR_BGR2GRAY)
    beside = cv2.resize(gray, (gray.shape[1] * 300 // gray.shape[0], 300))
    assert not figures.is_drawing(np.concatenate([ring, beside], axis=1))


def test_chalk_on_a_blackboard_and_a_lone_axis() -> None:
    """Light writing on a dark board is text, not the board read as one long stroke (a chalk
    title of the dev set's blackboard was dropped so); a ruled axis with its ticks alone is a
    drawing, and so is a short reading of one long stroke with the cut ends of others."""
    chalk = 255 - cv2.cvtColor(render.page(["Espaces euclidiens"], size=48, margin=12), cv2.COLOR_BGR2GRAY)
    assert not figures.is_drawing(chalk) and not figures.is_stroke(chalk)
    axis = np.full((60, 600), 255, np.uint8)
    cv2.line(axis, (10, 30), (590, 30), 0, 4)
    for x in range(40, 600, 60):
        cv2.line(axis, (x, 22), (x, 38), 0, 3)
    assert figures.is_drawing(axis)
    edge = np.full((50, 290), 255, np.uint8)
    cv2.line(edge, (5, 25), (285, 25), 0, 5)
    cv2.line(edge, (250, 0), (262, 6), 0, 4)  # the cut end of another stroke
    assert figures.is_stroke(edge)
    one = render.page(["一"], size=48, margin=12, path=render.CJK)  # a written one: 5-12 strokes long
    assert not figures.is_stroke(cv2.cvtColor(one, cv2.COLOR_BGR2GRAY))
