"""Scale-aware detection (issue 27): text of any size, in frames of any shape, is found at a
scale that suits it. Every right value is the rendered text and where it was drawn."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from edge_ocr.config import Config
from edge_ocr.page.build import build_reader
from edge_ocr.page.reader import PageReader
from edge_ocr.vision.db import TextBox
from edge_ocr.vision.detector import ink_rows
from tests import render
from toolchain.bench.pages import line_recall
from toolchain.scoring import page_errors


@pytest.fixture(scope="module")
def reader() -> PageReader:
    cfg = Config()
    cfg.vision.small_text = cfg.vision.small_text or 12.0  # the scale-aware pass, whatever the default
    return build_reader(cfg.validate())


def canvas(h: int, w: int, lines: list[tuple[str, int, int, int]], grey: int = 255) -> np.ndarray:
    """A (h, w) BGR image holding each (text, x, y, font size) in DejaVu Sans, dark ink."""
    im = Image.new("RGB", (w, h), (grey, grey, grey))
    draw = ImageDraw.Draw(im)
    for text, x, y, size in lines:
        draw.text((x, y), text, font=render.font(render.LATIN, size), fill=(20, 20, 20))
    return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)


def read(reader: PageReader, image: np.ndarray) -> list[str]:
    reader.reset()
    return [ln.text for ln in reader.read(image).lines]


def assert_read(truth: list[str], got: list[str], cer: float = 0.05) -> None:
    found, total = line_recall(truth, got)
    errors, chars = page_errors(truth, got)
    assert found == total, f"{total - found} of {total} lines not found: {got}"
    assert errors / chars <= cer, f"CER {errors / chars:.3f}: {got}"


def test_a_tall_screenshot_reads_every_line(reader: PageReader) -> None:
    """1080×9040 (a phone's scrolled screenshot): shrunk to 800 px, its 22-px text is 2 px tall
    and the one-pass detector returned nothing."""
    truth = [f"Message {i}: meet at room {100 + i} today" for i in range(60)]
    image = canvas(9040, 1080, [(t, 40, 60 + i * 148, 22) for i, t in enumerate(truth)])
    assert_read(truth, read(reader, image))


def test_a_panorama_reads_every_line(reader: PageReader) -> None:
    truth = [f"Section {i} of the long panorama banner" for i in range(10)]
    image = canvas(1300, 9000, [(t, 100 + (i % 5) * 1750, 200 + (i // 5) * 600, 22) for i, t in enumerate(truth)])
    assert_read(truth, read(reader, image))


def test_small_writing_in_a_wide_frame_is_found(reader: PageReader) -> None:
    """Lines 13 px tall (capitals 10 px) in a 1920×1080 board, beside one large heading: the
    coarse pass sees them 5 px tall."""
    small = ["Homework due Friday", "Read chapter seven", "Bring your calculator", "Quiz on matrices"]
    lines = [("Linear Algebra", 200, 80, 90)] + [(t, 1200, 600 + i * 40, 14) for i, t in enumerate(small)]
    got = read(reader, canvas(1080, 1920, lines, grey=235))
    assert_read(["Linear Algebra", *small], got)


def test_large_letters_are_not_cut_into_pieces(reader: PageReader) -> None:
    """A word with 160-px capitals beside small writing: the fine pass, run for the small
    writing, leaves the large word as the coarse pass found it, one line."""
    lines = [("BIG WORD", 150, 200, 220), ("a note in small writing", 1300, 900, 16)]
    got = read(reader, canvas(1080, 1920, lines, grey=235))
    assert_read(["BIG WORD", "a note in small writing"], got)
    assert sum("BIG" in t or "WORD" in t for t in got) == 1, got


def test_a_crop_is_detected_in_its_own_pixels(reader: PageReader) -> None:
    """The daemon re-detects changed regions: a crop's boxes are in the crop's pixels, around
    where the text was drawn, whatever the crop's size."""
    image = canvas(1080, 1920, [("changed cell text", 700, 500, 16)], grey=235)
    crop = image[450:600, 600:1100]
    boxes = reader.detector.detect(crop)
    assert boxes, "no text found in the crop"
    quads = np.concatenate([b.quad for b in boxes])
    x0, y0 = quads.min(axis=0)
    x1, y1 = quads.max(axis=0)
    width = render.font(render.LATIN, 16).getlength("changed cell text")
    assert abs(x0 - 100) < 12 and abs(y0 - 50) < 12, (x0, y0)
    assert abs(x1 - (100 + width)) < 16 and y1 < 50 + 40, (x1, y1)


def test_the_fine_pass_keeps_to_its_tile_budget(reader: PageReader) -> None:
    """Nothing found in a blank 4K frame: the fine pass looks everywhere, at no more tiles than
    the budget allows for that area, and finds nothing."""
    det = reader.detector
    image = np.full((2160, 3840, 3), 240, np.uint8)
    assert det.detect(image) == []
    budget = int(np.ceil(det.max_tiles * 2160 * 3840 / (1920 * 1080)))
    assert 0 < det.last_ms["fine_tiles"] <= budget


def matrix(rows: list[list[str]], x: int, y: int, size: int, step: int, pitch: int) -> tuple[list, list]:
    """Entries of a bracketed matrix as canvas lines (each entry right-aligned on its column,
    ``step`` px apart, rows ``pitch`` px apart), and its two brackets as polylines."""
    font = render.font(render.LATIN, size)
    cells = [(e, x + (j + 1) * step - round(font.getlength(e)), y + i * pitch, size)
             for i, row in enumerate(rows) for j, e in enumerate(row)]
    top, bottom, right = y - 6, y + (len(rows) - 1) * pitch + size + 10, x + len(rows[0]) * step + 20
    brackets = [[(x + 12, top), (x, top), (x, bottom), (x + 12, bottom)],
                [(right - 12, top), (right, top), (right, bottom), (right - 12, bottom)]]
    return cells, brackets


def test_the_rows_of_a_blob_are_parted_where_its_ink_parts() -> None:
    """A handwritten matrix is one blob to the detector at every scale (lecture_17: its entries
    stand apart, its brackets join the rows) and was read as garbage or dropped. Given that
    blob's box, :func:`ink_rows` returns one box per row, each around that row and no other;
    a large word with tall capitals, boxed alone, is one line and is not parted."""
    rows = [["1", "4", "8", "-3", "-7"], ["-1", "2", "7", "3", "4"], ["-2", "2", "9", "5", "5"],
            ["3", "6", "9", "-5", "-2"]]
    cells, brackets = matrix(rows, 900, 300, 28, 64, 48)
    image = canvas(1080, 1920, cells + [("Tidy Lighthouse", 200, 600, 120)], grey=235)
    for b in brackets:
        cv2.polylines(image, [np.int32(b)], False, (20, 20, 20), 3)
    blob = TextBox(np.float32([[880, 280], [1260, 280], [1260, 480], [880, 480]]), 0.7)
    parted = ink_rows(image, blob, line_height=28)
    assert len(parted) == len(rows), [b.quad.tolist() for b in parted]
    for i, box in enumerate(sorted(parted, key=lambda b: b.quad[:, 1].mean())):
        top, bottom = box.quad[:, 1].min(), box.quad[:, 1].max()
        ink_top = 300 + i * 48 + 6  # DejaVu's digits start about 6 px below the drawing origin
        assert top <= ink_top and bottom >= ink_top + 20, (i, top, bottom)
        assert bottom < ink_top + 48 and top > ink_top - 28, (i, top, bottom)
    word = TextBox(np.float32([[180, 600], [1150, 600], [1150, 760], [180, 760]]), 0.7)
    assert ink_rows(image, word, line_height=28) == []
