"""``make bench-pages``: edge-ocr and its peers on every real page of the dev set, in one run.

    python -m toolchain.bench.pages --devset ../shared/devset --classroom ../shared/classroom --out reports/pages

Pages, two sets: every ``pages/…`` row of the dev set's ``labels.tsv`` (read at run time: the set
grows), and every labelled classroom frame (:mod:`toolchain.bench.classroom`: keyframes of the
measuring lectures of a fixed 1080p camera at a whiteboard, labels in the repository, images in
``../shared/classroom``; skipped with a note when that folder is absent). Figures are reported
overall, per set and per category (whiteboard, blackboard, notebook, mixed, classroom frame).
Engines, each on the same pages with 1 thread: edge-ocr through its own reader factory with
each shipped or built detector (DB int8 and float, the classical splitter); RapidOCR's
PP-OCRv4 and PP-OCRv6 det+cls+rec (ONNX Runtime, float, its own pipeline and defaults); and
Tesseract 5 on the whole page (``chi_sim+eng``, automatic layout).

Per page and engine: line-matched page CER (``toolchain.scoring.page_errors``: whitespace
removed, lines paired by least total edit distance, unpaired lines cost their length), bag-of-
characters F1, line recall (a truth line counts as found when its pair is at most half wrong),
and time per page and per stage. Writes OUT.md, a bar chart OUT.png and, in OUT/, one
contact sheet per page (boxes numbered on the photo, the text beside it) for a person to look at.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge_ocr.config import Config
from edge_ocr.imageio import read_image
from edge_ocr.labels import read_labels
from edge_ocr.tools.bench import emit
from toolchain.scoring import bag_f1, edit_distance, match_lines, page_errors, squash

# edge-ocr readers: (name, [vision] settings). A model that is not built is left out with a note.
OURS = [
    ("edge-ocr DB lite int8 (default, distilled)", {"detector": "db", "detector_model": "models/db_lite_int8.tflite"}),
    ("edge-ocr DB v4 int8 (its teacher)", {"detector": "db", "detector_model": "models/ppocrv4_det_int8.tflite"}),
    ("edge-ocr DB v4 float", {"detector": "db", "detector_model": "build/ppocr/ppocrv4_det_float.tflite"}),
    ("edge-ocr DB v6 int8", {"detector": "db", "detector_model": "build/ppocr/ppocrv6_det_int8.tflite"}),
    ("edge-ocr classical", {"detector": "classical"}),
]
BOARDS = ("whiteboard_page", "blackboard_page", "classroom_frame")
DEV, CLASSROOM = "dev pages", "classroom frames"


@dataclass
class Reading:
    lines: list[tuple[str, np.ndarray | None]]  # text, box (4, 2) frame pixels or None
    ms: float
    stages: dict[str, float] = field(default_factory=dict)


def pages(root: Path) -> list[dict]:
    """The dev set's page rows, each with ``path`` and ``set`` added."""
    return [{**r, "path": str(root / r["file"]), "set": DEV} for r in read_labels(root, "pages/")]


def classroom_pages(root: Path) -> tuple[list[dict], str | None]:
    """The labelled classroom frames (``file`` becomes ``classroom/<name>``), or none and a note
    when ``root`` has no frames."""
    from toolchain.bench import classroom

    if not (root / "frames").is_dir():
        return [], f"classroom frames: {root}/frames absent (../shared/classroom beside the checkout)"
    rows = classroom.labels(root)
    return [{**r, "file": f"classroom/{r['file']}", "set": CLASSROOM} for r in rows], None


class EdgeOcr:
    def __init__(self, name: str, vision: dict) -> None:
        from edge_ocr.page.build import build_reader

        cfg = Config()
        for k, v in vision.items():
            setattr(cfg.vision, k, v)
        cfg.validate()
        self.name, self.reader = name, build_reader(cfg)

    def read(self, image: np.ndarray) -> Reading:
        self.reader.reset()  # each page is its own scene
        t0 = time.perf_counter()
        page = self.reader.read(image)
        ms = (time.perf_counter() - t0) * 1000
        stages = {k: v for k, v in page.timings_ms.items() if k != "total"}
        return Reading([(ln.text, np.asarray(ln.box, np.float32)) for ln in page.lines], ms, stages)


