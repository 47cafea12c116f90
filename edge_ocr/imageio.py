"""Image decoding with clear errors: corrupt, empty, non-image, oversized and unsupported
inputs (named by their format, with what to do); every input sized from its header before a
pixel is allocated (:mod:`edge_ocr.imageheader`), and the memory decodes hold at once bounded
across threads; every page of a multi-page TIFF; transparency composited onto a background
that keeps the text visible whatever its colour."""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_ocr import imageheader
from edge_ocr.config import ImageConfig
from edge_ocr.imageheader import PNG_SIGNATURE, Header, HeaderError, TooManyPagesError


class ImageError(ValueError):
    """An input could not be turned into an image; the message says why."""


class ImageTooLargeError(ImageError):
    """An input refused for its size (pixels, pages or the memory to decode it): HTTP 413."""


@dataclass(frozen=True)
class Limits:
    """What one input may take: pixels (all pages together), pages, and bytes of memory while
    it is decoded and held; the latter is also the budget all threads' decodes share."""

    max_pixels: int
    max_pages: int
    memory: int  # bytes

    @classmethod
    def of(cls, cfg: ImageConfig) -> Limits:
        return cls(int(cfg.max_megapixels * 1e6), cfg.max_pages, int(cfg.decode_memory_mb * 2**20))


class Budget:
    """Bytes of images held at once across threads (API requests, the folder source), from their
    decode until their reading ends: one that would pass ``capacity`` waits until others are done,
    so three large uploads at once take the memory of one or two, not three."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.used = capacity, 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, cost: int) -> Iterator[None]:
        """Hold ``cost`` bytes (waiting until they fit, or nothing else is held) until the block ends."""
        with self._cond:
            self._cond.wait_for(lambda: self.used == 0 or self.used + cost <= self.capacity)
            self.used += cost
        try:
            yield
        finally:
            with self._cond:
                self.used -= cost
                self._cond.notify_all()

    def resize(self, capacity: int) -> None:
        with self._cond:
            self.capacity = capacity
            self._cond.notify_all()


LIMITS = Limits.of(ImageConfig())
BUDGET = Budget(LIMITS.memory)


def configure(cfg: ImageConfig) -> None:
    """Set the process's limits from the ``[image]`` section of the configuration (the CLI's
    commands and the daemon's start and reload call this)."""
    global LIMITS
    LIMITS = Limits.of(cfg)
    BUDGET.resize(LIMITS.memory)


GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")

# Formats not read, by their signature, with what to do about them: OpenCV cannot decode the
# first ones; the others it could, but they are not sized from their header here (and nobody
# photographs a board in them).
CONVERT = "convert it to JPEG or PNG first"
UNSUPPORTED = {
    "HEIC/HEIF": ("an iPhone photo? Settings → Camera → Formats → Most Compatible takes JPEGs; "
                  f"or {CONVERT} (heif-convert from Debian's libheif-examples)"),
    "AVIF": f"{CONVERT} (heif-convert from Debian's libheif-examples, or avifdec)",
    "JPEG XL": f"{CONVERT} (djxl from Debian's libjxl-tools)",
    "PDF": "render its pages to PNG first (pdftoppm -png from Debian's poppler-utils)",
    "SVG": f"{CONVERT} (rsvg-convert from Debian's librsvg2-bin)",
    "Photoshop PSD": CONVERT,
    "JPEG 2000": f"{CONVERT} (opj_decompress from Debian's libopenjp2-tools)",
    "BigTIFF": f"save it as a plain TIFF, or {CONVERT}",
    "OpenEXR": CONVERT,
    "Radiance HDR": CONVERT,
    "PFM": CONVERT,
    "Sun raster": CONVERT,
}
READ = "JPEG, PNG, WebP, TIFF, BMP, GIF and PNM are read"
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def sniff_format(data: bytes) -> str | None:
    """The format named by the file's signature (those read and the :data:`UNSUPPORTED`), or None."""
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
    if data[:4] in (b"II+\x00", b"MM\x00+"):
        return "BigTIFF"
    if data[:1] == b"P" and data[1:2] in b"1234567" and data[2:3].isspace():
        return "PNM"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in HEIF_BRANDS:
            return "HEIC/HEIF"
    if data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "JPEG XL"
    if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or data[:4] == b"\xff\x4f\xff\x51":
        return "JPEG 2000"
    if data[:4] == b"\x76\x2f\x31\x01":
        return "OpenEXR"
    if data[:10] == b"#?RADIANCE" or data[:6] == b"#?RGBE":
        return "Radiance HDR"
    if data[:2] in (b"PF", b"Pf") and data[2:3].isspace():
        return "PFM"
    if data[:4] == b"\x59\xa6\x6a\x95":
        return "Sun raster"
    if data[:5] == b"%PDF-":
        return "PDF"
    if data[:4] == b"8BPS":
        return "Photoshop PSD"
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:1024].lower()):
        return "SVG"
    return None


