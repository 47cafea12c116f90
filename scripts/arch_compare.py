"""Judge `edge-ocr recognize --json` from two architectures (scripts/arm64_check.sh: x86_64 and
aarch64 under qemu) by what a reader of the result would notice.

- A sample line goes straight to the recogniser: its text must be identical.
- A board goes through OpenCV's warps and the learned detector first, whose float ops round
  differently on AVX and NEON, so its boxes move by a pixel or so (1.2 px measured on the sample
  board). The same lines must be found, in the same order, each box's corners within
  BOX_TOLERANCE × the line's height of the reference's, and the texts may differ only by a
  near-tie character: the page's character error rate (CER) against the reference ≤ MAX_PAGE_CER.

Usage: python scripts/arch_compare.py REFERENCE.json OTHER.json; exit 1 when they differ.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from rapidfuzz.distance import Levenshtein

BOX_TOLERANCE = 0.1  # of the line's height
MAX_PAGE_CER = 0.02


def line_height(box: list[list[float]]) -> float:
    """Height (thickness) of a line's quadrilateral whichever corner comes first: the mean length of
    its shorter pair of opposite sides."""
    side = [math.dist(box[i], box[(i + 1) % 4]) for i in range(4)]
    return min(side[0] + side[2], side[1] + side[3]) / 2


def corner_shift(a: list[list[float]], b: list[list[float]]) -> float:
    """The largest distance in pixels between corresponding corners of two boxes."""
    return max(math.dist(p, q) for p, q in zip(a, b, strict=True))


def compare_page(ref: dict, other: dict) -> tuple[bool, list[str]]:
    """A page result (mode "page") against the reference's: (same?, report lines)."""
    a, b = ref["lines"], other["lines"]
    if len(a) != len(b):
        return False, [f"DIFF  {ref['file']}: {len(a)} vs {len(b)} lines"]
    shifts = [corner_shift(la["box"], lb["box"]) / line_height(la["box"]) for la, lb in zip(a, b)]
    edits = sum(Levenshtein.distance(la["text"], lb["text"]) for la, lb in zip(a, b))
    cer = edits / max(1, sum(len(la["text"]) for la in a))
    placed = max(shifts, default=0.0) <= BOX_TOLERANCE
    ok = placed and cer <= MAX_PAGE_CER
    report = [f"{'same' if ok else 'DIFF'}  {ref['file']}: {len(a)} lines, boxes within {max(shifts, default=0.0):.3f}"
              f" of a line's height (≤ {BOX_TOLERANCE}), CER {cer:.3f} (≤ {MAX_PAGE_CER})"]
    for i, (la, lb, shift) in enumerate(zip(a, b, shifts)):
        tag = "same" if la["text"] == lb["text"] else "near-tie"
        report.append(f"      line {i + 1} {tag}: {la['text']!r}" + ("" if tag == "same" else f" vs {lb['text']!r}")
                      + f" (box {shift:.3f} of its height; confidence {la['confidence']:.3f}"
                      f" vs {lb['confidence']:.3f})")
    return ok, report


def compare(ref: dict, other: dict) -> tuple[bool, list[str]]:
    """Two `recognize --json` documents over the same inputs: (same?, report lines)."""
    report = [f"runtime: reference {ref['runtime']}, other {other['runtime']}"]
    if [r["file"] for r in ref["lines"]] != [r["file"] for r in other["lines"]]:
        return False, [*report, "DIFF  the two results are not over the same inputs"]
    ok, same_lines, n_lines = True, 0, 0
    for a, b in zip(ref["lines"], other["lines"]):
        if a.get("mode") == "page" or b.get("mode") == "page":
            page_ok, lines = compare_page(a, b) if a.get("mode") == b.get("mode") else (
                False, [f"DIFF  {a['file']}: read as {a.get('mode')} vs {b.get('mode')}"])
            ok &= page_ok
            report += lines
            continue
        same = a.get("text") == b.get("text")
        n_lines += 1
        same_lines += same
        ok &= same
        report.append(f"{'same' if same else 'DIFF'}  {a['file']}: {a.get('text')!r}"
                      + ("" if same else f" vs {b.get('text')!r}"))
    report.append(f"== sample lines: {same_lines} of {n_lines} texts identical")
    return ok, report


def main(argv: list[str]) -> int:
    ref, other = (json.loads(Path(p).read_text(encoding="utf-8")) for p in argv[1:3])
    ok, report = compare(ref, other)
    print("\n".join(report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
