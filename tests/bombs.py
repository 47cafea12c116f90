"""Decompression bombs of every format the decoder reads, built here: small files whose headers
claim far more pixels than are read (field case N02: a 38-byte WebP of 16383², a 64 KB CCITT
G4 TIFF of 30000²), or pages and tiles that would take far more memory than the file's size
suggests. Most decode in full with a plain decoder (a one-colour lossless WebP, an all-white G4
page, a GIF whose one-pixel frame sits on a huge screen, an RLE bitmap that ends at once);
the others are refused by libraries only after they allocated. And the figures of
/proc/PID/status the tests judge a process's memory by."""

from __future__ import annotations

import functools
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np


def vp8l(width: int, height: int) -> bytes:
    """A one-colour lossless WebP of any size: 38 bytes. Its bitstream codes every pixel in 0
    bits, so only the 14-bit width and height in the header change."""
    small = cv2.imencode(".webp", np.full((16, 16, 3), 255, np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()
    assert small[12:16] == b"VP8L" and small[20] == 0x2F
    bits = int.from_bytes(small[21:25], "little") & ~((1 << 28) - 1) | (width - 1) | (height - 1) << 14
    return small[:21] + bits.to_bytes(4, "little") + small[25:]


def vp8x(width: int, height: int) -> bytes:
    """The same bitstream in an extended WebP whose canvas says the same size (with alpha)."""
    inner = vp8l(width, height)[12:]
    chunk = b"VP8X" + struct.pack("<I", 10) + bytes([0x10, 0, 0, 0]) + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + chunk + inner
    return b"RIFF" + struct.pack("<I", len(body)) + body


def vp8(width: int, height: int) -> bytes:
    """A small lossy WebP whose frame header claims ``width``×``height``."""
    data = bytearray(cv2.imencode(".webp", np.full((16, 16, 3), 200, np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 80])[1])
    assert data[12:16] == b"VP8 " and data[23:26] == b"\x9d\x01\x2a"
    data[26:30] = struct.pack("<HH", width, height)
    return bytes(data)


def png(width: int, height: int) -> bytes:
    """A PNG header (IHDR, 8-bit gray) and an end: what a decoder allocates by."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def jpeg(width: int, height: int) -> bytes:
    """A small baseline JPEG whose frame header (SOF0) claims ``width``×``height``."""
    data = bytearray(cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1])
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif(width: int, height: int, frame: tuple[int, int] = (1, 1)) -> bytes:
    """A GIF frame of ``frame`` pixels (one pixel's data) on a logical screen of ``width``×``height``
    (FFmpeg's canvas)."""
    return (b"GIF89a" + struct.pack("<HH", width, height) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
            + b"\x2c" + struct.pack("<HHHH", 0, 0, *frame) + b"\x00" + b"\x02\x02\x44\x01\x00" + b";")


def bmp(width: int, height: int) -> bytes:
    """An 8-bit RLE bitmap of ``width``×``height`` whose data ends at once (end of bitmap)."""
    palette, pixels = bytes(range(256)) * 4, b"\x00\x01"
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def pnm(magic: bytes, width: int, height: int) -> bytes:
    """A Netpbm header (P1…P6, or P7 PAM) and a few bytes of pixels."""
    if magic == b"P7":
        head = b"P7\nWIDTH %d\nHEIGHT %d\nDEPTH 1\nMAXVAL 255\nTUPLTYPE GRAYSCALE\nENDHDR\n" % (width, height)
        return head + b"\0" * 16
    maxval = b"" if magic in (b"P1", b"P4") else b"255\n"
    return magic + b"\n# a comment\n%d %d\n" % (width, height) + maxval + b"\0" * 16


def g4_white(width: int, height: int) -> bytes:
    """CCITT Group 4 data of an all-white page: one bit a row (vertical mode V0 against the
    white row above), then the end-of-facsimile-block (two EOLs)."""
    bits = "1" * height + "000000000001" * 2
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


Page = tuple[dict[int, int | tuple[int, ...]], bytes]  # tags (value or values), strip data


def tiff(pages: list[Page], loop: bool = False) -> bytes:
    """A little-endian TIFF of one directory a page (offsets and counts of its one strip or
    tile added), chained in order; ``loop``: the last directory points back to the first."""
    out, offsets = bytearray(b"II*\x00\x00\x00\x00\x00"), []
    for tags, strip in pages:
        strip_at = len(out)
        out += strip + b"\0" * (len(strip) & 1)
        tiled = 322 in tags  # then TileOffsets and TileByteCounts, of its one tile
        tags = {**tags, (324 if tiled else 273): strip_at, (325 if tiled else 279): len(strip)}
        extra, entries = bytearray(), []
        ifd_at = len(out)
        values_at = ifd_at + 2 + 12 * len(tags) + 4
        for tag in sorted(tags):
            vals = tags[tag] if isinstance(tags[tag], tuple) else (tags[tag],)
            kind, code = (3, "H") if max(vals) < 65536 else (4, "I")
            raw = struct.pack(f"<{len(vals)}{code}", *vals)
            if len(raw) <= 4:
                field = raw.ljust(4, b"\0")
            else:
                field = struct.pack("<I", values_at + len(extra))
                extra += raw
            entries.append(struct.pack("<HHI", tag, kind, len(vals)) + field)
        offsets.append(ifd_at)
        out += struct.pack("<H", len(tags)) + b"".join(entries) + b"\0\0\0\0" + extra
    for k, at in enumerate(offsets):
        following = offsets[k + 1] if k + 1 < len(offsets) else (offsets[0] if loop else 0)
        link = at + 2 + 12 * struct.unpack("<H", out[at : at + 2])[0]
        out[link : link + 4] = struct.pack("<I", following)
    out[4:8] = struct.pack("<I", offsets[0])
    return bytes(out)


def g4_page(width: int, height: int) -> Page:
    """A bilevel page, CCITT G4 compressed, all white, in one strip."""
    return {256: width, 257: height, 258: 1, 259: 4, 262: 0, 277: 1, 278: height}, g4_white(width, height)


def gray_page(width: int, height: int) -> Page:
    """An uncompressed 8-bit gray page of mid-gray, in one strip."""
    return {256: width, 257: height, 258: 8, 259: 1, 262: 1, 277: 1, 278: height}, b"\x80" * (width * height)


def tiled_page(width: int, height: int, tile: int) -> Page:
    """A black gray page in one deflated ``tile``² tile (a multiple of 16): the tile, not the
    page, is what OpenCV allocates, 4 bytes a pixel, and libtiff decodes."""
    packer, size = zlib.compressobj(9), tile * tile
    zeros = bytes(min(size, 1 << 20))
    data = b"".join(packer.compress(zeros[: size - k]) for k in range(0, size, len(zeros)))
    return {256: width, 257: height, 258: 8, 259: 8, 262: 1, 277: 1, 322: tile, 323: tile}, data + packer.flush()


@functools.cache
def every_format(side: int = 30000) -> dict[str, bytes]:
    """A bomb of every format read, each claiming ``side``² pixels or more (WebP's most: 16383²)."""
    webp_side = min(side, 16383)
    return {
        "png": png(side, side),
        "jpeg": jpeg(side, side),
        "webp-vp8": vp8(webp_side, webp_side),
        "webp-vp8l": vp8l(webp_side, webp_side),
        "webp-vp8x": vp8x(webp_side, webp_side),
        "gif": gif(min(side, 65535), min(side, 65535)),
        "gif-frame": gif(16, 16, frame=(min(side, 65535), min(side, 65535))),  # a frame past its screen
        "bmp": bmp(side, side),
        "pbm": pnm(b"P4", side, side),
        "pgm": pnm(b"P5", side, side),
        "pam": pnm(b"P7", side, side),
        "tiff-g4": tiff([g4_page(side, side)]),
        "tiff-page-3": tiff([g4_page(1000, 1000), g4_page(1000, 1000), g4_page(side, side)]),
        "tiff-pages": tiff([g4_page(2000, 2000)] * 13),  # 52 MP together, each page 4 MP
        "tiff-tile": tiff([tiled_page(16, 16, side // 2 // 16 * 16)]),
    }


def reset_peak(pid: int | str = "self") -> None:
    """Start a process's peak RSS (VmHWM) again from its present RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def status_kib(key: str, pid: int | str = "self") -> int:
    """A KiB figure of /proc/PID/status: "VmRSS", "VmHWM" (the peak since :func:`reset_peak`)."""
    text = Path(f"/proc/{pid}/status").read_text()
    return next(int(ln.split()[1]) for ln in text.splitlines() if ln.startswith(key + ":"))
