"""Image decoding with clear errors: corrupt, empty, non-image and oversized inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 50_000_000  # a 12 MP still is 12e6; anything far above is a decompression bomb


class ImageError(ValueError):
    """An input could not be turned into an image; the message says why."""


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding, so a decompression bomb
    is refused before it is allocated; None for other formats."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            i += 2 + length
    return None


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Bytes of a JPEG/PNG/BMP/WebP/TIFF → BGR uint8 array."""
    if not data:
        raise ImageError(f"{name}: empty file")
    size = header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"{name}: image too large ({size[0]}×{size[1]} pixels, limit {max_pixels})")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV asserts on some impossible headers (found by tests/test_fuzz.py)
        raise ImageError(f"{name}: not a decodable image ({str(exc).strip().splitlines()[-1][:120]})") from None
    if image is None:
        raise ImageError(f"{name}: not a decodable image (corrupt, truncated or unsupported format)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise ImageError(f"{name}: image too large ({image.shape[1]}×{image.shape[0]} pixels, limit {max_pixels})")
    return image


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read and decode an image file, with an error that names the file."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror}") from exc
    return decode_image(data, str(path), max_pixels)


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any camera or file frame (gray, BGR, BGRA; uint8, uint16 or float 0..1) → BGR uint8."""
    if not isinstance(image, np.ndarray) or image.size == 0 or image.ndim not in (2, 3):
        raise ImageError(f"not an image array: {getattr(image, 'shape', type(image).__name__)}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)  # a sensor's NaNs are black, not an error
        scale = 255.0 if float(image.max()) <= 1.0 else 1.0
        image = np.clip(image * scale, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if channels == 3:
        return image
    raise ImageError(f"unsupported number of channels: {channels}")