class RapidOcr:
    """RapidOCR (its own det + cls + rec pipeline and defaults), ONNX Runtime, 1 thread."""

    def __init__(self, version: str) -> None:
        if version == "PP-OCRv4":
            from rapidocr_onnxruntime import RapidOCR

            self.engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)
            self.v3 = False
        else:
            from rapidocr import RapidOCR

            self.engine = RapidOCR(params={"EngineConfig.onnxruntime.intra_op_num_threads": 1,
                                           "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                                           "Global.log_level": "error"})
            self.v3 = True
        self.name = f"RapidOCR {version} det+rec (float)"

    def read(self, image: np.ndarray) -> Reading:
        t0 = time.perf_counter()
        out = self.engine(image)
        ms = (time.perf_counter() - t0) * 1000
        if self.v3:
            boxes = [] if out.boxes is None else list(out.boxes)
            texts = list(out.txts or [])
        else:
            result = out[0] or []
            boxes, texts = [r[0] for r in result], [r[1] for r in result]
        return Reading([(t, np.asarray(b, np.float32)) for t, b in zip(texts, boxes)], ms)


class TesseractPage:
    """Tesseract 5 on the whole page (automatic page segmentation), one line per output line."""

    name = "Tesseract 5 page (chi_sim+eng)"

    def __init__(self) -> None:
        self.exe = shutil.which("tesseract")
        if self.exe is None:
            raise ImportError("apt install tesseract-ocr tesseract-ocr-chi-sim")
        self._tmp = tempfile.TemporaryDirectory()

    def read(self, image: np.ndarray) -> Reading:
        path = Path(self._tmp.name) / "page.png"
        cv2.imwrite(str(path), image)
        t0 = time.perf_counter()
        r = subprocess.run([self.exe, str(path), "stdout", "-l", "chi_sim+eng"], capture_output=True,
                           env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"})
        ms = (time.perf_counter() - t0) * 1000
        text = r.stdout.decode("utf-8", "replace")
        return Reading([(t, None) for t in text.splitlines() if t.strip()], ms)


def engines(only: str | None) -> tuple[list, list[str]]:
    made, notes = [], []
    for name, vision in OURS:
        model = vision.get("detector_model")
        if model and not Path(model).exists():
            notes.append(f"{name}: {model} not built (make import-det)")
            continue
        made.append(EdgeOcr(name, vision))
    for make in (lambda: RapidOcr("PP-OCRv4"), lambda: RapidOcr("PP-OCRv6"), TesseractPage):
        try:
            made.append(make())
        except Exception as exc:  # a peer that cannot start is reported, not fatal
            notes.append(f"peer unavailable: {exc}")
    if only:
        made = [e for e in made if only.lower() in e.name.lower()]
    return made, notes


def line_recall(truth: list[str], predicted: list[str]) -> tuple[int, int]:
    """(truth lines found, truth lines): found = paired with a line at most half wrong."""
    t, p = [squash(x) for x in truth], [squash(x) for x in predicted]
    found = sum(1 for i, j in match_lines(t, p) if edit_distance(t[i], p[j]) <= len(t[i]) / 2)
    return found, len(t)


def contact_sheet(image: np.ndarray, readings: dict[str, Reading], out: Path, font_path: str | None) -> None:
    """The photo with each engine's numbered boxes, and the numbered text beside it, one row per engine."""
    from PIL import Image, ImageDraw, ImageFont

    scale = 900 / max(image.shape[:2])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rows = []
    for name, reading in readings.items():
        pic = small.copy()
        for i, (_, box) in enumerate(reading.lines):
            if box is None:
                continue
            pts = (box * scale).astype(np.int32)
            cv2.polylines(pic, [pts], True, (0, 0, 255), 2)
            cv2.putText(pic, str(i + 1), tuple(int(v) for v in pts[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 200), 1)
        panel = Image.new("RGB", (700, pic.shape[0]), "white")
        draw = ImageDraw.Draw(panel)
        size = max(10, min(18, pic.shape[0] // max(8, len(reading.lines) + 2)))
        font = ImageFont.truetype(font_path, size, index=2) if font_path else ImageFont.load_default()
        draw.text((8, 4), name, fill=(0, 0, 160), font=font)
        for i, (text, _) in enumerate(reading.lines):
            draw.text((8, 8 + (i + 1) * (size + 3)), f"{i + 1}. {text}", fill=(0, 0, 0), font=font)
        rows.append(np.hstack([pic, cv2.cvtColor(np.asarray(panel), cv2.COLOR_RGB2BGR)]))
    cv2.imwrite(str(out), np.vstack(rows))


def summary(ps: list[dict]) -> dict[str, float]:
    """Corpus figures over some pages of one engine: line-matched CER (total errors / total truth
    characters), worst board page, line recall, mean bag F1 and median ms."""
    if not ps:
        return {"n": 0}
    return {"n": len(ps), "cer": sum(p["errors"] for p in ps) / max(1, sum(p["chars"] for p in ps)),
            "worst_board": max((p["cer"] for p in ps if p["category"] in BOARDS), default=float("nan")),
            "recall": sum(p["found"] for p in ps) / max(1, sum(p["lines"] for p in ps)),
            "f1": statistics.mean(p["f1"] for p in ps), "ms": statistics.median(p["ms"] for p in ps)}


def summarise(results: dict[str, dict], rows: list[dict]) -> None:
    """Adds ``all``, ``sets`` and ``categories`` (:func:`summary` each) to every engine's results."""
    sets = list(dict.fromkeys(r["set"] for r in rows))
    categories = list(dict.fromkeys(r["category"] for r in rows))
    for r in results.values():
        ps = list(r["pages"].values())
        r["all"] = summary(ps)
        r["sets"] = {s_: summary([p for p in ps if p["set"] == s_]) for s_ in sets}
        r["categories"] = {c: summary([p for p in ps if p["category"] == c]) for c in categories}


def chart(results: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    pages_ = list(next(iter(results.values()))["pages"])
    fig, ax = plt.subplots(figsize=(max(8, len(pages_) * 0.9), 4.5))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        cers = [min(1.3, results[name]["pages"][p]["cer"]) for p in pages_]
        ax.bar(np.arange(len(pages_)) + k * width, cers, width, label=f"{name}: {results[name]['all']['cer']:.3f}")
    ax.set_xticks(np.arange(len(pages_)) + 0.4 - width / 2, [Path(p).stem for p in pages_], rotation=45, ha="right")
    ax.set_ylabel("line-matched page CER (lower is better)")
    ax.axhline(0.3, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devset", type=Path, default=Path("../shared/devset"))
    ap.add_argument("--classroom", type=Path, default=Path("../shared/classroom"),
                    help="the classroom frames (labels: toolchain/bench/classroom); skipped with a note when absent")
    ap.add_argument("--out", type=Path, default=Path("reports/pages"))
    ap.add_argument("--only", default=None, help="engines whose name contains this")
    ap.add_argument("--no-sheets", action="store_true", help="skip the contact sheets")
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = pages(a.devset)
    if not rows:
        raise SystemExit(f"no pages/ rows in {a.devset / 'labels.tsv'}")
    frames, skipped = classroom_pages(a.classroom)
    rows += frames
    made, notes = engines(a.only)
    notes += [skipped] if skipped else []
    font = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
    font = font if Path(font).exists() else None
    sheets = a.out.parent / a.out.name
    sheets.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {e.name: {"pages": {}} for e in made}
    for row in tqdm(rows, desc="pages", unit="page"):
        image = read_image(Path(row["path"]))
        truth = row["text"].split("\\n")
        readings = {}
        for e in made:
            e.read(image)  # warm-up: interpreter allocations for this size
            reading = e.read(image)
            readings[e.name] = reading
            texts = [t for t, _ in reading.lines]
            errors, chars = page_errors(truth, texts)
            found, total = line_recall(truth, texts)
            results[e.name]["pages"][row["file"]] = {
                "category": row["category"], "set": row["set"], "errors": errors, "chars": chars,
                "cer": errors / max(1, chars), "f1": bag_f1("".join(truth), "".join(texts)), "found": found,
                "lines": total, "ms": reading.ms, "stages": reading.stages}
        if not a.no_sheets:
            contact_sheet(image, readings, sheets / f"{Path(row['file']).stem}.png", font)
    summarise(results, rows)
    chart(results, a.out.with_suffix(".png"))
    emit(report(rows, results, notes, a.devset, a.classroom, a.out), a.out.with_suffix(".md"))


def report(rows: list[dict], results: dict[str, dict], notes: list[str], devset: Path, classroom: Path,
           out: Path) -> str:
    """The markdown report: overall, per set, per category, per page, time per stage."""
    sets = [s_ for s_ in (DEV, CLASSROOM) if any(r["set"] == s_ for r in rows)]
    categories = list(dict.fromkeys(r["category"] for r in rows))
    names = list(results)
    n_set = {s_: sum(r["set"] == s_ for r in rows) for s_ in sets}
    lines = ["# Real pages: edge-ocr and its peers", "",
             f"{len(rows)} real pages, development only (never trained or calibrated on): "
             + " and ".join(f"{n_set[s_]} {s_}" for s_ in sets) + f" (`{devset}/labels.tsv`"
             + (f"; labelled keyframes of the measuring lectures of `{classroom}`, labels in "
                "`toolchain/bench/classroom/labels.tsv`" if CLASSROOM in sets else "") + "). "
             "1 thread, this machine, one warm-up read per page and engine. Line-matched page CER: "
             "whitespace removed, lines paired by least total edit distance, unpaired lines cost their length "
             "(can exceed 1); a set's or category's CER is its total errors over its total truth characters. "
             "Line recall: truth lines paired with a line at most half wrong. F1: bag of characters, mean over "
             "pages. Worst board: the highest CER of a whiteboard, blackboard or classroom-frame page. "
             "Reproduce: `make bench-pages`.", "",
             "| engine | page CER, all | " + " | ".join(s_ for s_ in sets)
             + " | worst board page | line recall | bag F1 | median ms/page |",
             "|---|---|" + "---|" * len(sets) + "---|---|---|---|"]
    for n in names:
        r = results[n]["all"]
        lines.append(f"| {n} | **{r['cer']:.3f}** | "
                     + " | ".join(f"{results[n]['sets'][s_]['cer']:.3f}" for s_ in sets)
                     + f" | {r['worst_board']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['ms']:.0f} |")
    lines += ["", "## Per set", "", "| engine | set | pages | page CER | worst board page | line recall | bag F1 "
              "| median ms/page |", "|---|---|---|---|---|---|---|---|"]
    for n in names:
        for s_ in sets:
            r = results[n]["sets"][s_]
            lines.append(f"| {n} | {s_} | {r['n']} | **{r['cer']:.3f}** | {r['worst_board']:.3f} | {r['recall']:.3f} "
                         f"| {r['f1']:.3f} | {r['ms']:.0f} |")
    lines += ["", "## Per category (page CER; line recall)", "",
              "| engine | " + " | ".join(f"{c} ({sum(r['category'] == c for r in rows)})" for c in categories) + " |",
              "|---|" + "---|" * len(categories)]
    for n in names:
        cats = results[n]["categories"]
        lines.append(f"| {n} | " + " | ".join(f"{cats[c]['cer']:.3f} ({cats[c]['recall']:.2f})" for c in categories)
                     + " |")
    lines += ["", "## Per page (CER; lines found / lines)", "",
              "| page | category | chars | " + " | ".join(names) + " |",
              "|---|---|---|" + "---|" * len(names)]
    for row in rows:
        f = row["file"]
        first = results[names[0]]["pages"][f]
        cells = [f"{results[n]['pages'][f]['cer']:.3f} ({results[n]['pages'][f]['found']}/{first['lines']})"
                 for n in names]
        lines.append(f"| {Path(f).stem} | {row['category']} | {first['chars']} | " + " | ".join(cells) + " |")
    lines += ["", "## Time per stage, edge-ocr (median ms over pages)", ""]
    for n in names:
        stages = [p["stages"] for p in results[n]["pages"].values() if p["stages"]]
        if stages:
            keys = list(stages[0])
            lines.append(f"- {n}: " + ", ".join(f"{k} {statistics.median(s[k] for s in stages):.0f}" for k in keys))
    if notes:
        lines += ["", "Not measured: " + "; ".join(notes)]
    lines += ["", f"![page CER per page]({out.name}.png)", "",
              f"Contact sheets (boxes and text per engine): `{out}/<page>.png`, local only: they show the "
              "dev set's photos and the classroom frames, which are not ours to redistribute."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
