"""Pages rendered for the vision tests, with Debian fonts (fonts-dejavu-core, fonts-wqy-microhei):
printed lines with known text at known places, to turn, slant, crowd, glare and clutter."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

LATIN = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
CJK = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    if not path.exists():
        raise FileNotFoundError(f"{path}: the vision tests need fonts-dejavu-core and fonts-wqy-microhei "
                                "(make deps-test)")
    return ImageFont.truetype(str(path), size)


def page(lines: list[str], size: int = 40, spacing: float = 1.8, margin: int = 80, width: int | None = None,
         path: Path = LATIN, gaps: int = 1) -> np.ndarray:
    """A white page (BGR) holding ``lines`` top to bottom; ``spacing`` is baseline distance over
    the font size; ``gaps`` widens every space between words that many times."""
    f = font(path, size)
    texts = [(" " * gaps).join(t.split(" ")) for t in lines]
    w = width or max(int(f.getlength(t)) for t in texts) + 2 * margin
    h = int(margin * 2 + size * spacing * (len(lines) - 1) + size * 1.4)
    im = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(im)
    for i, t in enumerate(texts):
        draw.text((margin, margin + i * size * spacing), t, font=f, fill=(20, 20, 20))
    return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)


def vertical_columns(columns: list[str], size: int = 48, margin: int = 60) -> np.ndarray:
    """Chinese written in columns, read top to bottom, the first column on the right."""
    f = font(CJK, size)
    rows = max(len(c) for c in columns)
    pitch = int(size * 1.9)
    w, h = 2 * margin + pitch * len(columns), 2 * margin + int(size * 1.15) * rows
    im = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(im)
    for k, col in enumerate(columns):
        x = w - margin - (k + 1) * pitch + (pitch - size) // 2
        for i, ch in enumerate(col):
            draw.text((x, margin + i * int(size * 1.15)), ch, font=f, fill=(15, 15, 15))
    return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)


def glare(image: np.ndarray, centre: tuple[int, int], radius: int, contrast: int = 70) -> np.ndarray:
    """A bright patch (a lamp's reflection): inside it the paper is white and ink only ``contrast``
    grey levels darker."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.sqrt((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / radius
    strength = np.clip(1.2 - d, 0, 1)[:, :, None]
    lifted = 255 - (255 - image.astype(np.float32)) * (contrast / 255.0)
    return (image * (1 - strength) + lifted * strength).astype(np.uint8)


def clutter(image: np.ndarray, seed: int = 0) -> np.ndarray:
    """Magnets (coloured discs with a highlight) and coloured tick marks around the page."""
    rng = np.random.default_rng(seed)
    out = image.copy()
    h, w = out.shape[:2]
    for _ in range(4):
        c = (int(rng.integers(20, w - 20)), int(rng.choice([int(rng.integers(5, 30)), h - int(rng.integers(5, 30))])))
        colour = tuple(int(v) for v in rng.integers(0, 200, 3))
        cv2.circle(out, c, 16, colour, -1, cv2.LINE_AA)
        cv2.circle(out, (c[0] - 5, c[1] - 5), 4, (255, 255, 255), -1, cv2.LINE_AA)
    for _ in range(3):
        x, y = int(rng.integers(10, 50)), int(rng.integers(40, h - 40))
        tick = np.int32([[x, y], [x + 8, y + 10], [x + 24, y - 14]])
        cv2.polylines(out, [tick], False, (40, 160, 40), 4, cv2.LINE_AA)
    return out


def in_frame(board: np.ndarray, angle: float = 0.0, pad: int = 160, wall: int = 90) -> np.ndarray:
    """The board turned by ``angle`` degrees inside a darker camera frame."""
    h, w = board.shape[:2]
    frame = np.full((h + 2 * pad, w + 2 * pad, 3), wall, np.uint8)
    frame[pad : pad + h, pad : pad + w] = board
    m = cv2.getRotationMatrix2D((frame.shape[1] / 2, frame.shape[0] / 2), angle, 1.0)
    return cv2.warpAffine(frame, m, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(wall, wall, wall))


def slanted(lines: list[str], angles: list[float], size: int = 40, width: int = 1600) -> np.ndarray:
    """A white board with each line written at its own slant (degrees, counter-clockwise), one
    under the other, as handwriting on a board drifts."""
    f = font(LATIN, size)
    strips = []
    for text, angle in zip(lines, angles):
        strip = Image.new("L", (int(f.getlength(text)) + size, int(size * 1.6)), 255)
        ImageDraw.Draw(strip).text((size // 2, size // 5), text, font=f, fill=20)
        strips.append(np.asarray(strip.rotate(angle, expand=True, fillcolor=255, resample=Image.BICUBIC)))
    gap = size // 2
    board = np.full((sum(st.shape[0] for st in strips) + gap * (len(strips) + 1), width, 3), 255, np.uint8)
    y = gap
    for ink in strips:
        x0 = max(0, (width - ink.shape[1]) // 2)
        region = board[y : y + ink.shape[0], x0 : x0 + ink.shape[1]]
        region[...] = np.minimum(region, ink[: region.shape[0], : region.shape[1], None])
        y += ink.shape[0] + gap
    return board


BOARD_BEFORE = ["今天作业：第35页", "x = 13 + 5", "Homework due Friday"]
BOARD_AFTER = ["今天作业：第36页", "x = 18 + 5", "Homework due Monday"]  # three one-character-or-word edits


def edited_board(lines: list[str]) -> np.ndarray:
    """A light-grey board with dark-blue writing, as in the field case A01 (same place, same size
    for every version, so only the edited characters differ)."""
    f = font(CJK, 48)
    im = Image.new("RGB", (900, 330), (242, 242, 242))
    draw = ImageDraw.Draw(im)
    for i, t in enumerate(lines):
        draw.text((60, 40 + i * 100), t, font=f, fill=(30, 30, 120))
    return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)


def multi_page_tiff(pages: list[list[str]], size: int = 36) -> bytes:
    """A scanner's multi-page TIFF (deflated): one :func:`page` of printed lines per entry."""
    images = [Image.fromarray(page(lines, size=size)[:, :, ::-1]) for lines in pages]
    buf = io.BytesIO()
    images[0].save(buf, "TIFF", save_all=True, append_images=images[1:], compression="tiff_deflate")
    return buf.getvalue()


def motion_blur(image: np.ndarray, length: int, angle: float = 0.0) -> np.ndarray:
    """``image`` smeared by a straight camera motion of ``length`` pixels at ``angle`` degrees
    (a linear motion kernel; 0 or 1: unchanged)."""
    if length <= 1:
        return image
    kernel = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = np.cos(np.radians(angle)) * c, np.sin(np.radians(angle)) * c
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REPLICATE)


CLASS_NOTES = ["Homework due Friday at noon", "read chapter 4 and 5", "x = 13 + 5 = 18"]


def class_board() -> np.ndarray:
    """A board in its frame with :data:`CLASS_NOTES` in 28-px print (a line about 30 px tall:
    classroom handwriting's size in a 1080p frame)."""
    return in_frame(page(CLASS_NOTES, size=28))


def table(rows: list[list[str]], size: int = 32, pad: int = 18, ruled: bool = True, gap: int = 0) -> np.ndarray:
    """A printed table: ``rows`` of cells (the first row its heading), each column as wide as its
    longest cell plus ``pad`` on each side (``gap`` more between columns), ruled cells or none."""
    f = font(CJK, size)
    widths = [max(int(f.getlength(r[c])) for r in rows) + 2 * pad + gap for c in range(len(rows[0]))]
    rh, m = int(size * 1.9), 60
    w, h = sum(widths) + 2 * m, rh * len(rows) + 2 * m
    im = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(im)
    for i, row in enumerate(rows):
        x = m
        for c, text in enumerate(row):
            draw.text((x + pad, m + i * rh + (rh - size) // 2 - 4), text, font=f, fill=(20, 20, 20))
            x += widths[c]
    if ruled:
        for x in [m, *(m + np.cumsum(widths))]:
            draw.line([(int(x), m), (int(x), h - m)], fill=(0, 0, 0), width=2)
        for i in range(len(rows) + 1):
            draw.line([(m, m + i * rh), (w - m, m + i * rh)], fill=(0, 0, 0), width=2)
    return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)


def grid_paper(rows: list[str], cell: int = 64, colour: tuple[int, int, int] = (200, 60, 60), margin: int = 50,
               columns: int | None = None) -> np.ndarray:
    """An exercise book's 田字格: rows of abutting square cells, each with a dashed cross, one
    Chinese character in each cell from the left (a row as long as ``columns`` fills its last cell)."""
    f = font(CJK, int(cell * 0.7))
    n = columns or max(len(r) for r in rows)
    w, h = 2 * margin + n * cell, 2 * margin + len(rows) * cell
    im = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(im)
    for i, row in enumerate(rows):
        y = margin + i * cell
        for j in range(n):
            x = margin + j * cell
            draw.rectangle([x, y, x + cell, y + cell], outline=colour, width=2)
            for k in range(0, cell, 8):
                draw.line([(x + k, y + cell // 2), (x + k + 4, y + cell // 2)], fill=colour, width=1)
                draw.line([(x + cell // 2, y + k), (x + cell // 2, y + k + 4)], fill=colour, width=1)
        for j, ch in enumerate(row):
            draw.text((margin + j * cell + cell * 0.15, y + cell * 0.08), ch, font=f, fill=(20, 20, 20))
    return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2BGR)


def diagram(kind: str, width: int = 1200, height: int = 800, stroke: int = 5) -> np.ndarray:
    """A white board with a drawing and no text: ``kind`` is "shapes" (circle, triangle, box),
    "arrows" (arrows between circles), "axes" (x and y axes with ticks and arrowheads) or
    "numberline" (a number line with ticks)."""
    img = np.full((height, width, 3), 255, np.uint8)
    ink = (30, 30, 30)
    if kind == "shapes":
        cv2.circle(img, (250, 400), 130, ink, stroke, cv2.LINE_AA)
        cv2.polylines(img, [np.int32([[480, 520], [720, 520], [600, 260]])], True, ink, stroke, cv2.LINE_AA)
        cv2.rectangle(img, (820, 280), (1080, 520), ink, stroke, cv2.LINE_AA)
    elif kind == "arrows":
        for x in (200, 600, 1000):
            cv2.circle(img, (x, 400), 110, ink, stroke, cv2.LINE_AA)
        for x in (320, 720):
            cv2.arrowedLine(img, (x, 400), (x + 160, 400), ink, stroke, cv2.LINE_AA, tipLength=0.2)
    elif kind == "axes":
        cv2.arrowedLine(img, (150, 650), (1100, 650), ink, stroke, cv2.LINE_AA, tipLength=0.03)
        cv2.arrowedLine(img, (150, 650), (150, 100), ink, stroke, cv2.LINE_AA, tipLength=0.05)
        for k in range(1, 9):
            cv2.line(img, (150 + k * 110, 635), (150 + k * 110, 665), ink, stroke - 1, cv2.LINE_AA)
            cv2.line(img, (135, 650 - k * 60), (165, 650 - k * 60), ink, stroke - 1, cv2.LINE_AA)
    elif kind == "numberline":
        cv2.arrowedLine(img, (100, 400), (1100, 400), ink, stroke, cv2.LINE_AA, tipLength=0.03)
        for x in range(150, 1100, 100):
            cv2.line(img, (x, 385), (x, 415), ink, stroke - 1, cv2.LINE_AA)
    else:
        raise ValueError(f"no such diagram: {kind}")
    return img
