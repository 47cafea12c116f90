"""``make bench-scale-cv``: the scale-aware detector's settings chosen by cross-validation.

    python -m toolchain.bench.scale_cv --out reports/scale_cv.md

Two halves, split by source, never by page or frame: the dev pages by the repository they came
from, the classroom frames by lecture (the measuring lectures of ``split.json`` alternate in
sorted order). Each candidate setting reads every page once with the default reader (1 thread);
a setting is chosen on one half by its line-matched CER (dev pages and classroom frames weighted
equally, so 24 frames do not drown 16 pages) and reported on the other, then the halves swap.
The halves' reports estimate how a choice carries over; the setting to ship is the one best on
both halves together (mean of their criteria), the same rule given all the pages, except that
among settings within ``TIE`` of that best the fastest on the classroom frames is taken (a
frame's cost is a target of its own: the daemon pays it on every change).
Nothing is trained; the candidates are a small grid written below.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from pathlib import Path

from edge_ocr.config import Config
from edge_ocr.imageio import read_image
from edge_ocr.page.build import build_reader
from edge_ocr.tools.bench import emit
from toolchain.bench import classroom
from toolchain.bench.pages import CLASSROOM, DEV, classroom_pages, pages
from toolchain.scoring import page_errors

# Dev pages: the repository a page came from decides its half (labels.tsv ``source``).
HALF_A_SOURCES = ("HCIILAB/", "saraf/", "acuvity/", "paulchambaz/", "mzucker/")
# Every candidate starts from these (the detector's settings before the fine pass shipped), so
# the report does not move when the shipped defaults do.
START = {"detector_side": 0, "box_thresh": 0.0, "unclip_ratio": 0.0, "text_height": 24.0, "small_text": 0.0,
         "max_tiles": 6, "text_activity": 0.1, "min_text": 16.0}
GRID = {"text_height": (16.0, 24.0, 32.0), "small_text": (8.0, 12.0, 14.0)}
# Around the middle of the grid, one key at a time: the detector's existing settings (model
# defaults 800, 0.35, 1.35) and the fine pass's cost, activity and smallest-text settings.
BASE = {"text_height": 24.0, "small_text": 12.0, "min_text": 16.0}
AROUND = {"detector_side": (640, 960), "box_thresh": (0.3, 0.45), "unclip_ratio": (1.2, 1.5),
          "max_tiles": (4, 9), "text_activity": (0.2,), "min_text": (0.0, 24.0)}
# Pairs of the keys above that moved the criterion most, together (added after the single-key
# results on both halves were seen: a half's report of a pair it chose is a little optimistic).
PAIRS = [{"max_tiles": 9, "min_text": 0.0}, {"max_tiles": 9, "unclip_ratio": 1.2}]
TIE = 0.005  # criterion: settings closer than this to the best count as equal; the fastest is taken


def half_of(row: dict) -> str:
    """'A' or 'B': dev pages by source repository, classroom frames by lecture."""
    if row["set"] == CLASSROOM:
        lecture = classroom.lecture_of(row["file"])
        return "AB"[classroom.MEASURE.index(lecture) % 2]
    return "A" if row["source"].startswith(HALF_A_SOURCES) else "B"


def settings() -> list[dict]:
    """The candidates: one pass (small_text 0, the old way), the grid, then each key of
    ``AROUND`` varied alone from ``BASE``."""
    out = [{"small_text": 0.0}]
    out += [{"text_height": th, "small_text": st} for th, st in itertools.product(*GRID.values())]
    out += [{**BASE, k: v} for k, values in AROUND.items() for v in values]
    return out + [{**BASE, **pair} for pair in PAIRS]


def measure(rows: list[dict], images: dict, setting: dict) -> dict[str, tuple[int, int, float]]:
    """Per page file: (errors, truth characters, ms) with the default reader under ``setting``."""
    cfg = Config()
    for k, v in {**START, **setting}.items():
        setattr(cfg.vision, k, v)
    cfg.validate()
    reader = build_reader(cfg)
    out = {}
    for row in rows:
        reader.reset()
        t0 = time.perf_counter()
        page = reader.read(images[row["file"]])
        ms = (time.perf_counter() - t0) * 1000
        out[row["file"]] = (*page_errors(row["text"].split("\\n"), [ln.text for ln in page.lines]), ms)
    return out


def cer(result: dict[str, tuple[int, int, float]], rows: list[dict], half: str, set_: str) -> float:
    chosen = [result[r["file"]] for r in rows if half in (half_of(r), "AB") and r["set"] == set_]
    return sum(e for e, _, _ in chosen) / max(1, sum(c for _, c, _ in chosen))


def classroom_ms(result: dict[str, tuple[int, int, float]], rows: list[dict]) -> float:
    """Median ms per classroom frame (1080p), both halves."""
    return statistics.median(result[r["file"]][2] for r in rows if r["set"] == CLASSROOM)


def score(result: dict, rows: list[dict], half: str) -> float:
    """The choosing criterion on one half: mean of its dev-page CER and classroom CER."""
    return (cer(result, rows, half, DEV) + cer(result, rows, half, CLASSROOM)) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devset", type=Path, default=Path("../shared/devset"))
    ap.add_argument("--classroom", type=Path, default=Path("../shared/classroom"))
    ap.add_argument("--out", type=Path, default=Path("reports/scale_cv.md"))
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    frames, skipped = classroom_pages(a.classroom)
    if skipped:
        raise SystemExit(skipped)
    rows = pages(a.devset) + [{**r, "path": str(a.classroom / "frames" / Path(r["file"]).name)} for r in frames]
    images = {r["file"]: read_image(Path(r["path"])) for r in rows}
    results = []
    for setting in settings():
        res = measure(rows, images, setting)
        results.append((setting, res))
        print(setting, {h: round(score(res, rows, h), 4) for h in "AB"}, flush=True)
    lines = ["# Scale-aware detection: settings chosen by cross-validation", "",
             f"{sum(r['set'] == DEV for r in rows)} dev pages split by source repository, "
             f"{sum(r['set'] == CLASSROOM for r in rows)} classroom frames split by lecture (A: "
             + ", ".join(m for i, m in enumerate(classroom.MEASURE) if i % 2 == 0) + "; B: "
             + ", ".join(m for i, m in enumerate(classroom.MEASURE) if i % 2 == 1) + "). "
             "Criterion: mean of a half's dev-page and classroom line-matched CER. Classroom ms: median "
             "read time per 1080p frame, both halves, 1 thread on this (shared) machine. Reproduce: "
             "`make bench-scale-cv`.", "",
             "| setting | A: dev | A: classroom | B: dev | B: classroom | classroom ms |", "|---|---|---|---|---|---|"]
    for setting, res in results:
        cells = [f"{cer(res, rows, h, s_):.3f}" for h in "AB" for s_ in (DEV, CLASSROOM)]
        lines.append(f"| {setting} | " + " | ".join(cells) + f" | {classroom_ms(res, rows):.0f} |")
    lines += ["", "| chosen on | setting | reported on | dev pages CER | classroom CER |", "|---|---|---|---|---|"]
    for choose, report in (("A", "B"), ("B", "A")):
        setting, res = min(results, key=lambda sr: score(sr[1], rows, choose))
        lines.append(f"| {choose} | {setting} | {report} | {cer(res, rows, report, DEV):.3f} | "
                     f"{cer(res, rows, report, CLASSROOM):.3f} |")
    both = lambda res: (score(res, rows, "A") + score(res, rows, "B")) / 2  # noqa: E731
    best = min(both(res) for _, res in results)
    setting, res = min(((s_, r_) for s_, r_ in results if both(r_) <= best + TIE),
                       key=lambda sr: classroom_ms(sr[1], rows))
    figures = lambda res: (f"criterion {both(res):.3f}, all dev pages {cer(res, rows, 'AB', DEV):.3f}, "  # noqa: E731
                           f"all classroom frames {cer(res, rows, 'AB', CLASSROOM):.3f}, "
                           f"{classroom_ms(res, rows):.0f} ms per classroom frame")
    lines += ["", f"To ship (the fastest on the classroom frames of those within {TIE} of the best "
              f"criterion on A and B together, {best:.3f}): `{setting}`; {figures(res)} "
              f"(one pass: {figures(results[0][1])})."]
    emit("\n".join(lines) + "\n", a.out)


if __name__ == "__main__":
    main()