def header(data: bytes, fmt: str, max_pages: int) -> Header:
    """The header of ``data`` in format ``fmt`` (one that is read); raises HeaderError."""
    if fmt == "TIFF":
        return imageheader.tiff(data, max_pages)
    parse = {"PNG": imageheader.png, "JPEG": imageheader.jpeg, "WebP": imageheader.webp, "GIF": imageheader.gif,
             "BMP": imageheader.bmp, "PNM": imageheader.pnm}[fmt]
    return parse(data)


def cost(head: Header) -> int:
    """Bytes a decode of ``head`` takes at its peak, about: every page's BGR result, and beside
    it the larger of OpenCV's own copy of it (the Python binding copies what the decoder made)
    and the decoder's buffers; with transparency, the image decoded unchanged twice over, or
    once beside its 8-bit copy, gray and mask while it is composited (measured on 24 MP files
    of each kind read here: 1.0 to 1.5 times the rise in peak RSS)."""
    out = sum(3 * p.pixels for p in head.pages)
    work = max(p.work for p in head.pages)
    if not head.alpha:
        return out + max(out, work)
    unchanged = sum(p.pixels * p.channels * p.sample_bytes for p in head.pages)
    converted = sum(p.pixels * (p.channels * (p.sample_bytes > 1) + 2) for p in head.pages)
    return out + unchanged + max(unchanged, converted, work)


def probe(data: bytes, name: str = "image", limits: Limits | None = None) -> Header:
    """What ``data`` holds, from its header alone: refused (``ImageError``) when empty, of a
    format not read, cut short, or (``ImageTooLargeError``) larger than ``limits``."""
    limits = limits or LIMITS
    if not data:
        raise ImageError(f"{name}: empty file")
    fmt = sniff_format(data)
    if fmt in UNSUPPORTED:
        raise ImageError(f"{name}: {fmt} images are not supported; {UNSUPPORTED[fmt]}")
    if fmt is None:
        raise ImageError(f"{name}: not a decodable image (not a format that is read: {READ})")
    try:
        head = header(data, fmt, limits.max_pages)
    except TooManyPagesError as exc:
        raise ImageTooLargeError(f"{name}: a {fmt} of {exc} (limit image.max_pages = {limits.max_pages})") from None
    except HeaderError as exc:
        raise ImageError(f"{name}: not a decodable {fmt} image (its header: {exc})") from None
    if head.pixels > limits.max_pixels:
        size = "×".join(map(str, (head.pages[0].width, head.pages[0].height)))
        if len(head.pages) > 1:
            size = f"{len(head.pages)} pages, {head.pixels} pixels together"
        raise ImageTooLargeError(f"{name}: image too large ({size}; limit {limits.max_pixels} pixels, "
                                 "image.max_megapixels)")
    need = cost(head)
    if need > limits.memory:
        raise ImageTooLargeError(f"{name}: image too large to decode here (about {need >> 20} MB; limit "
                                 f"{limits.memory >> 20} MB, image.decode_memory_mb)")
    return head


