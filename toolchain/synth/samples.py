"""Write the bundled sample line images (held-out fonts and texts) with their labels.

    python -m toolchain.synth.samples --out samples/lines
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2

from edge_ocr.recognition.charset import Charset
from toolchain.synth.corpus import Corpus
from toolchain.synth.render import LineRenderer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("samples/lines"))
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--seed", type=int, default=20261121)
    a = ap.parse_args()
    charset = Charset.load("models/charset_zh_en.txt")
    renderer = LineRenderer("test", Corpus.load("test", charset), seed=a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    rows = ["file\ttext"]
    i = 0
    while i < a.count:
        image, text = renderer.sample_raw()
        if len(text.replace(" ", "")) < 5:
            continue
        name = f"line_{i:02d}.png"
        cv2.imwrite(str(a.out / name), image)
        rows.append(f"{name}\t{text}")
        i += 1
    (a.out / "labels.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"wrote {a.count} samples to {a.out}")


if __name__ == "__main__":
    main()
