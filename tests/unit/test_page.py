"""Whole frames through the real pipeline and the shipped model."""

import json

import cv2
import numpy as np
import pytest

from edge_ocr.imageio import ImageError, read_image
from edge_ocr.page.diff import reconcile
from edge_ocr.page.reader import PageReader
from edge_ocr.recognition.preprocess import stretch_contrast
from edge_ocr.recognition.recognizer import Recognizer
from tests.conftest import MODEL
from toolchain.scoring import score


@pytest.fixture(scope="module")
def reader() -> PageReader:
    return PageReader(Recognizer(MODEL))


def _board(samples, n: int = 4) -> tuple[np.ndarray, list[str]]:
    """A white board holding ``n`` sample lines, placed in a darker frame under a perspective."""
    lines = [(read_image(p), t) for p, t in samples[:n]]
    h = 64
    # Whiten each sample's paper so only its ink lands on the board (no pasted grey patches).
    inks = [cv2.cvtColor(stretch_contrast(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)), cv2.COLOR_GRAY2BGR) for im, _ in lines]
    scaled = [cv2.resize(im, (round(im.shape[1] * h / im.shape[0]), h)) for im in inks]
    bw = max(s.shape[1] for s in scaled) + 160
    board = np.full((len(scaled) * 2 * h + 80, bw, 3), 255, np.uint8)
    for i, s in enumerate(scaled):
        y = 40 + i * 2 * h
        board[y : y + h, 80 : 80 + s.shape[1]] = cv2.min(board[y : y + h, 80 : 80 + s.shape[1]], s)
    bh = board.shape[0]
    frame = np.full((bh + 300, bw + 400, 3), 70, np.uint8)
    src = np.float32([[0, 0], [bw, 0], [bw, bh], [0, bh]])
    dst = np.float32([[200, 160], [bw + 190, 140], [bw + 210, bh + 150], [190, bh + 130]])
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(board, m, (frame.shape[1], frame.shape[0]))
    inside = cv2.warpPerspective(np.full(board.shape[:2], 255, np.uint8), m, (frame.shape[1], frame.shape[0])) > 0
    frame[inside] = warped[inside]
    return frame, [t for _, t in lines]


def test_page_finds_lines_in_order_and_reads_them(reader: PageReader, samples) -> None:
    frame, labels = _board(samples)
    page = reader.read(frame)
    assert page.surface_detected
    assert len(page.lines) == len(labels)
    page_cer = score(labels, [ln.text for ln in page.lines])["cer"]
    crops = [read_image(p) for p, _ in samples[:4]]
    line_cer = score(labels, [r.text for r in reader.recognizer.recognize(crops)])["cer"]
    assert page_cer <= line_cer + 0.10, (page_cer, line_cer)
    ys = [np.mean([pt[1] for pt in ln.box]) for ln in page.lines]
    assert ys == sorted(ys)
    doc = json.loads(page.to_json())
    assert set(doc["timings_ms"]) >= {"surface", "clean", "split", "recognise", "total"}
    assert doc["model"] == "ppocrv6_small_int8" and len(doc["lines"][0]["box"]) == 4


def test_a_large_still_reads_like_a_small_frame(reader: PageReader, samples) -> None:
    """Analysis runs on a bounded surface; crops still come from the full-resolution frame."""
    frame, labels = _board(samples)
    big = cv2.resize(frame, None, fx=3.0, fy=3.0, interpolation=cv2.INTER_CUBIC)
    small_page, big_page = reader.read(frame), PageReader(reader.recognizer).read(big)
    assert len(big_page.lines) == len(labels)
    big_cer = score(labels, [ln.text for ln in big_page.lines])["cer"]
    assert big_cer <= score(labels, [ln.text for ln in small_page.lines])["cer"] + 0.05
    # Boxes are in the big frame's pixels.
    assert np.allclose(np.array(big_page.lines[0].box) / 3, np.array(small_page.lines[0].box), atol=12)


def test_a_jittering_board_keeps_its_quad_and_its_text(samples) -> None:
    frame, _ = _board(samples)
    reader = PageReader(Recognizer(MODEL))
    first = reader.read(frame)
    shifted = np.roll(frame, 2, axis=1)  # the detector sees the board 2 px to the right
    second = reader.read(shifted)
    assert second.surface == first.surface
    assert not any(ln.cached for ln in second.lines), "moved pixels are read again, never assumed"
    assert reconcile(first.lines, second.lines)[1] == []


def test_the_same_pixels_come_from_the_cache_and_noise_is_read_again(reader: PageReader, samples) -> None:
    frame, _ = _board(samples)
    first = reader.read(frame)
    again = reader.read(frame.copy())
    assert all(ln.cached for ln in again.lines) and [ln.text for ln in again.lines] == [ln.text for ln in first.lines]
    hits = reader.cache.hits
    noisy = np.clip(frame.astype(np.int16) + np.random.default_rng(0).integers(-2, 3, frame.shape), 0, 255)
    page = reader.read(noisy.astype(np.uint8))
    assert reader.cache.hits == hits and not any(ln.cached for ln in page.lines)
    assert reconcile(first.lines, page.lines)[1] == []


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((600, 800, 4), np.uint8) + 200,
        (np.random.default_rng(1).random((480, 640)) * 65535).astype(np.uint16),
        np.zeros((6000, 8000, 3), np.uint8) + 90,
    ],
    ids=["1x1", "rgba", "uint16", "8000x6000"],
)
def test_bad_frames_give_an_error_or_a_result(reader: PageReader, frame: np.ndarray) -> None:
    try:
        page = reader.read(frame)
    except ImageError as exc:
        assert "too small" in str(exc)
        return
    assert isinstance(page.lines, list)


def test_empty_array_is_a_clear_error(reader: PageReader) -> None:
    with pytest.raises(ImageError, match="not an image array"):
        reader.read(np.zeros((0, 0, 3), np.uint8))
