import io
import re
import struct
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from edge_ocr.config import Config, ConfigError, ImageConfig
from edge_ocr.config import load as load_config
from edge_ocr.daemon.capture import FolderCamera, FrameError
from edge_ocr.imageio import (
    BUDGET,
    Budget,
    ImageError,
    ImageTooLargeError,
    Limits,
    configure,
    decode_image,
    decode_pages,
    decoded,
    probe,
    read_image,
    to_bgr8,
)
from edge_ocr.page.build import build_reader
from edge_ocr.recognition.recognizer import Recognizer
from tests import bombs
from tests.render import page as render_page


def _pil(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _encodings(bgr: np.ndarray) -> dict[str, bytes]:
    """``bgr`` in every format and variant the decoder reads (PIL where OpenCV cannot write)."""
    h, w = bgr.shape[:2]
    rgb, gray = Image.fromarray(bgr[:, :, ::-1]), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = np.dstack([bgr, np.full((h, w), 255, np.uint8)])
    out = {f"{ext} (OpenCV)": cv2.imencode(ext, im)[1].tobytes() for ext, im in
           ((".png", bgr), (".png", bgra), (".jpg", bgr), (".webp", bgr), (".tiff", bgr), (".bmp", bgr),
            (".pgm", gray), (".ppm", bgr), (".pam", bgr))}
    out |= {"16-bit PNG": cv2.imencode(".png", bgr.astype(np.uint16) * 257)[1].tobytes(),
            "progressive JPEG": cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
            "lossless WebP": cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes(),
            "WebP with alpha (VP8X)": _pil(rgb.convert("RGBA"), "WEBP", quality=80),
            "G4 TIFF": _pil(rgb.convert("1"), "TIFF", compression="group4"),
            "tiled TIFF": bombs.tiff([bombs.tiled_page(w, h, 64)]),
            "GIF": _pil(rgb.convert("P"), "GIF"),
            "PBM": _pil(rgb.convert("1"), "PPM")}
    return out


def test_every_format_is_sized_from_its_header_as_it_decodes() -> None:
    img = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    for label, data in _encodings(img).items():
        head = probe(data, label)
        assert [(p.width, p.height) for p in head.pages] == [(53, 37)], label
        assert decode_image(data, label).shape == (37, 53, 3), label


def test_bombs_of_every_format_are_refused_before_decoding() -> None:
    """Field case N02 for every format read: 413-kind errors from the header, and this process's
    peak memory does not rise by what any of them claims (each would take 1.5 to 17 GB)."""
    made = bombs.every_format()
    bombs.reset_peak()
    start = bombs.status_kib("VmRSS")
    for label, data in made.items():
        with pytest.raises(ImageTooLargeError, match="too large") as caught:
            decode_pages(data, label)
        assert str(caught.value).startswith(f"{label}: image too large"), caught.value
    assert (bombs.status_kib("VmHWM") - start) < 50 * 1024, "refusing must not decode"
    assert set(made) >= {"png", "jpeg", "webp-vp8", "webp-vp8l", "webp-vp8x", "gif", "gif-frame", "bmp", "pbm", "pgm",
                         "pam", "tiff-g4", "tiff-page-3", "tiff-pages", "tiff-tile"}


def test_the_bomb_builders_make_real_files() -> None:
    """The bombs above are files a decoder takes: their small versions decode to what they say."""
    for data in (bombs.vp8l(200, 100), bombs.vp8x(200, 100), bombs.gif(200, 100), bombs.bmp(200, 100),
                 bombs.tiff([bombs.g4_page(64, 48)])):
        assert decode_image(data).shape[:2] in ((100, 200), (48, 64))
    assert decode_image(bombs.tiff([bombs.g4_page(64, 48)])).min() == 255  # all white, as G4 coded it
    assert len(decode_pages(bombs.tiff([bombs.g4_page(64, 48), bombs.gray_page(30, 20)]))) == 2


@pytest.mark.parametrize(("head", "named"), [
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 40, "JPEG 2000 images are not supported"),
    (b"\xff\x4f\xff\x51\x00\x2f\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff", "JPEG 2000 images are not supported"),
    (b"II+\x00\x08\x00\x00\x00", "BigTIFF images are not supported"),
    (b"\x76\x2f\x31\x01\x02\x00\x00\x00", "OpenEXR images are not supported"),
    (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n", "Radiance HDR images are not supported"),
    (b"PF\n30000 30000\n-1.0\n", "PFM images are not supported"),
    (b"\x59\xa6\x6a\x95" + struct.pack(">7I", 30000, 30000, 8, 0, 1, 0, 0), "Sun raster images are not supported"),
    (b"hello, not an image", "not a decodable image (not a format that is read"),
])
def test_formats_not_sized_here_are_refused_by_name(head: bytes, named: str) -> None:
    """OpenCV decodes the first ones too, but they are not sized from their header here: refused
    before OpenCV sees them (a 30000² Sun raster or PFM header would be allocated)."""
    with pytest.raises(ImageError, match=re.escape(named)):
        decode_image(head + b"\x00" * 64, "upload")


@pytest.mark.parametrize(("data", "words"), [
    (bombs.tiff([bombs.gray_page(4, 4)] * 3, loop=True), "not a decodable TIFF image (its header: directories that"),
    (bombs.tiff([bombs.gray_page(4, 4)])[:12], "not a decodable TIFF image (its header: cut short"),
    (bombs.png(64, 64)[:20], "not a decodable PNG image (its header: cut short"),
    (bombs.jpeg(64, 0), "height 0"),
    (bombs.vp8x(64, 64)[:30] + bombs.vp8l(200, 200)[12:], "bitstream in a 64×64 canvas"),
])
def test_headers_that_make_no_sense_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(ImageError, match=re.escape(words)):
        decode_image(data)


def test_limits_come_from_the_configuration() -> None:
    """``[image]`` (or EDGE_OCR_IMAGE_*) sets the pixels, pages and memory one input may take."""
    cfg = load_config(None, environ={"EDGE_OCR_IMAGE_MAX_MEGAPIXELS": "1", "EDGE_OCR_IMAGE_MAX_PAGES": "2",
                                     "EDGE_OCR_IMAGE_DECODE_MEMORY_MB": "20"})
    assert cfg.image == ImageConfig(max_megapixels=1.0, max_pages=2, decode_memory_mb=20.0)
    configure(cfg.image)
    try:
        assert decode_image(bombs.vp8l(1000, 1000)).shape == (1000, 1000, 3)
        with pytest.raises(ImageTooLargeError, match=r"1001×1000; limit 1000000 pixels, image.max_megapixels"):
            decode_image(bombs.vp8l(1001, 1000))
        with pytest.raises(ImageTooLargeError, match=r"more than 2 pages .*image.max_pages = 2"):
            decode_pages(bombs.tiff([bombs.gray_page(4, 4)] * 3))
        assert len(decode_pages(bombs.tiff([bombs.gray_page(4, 4)] * 2))) == 2
        with pytest.raises(ImageTooLargeError, match=r"too large to decode here .*image.decode_memory_mb"):
            decode_image(bombs.tiff([bombs.tiled_page(16, 16, 2000)]))  # 16 MB of tile buffer for 256 pixels
        assert BUDGET.capacity == 20 * 2**20
    finally:
        configure(ImageConfig())
    for key, value in (("max_megapixels", 0), ("max_pages", 0), ("decode_memory_mb", 8)):
        with pytest.raises(ConfigError, match=f"image.{key}"):
            ImageConfig(**{key: value}).validate()


def test_concurrent_decodes_share_one_memory_budget() -> None:
    """Three threads decoding at once never hold more than the budget: each 8 MP WebP needs
    about 80 MB while it is decoded and read, so under a 128 MB budget they take turns; all
    three are read."""
    configure(ImageConfig(decode_memory_mb=128))
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], BUDGET.used)
            time.sleep(0.0005)

    def one(shapes: list) -> None:
        with decoded(bombs.vp8l(4000, 2000)) as pages:
            time.sleep(0.1)
            shapes.append(pages[0].shape)

    shapes: list = []
    try:
        threads = [threading.Thread(target=one, args=(shapes,)) for _ in range(3)]
        watcher = threading.Thread(target=watch)
        watcher.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        done.set()
        configure(ImageConfig())
    assert shapes == [(2000, 4000, 3)] * 3
    assert 70 * 2**20 < peak[0] <= 128 * 2**20, peak[0] / 2**20
    assert BUDGET.used == 0


