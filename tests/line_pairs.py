"""Rendered line pairs for the line cache: one-character edits that must miss, and the same
line under camera jitter that should hit (issue: a cached line must never hide an edit).

Each sample is a rendered board line (Debian fonts, random ink and board grey, blur, noise),
cropped the way a detector would: the ink's extent plus a margin. Jitter moves the crop by a
pixel, shifts the line by a fraction of a pixel, changes exposure and noise and re-encodes as
JPEG; an edit's "after" line gets its own jitter too, as the next frame of a camera would.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from tests.render import CJK, LATIN, font

DIGIT_LINES = ["今天作业：第{}页", "x = {} + 5", "Room {}", "P.{}", "2024-06-{}", "共{}人", "{} km/h", "第{}题 A",
               "¥{}.00", "{}°C"]
PUNCT_EDITS = [("Hello, world", "Hello. world"), ("答案是 A", "答案是 A。"), ("a:b = 2", "a;b = 2"),
               ("F = ma", "F - ma"), ("x-1", "x=1"), ("你好，世界", "你好。世界"), ("(x+1)", "[x+1)"),
               ("y = 2x", "y = 2x."), ("见第3页", "见第3页！"), ("3.14", "3,14"), ("1/2", "1/3"),
               ("x + y", "x ÷ y")]
# A stroke added to (or taken from) a Chinese character: 大→太, 王→玉, 日→目, 木→本, 一→二 ...
STROKE_PAIRS = ["大太", "大犬", "王玉", "王主", "日目", "日白", "日旦", "木本", "木术", "土士", "一二", "二三",
                "己已", "未末", "千干", "午牛", "由田", "由甲", "由申", "刀刃", "天夫", "今令", "人入", "口日",
                "目自", "儿几", "乌鸟", "小少", "问间", "休体", "厂广", "白百", "九丸", "万方", "力办", "下卜"]
STROKE_LINES = ["今天学习{}字", "星期{}交作业", "写{}字", "第三课：{}", "请写出{}的笔顺"]
# ../shared/field-cases/A01-cache-pairs.tsv
FIELD_EDITS = [("今天作业：第35页", "今天作业：第36页"), ("今天作业：第35页", "今天作业：第38页"),
               ("星期一交作业", "星期二交作业"), ("上午九点考试", "下午九点考试"), ("x = 13 + 5", "x = 18 + 5"),
               ("Room 101", "Room 107"), ("答案是 A", "答案是 B")]
LETTER_EDITS = [("Friday", "Fridey"), ("cat", "cot"), ("Room", "Boom"), ("Monday", "Munday"), ("sit", "sat"),
                ("hello world", "hello word"), ("ABC", "ABD"), ("pen", "pan")]


def edit_pairs() -> list[tuple[str, str]]:
    """(before, after) texts differing by one character: digits, punctuation, a stroke, a letter."""
    pairs = []
    rng = np.random.default_rng(1)
    for template in DIGIT_LINES:
        for _ in range(12):
            n = int(rng.integers(10, 100))
            k = int(rng.integers(0, 2))
            digits = list(str(n))
            digits[k] = str((int(digits[k]) + int(rng.integers(1, 10))) % 10)
            if k == 0 and digits[0] == "0":
                digits[0] = "1"
            if "".join(digits) != str(n):
                pairs.append((template.format(n), template.format("".join(digits))))
    pairs += PUNCT_EDITS
    for i, (a, b) in enumerate(STROKE_PAIRS):
        template = STROKE_LINES[i % len(STROKE_LINES)]
        pairs += [(template.format(a), template.format(b)), (template.format(b), template.format(a))]
    pairs += LETTER_EDITS + [(b, a) for a, b in LETTER_EDITS] + FIELD_EDITS
    return pairs


def render(text: str, size: int, ink: int, board: int, seed: int) -> np.ndarray:
    """A board line in a generous gray canvas (BGR uint8), before cropping."""
    f = font(CJK if any(ord(c) > 0x2000 for c in text) else LATIN, size)
    w = int(f.getlength(text)) + 4 * size
    im = Image.new("L", (w, 3 * size), board)
    ImageDraw.Draw(im).text((2 * size, size), text, font=f, fill=ink)
    gray = np.asarray(im).astype(np.float32)
    gray = cv2.GaussianBlur(gray, (0, 0), 0.6 + 0.4 * np.random.default_rng(seed).random())
    return gray


def ink_box(gray: np.ndarray, board: int, ink: int) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(gray < (board + ink) / 2)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def camera(gray: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator, jitter: str = "") -> np.ndarray:
    """The crop a detector would cut, as one camera frame sees it (BGR uint8). ``jitter``:
    "" none; "camera" the same box, the picture moved by a whole pixel, exposure and noise
    changed, JPEG; "box" also each side of the box moved by a pixel and the picture by a
    fraction of one (a detector whose box wobbles)."""
    x0, y0, x1, y1 = box
    h = y1 - y0
    margin = max(2, round(0.15 * h))
    if jitter:
        dx, dy = rng.integers(-1, 2, 2).astype(np.float32)
        if jitter == "box":
            dx, dy = rng.uniform(-0.5, 0.5, 2)
            x0, y0, x1, y1 = (v + int(rng.integers(-1, 2)) for v in (x0, y0, x1, y1))
        gray = cv2.warpAffine(gray, np.float32([[1, 0, dx], [0, 1, dy]]), gray.shape[::-1],
                              borderMode=cv2.BORDER_REPLICATE)
        gray = gray * rng.uniform(0.88, 1.12) + rng.uniform(-12, 12)
    out = gray + rng.normal(0, 2.5, gray.shape)
    crop = np.clip(out[y0 - margin : y1 + margin, x0 - margin : x1 + margin], 0, 255).astype(np.uint8)
    if jitter:
        crop = cv2.imdecode(cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])[1], cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)


SIZES = (18, 24, 32, 44)  # font px: crops about 22 to 60 px high


Pair = tuple[np.ndarray, np.ndarray]


def samples(seed: int = 0, jitter: str = "camera") -> tuple[list[tuple[np.ndarray, np.ndarray, str]], list[Pair]]:
    """(edits, repeats): each edit as (before crop, jittered after crop, description); each
    repeat as (crop, the same line jittered)."""
    rng = np.random.default_rng(seed)
    edits, repeats = [], []
    for i, (before, after) in enumerate(edit_pairs()):
        size = SIZES[i % len(SIZES)]
        ink, board = int(rng.integers(15, 70)), int(rng.integers(190, 240))
        a, b = render(before, size, ink, board, i), render(after, size, ink, board, i)
        box_a, box_b = ink_box(a, board, ink), ink_box(b, board, ink)
        first = camera(a, box_a, rng)
        edits.append((first, camera(b, box_b, rng, jitter), f"{before} → {after} ({size} px)"))
        repeats.append((first, camera(a, box_a, rng, jitter)))
    return edits, repeats
