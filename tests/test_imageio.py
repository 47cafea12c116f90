import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_ocr.imageio import ImageError, decode_image, header_size, read_image


def _png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_real_png_and_jpeg_decode_and_headers_agree() -> None:
    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    for ext in (".png", ".jpg"):
        _, buf = cv2.imencode(ext, img)
        data = buf.tobytes()
        assert header_size(data) == (53, 37)
        assert decode_image(data).shape == (37, 53, 3)


def test_decompression_bomb_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="too large"):
        decode_image(_png(100_000, 100_000))


def test_truncated_empty_and_non_images(tmp_path: Path) -> None:
    _, buf = cv2.imencode(".png", np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(ImageError, match="not a decodable image"):
        decode_image(buf.tobytes()[:40])
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageError, match="not a decodable image"):
        decode_image(b"%PDF-1.4 hello")
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a directory"):
        read_image(tmp_path)
