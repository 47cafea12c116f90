"""Pre-render synthetic line splits to disk so training spends its CPU on the network.

A split directory holds ``images.npy`` (N, H, W_max) uint8, ``widths.npy`` (N,) and
``labels.txt`` (one label per line). ``train`` and ``val`` use training fonts and texts;
``test`` uses held-out fonts and held-out texts only.

    python -m toolchain.synth.dataset --split train --count 100000 --out data/train
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_ocr.recognition.charset import Charset

SPLIT_SEEDS = {"train": 1_000_000, "val": 2_000_000, "test": 3_000_000}
CHUNK = 500


Chunk = tuple[int, np.ndarray, np.ndarray, list[str]]


def _render_chunk(args: tuple[str, str, int, int, int, int]) -> Chunk:
    from toolchain.synth.corpus import Corpus
    from toolchain.synth.render import LineRenderer

    split, charset_path, seed, count, height, max_width = args
    charset = Charset.load(charset_path)
    corpus = Corpus.load("test" if split == "test" else "train", charset)
    renderer = LineRenderer("test" if split == "test" else "train", corpus, seed, height, max_width)
    images = np.full((count, height, max_width), 255, np.uint8)
    widths = np.zeros(count, np.int32)
    labels = []
    for i in range(count):
        line, text = renderer.sample()
        images[i, :, : line.shape[1]] = np.clip(line, 0, 255).astype(np.uint8)
        widths[i] = line.shape[1]
        labels.append(text)
    return seed, images, widths, labels


def render_split(split: str, count: int, out: Path, charset_path: Path, height: int = 32,
                 max_width: int = 384, workers: int = 2, offset: int = 0) -> None:
    """Render ``count`` lines of ``split`` into ``out`` (deterministic for a given offset)."""
    out.mkdir(parents=True, exist_ok=True)
    base = SPLIT_SEEDS[split] + offset
    jobs = [(split, str(charset_path), base + i, min(CHUNK, count - i * CHUNK), height, max_width)
            for i in range(-(-count // CHUNK))]
    images = np.lib.format.open_memmap(out / "images.npy", "w+", np.uint8, (count, height, max_width))
    widths = np.zeros(count, np.int32)
    labels: list[str] = [""] * count
    with mp.Pool(workers) as pool, tqdm(total=count, desc=f"render {split}", unit="line") as bar:
        for seed, im, w, lab in pool.imap_unordered(_render_chunk, jobs):
            start = (seed - base) * CHUNK
            images[start : start + len(lab)] = im
            widths[start : start + len(lab)] = w
            labels[start : start + len(lab)] = lab
            bar.update(len(lab))
    images.flush()
    np.save(out / "widths.npy", widths)
    text = "\n".join(json.dumps(t, ensure_ascii=False) for t in labels) + "\n"
    (out / "labels.txt").write_text(text, encoding="utf-8")


def load_split(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images memmap, widths, labels) of a rendered split."""
    images = np.load(path / "images.npy", mmap_mode="r")
    widths = np.load(path / "widths.npy")
    labels = [json.loads(line) for line in (path / "labels.txt").read_text(encoding="utf-8").splitlines()]
    if not (len(images) == len(widths) == len(labels)):
        raise ValueError(f"{path}: images, widths and labels disagree in length")
    return images, widths, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=sorted(SPLIT_SEEDS), required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--charset", type=Path, default=Path("models/charset_zh_en.txt"))
    ap.add_argument("--height", type=int, default=32)
    ap.add_argument("--max-width", type=int, default=384)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--offset", type=int, default=0, help="seed offset, to render more lines later")
    a = ap.parse_args()
    render_split(a.split, a.count, a.out, a.charset, a.height, a.max_width, a.workers, a.offset)


if __name__ == "__main__":
    main()
