"""Image sizes from file headers, without decoding: what a decoder will allocate is known, and
refused when too large, before a pixel is allocated (a 38-byte WebP can claim 16383² pixels, a
64 KB CCITT G4 TIFF 30000²).

Each parser reads what its decoder sizes its buffers by (OpenCV's libpng, libjpeg-turbo,
libwebp, libtiff, BMP and PxM readers; FFmpeg for GIF) and errs on the large side: a tag given
twice counts at its largest, every frame and page of a file counts. A header that is cut short
or makes no sense raises :class:`HeaderError`.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class HeaderError(ValueError):
    """A header that is cut short or inconsistent; the message says where."""


class TooManyPagesError(HeaderError):
    """A TIFF with more directories than may be read (the rest are not looked at)."""


@dataclass(frozen=True)
class Page:
    """One image the decoder will produce, as the header describes it."""

    width: int
    height: int
    channels: int = 3  # samples per pixel when decoded unchanged (alpha included)
    sample_bytes: int = 1  # bytes per sample when decoded unchanged (2 for 16-bit PNG/TIFF)
    work: int = 0  # the decoder's own buffers beyond its output, bytes (coefficients, ARGB, tiles)

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Header:
    format: str
    pages: tuple[Page, ...]  # a multi-page TIFF has several; every other format one
    alpha: bool = False  # may carry transparency: decoded unchanged, then composited

    @property
    def pixels(self) -> int:
        return sum(p.pixels for p in self.pages)


def _need(data: bytes, end: int, what: str) -> None:
    if len(data) < end:
        raise HeaderError(f"cut short in its {what} ({len(data)} bytes)")


def _positive(width: int, height: int) -> tuple[int, int]:
    if width <= 0 or height <= 0:
        raise HeaderError(f"a size of {width}×{height} pixels")
    return width, height


def png(data: bytes) -> Header:
    """IHDR (the first chunk): width, height, bit depth, colour type; a tRNS chunk before the
    image data makes a palette or colour-keyed image transparent."""
    _need(data, 33, "IHDR chunk")
    if data[12:16] != b"IHDR":
        raise HeaderError("its first chunk is not IHDR")
    width, height = _positive(*struct.unpack(">II", data[16:24]))
    depth, colour = data[24], data[25]
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour)
    if channels is None:
        raise HeaderError(f"colour type {colour}")
    keyed = b"tRNS" in png_chunks(data)
    alpha = colour in (4, 6) or keyed
    channels += keyed
    return Header("PNG", (Page(width, height, channels, 2 if depth == 16 else 1),), alpha)


def png_chunks(data: bytes) -> dict[bytes, bytes]:
    """A PNG's chunks before its image data ({type: body}), e.g. IHDR, PLTE, tRNS."""
    chunks, i = {}, len(PNG_SIGNATURE)
    while i + 8 <= len(data):
        length, kind = int.from_bytes(data[i : i + 4], "big"), data[i + 4 : i + 8]
        if kind in (b"IDAT", b"IEND"):
            break
        chunks[kind] = data[i + 8 : i + 8 + length]
        i += 12 + length
    return chunks


JPEG_FRAMES = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0…SOF15 but DHT, JPG, DAC


