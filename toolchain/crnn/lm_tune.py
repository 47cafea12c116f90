"""Tune the bigram LM's weight and insertion bonus on a slice that is not used for reporting.

    python -m toolchain.crnn.lm_tune --devset ../shared/devset --report runs/lm_tune.md

The int8 model's log-probabilities are computed once; the beam search then runs for every
(weight, bonus) pair on the tuning slice (test lines 0-999). The winner is scored on the
reporting slice (lines 1000-2999) and, if given, on the real dev-set lines, against greedy
decoding and against the same beam search without the LM.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_ocr.imageio import read_image
from edge_ocr.labels import read_labels
from edge_ocr.recognition import ctc
from edge_ocr.recognition.lm import CharBigramLM
from edge_ocr.recognition.preprocess import input_tensor
from edge_ocr.recognition.recognizer import Recognizer
from edge_ocr.tools.bench import emit
from toolchain.scoring import score
from toolchain.synth.dataset import load_split

WEIGHTS = (0.05, 0.1, 0.2, 0.3, 0.5)
BONUSES = (0.0, 0.5, 1.0, 1.5)


def log_probs(rec: Recognizer, images: list[np.ndarray]) -> list[np.ndarray]:
    c = rec.contract
    out = []
    for im in tqdm(images, desc="logits", unit="line", mininterval=5):
        line = rec.prepare(im)
        x = input_tensor([line], c.width.width_for(line.shape[1]), c.channels, c.scale, c.offset, rec.batch)
        out.append(ctc.log_softmax(rec.model(x)[0]))
    return out


def cer(rec: Recognizer, lps: list[np.ndarray], refs: list[str], lm: CharBigramLM | None,
        weight: float = 0.0, bonus: float = 0.0, beam: bool = True) -> float:
    hyps = []
    for lp in lps:
        d = ctc.beam_search(lp, 8, lm=lm, lm_weight=weight, insertion_bonus=bonus) if beam else ctc.greedy(lp)
        hyps.append(rec.charset.decode(d.ids))
    return score(refs, hyps)["cer"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/crnn_zh_en_int8.tflite"))
    ap.add_argument("--lm", type=Path, default=Path("models/lm_zh_en.npz"))
    ap.add_argument("--split", type=Path, default=Path("data/test"))
    ap.add_argument("--devset", type=Path, default=None)
    ap.add_argument("--report", type=Path, default=None)
    a = ap.parse_args()
    rec = Recognizer(a.model, num_threads=1)
    lm = CharBigramLM.load(a.lm)
    images, widths, labels = load_split(a.split)
    n = min(3000, len(labels))
    lps = log_probs(rec, [np.asarray(images[i, :, : widths[i]]) for i in range(n)])
    tune, rep = slice(0, n // 3), slice(n // 3, n)
    grid = {}
    for w, b in tqdm(list(itertools.product(WEIGHTS, BONUSES)), desc="grid", unit="pair"):
        grid[(w, b)] = cer(rec, lps[tune], labels[tune], lm, w, b)
    w, b = min(grid, key=grid.get)
    rows = [("greedy", lambda p, r: cer(rec, p, r, None, beam=False)),
            ("beam 8", lambda p, r: cer(rec, p, r, None)),
            (f"beam 8 + LM (weight {w}, bonus {b})", lambda p, r: cer(rec, p, r, lm, w, b))]
    dev: tuple[list[np.ndarray], list[str]] | None = None
    if a.devset:
        items = read_labels(a.devset, "lines/")
        dev = (log_probs(rec, [read_image(a.devset / r["file"]) for r in items]), [r["text"] for r in items])
    lines = [f"# Bigram LM tuning ({a.model.name}, {a.lm.name})", "",
             f"Grid on test lines 0-{n // 3 - 1} (CER):", "",
             "| weight \\ bonus | " + " | ".join(str(x) for x in BONUSES) + " |",
             "|---" * (len(BONUSES) + 1) + "|"]
    lines += [f"| {wt} | " + " | ".join(f"{grid[(wt, bo)]:.4f}" for bo in BONUSES) + " |" for wt in WEIGHTS]
    lines += ["", f"Reporting slice (test lines {n // 3}-{n - 1})" + (" and the real dev-set lines" if dev else "")
              + ":", "", "| decoder | synthetic CER |" + (" real-lines CER |" if dev else ""),
              "|---|---|" + ("---|" if dev else "")]
    for name, fn in rows:
        lines.append(f"| {name} | {fn(lps[rep], labels[rep]):.4f} |" + (f" {fn(*dev):.4f} |" if dev else ""))
    text = "\n".join(lines) + "\n"
    emit(text, a.report)


if __name__ == "__main__":
    main()