def first_gif_frame(data: bytes, name: str) -> np.ndarray:
    """A GIF's first frame (BGR) through OpenCV's video reader: the image codecs of the
    opencv-python wheels have no GIF decoder, its FFmpeg does. FFmpeg gives transparent pixels
    a colour of its own (white), so a transparent frame is read with its transparent index made
    opaque in a colour no other entry has: those pixels become its alpha channel, composited as
    a PNG's (:func:`composite`). Needs a file, so a temporary one."""
    where = imageheader.gif_transparency(data)
    if where is not None:
        control, entry, table = where
        used = {table[k : k + 3] for k in range(0, len(table), 3)}
        key = next(bytes((r, g, 101)) for r, g in itertools.product(range(256), repeat=2)
                   if bytes((r, g, 101)) not in used)
        patched = bytearray(data)
        patched[control] &= 0xFE
        patched[entry : entry + 3] = key
        data = bytes(patched)
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
    if where is None:
        return frame
    transparent = np.all(frame == np.frombuffer(key[::-1], np.uint8), axis=2)
    return composite(np.dstack([frame, np.where(transparent, 0, 255).astype(np.uint8)]))


def _imdecode(data: bytes, flags: int, name: str, what: str, pages: int) -> list[np.ndarray]:
    buf = np.frombuffer(data, np.uint8)
    try:
        if pages > 1:
            ok, images = cv2.imdecodemulti(buf, flags)
            images = list(images) if ok else []
        else:
            image = cv2.imdecode(buf, flags)
            images = [] if image is None else [image]
    except cv2.error as exc:  # OpenCV asserts on some impossible headers (found by tests/unit/test_fuzz.py)
        raise ImageError(f"{name}: not a decodable {what} ({str(exc).strip().splitlines()[-1][:120]})") from None
    if len(images) != pages:
        raise ImageError(f"{name}: not a decodable {what} (corrupt or truncated; {READ})")
    return images


def png_colour_key(data: bytes) -> tuple[int, ...] | None:
    """The transparent sample value of a gray or RGB PNG (its tRNS chunk), as (gray,) or
    (r, g, b); None when there is none. OpenCV decodes such a PNG without an alpha channel."""
    if data[:8] != PNG_SIGNATURE or len(data) < 26 or data[25] not in (0, 2):
        return None
    body, n = imageheader.png_chunks(data).get(b"tRNS", b""), 1 if data[25] == 0 else 3
    return tuple(int.from_bytes(body[2 * k : 2 * k + 2], "big") for k in range(n)) if len(body) >= 2 * n else None


def with_colour_key(image: np.ndarray, key: tuple[int, ...] | None) -> np.ndarray:
    """A gray or BGR image with an alpha channel added: transparent where it equals a PNG's
    colour key (gray, or RGB; OpenCV's order is BGR), opaque elsewhere. Unchanged without a key."""
    if key is None or not (image.ndim == 2 or image.shape[2] == 3):
        return image
    keyed = image == key[0] if image.ndim == 2 else np.all(image == np.asarray(key[::-1]), axis=2)
    alpha = np.where(keyed, 0, np.iinfo(image.dtype).max).astype(image.dtype)
    return np.dstack([image, alpha])


def decode_pages(data: bytes, name: str = "image", limits: Limits | None = None) -> list[np.ndarray]:
    """Every page of an image (BGR uint8; one but for a multi-page TIFF), as :func:`decoded`
    gives them; the memory budget is given back on return."""
    with decoded(data, name, limits) as pages:
        return pages


def decode_image(data: bytes, name: str = "image", limits: Limits | None = None) -> np.ndarray:
    """Bytes of one JPEG/PNG/BMP/WebP/TIFF/PNM image (or a GIF's first frame) → BGR uint8,
    as :func:`decoded` gives it. A multi-page TIFF is refused here (``ImageError`` naming its
    pages), never cut to its first page: :func:`decode_pages` reads them all."""
    with decoded(data, name, limits, one=True) as pages:
        return pages[0]