def jpeg(data: bytes) -> Header:
    """The frame header (SOFn): height, width, components. libjpeg keeps a whole image of DCT
    coefficients (2 bytes a sample) for progressive and multi-scan files: counted for all."""
    i = 2
    while True:
        _need(data, i + 4, "markers")
        if data[i] != 0xFF:
            raise HeaderError(f"no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # TEM, RSTn, SOI: no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):
            raise HeaderError("no frame header before the image data")
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in JPEG_FRAMES:
            _need(data, i + 10, "frame header")
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            if height == 0:
                raise HeaderError("height 0 (given later in a DNL marker, which is not read)")
            _positive(width, height)
            components = data[i + 9]
            return Header("JPEG", (Page(width, height, 3, 1, work=2 * components * width * height),))
        if length < 2:
            raise HeaderError(f"a marker of length {length}")
        i += 2 + length


def _vp8(chunk: bytes) -> tuple[int, int]:
    """A lossy bitstream's size: frame tag (3 bytes), start code 9d 01 2a, 14-bit width and height."""
    if len(chunk) < 10 or chunk[3:6] != b"\x9d\x01\x2a":
        raise HeaderError("a VP8 bitstream without its start code")
    width, height = struct.unpack("<HH", chunk[6:10])
    return _positive(width & 0x3FFF, height & 0x3FFF)


def _vp8l(chunk: bytes) -> tuple[int, int, bool]:
    """A lossless bitstream's size: signature 0x2f, 14-bit width-1 and height-1, alpha hint."""
    if len(chunk) < 5 or chunk[0] != 0x2F:
        raise HeaderError("a VP8L bitstream without its signature")
    bits = int.from_bytes(chunk[1:5], "little")
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)


def _riff_chunks(data: bytes, start: int) -> list[tuple[bytes, bytes]]:
    """(fourcc, body) of the RIFF chunks from ``start``; bodies are padded to even lengths."""
    out, i = [], start
    while i + 8 <= len(data):
        kind, size = data[i : i + 4], int.from_bytes(data[i + 4 : i + 8], "little")
        out.append((kind, data[i + 8 : i + 8 + size]))
        i += 8 + size + (size & 1)
    return out


def webp(data: bytes) -> Header:
    """Simple lossy (VP8), lossless (VP8L: decoded whole as ARGB, 4 bytes a pixel) or extended
    (VP8X: a canvas, with alpha or animation; an animation keeps two RGBA canvases). Every
    bitstream and animation frame inside counts, not only the canvas."""
    chunks = _riff_chunks(data, 12)
    if not chunks:
        raise HeaderError("cut short in its first chunk")
    kind, body = chunks[0]
    if kind == b"VP8 ":
        width, height = _vp8(body)
        return Header("WebP", (Page(width, height),))
    if kind == b"VP8L":
        width, height, alpha = _vp8l(body)
        return Header("WebP", (Page(width, height, 4 if alpha else 3, work=4 * width * height),), alpha)
    if kind != b"VP8X" or len(body) < 10:
        raise HeaderError(f"a first chunk {kind!r} of {len(body)} bytes")
    flags = body[0]
    width, height = int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1
    alpha, animated = bool(flags & 0x10), bool(flags & 0x02)
    for w, h in _webp_bitstreams(chunks[1:]):
        if w > width or h > height:  # libwebp refuses it too, but only once it has parsed it
            raise HeaderError(f"a {w}×{h} bitstream in a {width}×{height} canvas")
    work = (8 if animated else 5) * width * height
    return Header("WebP", (Page(width, height, 4 if alpha else 3, work=work),), alpha)


