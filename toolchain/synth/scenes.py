"""Synthesised camera frames of whiteboards and notebook pages with ground-truth lines.

A scene is a board (white, or paper with ruled lines/grid) holding one to three blocks of
text lines in held-out fonts and texts, in black or marker colours, slightly slanted,
placed in a larger frame under a perspective, uneven light and glare. The ground truth is
each line's text and its polygon in frame pixels, plus the board's corners.

    python -m toolchain.synth.scenes --count 100 --out data/scenes
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from edge_ocr.recognition.charset import Charset
from toolchain.synth.corpus import Corpus, TextSampler
from toolchain.synth.fonts import coverage, fonts_for
from toolchain.synth.render import _font

MARKERS = ((20, 20, 20), (25, 40, 160), (170, 30, 30), (30, 120, 50))  # RGB


@dataclass
class Scene:
    frame: np.ndarray  # BGR
    board: np.ndarray  # (4, 2) board corners in frame pixels
    lines: list[tuple[str, np.ndarray]]  # (text, (4, 2) polygon in frame pixels)

    def to_json(self) -> dict:
        return {"board": self.board.round(1).tolist(),
                "lines": [{"text": t, "box": p.round(1).tolist()} for t, p in self.lines]}


class SceneRenderer:
    def __init__(self, split: str = "test", seed: int = 0, charset_path: str = "models/charset_zh_en.txt") -> None:
        charset = Charset.load(charset_path)
        self.rng = random.Random(seed)
        self.sampler = TextSampler(Corpus.load(split, charset), self.rng)
        self.cjk, _ = fonts_for(split)

    def _text(self, font) -> str:
        for _ in range(20):
            t = self.sampler.sample()
            cov = coverage(font.path, font.index)
            t = " ".join("".join(c for c in t if c in cov or c == " ").split())
            if len(t.replace(" ", "")) >= 2:
                return t
        return "OK"

    def render(self, frame_size: tuple[int, int] = (1920, 1080), n_lines: int | None = None) -> Scene:
        return self.render_writing(frame_size, n_lines)[-1]

    def render_writing(self, frame_size: tuple[int, int] = (1920, 1080), n_lines: int | None = None,
                       progressive: bool = False) -> list[Scene]:
        """The finished board; with ``progressive``, one frame per line as it is written
        (same camera geometry and light, new sensor noise in every frame)."""
        rng = self.rng
        fw, fh = frame_size
        notebook = rng.random() < 0.4
        bw, bh = int(fw * rng.uniform(0.55, 0.8)), int(fh * rng.uniform(0.6, 0.85))
        paper = (255, 255, 255) if not notebook else (250, 248, 240)
        board = Image.new("RGB", (bw, bh), paper)
        draw = ImageDraw.Draw(board)
        spec = rng.choice(self.cjk)
        size = rng.randint(max(18, bh // 22), max(20, bh // 12))
        font = _font(spec.path, spec.index, size)
        pitch = int(size * rng.uniform(1.6, 2.0))
        if notebook:
            rule = rng.choice(((170, 190, 225), (190, 190, 190), (225, 175, 175)))
            for y in range(int(size * 1.5), bh, pitch):
                draw.line([(0, y + int(size * 0.25)), (bw, y + int(size * 0.25))], fill=rule, width=2)
            if rng.random() < 0.4:  # grid paper: vertical lines as well
                for x in range(rng.randint(0, pitch), bw, pitch):
                    draw.line([(x, 0), (x, bh)], fill=rule, width=1)
        n_blocks = rng.choice((1, 1, 2, 2, 3))
        margin = max(int(bw * 0.04), int(size * 2.5))  # columns on a board sit well apart
        col_w = (bw - margin * (n_blocks + 1)) // n_blocks
        total = n_lines or rng.randint(4, 16)
        per_block = [total // n_blocks + (1 if i < total % n_blocks else 0) for i in range(n_blocks)]
        lines_gt: list[tuple[str, np.ndarray]] = []
        stages: list[Image.Image] = []
        base_size, base_pitch = size, pitch
        for b in range(n_blocks):
            x0 = margin + b * (col_w + margin)
            if b and rng.random() < 0.5:  # mixed heights: another block, another pen size
                size = max(16, int(base_size * rng.uniform(0.7, 1.2)))
                font = _font(spec.path, spec.index, size)
                pitch = int(size * base_pitch / base_size)
            y = int(size * 1.5) - int(size * 1.0)
            for _ in range(per_block[b]):
                if y + pitch > bh - margin // 2:
                    break
                text = self._text(spec)
                while text and font.getlength(text) > col_w * 0.95:
                    text = text[: max(1, int(len(text) * 0.8))].strip()
                colour = rng.choice(MARKERS)
                angle = rng.uniform(-2.5, 2.5)
                tw = font.getlength(text)
                layer = Image.new("L", (int(tw + size), int(size * 1.6)), 0)
                ImageDraw.Draw(layer).text((size // 2, int(size * 0.25)), text, font=font, fill=255)
                rot = layer.rotate(angle, expand=True, resample=Image.BILINEAR)
                px = x0 + rng.randint(0, max(0, int(col_w - tw - size)) // 3)
                board.paste(Image.new("RGB", rot.size, colour), (px, y), rot)
                if progressive:
                    stages.append(board.copy())
                m = np.asarray(rot) > 60
                ys, xs = np.nonzero(m)
                if len(xs):
                    pts = np.column_stack([xs + px, ys + y]).astype(np.float32)
                    box = cv2.boxPoints(cv2.minAreaRect(pts)).astype(np.float32)
                    lines_gt.append((text, box))
                y += pitch
        place_seed = rng.randrange(2**31)
        boards = stages if progressive else [board]
        scenes = []
        for k, b in enumerate(boards):
            gt = lines_gt[: k + 1] if progressive else lines_gt
            scenes.append(self._place(np.asarray(b)[:, :, ::-1].copy(), gt, fw, fh, place_seed, rng.randrange(2**31)))
        return scenes

    def _place(self, board: np.ndarray, lines: list, fw: int, fh: int, seed: int, noise_seed: int) -> Scene:
        rng, nrng = random.Random(seed), np.random.default_rng(seed)
        bh, bw = board.shape[:2]
        base = nrng.integers(40, 140, 3)
        frame = np.empty((fh, fw, 3), np.float32)
        frame[:] = base
        clutter = cv2.GaussianBlur(nrng.normal(0, 25, (fh // 8 + 1, fw // 8 + 1, 3)).astype(np.float32), (0, 0), 3)
        frame += cv2.resize(clutter, (fw, fh), interpolation=cv2.INTER_LINEAR)
        cx, cy = fw / 2 + rng.uniform(-0.08, 0.08) * fw, fh / 2 + rng.uniform(-0.08, 0.08) * fh
        j = 0.06
        dst = np.array([
            [cx - bw / 2 + rng.uniform(-j, j) * bw, cy - bh / 2 + rng.uniform(-j, j) * bh],
            [cx + bw / 2 + rng.uniform(-j, j) * bw, cy - bh / 2 + rng.uniform(-j, j) * bh],
            [cx + bw / 2 + rng.uniform(-j, j) * bw, cy + bh / 2 + rng.uniform(-j, j) * bh],
            [cx - bw / 2 + rng.uniform(-j, j) * bw, cy + bh / 2 + rng.uniform(-j, j) * bh],
        ], np.float32)
        src = np.array([[0, 0], [bw - 1, 0], [bw - 1, bh - 1], [0, bh - 1]], np.float32)
        m = cv2.getPerspectiveTransform(src, dst)
        warped = cv2.warpPerspective(board, m, (fw, fh), flags=cv2.INTER_LINEAR)
        inside = cv2.warpPerspective(np.full((bh, bw), 255, np.uint8), m, (fw, fh)) > 127
        frame[inside] = warped[inside]
        gx = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0), fw, dtype=np.float32)
        gy = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0), fh, dtype=np.float32)
        frame *= (gy[:, None] * gx[None, :])[:, :, None]
        if rng.random() < 0.5:
            gxc, gyc = rng.uniform(0.2, 0.8) * fw, rng.uniform(0.2, 0.8) * fh
            yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float32)
            glare = np.exp(-(((xx - gxc) ** 2 + (yy - gyc) ** 2) / (2 * (0.12 * fw) ** 2)))
            frame += (glare * rng.uniform(30, 70))[:, :, None]
        frame += np.random.default_rng(noise_seed).normal(0, rng.uniform(2, 6), frame.shape).astype(np.float32)
        out = np.clip(frame, 0, 255).astype(np.uint8)
        _, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(70, 92)])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        mapped = [(t, cv2.perspectiveTransform(p.reshape(-1, 1, 2), m).reshape(4, 2)) for t, p in lines]
        return Scene(out, dst, mapped)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("data/scenes"))
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    r = SceneRenderer("test", a.seed)
    for i in range(a.count):
        s = r.render()
        cv2.imwrite(str(a.out / f"scene_{i:03d}.jpg"), s.frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        (a.out / f"scene_{i:03d}.json").write_text(json.dumps(s.to_json(), ensure_ascii=False), encoding="utf-8")
    print(f"wrote {a.count} scenes to {a.out}")


if __name__ == "__main__":
    main()
