"""Inputs people send every day, each pinned to its right answer: one rendered line (known text)
stored the ways cameras, phones and scanners store it, decoded and read by the default model.
These kinds once read right without a test; a change to decoding must keep every one."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from edge_ocr.config import Config
from edge_ocr.imageio import decode_image, to_bgr8
from edge_ocr.page.build import build_recognizer
from edge_ocr.recognition.recognizer import Recognizer
from tests.render import LATIN, font

TEXT = "Homework due Friday"


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    return build_recognizer(Config().recognizer)


def _line(size: int = 40) -> Image.Image:
    """Dark text on light paper, RGB, about ``size`` px font size."""
    f = font(LATIN, size)
    im = Image.new("RGB", (int(f.getlength(TEXT)) + size, int(size * 1.6)), (235, 235, 228))
    ImageDraw.Draw(im).text((size // 2, size // 5), TEXT, font=f, fill=(25, 25, 30))
    return im


def _encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _read(rec: Recognizer, image: np.ndarray) -> str:
    return rec.recognize([image])[0].text


# EXIF Orientation: the pixels are stored turned and the tag says how to turn them back
# (2..8 per the TIFF/EXIF spec; Pillow's transpose is the inverse of what the tag undoes).
EXIF_TURNS = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("tag", sorted(EXIF_TURNS))
def test_a_phone_photo_turned_by_its_exif_tag_reads_upright(rec: Recognizer, tag: int) -> None:
    stored = _line().transpose(EXIF_TURNS[tag])
    exif = Image.Exif()
    exif[0x0112] = tag
    image = decode_image(_encoded(stored, "JPEG", quality=92, exif=exif.tobytes()))
    assert image.shape[1] > image.shape[0], "the tag was applied: the line is horizontal again"
    assert _read(rec, image) == TEXT


@pytest.mark.parametrize("kind", ["1-bit PNG", "CMYK JPEG", "16-bit grey PNG", "8-bit palette PNG", "grey JPEG"])
def test_scanner_and_print_formats_read_the_text(rec: Recognizer, kind: str) -> None:
    im = _line()
    if kind == "1-bit PNG":
        data = _encoded(im.convert("L").point(lambda v: 255 if v > 128 else 0).convert("1"), "PNG")
    elif kind == "CMYK JPEG":
        data = _encoded(im.convert("CMYK"), "JPEG", quality=92)
    elif kind == "16-bit grey PNG":
        grey16 = (np.asarray(im.convert("L")).astype(np.uint16) * 257)
        data = cv2.imencode(".png", grey16)[1].tobytes()
    elif kind == "8-bit palette PNG":
        data = _encoded(im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")
    else:
        data = _encoded(im.convert("L"), "JPEG", quality=85)
    assert _read(rec, decode_image(data)) == TEXT


def test_a_tiny_line_reads(rec: Recognizer) -> None:
    """A line of 12 px characters (a screenshot's small print) is read, not dropped."""
    assert _read(rec, cv2.cvtColor(np.asarray(_line(14)), cv2.COLOR_RGB2BGR)) == TEXT


@pytest.mark.parametrize("layout", ["XRGB8888 padding 0", "XRGB8888 padding 255", "BGRA opaque"])
def test_four_channel_camera_frames_read_whatever_their_padding_byte(rec: Recognizer, layout: str) -> None:
    """picamera2's XRGB8888/XBGR8888 hand over 4 channels whose 4th is padding, often 0: it is not
    transparency, and the frame must not come out blank."""
    bgr = cv2.cvtColor(np.asarray(_line()), cv2.COLOR_RGB2BGR)
    pad = 0 if layout.endswith("padding 0") else 255
    frame = np.dstack([bgr, np.full(bgr.shape[:2], pad, np.uint8)])
    image = to_bgr8(frame)
    assert np.abs(image.astype(int) - bgr.astype(int)).max() <= 1, "the colour channels pass unchanged"
    assert _read(rec, image) == TEXT