def _webp_bitstreams(chunks: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    """The size of every VP8/VP8L bitstream and animation frame (ANMF: 16 bytes of position,
    size and timing, then its own chunks) among ``chunks``."""
    sizes = []
    for kind, body in chunks:
        if kind == b"VP8 ":
            sizes.append(_vp8(body))
        elif kind == b"VP8L":
            sizes.append(_vp8l(body)[:2])
        elif kind == b"ANMF":
            if len(body) < 16:
                raise HeaderError(f"an animation frame of {len(body)} bytes")
            sizes.append((int.from_bytes(body[6:9], "little") + 1, int.from_bytes(body[9:12], "little") + 1))
            sizes += _webp_bitstreams(_riff_chunks(body, 16))
    return sizes


def gif(data: bytes) -> Header:
    """The logical screen (FFmpeg's canvas), or the first frame's rectangle where it reaches
    further. FFmpeg's frame, its conversion and OpenCV's copy: about 8 bytes a pixel beyond the
    result."""
    _need(data, 10, "screen descriptor")
    width, height = _positive(*struct.unpack("<HH", data[6:10]))
    image = _gif_first_image(data)[1]
    if image is not None:
        left, top, w, h = struct.unpack("<HHHH", data[image + 1 : image + 9])
        width, height = max(width, left + w), max(height, top + h)
    alpha = gif_transparency(data) is not None
    return Header("GIF", (Page(width, height, 4 if alpha else 3, work=8 * width * height),), alpha)


def _gif_first_image(data: bytes) -> tuple[int | None, int | None]:
    """Offsets of the first frame's Graphic Control Extension flags byte (None without one) and
    of its image descriptor (None when the blocks before it are cut short or make no sense)."""
    if len(data) < 13:
        return None, None
    i, control = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0), None
    while i + 10 <= len(data):
        if data[i] == 0x2C:
            return control, i
        if data[i] != 0x21:
            break
        if data[i + 1] == 0xF9 and data[i + 2] == 4:  # an extension: label, then sub-blocks up to an empty one
            control = i + 3
        i += 2
        while i < len(data) and data[i]:
            i += data[i] + 1
        i += 1
    return control, None


def gif_transparency(data: bytes) -> tuple[int, int, bytes] | None:
    """Where a GIF's first frame says it is transparent: the offsets of its Graphic Control
    Extension's flags byte and of the transparent index's entry in the colour table it uses
    (local, else global), and that table; None when it is opaque."""
    control, image = _gif_first_image(data)
    if control is None or image is None or not data[control] & 1:
        return None
    if data[image + 9] & 0x80:
        table, size = image + 10, 3 << ((data[image + 9] & 7) + 1)
    elif data[10] & 0x80:
        table, size = 13, 3 << ((data[10] & 7) + 1)
    else:
        return None
    entry = table + 3 * data[control + 3]
    return (control, entry, data[table : table + size]) if entry + 3 <= min(len(data), table + size) else None


def bmp(data: bytes) -> Header:
    """The DIB header: OS/2's 12-byte one (16-bit sizes) or Windows' 40 bytes and later (signed
    32-bit; a negative height is stored top-down)."""
    _need(data, 18, "file header")
    dib = int.from_bytes(data[14:18], "little")
    if dib == 12:
        _need(data, 22, "DIB header")
        width, height = struct.unpack("<HH", data[18:22])
    elif dib >= 16:
        _need(data, 26, "DIB header")
        width, height = struct.unpack("<ii", data[18:26])
    else:
        raise HeaderError(f"a DIB header of {dib} bytes")
    return Header("BMP", (Page(*_positive(width, abs(height))),))


PNM_TOKEN = re.compile(rb"(?:\s|#[^\n\r]*[\n\r])+")
PAM_FIELD = re.compile(rb"(WIDTH|HEIGHT|DEPTH|MAXVAL)\s+(\d+)")


def pnm(data: bytes) -> Header:
    """Netpbm: P1…P6 (magic, width, height between whitespace and comments), or P7 (PAM: WIDTH,
    HEIGHT, DEPTH, MAXVAL lines up to ENDHDR)."""
    if data[:2] == b"P7":
        end = data.find(b"ENDHDR", 0, 4096)
        if end < 0:
            raise HeaderError("no ENDHDR line in its first 4 KB")
        fields: dict[bytes, int] = {}
        for key, value in PAM_FIELD.findall(data[:end]):
            fields[key] = max(fields.get(key, 0), int(value))
        if b"WIDTH" not in fields or b"HEIGHT" not in fields:
            raise HeaderError("no WIDTH or HEIGHT line")
        width, height = _positive(fields[b"WIDTH"], fields[b"HEIGHT"])
        depth = fields.get(b"DEPTH", 1)
        return Header("PNM", (Page(width, height, depth, 2 if fields.get(b"MAXVAL", 255) > 255 else 1),),
                      alpha=depth in (2, 4))
    tokens = PNM_TOKEN.split(data[:1024], maxsplit=3)
    if len(tokens) < 4 or not (tokens[1].isdigit() and tokens[2].isdigit()):
        raise HeaderError("no width and height after its magic number")
    return Header("PNM", (Page(*_positive(int(tokens[1]), int(tokens[2]))),))


