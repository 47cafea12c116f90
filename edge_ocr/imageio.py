"""Image decoding with clear errors: corrupt, empty, non-image, oversized and unsupported
inputs (named by their format, with what to do); transparency composited onto white."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 50_000_000  # a 12 MP still is 12e6; anything far above is a decompression bomb


class ImageError(ValueError):
    """An input could not be turned into an image; the message says why."""


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")

# Formats OpenCV cannot decode, by their signature, with what to do about them.
CONVERT = "convert it to JPEG or PNG first"
UNSUPPORTED = {
    "HEIC/HEIF": ("an iPhone photo? Settings → Camera → Formats → Most Compatible takes JPEGs; "
                  f"or {CONVERT} (heif-convert from Debian's libheif-examples)"),
    "AVIF": f"{CONVERT} (heif-convert from Debian's libheif-examples, or avifdec)",
    "JPEG XL": f"{CONVERT} (djxl from Debian's libjxl-tools)",
    "PDF": "render its pages to PNG first (pdftoppm -png from Debian's poppler-utils)",
    "SVG": f"{CONVERT} (rsvg-convert from Debian's librsvg2-bin)",
    "Photoshop PSD": CONVERT,
}
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def sniff_format(data: bytes) -> str | None:
    """The format named by the file's signature (those OpenCV reads and the :data:`UNSUPPORTED`),
    or None."""
    if data[:6] in GIF_SIGNATURES:
        return "GIF"
    if data[:8] == PNG_SIGNATURE:
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] in TIFF_SIGNATURES:
        return "TIFF"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in HEIF_BRANDS:
            return "HEIC/HEIF"
    if data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "JPEG XL"
    if data[:5] == b"%PDF-":
        return "PDF"
    if data[:4] == b"8BPS":
        return "Photoshop PSD"
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:1024].lower()):
        return "SVG"
    return None



def png_header_chunks(data: bytes) -> dict[bytes, bytes]:
    """A PNG's chunks before its image data ({type: body}), e.g. IHDR, PLTE, tRNS."""
    chunks, i = {}, len(PNG_SIGNATURE)
    while i + 8 <= len(data):
        length, kind = int.from_bytes(data[i : i + 4], "big"), data[i + 4 : i + 8]
        if kind in (b"IDAT", b"IEND"):
            break
        chunks[kind] = data[i + 8 : i + 8 + length]
        i += 12 + length
    return chunks


def has_alpha(data: bytes, fmt: str | None) -> bool:
    """Whether an image of format ``fmt`` (:func:`sniff_format`) may carry transparency: a PNG
    with an alpha channel or a tRNS chunk, a WebP with alpha, any TIFF (whose extra samples are
    only known once decoded)."""
    if fmt == "PNG":
        return (len(data) > 25 and data[25] in (4, 6)) or b"tRNS" in png_header_chunks(data)
    if fmt == "WebP":
        return data[12:16] == b"VP8L" or (data[12:16] == b"VP8X" and len(data) > 20 and bool(data[20] & 0x10))
    return fmt == "TIFF"


def png_colour_key(data: bytes) -> tuple[int, ...] | None:
    """The transparent sample value of a gray or RGB PNG (its tRNS chunk), as (gray,) or
    (r, g, b); None when there is none. OpenCV decodes such a PNG without an alpha channel."""
    if data[:8] != PNG_SIGNATURE or len(data) < 26 or data[25] not in (0, 2):
        return None
    body, n = png_header_chunks(data).get(b"tRNS", b""), 1 if data[25] == 0 else 3
    return tuple(int.from_bytes(body[2 * k : 2 * k + 2], "big") for k in range(n)) if len(body) >= 2 * n else None


