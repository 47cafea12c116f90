"""Measure the vision stages on synthesised scenes (and skimage's page if installed).

    python -m toolchain.bench.vision --count 100 --report runs/vision.md

Per scene: line detection precision/recall at IoU ≥ 0.5 (rotated boxes), page CER (lines
matched by position, unmatched lines count in full) against the CER of the same lines
cropped perfectly from the ground truth, and the time of each stage with 1 thread.
Readers, built by the runtime's factory: the DB detector (the default) and the classical splitter
with each binariser (Sauvola, OpenCV adaptive), on the same scenes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge_ocr.config import Config
from edge_ocr.page.build import build_reader
from edge_ocr.page.diff import match_boxes
from edge_ocr.page.reader import PageReader
from edge_ocr.tools.bench import emit
from edge_ocr.vision.clean import ink_gray
from edge_ocr.vision.lines import LineRegion, crop_line
from edge_ocr.vision.surface import ANALYSIS_SIDE
from toolchain.scoring import edit_distance, squash
from toolchain.synth.board_video import grown
from toolchain.synth.scenes import SceneRenderer


def page_errors(gt: list[tuple[str, np.ndarray]], pred: list[tuple[str, np.ndarray]]) -> tuple[int, int]:
    """(edits, reference chars) with lines matched at IoU ≥ 0.1; unmatched lines cost their length."""
    pairs = match_boxes([b for _, b in gt], [b for _, b in pred], 0.1)
    edits = sum(edit_distance(squash(gt[i][0]), squash(pred[j][0])) for i, j in pairs)
    mg, mp = {i for i, _ in pairs}, {j for _, j in pairs}
    edits += sum(len(squash(t)) for i, (t, _) in enumerate(gt) if i not in mg)
    edits += sum(len(squash(t)) for j, (t, _) in enumerate(pred) if j not in mp)
    return edits, sum(len(squash(t)) for t, _ in gt)


# skimage.data.page(), transcribed by eye; the last, half-cut line (a URL) is left out.
SKIMAGE_PAGE = """Region-based segmentation
Let us first determine markers of the coins and the
background. These markers are pixels that we can label
unambiguously as either object or background. Here,
the markers are found at the two extreme parts of the
histogram of grey values:
>>> markers = np.zeros_like(coins)"""


def readers(model: Path, analysis_side: int) -> dict[str, PageReader]:
    """The daemon's reader (DB detector) and the classical splitter with each binariser, built by
    the runtime's own factory and sharing one recogniser."""
    out: dict[str, PageReader] = {}
    rec = None
    for name, vision in (("DB detector (default)", {}), ("classical, sauvola", {"detector": "classical"}),
                         ("classical, adaptive", {"detector": "classical", "binarizer": "adaptive"})):
        cfg = Config()
        cfg.recognizer.model = str(model)
        cfg.vision.analysis_side = analysis_side
        for k, v in vision.items():
            setattr(cfg.vision, k, v)
        out[name] = build_reader(cfg, recognizer=rec, cache_size=1)
        rec = out[name].recognizer
    return out


def skimage_page_cer(reader: PageReader) -> tuple[float, str] | None:
    """Page CER on scikit-image's photographed book page (whitespace removed, reading order kept)."""
    try:
        from skimage import data
    except ImportError:
        return None
    page = reader.read(data.page())
    hyp = squash("".join(ln.text for ln in page.lines))
    ref = squash(SKIMAGE_PAGE.replace("\n", ""))
    return edit_distance(ref, hyp) / len(ref), page.text