TIFF_TYPES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 16: "Q", 17: "q"}  # integer field types
TIFF_TAGS = {256: "width", 257: "height", 258: "bits", 277: "samples", 278: "rows_per_strip",
             322: "tile_width", 323: "tile_height", 338: "extra_samples", 262: "photometric"}


def tiff(data: bytes, max_pages: int) -> Header:
    """Every directory (page) of the main chain, as libtiff walks it: width, height, samples,
    bits, and the strip or tile OpenCV reads into a buffer of its own (4 bytes a pixel as RGBA,
    packed and unpacked). More than ``max_pages`` directories raise TooManyPagesError without
    reading the rest; a chain that loops is an error."""
    order = "<" if data[:2] == b"II" else ">"
    _need(data, 8, "header")
    offset, seen, pages, alpha = struct.unpack(order + "I", data[4:8])[0], set(), [], False
    while offset:
        if offset in seen:
            raise HeaderError(f"directories that loop (offset {offset})")
        if len(pages) == max_pages:
            raise TooManyPagesError(f"more than {max_pages} pages")
        seen.add(offset)
        tags, offset = _tiff_directory(data, offset, order)
        if "width" not in tags or "height" not in tags:
            raise HeaderError(f"page {len(pages) + 1} without a width or height")
        width, height = _positive(tags["width"], tags["height"])
        samples, sample_bytes = max(1, tags.get("samples", 1)), -(-max(1, tags.get("bits", 1)) // 8)
        if "tile_width" in tags or "tile_height" in tags:
            tile = max(1, tags.get("tile_width", width)) * max(1, tags.get("tile_height", height))
        else:
            tile = width * min(height, max(1, tags.get("rows_per_strip", height)))
        photometric = tags.get("photometric", 1)
        alpha |= "extra_samples" in tags or (samples, photometric) in ((2, 0), (2, 1), (4, 2))
        pages.append(Page(width, height, samples, sample_bytes, work=2 * tile * max(4, samples * sample_bytes)))
    if not pages:
        raise HeaderError("no directory")
    return Header("TIFF", tuple(pages), alpha)


def _tiff_directory(data: bytes, offset: int, order: str) -> tuple[dict[str, int], int]:
    """The size-related tags of the directory at ``offset`` (each at its largest value: array
    tags such as BitsPerSample hold one value a sample) and the next directory's offset."""
    _need(data, offset + 2, "directory")
    n = struct.unpack(order + "H", data[offset : offset + 2])[0]
    _need(data, offset + 6 + 12 * n, "directory")
    tags: dict[str, int] = {}
    for k in range(n):
        entry = offset + 2 + 12 * k
        tag, kind, count = struct.unpack(order + "HHI", data[entry : entry + 8])
        name, code = TIFF_TAGS.get(tag), TIFF_TYPES.get(kind)
        if name is None:
            continue
        if code is None or count == 0:
            raise HeaderError(f"tag {tag} of type {kind}, count {count}")
        size = struct.calcsize(order + code) * count
        if size <= 4:
            raw = data[entry + 8 : entry + 8 + size]
        else:
            start = struct.unpack(order + "I", data[entry + 8 : entry + 12])[0]
            _need(data, start + size, f"tag {tag}'s values")
            raw = data[start : start + size]
        values = struct.unpack(f"{order}{count}{code}", raw)
        tags[name] = values[0] if name == "photometric" else max(tags.get(name, 0), *values)
    return tags, struct.unpack(order + "I", data[offset + 2 + 12 * n : offset + 6 + 12 * n])[0]