def test_a_budget_lets_one_through_when_nothing_else_is_held() -> None:
    budget = Budget(100)
    with budget.hold(150):  # larger than the budget but alone: it goes (what probe let pass)
        assert budget.used == 150
    with budget.hold(30), budget.hold(70):
        assert budget.used == 100
    assert budget.used == 0


def test_every_page_of_a_multi_page_tiff_is_read() -> None:
    """Field case N07's kind: a scanner's 3-page TIFF gives 3 pages, in order; a caller that
    takes one image is told, never given page 1 alone."""
    pages = [Image.fromarray(render_page([f"page {k}"], size=30, margin=20)[:, :, ::-1]) for k in (1, 2, 3)]
    data = _pil(pages[0], "TIFF", save_all=True, append_images=pages[1:], compression="tiff_deflate")
    assert [(p.width, p.height) for p in probe(data).pages] == [im.size for im in pages]
    got = decode_pages(data, "scan.tif")
    assert len(got) == 3
    for image, want in zip(got, pages, strict=True):
        np.testing.assert_array_equal(image[:, :, ::-1], np.asarray(want))
    with pytest.raises(ImageError, match=r"scan.tif: a TIFF of 3 pages where one image is read"):
        decode_image(data, "scan.tif")
    with pytest.raises(ImageTooLargeError, match="3 pages, 3000000 pixels together"):
        decode_pages(bombs.tiff([bombs.g4_page(1000, 1000)] * 3), limits=Limits(2_999_999, 50, 2**30))