def cache_hit_rate(model: Path, scenes: SceneRenderer, count: int) -> tuple[float, float, float]:
    """Boards written line by line, read frame after frame by one reader: the share of line-cache
    lookups answered (pixel-identical crops only, see ``edge_ocr.page.cache``: the orientation vote's
    re-reads within a frame and lines whose pixels did not change between rendered frames), and
    the page CER of each final board read in sequence against the same frame read by a fresh reader."""
    hits = lookups = 0
    sequence_err = fresh_err = chars = 0
    cfg = Config()
    cfg.recognizer.model = str(model)
    reader = build_reader(cfg)
    for _ in tqdm(range(count), desc="cache", unit="board"):
        reader.reset()
        for scene in scenes.render_writing(progressive=True):
            page = reader.read(scene.frame)
        fresh = build_reader(cfg, recognizer=reader.recognizer, cache_size=1).read(scene.frame)
        for p, in_sequence in ((page, True), (fresh, False)):
            e, c = page_errors(scene.lines, [(ln.text, np.array(ln.box, np.float32)) for ln in p.lines])
            if in_sequence:
                sequence_err += e
            else:
                fresh_err, chars = fresh_err + e, chars + c
        hits += reader.cache.hits
        lookups += reader.cache.hits + reader.cache.misses
    return hits / max(1, lookups), sequence_err / max(1, chars), fresh_err / max(1, chars)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path(Config().recognizer.model), help="default: the daemon's")
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument("--analysis-side", type=int, default=ANALYSIS_SIDE, help="long side of the analysis surface")
    ap.add_argument("--cache-boards", type=int, default=10, help="boards written line by line, for the cache hit rate")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    made = readers(a.model, a.analysis_side)
    rec = next(iter(made.values())).recognizer
    scenes = SceneRenderer("test", a.seed)
    stats: dict[str, dict] = {m: {"tp": 0, "fp": 0, "fn": 0, "edits": 0, "chars": 0, "times": []} for m in made}
    perfect_edits = perfect_chars = 0
    for _ in tqdm(range(a.count), desc="scenes", unit="scene"):
        s = scenes.render()
        gt_boxes = [b for _, b in s.lines]
        gray = ink_gray(s.frame)
        crops = [crop_line(gray, LineRegion(grown(b, 0.15), 0.0, 0.0)) for b in gt_boxes]
        for (t, _), r in zip(s.lines, rec.recognize(crops)):
            perfect_edits += edit_distance(squash(t), squash(r.text))
            perfect_chars += len(squash(t))
        for name, st in stats.items():
            made[name].reset()
            page = made[name].read(s.frame)
            pred = [(ln.text, np.array(ln.box, np.float32)) for ln in page.lines]
            m = match_boxes(gt_boxes, [b for _, b in pred], 0.5)
            st["tp"] += len(m)
            st["fp"] += len(pred) - len(m)
            st["fn"] += len(gt_boxes) - len(m)
            e, c = page_errors(s.lines, pred)
            st["edits"] += e
            st["chars"] += c
            st["times"].append(page.timings_ms)
    perfect = perfect_edits / max(1, perfect_chars)
    rows = ["| reader | precision | recall | page CER | perfect-crop CER | ms per stage (median) | vision ms | "
            "recognise ms |", "|---|---|---|---|---|---|---|---|"]
    for name, st in stats.items() if a.count else ():
        p = st["tp"] / max(1, st["tp"] + st["fp"])
        r = st["tp"] / max(1, st["tp"] + st["fn"])
        med = {k: float(np.median([t[k] for t in st["times"]])) for k in st["times"][0]}
        stages = ", ".join(f"{k} {v:.0f}" for k, v in med.items() if k not in ("recognise", "total"))
        vision = float(np.median([t["total"] - t["recognise"] for t in st["times"]]))
        rows.append(f"| {name} | {p:.3f} | {r:.3f} | {st['edits'] / max(1, st['chars']):.4f} | {perfect:.4f} | "
                    f"{stages} | {vision:.1f} | {med['recognise']:.1f} |")
    text = (f"# Vision on {a.count} synthesised 1920×1080 scenes (seed {a.seed}), model {rec.contract.id}, "
            f"analysis side {a.analysis_side} px\n\n"
            + "\n".join(rows) + "\n\nMedians per frame, 1 thread. Page CER matches lines by position; "
            "perfect-crop CER recognises the ground-truth line boxes. Synthesised scenes are for tests: "
            "real pages judge (`make bench-pages`).\n")
    if a.cache_boards:
        answered, in_sequence, fresh = cache_hit_rate(a.model, SceneRenderer("test", a.seed + 1), a.cache_boards)
        text += (f"\nLine cache over {a.cache_boards} boards written one line per frame, read in sequence: "
                 f"{answered:.3f} of lookups answered (pixel-identical crops only: the orientation vote's re-reads "
                 f"and lines unchanged in pixels between rendered frames); page CER of the final boards "
                 f"{in_sequence:.4f} read in sequence, {fresh:.4f} read fresh.\n")
    sk = skimage_page_cer(next(iter(made.values())))
    if sk is not None:
        text += f"\nskimage.data.page(): page CER {sk[0]:.4f}\n\n```\n{sk[1]}\n```\n"
    emit(text, a.report)


if __name__ == "__main__":
    main()
