"""Synthetic text-line renderer imitating phone/camera captures of boards and notebooks."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge_ocr.recognition.preprocess import normalize_line
from toolchain.synth.corpus import Corpus, TextSampler
from toolchain.synth.fonts import FontSpec, coverage, fonts_for

INKS = (
    ((20, 20, 20), 0.62),  # pencil / black pen
    ((30, 40, 150), 0.14),  # blue marker (RGB)
    ((170, 30, 30), 0.10),  # red marker
    ((30, 120, 50), 0.08),  # green marker
    ((90, 90, 90), 0.06),  # faint pencil
)


def elastic(image: np.ndarray, sigma: float, amp: float, nrng: np.random.Generator) -> np.ndarray:
    """A smooth random displacement (pen wobble, paper warp): uniform noise blurred by ``sigma``
    pixels, scaled to ``amp`` pixels, x then y drawn from ``nrng``; edges replicated."""
    h, w = image.shape[:2]
    dx = cv2.GaussianBlur(nrng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * amp
    dy = cv2.GaussianBlur(nrng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma) * amp
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + dx, gy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@lru_cache(maxsize=512)
def _font(path: str, index: int, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, index=index)


def _pick(rng: random.Random, weighted: tuple) -> object:
    r = rng.random()
    for value, p in weighted:
        if r < p:
            return value
        r -= p
    return weighted[-1][0]


@dataclass
class LineRenderer:
    """Renders normalised training lines (height ``height``, width ≤ ``max_width``)."""

    split: str
    corpus: Corpus
    seed: int
    height: int = 32
    max_width: int = 384

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self.sampler = TextSampler(self.corpus, self.rng)
        self.cjk, self.latin = fonts_for(self.split)

    def sample(self) -> tuple[np.ndarray, str]:
        """One (normalised float32 line, label) pair."""
        image, text = self.sample_raw()
        return normalize_line(image, self.height, max_width=self.max_width), text

    def sample_raw(self) -> tuple[np.ndarray, str]:
        """One (BGR camera-like line image, label) pair, before normalisation."""
        for _ in range(20):
            text = self.sampler.sample()
            font = self._choose_font(text)
            text = "".join(c for c in text if c in coverage(font.path, font.index) or c == " ")
            text = " ".join(text.split())
            for _ in range(4):
                if not text:
                    break
                image = self._draw(text, font)
                natural = image.shape[1] * self.height / image.shape[0]
                if natural <= self.max_width * 1.1:
                    return image, text
                text = self._shorten(text, self.max_width / natural)
        raise RuntimeError("could not render a line: fonts cover none of the sampled texts")

    def _shorten(self, text: str, ratio: float) -> str:
        """Cut ``text`` to about ``ratio`` of its length, at a word boundary when it has spaces."""
        if " " in text:
            words = text.split(" ")
            return " ".join(words[: max(1, int(len(words) * ratio))])
        return text[: max(1, int(len(text) * ratio * 0.95))]

    def _choose_font(self, text: str) -> FontSpec:
        if text.isascii() and self.rng.random() < 0.6:
            return self.rng.choice(self.latin)
        # Prefer a CJK face that covers the whole text; fall back to the widest one.
        fonts = self.cjk[:]
        self.rng.shuffle(fonts)
        for f in fonts:
            if all(c in coverage(f.path, f.index) or c == " " for c in text):
                return f
        return max(fonts, key=lambda f: len(coverage(f.path, f.index)))

    def _draw(self, text: str, spec: FontSpec) -> np.ndarray:
        rng = self.rng
        size = rng.randint(24, 52)
        font = _font(spec.path, spec.index, size)
        ink = _pick(rng, INKS)
        paper = rng.randint(200, 255)
        tint = [min(255, paper + rng.randint(-12, 6)) for _ in range(3)]
        jitter = rng.random() < 0.5
        spacing = rng.uniform(-0.05, 0.25) * size if rng.random() < 0.4 else 0.0
        advances = [font.getlength(c) + spacing for c in text]
        width = int(sum(advances) + size * 2)
        height = int(size * 2.0)
        img = Image.new("RGB", (max(width, 8), height), tuple(tint))
        draw = ImageDraw.Draw(img)
        self._paper_lines(draw, width, height, size)
        stroke = 1 if rng.random() < 0.15 and size > 30 else 0
        x, base_y = size * 1.0, size * 0.45
        if jitter:
            for c, adv in zip(text, advances):
                dy = rng.gauss(0, size * 0.04)
                s = max(10, int(size * rng.uniform(0.9, 1.1)))
                f = font if s == size else _font(spec.path, spec.index, s)
                pos = (x + rng.gauss(0, size * 0.02), base_y + dy + (size - s) * 0.8)
                draw.text(pos, c, font=f, fill=ink, stroke_width=stroke, stroke_fill=ink)
                x += adv
        else:
            draw.text((x, base_y), text, font=font, fill=ink, stroke_width=stroke, stroke_fill=ink)
        arr = np.asarray(img)[:, :, ::-1].copy()
        arr = self._crop(arr, tint, size)
        arr = self._geometry(arr, tint)
        return self._photometric(arr)

    def _paper_lines(self, draw: ImageDraw.ImageDraw, width: int, height: int, size: int) -> None:
        rng = self.rng
        r = rng.random()
        colour = _pick(rng, (((150, 180, 220), 0.5), ((220, 150, 150), 0.2), ((170, 170, 170), 0.3)))
        if r < 0.15:
            y = int(size * (1.45 + rng.uniform(-0.1, 0.2)))
            draw.line([(0, y), (width, y)], fill=colour, width=rng.choice((1, 1, 2)))
        elif r < 0.23:
            step = int(size * rng.uniform(1.1, 1.4))
            off = rng.randint(0, step)
            for x in range(off, width, step):
                draw.line([(x, 0), (x, height)], fill=colour, width=1)
            for y in (int(size * 0.35), int(size * 0.35) + step):
                draw.line([(0, y), (width, y)], fill=colour, width=1)

    def _crop(self, arr: np.ndarray, bg: list[int], size: int) -> np.ndarray:
        gray = cv2.cvtColor(arr, cv2.COLOR_BGR2GRAY)
        mask = gray < (np.median(gray) - 40)
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            return arr
        rng = self.rng
        top = max(0, ys.min() - int(size * rng.uniform(0.05, 0.35)))
        bot = min(arr.shape[0], ys.max() + 1 + int(size * rng.uniform(0.05, 0.35)))
        left = max(0, xs.min() - int(size * rng.uniform(0.05, 0.6)))
        right = min(arr.shape[1], xs.max() + 1 + int(size * rng.uniform(0.05, 0.6)))
        return arr[top:bot, left:right]

    def _geometry(self, arr: np.ndarray, bg: list[int]) -> np.ndarray:
        rng = self.rng
        h, w = arr.shape[:2]
        border = tuple(int(v) for v in bg[::-1])
        if rng.random() < 0.35:
            shear = rng.uniform(-0.25, 0.25)
            m = np.float32([[1, shear, -shear * h / 2], [0, 1, 0]])
            arr = cv2.warpAffine(arr, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=border)
        if rng.random() < 0.5:
            angle = rng.uniform(-2.0, 2.0)
            m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            arr = cv2.warpAffine(arr, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < 0.25:
            d = 0.04
            src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
            dst = src + np.float32([[rng.uniform(-d, d) * w, rng.uniform(-d, d) * h] for _ in range(4)])
            m = cv2.getPerspectiveTransform(src, dst)
            arr = cv2.warpPerspective(arr, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
        if rng.random() < 0.2:
            arr = elastic(arr, 6, h * 0.6, self.np_rng)
        return arr

    def _photometric(self, arr: np.ndarray) -> np.ndarray:
        rng, nrng = self.rng, self.np_rng
        h, w = arr.shape[:2]
        img = arr.astype(np.float32)
        if rng.random() < 0.4:
            gx = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0), w, dtype=np.float32)
            gy = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0), h, dtype=np.float32)
            img *= (gy[:, None] * gx[None, :])[:, :, None]
        if rng.random() < 0.15:
            # Grey-level erosion thickens dark strokes (marker); a 2 px dilation thins them
            # (hard pencil) without wiping out 1 px strokes of small text.
            if rng.random() < 0.6:
                img = cv2.erode(img, np.ones((rng.choice((2, 3)),) * 2, np.uint8))
            else:
                img = cv2.dilate(img, np.ones((2, 2), np.uint8))
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.3))
        if rng.random() < 0.15:
            k = rng.randint(3, 7)
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2, :] = 1.0 / k
            img = cv2.filter2D(img, -1, kernel)
        if rng.random() < 0.6:
            img += nrng.normal(0, rng.uniform(2, 14), img.shape).astype(np.float32)
        img = np.clip(img, 0, 255).astype(np.uint8)
        if rng.random() < 0.3:
            f = rng.uniform(0.35, 0.7)
            small = cv2.resize(img, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            _, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(25, 90)])
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return img