def test_the_folder_source_refuses_bombs(tmp_path: Path) -> None:
    """The daemon's folder source decodes with the same decoder: each bomb reported, none read."""
    for label, data in bombs.every_format().items():
        (tmp_path / f"{label}.{label.split('-')[0].replace('pbm', 'pnm')}").write_bytes(data)
    cam = FolderCamera(str(tmp_path), settle_s=0.0, give_up_s=0.3)
    errors, deadline = [], time.monotonic() + 30
    while len(errors) < len(list(tmp_path.iterdir())) and time.monotonic() < deadline:
        try:
            assert cam.read() is None
        except FrameError as exc:
            errors.append(str(exc))
        time.sleep(0.02)
    assert all("too large" in e for e in errors) and len(errors) == len(list(tmp_path.iterdir())), errors


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
    assert [(p.width, p.height) for p in probe(b"GIF89a\x5a\x00\x3c\x00").pages] == [(90, 60)]
    with pytest.raises(ImageError, match="too large"):
        decode_image(b"GIF89a\xff\xff\xff\xff" + b"\x00" * 20)


TEXT = "TREND PLOT REPORT"
GLYPHS = {"black": (0, 0, 0), "white": (255, 255, 255), "red": (0, 0, 255), "mid-grey": (128, 128, 128)}


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return build_reader(Config()).recognizer


