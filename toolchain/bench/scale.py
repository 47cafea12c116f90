"""``make bench-scale``: does the default reader find and read the same lines whatever their size?

    python -m toolchain.bench.scale --out reports/scale.md

The same three lines (Latin, Chinese, a formula) rendered with the toolchain's fonts
(``toolchain.synth.fonts``: held-out test faces, one printed and one handwriting-like per
script) at cap heights from 10 to 160 px (Latin 'H'; Chinese '口' ink height), dark ink on a
light, slightly uneven board, placed at two positions in a 1920×1080 frame, and read end to end
by the default reader (1 thread). Per cap height: line recall (a truth line found when its
paired reading is at most half wrong) and line-matched CER against the rendered text. The
scale-aware detector is compared with one coarse pass (``small_text = 0``, the old way) in the
same run, with the median ms per frame of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge_ocr.config import Config
from edge_ocr.page.build import build_reader
from edge_ocr.tools.bench import emit
from toolchain.bench.pages import line_recall
from toolchain.scoring import page_errors

CAPS = (10, 12, 14, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160)
LINES = ("Read page 42", "二次方程的解", "x + 3y = 4")
T = "/usr/share/fonts/truetype"
# (Latin face, CJK face): toolchain.synth.fonts' held-out test faces.
FONTS = ((f"{T}/liberation2/LiberationSerif-BoldItalic.ttf", f"{T}/wqy/wqy-microhei.ttc"),
         ("/usr/share/fonts/opentype/comic-neue/ComicNeue-Light.otf", f"{T}/arphic-gkai00mp/gkai00mp.ttf"))
FRAME = (1080, 1920)


def sized(path: str, cap: int, probe: str) -> ImageFont.FreeTypeFont:
    """The face at the size whose ``probe`` glyph is ``cap`` pixels tall."""
    ref = ImageFont.truetype(path, 100)
    top, bottom = ref.getbbox(probe)[1], ref.getbbox(probe)[3]
    return ImageFont.truetype(path, max(4, round(100 * cap / max(1, bottom - top))))


def frame(cap: int, fonts: tuple[str, str], place: int, seed: int) -> np.ndarray:
    """A 1920×1080 BGR board holding ``LINES`` at cap height ``cap``; ``place`` 0 puts them at
    the top left, 1 lower right of centre."""
    rng = np.random.default_rng(seed)
    h, w = FRAME
    light = 200 + 30 * np.linspace(0, 1, w)[None, :] * np.linspace(0.6, 1, h)[:, None]
    board = np.clip(light + rng.normal(0, 3, (h, w)), 0, 255).astype(np.uint8)
    im = Image.fromarray(cv2.cvtColor(board, cv2.COLOR_GRAY2RGB))
    draw = ImageDraw.Draw(im)
    pitch = round(cap * 1.9)
    x0, y0 = (round(0.08 * w), round(0.08 * h)) if place == 0 else (round(0.45 * w), round(0.5 * h))
    y0 = min(y0, h - pitch * len(LINES) - cap)
    for i, text in enumerate(LINES):
        cjk = any(ord(ch) > 0x2E80 for ch in text)
        f = sized(fonts[1], cap, "口") if cjk else sized(fonts[0], cap, "H")
        x = min(x0, w - int(f.getlength(text)) - 10)
        top = f.getbbox("口" if cjk else "H")[1]
        draw.text((max(0, x), y0 + i * pitch - top), text, font=f, fill=(30, 40, 90))
    out = cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)
    return cv2.GaussianBlur(out, (3, 3), 0.6)


def sweep(small_text: float | None) -> dict[int, dict[str, float]]:
    """Per cap height: line recall, CER and median ms over the fonts and places (``small_text``
    None: the default reader; 0: one coarse pass)."""
    cfg = Config()
    if small_text is not None:
        cfg.vision.small_text = small_text
    cfg.validate()
    reader = build_reader(cfg)
    out = {}
    for cap in CAPS:
        found = lines = errors = chars = 0
        ms = []
        for k, fonts in enumerate(FONTS):
            for place in (0, 1):
                image = frame(cap, fonts, place, seed=cap * 10 + k * 2 + place)
                reader.reset()
                t0 = time.perf_counter()
                page = reader.read(image)
                ms.append((time.perf_counter() - t0) * 1000)
                texts = [ln.text for ln in page.lines]
                f, n = line_recall(list(LINES), texts)
                e, c = page_errors(list(LINES), texts)
                found, lines, errors, chars = found + f, lines + n, errors + e, chars + c
        out[cap] = {"recall": found / lines, "cer": errors / max(1, chars), "ms": statistics.median(ms)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("reports/scale.md"))
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ours, one = sweep(None), sweep(0.0)
    rows = ["# Scale sweep: the same lines from 10 to 160 px cap height in a 1920×1080 frame", "",
            f"Lines {', '.join(repr(t) for t in LINES)}; {len(FONTS)} font pairs × 2 places per height; "
            "default reader, 1 thread, this machine. Done when line recall ≥ 0.97 and CER ≤ 0.05 at every "
            "cap height from 12 to 160 px. Reproduce: `make bench-scale`.", "",
            "| cap height px | recall, scale-aware | CER, scale-aware | ms | recall, one pass | CER, one pass | ms |",
            "|---|---|---|---|---|---|---|"]
    for cap in CAPS:
        o, p = ours[cap], one[cap]
        rows.append(f"| {cap} | {o['recall']:.2f} | {o['cer']:.3f} | {o['ms']:.0f} | {p['recall']:.2f} "
                    f"| {p['cer']:.3f} | {p['ms']:.0f} |")
    ok = all(ours[c]["recall"] >= 0.97 and ours[c]["cer"] <= 0.05 for c in CAPS if c >= 12)
    rows += ["", f"Target (recall ≥ 0.97, CER ≤ 0.05 from 12 to 160 px): {'met' if ok else 'not met'}."]
    emit("\n".join(rows) + "\n", a.out)


if __name__ == "__main__":
    main()
