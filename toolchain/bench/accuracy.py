"""``make bench-accuracy``: our model and the peers on the same line crops, in one run.

    python -m toolchain.bench.accuracy --devset ../shared/devset --split data/test --out reports/accuracy

Engines: through our runtime, on every installed runtime, the default model (PP-OCRv6 small
imported to int8), the CRNN student distilled from it and our first CRNN, int8 and float where
built; then Tesseract 5 (chi_sim+eng, one process over all lines), PP-OCRv4 mobile and PP-OCRv6
small recognition (ONNX Runtime, 1 thread). Inputs: the dev set's real line images (never trained
on) and the first ``--limit`` lines of a synthetic held-out split. CER with whitespace removed,
per dev-set category, and without punctuation; median ms per line. Writes OUT.md and a bar chart
OUT.png.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_ocr.imageio import read_image
from edge_ocr.labels import read_labels
from edge_ocr.model.interpreter import available_runtimes
from edge_ocr.recognition.recognizer import Recognizer
from edge_ocr.tools.bench import emit
from toolchain.bench.peers import TesseractRecognizer, available
from toolchain.scoring import score, strip_punct
from toolchain.synth.dataset import load_split

# Our runtime's models: the default (PP-OCRv6 small imported to int8 by toolchain.onnx_import.recognizer), the CRNN
# student distilled from it (make student) and our first CRNN, each int8 and, when built, float
# (make import-ppocr / make student / models/crnn_zh_en_float.tflite).
MODELS = {"default PP-OCRv6 small int8": Path("models/ppocrv6_small_int8.tflite"),
          "default PP-OCRv6 small float": Path("build/ppocr/ppocrv6_small_float.tflite"),
          "CRNN student int8": Path("models/crnn_student_zh_en_int8.tflite"),
          "CRNN student float": Path("build/rec_distill/crnn_student_zh_en_float.tflite"),
          "CRNN int8": Path("models/crnn_zh_en_int8.tflite"),
          "CRNN float": Path("models/crnn_zh_en_float.tflite")}
CATEGORIES = {"zh_hw_line": "Chinese handwriting", "en_hw_line": "English handwriting",
              "zh_print_line": "printed Chinese", "mixed_print_line": "printed mixed",
              "en_print_line": "printed English"}


def devset(root: Path) -> list[tuple[str, str, np.ndarray]]:
    rows = read_labels(root, "lines/")
    return [(r["category"], r["text"], read_image(root / r["file"])) for r in rows]


def synthetic(split: Path, limit: int) -> list[tuple[str, str, np.ndarray]]:
    images, widths, labels = load_split(split)
    n = min(limit, len(labels))
    return [("synthetic", labels[i], np.asarray(images[i, :, : widths[i]])) for i in range(n)]


def engines() -> tuple[list[tuple[str, object]], list[str]]:
    ours = [(f"edge-ocr {q} ({rt})", Recognizer(p, num_threads=1, runtime=rt))
            for q, p in MODELS.items() if p.exists() for rt in available_runtimes()]
    peers, notes = available(threads=1)
    return ours + [(p.name, p) for p in peers], notes


def run_engine(engine: object, images: list[np.ndarray]) -> tuple[list[str], float]:
    """(texts, median ms per line)."""
    if isinstance(engine, Recognizer):
        texts, ms = [], []
        for im in images:
            r = engine.recognize([im])[0]
            texts.append(r.text)
            ms.append(r.ms)
        return texts, statistics.median(ms)
    if isinstance(engine, TesseractRecognizer):
        return engine.recognize_many(images)
    texts, ms = [], []
    for im in images:
        t, m = engine.recognize(im)
        texts.append(t)
        ms.append(m)
    return texts, statistics.median(ms)


def plot(table: dict[str, dict[str, float]], groups: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.8))
    names = list(table)
    x = np.arange(len(groups))
    width = 0.8 / len(names)
    colours = plt.get_cmap("tab20").colors
    for i, name in enumerate(names):
        ax.bar(x + i * width, [table[name].get(g, np.nan) for g in groups], width, label=name,
               color=colours[i % len(colours)])
    ax.set_xticks(x + width * (len(names) - 1) / 2, groups, rotation=15)
    ax.set_ylabel("CER (lower is better)")
    ax.set_ylim(0, 1.2)
    ax.axhline(0.06, color="k", ls=":", lw=1, label="goal: CER 0.06")
    ax.set_title("Character error rate on the same line crops")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devset", type=Path, default=None)
    ap.add_argument("--split", type=Path, default=Path("data/test"))
    ap.add_argument("--limit", type=int, default=500, help="synthetic lines to score")
    ap.add_argument("--out", type=Path, default=Path("reports/accuracy"))
    a = ap.parse_args()
    items: list[tuple[str, str, np.ndarray]] = []
    if a.devset and (a.devset / "labels.tsv").exists():
        items += devset(a.devset)
    if (a.split / "labels.txt").exists():
        items += synthetic(a.split, a.limit)
    if not items:
        raise SystemExit("nothing to score: give --devset DIR and/or a rendered --split (make data)")
    cats = [c for c, _, _ in items]
    refs = [t for _, t, _ in items]
    images = [im for _, _, im in items]
    found, notes = engines()
    table: dict[str, dict[str, float]] = {}
    for name, engine in tqdm(found, desc="engines", unit="engine"):
        t0 = time.perf_counter()
        hyps, ms = run_engine(engine, images)
        row = {"ms": ms, "seconds": time.perf_counter() - t0}
        real = [i for i, c in enumerate(cats) if c != "synthetic"]
        if real:
            row["real lines"] = score([refs[i] for i in real], [hyps[i] for i in real])["cer"]
            row["real, no punctuation"] = score([strip_punct(refs[i]) for i in real],
                                                [strip_punct(hyps[i]) for i in real])["cer"]
        for cat in sorted(set(cats)):
            idx = [i for i, c in enumerate(cats) if c == cat]
            row[CATEGORIES.get(cat, cat)] = score([refs[i] for i in idx], [hyps[i] for i in idx])["cer"]
        table[name] = row
    groups = [g for g in ("real lines", "real, no punctuation", *CATEGORIES.values(), "synthetic")
              if any(g in r for r in table.values())]
    counts = {CATEGORIES.get(c, c): cats.count(c) for c in set(cats)}
    counts["real lines"] = counts["real, no punctuation"] = sum(1 for c in cats if c != "synthetic")
    lines = [f"# Accuracy on the same line crops ({len(items)} lines)", "",
             "CER with whitespace removed; lines per column in brackets. edge-ocr rows: our runtime's "
             "preprocessing and greedy decoding, 1 thread; PP-OCR rows: ONNX Runtime with PaddleOCR's own "
             "preprocessing, 1 thread.", "",
             "| engine | " + " | ".join(f"{g} ({counts.get(g, 0)})" for g in groups) + " | median ms/line |",
             "|---" * (len(groups) + 2) + "|"]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[g]:.3f}" if g in row else "–" for g in groups)
                     + f" | {row['ms']:.1f} |")
    if notes:
        lines += ["", "Not measured: " + "; ".join(notes)]
    lines += ["", "Tesseract's time is one process over all lines divided by their number.", "",
              f"![accuracy]({a.out.with_suffix('.png').name})", ""]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    plot(table, groups, a.out.with_suffix(".png"))
    emit("\n".join(lines), a.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