def _on_transparency(colour: tuple[int, int, int], under: str) -> dict[str, tuple[bytes, np.ndarray]]:
    """``TEXT`` in glyphs of ``colour`` (BGR) on a fully transparent background, in every
    container that carries transparency, each with its ink coverage: the alpha channel holds the
    text; under the transparency the colour is the glyphs' own (``under="same"``: the text is
    only in alpha) or black (``"black"``, as premultiplying tools leave it). Palette and
    colour-key containers carry one bit of alpha: their glyphs are the coverage over half."""
    cover = 255 - cv2.cvtColor(render_page([TEXT], size=40, margin=24), cv2.COLOR_BGR2GRAY)
    bgr = np.empty((*cover.shape, 3), np.uint8)
    bgr[:] = colour
    if under == "black":
        bgr[cover == 0] = 0
    bgra = np.dstack([bgr, cover])
    rgba = Image.fromarray(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA), "RGBA")
    out = {"RGBA PNG": cv2.imencode(".png", bgra)[1].tobytes(),
           "16-bit RGBA PNG": cv2.imencode(".png", bgra.astype(np.uint16) * 257)[1].tobytes(),
           "WebP with alpha": cv2.imencode(".webp", bgra, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes(),
           "TIFF with alpha": _pil(rgba, "TIFF", compression="tiff_deflate")}
    if len(set(colour)) == 1:  # gray glyphs: gray+alpha, which OpenCV cannot write
        out["gray+alpha PNG"] = _pil(Image.fromarray(np.dstack([bgr[:, :, 0], cover]), "LA"), "PNG")
    ink = (cover >= 128).astype(np.uint8)
    rgb = colour[::-1]
    indexed = Image.fromarray(ink, "P")
    indexed.putpalette([*(rgb if under == "same" else (0, 0, 0)), *rgb] + [0] * 762)
    out["palette PNG with tRNS"] = _pil(indexed, "PNG", transparency=0)
    out["GIF with a transparent index"] = _pil(indexed, "GIF", transparency=0)
    key = (0, 0, 0) if colour != (0, 0, 0) else (255, 255, 255)
    keyed = np.where(ink[:, :, None] == 1, np.asarray(rgb, np.uint8), np.asarray(key, np.uint8))
    out["RGB PNG with a colour key"] = _pil(Image.fromarray(keyed, "RGB"), "PNG", transparency=key)
    binary = ink * 255
    return {label: (data, binary if "with a" in label or "palette" in label else cover) for label, data in out.items()}


@pytest.mark.parametrize("glyph", GLYPHS)
def test_text_on_transparency_stays_readable_whatever_its_colour(recognizer: Recognizer, glyph: str) -> None:
    """Round 2's regression: white glyphs on a fully transparent background came back empty,
    composited onto white. Every glyph colour, in every container with transparency, must read
    as the text rendered, and its ink must stand 100 gray levels off the background."""
    for under in ("same", "black"):
        for label, (data, cover) in _on_transparency(GLYPHS[glyph], under).items():
            image = decode_image(data, label)
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(int)
            contrast = abs(gray[cover > 200].mean() - gray[cover == 0].mean())
            assert contrast >= 100, f"{glyph} glyphs ({under} under them), {label}: contrast {contrast:.0f}"
            text = recognizer.recognize([image])[0].text
            assert text == TEXT, f"{glyph} glyphs ({under} under them), {label}: read {text!r}"


def test_compositing_follows_alpha() -> None:
    """Partial alpha blends with the background it picked: a dark pixel at half alpha over
    white, a light one over black; a 4th channel of zeros is padding (XRGB8888), not transparency."""
    half = np.dstack([np.full((4, 4, 3), 100, np.uint8), np.full((4, 4), 128, np.uint8)])
    assert abs(int(to_bgr8(half)[0, 0, 0]) - round(100 * 128 / 255 + 255 * 127 / 255)) <= 1
    light = np.dstack([np.full((4, 4, 3), 200, np.uint8), np.full((4, 4), 128, np.uint8)])
    assert abs(int(to_bgr8(light)[0, 0, 0]) - round(200 * 128 / 255)) <= 1
    xrgb = np.dstack([np.full((4, 4, 3), 90, np.uint8), np.zeros((4, 4), np.uint8)])
    assert (to_bgr8(xrgb) == 90).all()


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


def test_the_folder_source_gives_every_page_of_a_multi_page_tiff(tmp_path: Path) -> None:
    """A scanner writing multi-page TIFFs into the watched folder: each page is a still."""
    (tmp_path / "scan.tif").write_bytes(bombs.tiff([bombs.g4_page(64, 48), bombs.gray_page(30, 20),
                                                    bombs.g4_page(16, 16)]))
    cam = FolderCamera(str(tmp_path), settle_s=0.0, give_up_s=0.3)
    frames = [cam.read() for _ in range(4)]
    assert [f.shape for f in frames[:3]] == [(48, 64, 3), (20, 30, 3), (16, 16, 3)] and frames[3] is None
