"""The field cases of ``../shared/field-cases/`` (README there gives each right answer), read as a
user would through the reader, the decoder and ``watch``'s checks. Every kind also has a test on
inputs rendered here (test_imageio, test_cache, test_daemon, test_api, test_watch, test_detector),
which run without this folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_ocr.config import Config
from edge_ocr.config import load as load_config
from edge_ocr.imageio import ImageError, ImageTooLargeError, read_image, read_pages
from edge_ocr.page.build import build_reader
from edge_ocr.page.diff import comparable
from edge_ocr.page.reader import PageReader
from edge_ocr.paths import ROOT
from edge_ocr.tools.watch import problem
from tests import bombs
from toolchain.scoring import page_cer

CASES = ROOT.parent / "shared" / "field-cases"
pytestmark = pytest.mark.skipif(not CASES.is_dir(), reason="../shared/field-cases is not here")


@pytest.fixture(scope="module")
def reader() -> PageReader:
    return build_reader(Config())


def _page(reader: PageReader, image: np.ndarray, **kw) -> list[str]:
    reader.reset()
    return [comparable(ln.text) for ln in reader.read(image, **kw).lines]


def test_a01_an_edited_board_reads_as_edited(reader: PageReader) -> None:
    before = _page(reader, read_image(CASES / "A01a-board-before.png"))
    after = reader.read(read_image(CASES / "A01b-board-after.png"))  # no reset: the next photo of the board
    assert before[0] == comparable("今天作业：第35页")
    assert [comparable(ln.text) for ln in after.lines] == [comparable(t) for t in
                                                           ("今天作业：第36页", "x = 18 + 5", "Homework due Monday")]
    assert not any(ln.cached for ln in after.lines)


def test_f03_f05_text_in_the_alpha_channel(reader: PageReader) -> None:
    assert _page(reader, read_image(CASES / "F03-alpha-black-text.png")) == [comparable("我是中国人")]
    f05 = read_image(CASES / "F05-gray-alpha-png.png")
    line = reader.recognizer.recognize([f05])[0]
    assert line.text == "TREND PLOT REPORT" and line.confidence > 0.5


def test_f17_heic_is_named_and_f18_gif_is_read(reader: PageReader) -> None:
    with pytest.raises(ImageError, match=r"HEIC/HEIF images are not supported; an iPhone photo\?"):
        read_image(CASES / "F17-iphone.heic")
    lines = _page(reader, read_image(CASES / "F18-page.gif"))
    assert len(lines) == 8 and lines[0] == comparable("This is a lot of 12 point text to test the")


def test_p02_yuv420_is_refused_unless_named(reader: PageReader) -> None:
    frame = np.load(CASES / "P02-yuv420-frame.npz")["frame"]
    with pytest.raises(ImageError, match="layout='yuv420'"):
        reader.read(frame)
    lines = _page(reader, frame, layout="yuv420")
    assert lines and "handwritten" in "".join(lines)


def test_m03_m04_foreign_payloads_are_named() -> None:
    assert problem("page", json.loads((CASES / "M03-page-payload-foreign.json").read_text())) is not None
    assert problem("page", json.loads((CASES / "M04-page-payload-list.json").read_text())) == \
        "a JSON list, not an edge-ocr page message"


F08_LINES = ["A:：取决于所使用的执行提供者，它可能没有完全支持模型中的所有操作。回落到CPU操作可能会导致性能速度的下降。"
             "此外，即使一个操作是由CUDA execution",
             "provider实现的，由于性能的原因，它也不一定会把操作分配/放置到CUDA EP上。要想看到ORT决定的位置，"
             "请打开verbose日志并查看控制台的输出。"]  # transcribed by eye


def test_f08_a_two_line_strip_reads_both_lines_in_order(reader: PageReader) -> None:
    reader.reset()
    lines = [ln.text for ln in reader.read(read_image(CASES / "F08-two-line-strip.jpg")).lines]
    assert len(lines) == 2 and page_cer(F08_LINES, lines) <= 0.05, lines
    assert lines[0].startswith("A") and lines[1].startswith("provider"), lines


def test_f09_vertical_columns_read_right_to_left(reader: PageReader) -> None:
    lines = _page(reader, read_image(CASES / "F09-vertical-zh.png"))
    truth = ["有評是是非非之士師也", "是非不得問之人要取之", "已取之時不參一人見而"]  # the README's right answer
    assert len(lines) == 3 and page_cer(truth, lines) <= 0.1, lines


F11_LINES = ["This is a lot of 12 point text to test the", "ocr code and see if it works on all types",
             "of file format.", "The quick brown dog jumped over the", "lazy fox. The quick brown dog jumped",
             "over the lazy fox. The quick brown dog", "jumped over the lazy fox. The quick",
             "brown dog jumped over the lazy fox."]  # transcribed by eye from the page turned upright


def test_f11_a_page_upside_down_in_its_pixels_reads_upright(reader: PageReader) -> None:
    lines = _page(reader, read_image(CASES / "F11-page-upside-down.png"))
    assert len(lines) == 8 and page_cer(F11_LINES, lines) <= 0.03, lines


def test_n02_bombs_are_refused_from_their_header() -> None:
    """A 38-byte WebP of 16383² and a 64 KB G4 TIFF of 30000², refused before decoding: this
    process's peak memory rises by far less than either would take (1.7 and 6.2 GB)."""
    bombs.reset_peak()
    start = bombs.status_kib("VmRSS")
    for name, size in (("N02-bomb-16383.webp", "16383×16383"), ("N02-bomb-30000-g4.tif", "30000×30000")):
        with pytest.raises(ImageTooLargeError, match=f"{name}: image too large \\({size};"):
            read_image(CASES / name)
    assert bombs.status_kib("VmHWM") - start < 50 * 1024


N07 = [("Page one of the scan", "第一页：光合作用"), ("Page two of the scan", "第二页：呼吸作用"),
       ("Page three of the scan", "第三页：蒸腾作用")]


def test_n07_every_page_of_a_multi_page_tiff_is_read(reader: PageReader) -> None:
    pages = read_pages(CASES / "N07-multipage-3.tif")
    assert [_page(reader, image) for image in pages] == [[comparable(a), comparable(b)] for a, b in N07]
    with pytest.raises(ImageError, match="a TIFF of 3 pages where one image is read"):
        read_image(CASES / "N07-multipage-3.tif")  # a caller of one image is told, never given page 1


def test_n15_a_configuration_saved_with_a_byte_order_mark_loads() -> None:
    cfg = load_config(CASES / "N15-config-bom.toml", environ={})
    assert (cfg.device.id, cfg.capture.source, cfg.mqtt.host, cfg.mqtt.port) == \
        ("room-101", "/tmp/n2/folder", "127.0.0.1", 18831)