def on_white(image: np.ndarray) -> np.ndarray:
    """Gray+alpha (H×W×2) or BGRA (H×W×4), uint8, composited onto white → BGR uint8: glyphs that
    live only in the alpha channel (black under transparency, or alpha-only text) stay visible."""
    colour = image[:, :, :1] if image.shape[2] == 2 else image[:, :, :3]
    alpha = image[:, :, -1:].astype(np.float32) / 255.0
    out = colour.astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2BGR) if out.shape[2] == 1 else out


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF or JPEG header without decoding, so a decompression bomb
    is refused before it is allocated; None for other formats."""
    if data[:8] == PNG_SIGNATURE and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in GIF_SIGNATURES and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
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


def first_gif_frame(data: bytes, name: str) -> np.ndarray:
    """A GIF's first frame (BGR) through OpenCV's video reader: the image codecs of the
    opencv-python wheels have no GIF decoder, its FFmpeg does. Needs a file, so a temporary one."""
    fd, path = tempfile.mkstemp(suffix=".gif")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        ok, frame = cap.read()
        cap.release()
    finally:
        os.unlink(path)
    if not ok or frame is None:
        raise ImageError(f"{name}: a GIF this OpenCV cannot decode (corrupt, or no FFmpeg); {CONVERT}")
    return frame


def _decode(data: bytes, flags: int, name: str, what: str) -> np.ndarray:
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:  # OpenCV asserts on some impossible headers (found by tests/unit/test_fuzz.py)
        raise ImageError(f"{name}: not a decodable {what} ({str(exc).strip().splitlines()[-1][:120]})") from None
    if image is None:
        raise ImageError(f"{name}: not a decodable {what} (corrupt, truncated or an unsupported format; "
                         "JPEG, PNG, BMP, WebP, TIFF and GIF are read)")
    return image


def without_colour_key(image: np.ndarray, key: tuple[int, ...] | None) -> np.ndarray:
    """Pixels equal to a PNG's transparent colour key (gray, or RGB; OpenCV's order is BGR)
    made white, as over a white background."""
    if key is None or not (image.ndim == 2 or image.shape[2] == 3):
        return image
    transparent = image == key[0] if image.ndim == 2 else np.all(image == np.asarray(key[::-1]), axis=2)
    out = image.copy()
    out[transparent] = np.iinfo(image.dtype).max
    return out


def decode_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Bytes of a JPEG/PNG/BMP/WebP/TIFF (or a GIF's first frame) → BGR uint8 array.

    EXIF orientation is applied; transparency (PNG, WebP, TIFF) is composited onto white. Formats
    OpenCV cannot read (HEIC, AVIF, PDF, SVG, ...) are refused by name, with what to do.
    Raises ``ImageError`` with the reason.
    """
    if not data:
        raise ImageError(f"{name}: empty file")
    fmt = sniff_format(data)
    if fmt in UNSUPPORTED:
        raise ImageError(f"{name}: {fmt} images are not supported; {UNSUPPORTED[fmt]}")
    size = header_size(data)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"{name}: image too large ({size[0]}×{size[1]} pixels, limit {max_pixels})")
    what = f"{fmt} image" if fmt else "image"
    if fmt == "GIF":
        image = first_gif_frame(data, name)
    elif has_alpha(data, fmt):
        image = _decode(data, cv2.IMREAD_UNCHANGED, name, what)
        if fmt == "TIFF" and not (image.ndim == 3 and image.shape[2] in (2, 4)):
            image = _decode(data, cv2.IMREAD_COLOR, name, what)  # no alpha after all: with EXIF orientation
        else:
            image = to_bgr8(without_colour_key(image, png_colour_key(data)), "gray")
    else:
        image = _decode(data, cv2.IMREAD_COLOR, name, what)
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


# Planar and semi-planar 4:2:0 camera layouts, 2-D uint8 of (H·3/2)×W, and their OpenCV conversions.
YUV420 = {"yuv420": cv2.COLOR_YUV2BGR_I420, "yv12": cv2.COLOR_YUV2BGR_YV12, "nv12": cv2.COLOR_YUV2BGR_NV12,
          "nv21": cv2.COLOR_YUV2BGR_NV21}
LAYOUTS = ("auto", "gray", *YUV420)


def looks_like_yuv420(image: np.ndarray) -> bool:
    """Whether a 2-D uint8 array is probably an I420 frame: its last third (the U and V planes)
    sits near 128 with little spread, unlike the picture above it."""
    rows, cols = image.shape
    if image.dtype != np.uint8 or rows % 3 or cols % 2 or rows < 12:
        return False
    y, chroma = image[: rows * 2 // 3], image[rows * 2 // 3 :]
    c_mean, c_std = float(chroma.mean()), float(chroma.std())
    return abs(c_mean - 128) < 16 and c_std < 16 and (abs(float(y.mean()) - c_mean) > 32 or float(y.std()) > 2 * c_std)


def to_bgr8(image: np.ndarray, layout: str = "auto") -> np.ndarray:
    """Any camera or file frame → BGR uint8 (H×W×3).

    ``layout="auto"`` accepts: gray H×W or H×W×1, gray+alpha H×W×2, BGR H×W×3, BGRA H×W×4
    (alpha composited onto white), each uint8, uint16 or float (0..1 or 0..255).
    ``"yuv420"``: a planar I420 frame, 2-D uint8 of (H·3/2)×W (picamera2's "YUV420", its lores
    stream's default); ``"yv12"``, ``"nv12"``, ``"nv21"``: the other 4:2:0 layouts of that shape
    (V before U; interleaved UV; interleaved VU). In ``"auto"`` such a frame is refused with
    ``ImageError`` rather than read as a gray picture whose chroma planes look like lines;
    ``"gray"`` reads any 2-D array as gray.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not isinstance(image, np.ndarray) or image.size == 0 or image.ndim not in (2, 3):
        raise ImageError(f"not an image array: {getattr(image, 'shape', type(image).__name__)}")
    if layout in YUV420:
        rows, cols = image.shape[:2]
        if image.ndim != 2 or image.dtype != np.uint8 or rows % 3 or cols % 2 or (rows * 2 // 3) % 2:
            raise ImageError(f"not a {layout} frame: expected 2-D uint8 of (H·3/2)×W with H and W even, "
                             f"got {image.shape} {image.dtype}")
        return cv2.cvtColor(image, YUV420[layout])
    if layout == "auto" and image.ndim == 2 and looks_like_yuv420(image):
        raise ImageError(f"a {image.shape[1]}×{image.shape[0]} array whose last third looks like YUV420 chroma "
                         "planes: pass layout='yuv420' for an I420 frame ('yv12', 'nv12' or 'nv21' for those), or "
                         "layout='gray' for a gray image")
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
    if channels in (2, 4):
        return on_white(image)
    if channels == 3:
        return image
    raise ImageError(f"unsupported number of channels: {channels}")
