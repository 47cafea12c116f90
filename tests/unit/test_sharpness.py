"""Frames nobody can read (issue 28, item 8): motion blur is measured on the text and a blurred
frame's reading is flagged and never confident. The right values are the blur put in (a linear
motion kernel of known length on a rendered board of known text) and sharp real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_ocr.config import Config
from edge_ocr.imageio import read_image
from edge_ocr.page.build import build_reader
from edge_ocr.page.diff import comparable
from edge_ocr.page.reader import BLURRED_CONFIDENCE, PageReader
from edge_ocr.paths import SAMPLE_VIDEO
from edge_ocr.vision.clean import ink_gray
from edge_ocr.vision.sharpness import text_sharpness
from tests.conftest import REAL_BOARD
from tests.render import CLASS_NOTES, class_board, in_frame, motion_blur

MIN_SHARPNESS = Config().vision.min_sharpness


@pytest.fixture(scope="module")
def reader() -> PageReader:
    return build_reader(Config())


def test_the_sharp_rendered_board_is_read_and_not_flagged(reader: PageReader) -> None:
    page = reader.read(class_board())
    assert not page.blurred and page.sharpness > MIN_SHARPNESS + 0.1
    assert [comparable(ln.text) for ln in page.lines] == [comparable(t) for t in CLASS_NOTES]
    assert min(ln.confidence for ln in page.lines) > 0.9


@pytest.mark.parametrize(("length", "angle"), [(9, 0), (9, 45), (9, 90), (15, 0), (15, 30), (15, 90)])
def test_motion_blur_of_a_third_of_a_line_is_flagged_and_never_confident(reader: PageReader, length: int,
                                                                         angle: float) -> None:
    """9 px on 30-px lines: a person still reads it, the model half does; 15 px: garbage. Either
    way the page says blurred, and no line or character claims more than BLURRED_CONFIDENCE."""
    page = reader.read(motion_blur(class_board(), length, angle))
    assert page.blurred and page.sharpness < MIN_SHARPNESS, page.sharpness
    assert all(ln.confidence <= BLURRED_CONFIDENCE and max(ln.char_confidences, default=0) <= BLURRED_CONFIDENCE
               for ln in page.lines)
    doc = page.to_dict()
    assert doc["blurred"] is True and doc["sharpness"] == round(page.sharpness, 4)


def _sample_frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(SAMPLE_VIDEO))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 40)  # the board written full
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


@pytest.mark.parametrize("photo", ["samples/board.mp4", "dev set wbpg_d07.jpg"])
def test_sharp_photos_are_not_flagged(reader: PageReader, photo: str) -> None:
    if photo.startswith("dev"):
        if not REAL_BOARD.exists():
            pytest.skip("the dev set's real board photo is not here")
        image = read_image(REAL_BOARD)  # a real phone photo of a whiteboard: sharpness 0.57
    else:
        image = _sample_frame()
    page = reader.read(image)
    assert page.lines and not page.blurred and page.sharpness >= MIN_SHARPNESS, page.sharpness
    assert max(ln.confidence for ln in page.lines) > BLURRED_CONFIDENCE


def test_sharpness_ignores_exposure_and_scale_but_not_blur(reader: PageReader) -> None:
    """A ratio of slopes on the frame scaled to its lines: the same smear reads the same darker,
    with less contrast, or photographed at twice the resolution (where it is twice as long)."""
    board = class_board()
    boxes = [np.asarray(ln.box, np.float32) for ln in reader.read(board).lines]
    smeared = ink_gray(motion_blur(board, 9, 30))
    base = text_sharpness(smeared, boxes)
    dim = cv2.convertScaleAbs(smeared, alpha=0.5, beta=40)  # half the contrast, grey paper
    assert text_sharpness(dim, boxes) == pytest.approx(base, abs=0.03)
    big = ink_gray(motion_blur(cv2.resize(board, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC), 18, 30))
    assert text_sharpness(big, [b * 2 for b in boxes]) == pytest.approx(base, abs=0.05)
    assert text_sharpness(ink_gray(board), boxes) - base > 0.2


@pytest.mark.parametrize("length", [0, 15])
def test_a_blank_board_is_not_judged_blurred(reader: PageReader, length: int) -> None:
    """Nothing to judge is not blurred, however soft its edges: an erased board must still be
    published empty."""
    blank = motion_blur(in_frame(np.full((500, 900, 3), 240, np.uint8)), length, 30)
    page = reader.read(blank)
    assert not page.lines and page.sharpness is None and not page.blurred
    assert text_sharpness(ink_gray(blank), []) is None
