import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from edge_ocr.imageio import ImageError, decode_image, header_size, read_image, to_bgr8


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
    with pytest.raises(ImageError, match="not a decodable"):
        decode_image(buf.tobytes()[:40])
    with pytest.raises(ImageError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageError, match="PDF images are not supported; render its pages to PNG"):
        decode_image(b"%PDF-1.4 hello")
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a directory"):
        read_image(tmp_path)


@pytest.mark.parametrize(("head", "named"), [
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC/HEIF images are not supported; an iPhone photo?"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", "AVIF images are not supported"),
    (b"\xff\x0a\xfa\x7f", "JPEG XL images are not supported"),
    (b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>", "SVG images are not supported"),
    (b"8BPS\x00\x01", "Photoshop PSD images are not supported"),
])
def test_unsupported_formats_are_named_with_what_to_do(head: bytes, named: str) -> None:
    with pytest.raises(ImageError, match=named.replace("?", r"\?")):
        decode_image(head + b"\x00" * 64, "upload")


def _gif(image: np.ndarray, path: Path) -> bytes:
    Image.fromarray(image[:, :, ::-1]).save(path, format="GIF")
    return path.read_bytes()


def test_a_gif_gives_its_first_frame(tmp_path: Path) -> None:
    img = np.full((60, 90, 3), 255, np.uint8)
    img[20:40, 10:50] = (0, 0, 0)
    out = decode_image(_gif(img, tmp_path / "a.gif"), "a.gif")
    assert out.shape == (60, 90, 3) and out[30, 30].max() < 40 and out[5, 80].min() > 215
    assert header_size(b"GIF89a\x5a\x00\x3c\x00") == (90, 60)
    with pytest.raises(ImageError, match="too large"):
        decode_image(b"GIF89a\xff\xff\xff\xff" + b"\x00" * 20)


def test_transparency_is_composited_onto_white() -> None:
    """Field cases F03 (black glyphs whose pixels under transparency are black too) and F05
    (gray 0 everywhere, the letters only in alpha): the glyphs must stay, on white."""
    alpha = np.zeros((40, 80), np.uint8)
    alpha[10:30, 20:60] = 255
    rgba = np.dstack([np.zeros((40, 80, 3), np.uint8), alpha])
    gray_alpha = np.dstack([np.zeros((40, 80), np.uint8), alpha])
    for image, mode in ((rgba, "RGBA"), (gray_alpha, "LA")):
        buf = io.BytesIO()
        Image.fromarray(image, mode).save(buf, format="PNG")  # OpenCV cannot write gray+alpha
        out = decode_image(buf.getvalue())
        assert out.shape == (40, 80, 3)
        assert out[20, 40].max() == 0 and out[5, 5].min() == 255
        np.testing.assert_array_equal(to_bgr8(image), out)
    rgba16 = np.dstack([np.zeros((40, 80, 3), np.uint16), alpha.astype(np.uint16) * 257])
    palette = Image.fromarray((alpha > 0).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0] * 256)  # index 0 transparent; its pixels are black like the glyphs
    encoded = {"16-bit RGBA PNG": cv2.imencode(".png", rgba16)[1].tobytes()}
    for label, im, kw in (("palette PNG with tRNS", palette, {"format": "PNG", "transparency": 0}),
                          ("gray PNG with a colour key", Image.fromarray(255 - alpha, "L"),
                           {"format": "PNG", "transparency": 255}),
                          ("WebP with alpha", Image.fromarray(rgba, "RGBA"), {"format": "WEBP", "lossless": True}),
                          ("TIFF with alpha", Image.fromarray(rgba, "RGBA"), {"format": "TIFF"})):
        buf = io.BytesIO()
        im.save(buf, **kw)
        encoded[label] = buf.getvalue()
    for label, data in encoded.items():
        out = decode_image(data, label)
        assert out[20, 40].max() <= 5 and out[5, 5].min() >= 250, label
    half = np.dstack([np.full((4, 4, 3), 100, np.uint8), np.full((4, 4), 128, np.uint8)])
    assert abs(int(to_bgr8(half)[0, 0, 0]) - round(100 * 128 / 255 + 255 * 127 / 255)) <= 1


def test_a_yuv420_frame_is_read_when_named_and_refused_when_not() -> None:
    """Field case P02: an I420 frame, (H·3/2)×W, must not be read as a gray picture."""
    bgr = np.full((240, 320, 3), 230, np.uint8)
    cv2.putText(bgr, "Hello", (20, 140), cv2.FONT_HERSHEY_SIMPLEX, 3, (20, 20, 20), 6)
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    assert i420.shape == (360, 320)
    with pytest.raises(ImageError, match="layout='yuv420'"):
        to_bgr8(i420)
    back = to_bgr8(i420, "yuv420")
    assert back.shape == (240, 320, 3) and np.abs(back.astype(int) - bgr.astype(int)).max() <= 8
    assert to_bgr8(i420, "gray").shape == (360, 320, 3)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert to_bgr8(np.vstack([gray, gray[:120]])).shape == (360, 320, 3), "a plain gray picture stays gray"
    with pytest.raises(ImageError, match="not a yuv420 frame"):
        to_bgr8(bgr, "yuv420")
    y, u2, v2 = i420[:240], i420[240:300].reshape(120, 160), i420[300:].reshape(120, 160)  # the same planes
    nv12 = np.vstack([y, np.dstack([u2, v2]).reshape(120, 320)])
    with pytest.raises(ImageError, match="'nv12'"):
        to_bgr8(nv12)
    for layout, frame in (("nv12", nv12), ("nv21", np.vstack([y, np.dstack([v2, u2]).reshape(120, 320)])),
                          ("yv12", np.vstack([y, v2.reshape(60, 320), u2.reshape(60, 320)]))):
        np.testing.assert_array_equal(to_bgr8(frame, layout), back, layout)
    with pytest.raises(ValueError, match="layout must be one of"):
        to_bgr8(bgr, "bayer")