@contextmanager
def decoded(data: bytes, name: str = "image", limits: Limits | None = None,
            one: bool = False) -> Iterator[list[np.ndarray]]:
    """Every page (BGR uint8), sized from the header first (:func:`probe`) and decoded within the
    memory budget all threads share, which stays held until the block ends: the API keeps an
    upload's pages while it reads them, and reading needs about what the decode did. ``one``:
    refuse a multi-page TIFF before decoding it.

    EXIF orientation is applied (except to images with transparency); transparency (PNG, WebP,
    TIFF, PAM) is composited onto a background the text stands out from (:func:`composite`).
    Raises ``ImageError`` with the reason, ``ImageTooLargeError`` for what exceeds ``limits``.
    """
    head = probe(data, name, limits)
    if one and len(head.pages) > 1:
        raise ImageError(f"{name}: a TIFF of {len(head.pages)} pages where one image is read; "
                         "send the pages one by one")
    with BUDGET.hold(cost(head)):  # the whole block: reading the pages (grey, crops) takes about what decoding did
        yield _decode(data, name, head)


def _decode(data: bytes, name: str, head: Header) -> list[np.ndarray]:
    if head.format == "GIF":
        return [first_gif_frame(data, name)]
    what = f"{head.format} image"
    if not head.alpha:
        return _imdecode(data, cv2.IMREAD_COLOR, name, what, len(head.pages))
    images = _imdecode(data, cv2.IMREAD_UNCHANGED, name, what, len(head.pages))
    key = png_colour_key(data)
    return [to_bgr8(with_colour_key(image, key), "gray") for image in images]


def _read(path: str | Path) -> bytes:
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror}") from exc


def read_pages(path: str | Path, limits: Limits | None = None) -> list[np.ndarray]:
    """Read and decode every page of an image file (:func:`decode_pages`), errors naming the file."""
    return decode_pages(_read(path), str(path), limits)


def read_image(path: str | Path, limits: Limits | None = None) -> np.ndarray:
    """Read and decode one image file (:func:`decode_image`), with an error that names the file."""
    return decode_image(_read(path), str(path), limits)


BAND_PIXELS = 1 << 20  # compositing works in bands of rows of about this many pixels: small temporaries


def composite(image: np.ndarray) -> np.ndarray:
    """Gray+alpha (H×W×2) or BGRA (H×W×4), uint8, → BGR uint8 over a background that contrasts
    with what is opaque: white under dark ink (black glyphs whose transparent pixels are black
    too; glyphs that live only in the alpha channel), black under light ink (white text on a
    transparent background). The choice follows the mean gray of the clearly opaque pixels. A
    last channel that is 0 everywhere holds no picture: a camera's XRGB8888 padding byte (read as
    alpha it would hide the whole frame); the colour channels are then the image."""
    alpha = image[:, :, -1]
    if not alpha.any():
        if image.shape[2] == 4:
            return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2BGR)
    gray = image[:, :, 0] if image.shape[2] == 2 else cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    opaque = (alpha >= 128).view(np.uint8)
    if not opaque.any():
        opaque = (alpha > 0).view(np.uint8)
    background = 0 if opaque.any() and cv2.mean(gray, mask=opaque)[0] > 127.5 else 255
    out = np.empty((*image.shape[:2], 3), np.uint8)
    step = max(1, BAND_PIXELS // image.shape[1])
    for top in range(0, image.shape[0], step):
        band = image[top : top + step].astype(np.uint16)
        a = band[:, :, -1:]
        out[top : top + step] = (band[:, :, :-1] * a + background * (255 - a) + 127) // 255
    return out


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
    (alpha composited by :func:`composite`), each uint8, uint16 or float (0..1 or 0..255).
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
        image = cv2.convertScaleAbs(image, alpha=1 / 257)  # one 8-bit copy, no 16-bit temporary
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
        return composite(image)
    if channels == 3:
        return image
    raise ImageError(f"unsupported number of channels: {channels}")
