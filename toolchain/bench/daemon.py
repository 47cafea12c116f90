"""``make bench-daemon``: what one change on a board costs the daemon, against a full re-read.

    python -m toolchain.bench.daemon [--repeats 3]

Boards of 15 and 40 lines at 1920×1080: a real whiteboard photo with its writing wiped
(``toolchain.synth.board_video.blank_board``) as the background, and the dev set's real
handwritten and printed lines written on it in marker (:func:`written_board`). One line (in
the middle of the board) is written between two frames. Per board, 1 thread, medians of
``repeats`` runs, all in this one run:

- *one line changed*: the daemon's path (gate, then ``BoardReader.read_changes`` with the
  gate's changed cells, then the page diff) on the frame after the line was written;
- *full re-read*: the path before issue 27 (``PageReader.read`` of the whole board, the
  orientation vote each frame, the line cache warm from the frame before) on the same frame;
- *unchanged frame*: the gate on a frame with nothing new (camera noise only);
- steady RSS after the runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from edge_ocr.config import Config
from edge_ocr.daemon.gate import Gate
from edge_ocr.page.build import build_reader
from edge_ocr.page.diff import reconcile_board
from edge_ocr.page.incremental import BoardReader
from edge_ocr.vision.clean import ink_gray
from toolchain.synth.board_video import blank_board

DEVSET = Path(__file__).resolve().parents[3] / "shared" / "devset"
PHOTO = "pages/wbpg_d05.jpg"
SIZE = (1920, 1080)
LINE_H, PITCH, MARGIN = 38, 50, 60  # px: a line's height, the distance between lines, the board's margin
MARKER = np.float32([70, 40, 30])  # BGR: a dark blue marker
STRIP = 40  # px: the photo is wiped in strips this tall


def dev_lines(devset: Path = DEVSET) -> list[tuple[str, np.ndarray]]:
    """(text, image) of the dev set's lines, in file order."""
    rows = [ln.split("\t") for ln in (devset / "labels.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    return [(r[2], cv2.imread(str(devset / r[0]))) for r in rows if len(r) >= 3]


def background(devset: Path = DEVSET) -> np.ndarray:
    """A real whiteboard photo with all its writing wiped, at ``SIZE``."""
    photo = cv2.resize(cv2.imread(str(devset / PHOTO)), SIZE, interpolation=cv2.INTER_AREA)
    h, w = photo.shape[:2]
    strips = [np.float32([[0, y], [w - 1, y], [w - 1, y + STRIP], [0, y + STRIP]]) for y in range(0, h, STRIP)]
    return blank_board(photo, strips)  # wiped strip by strip: the wiping kernel follows a strip's height


def place(count: int) -> list[tuple[int, int, int]]:
    """(x, y, width) of ``count`` line slots: one column of up to 18 rows, else two columns."""
    columns = 1 if count <= 18 else 2
    rows = -(-count // columns)
    width = (SIZE[0] - 2 * MARGIN) // columns - MARGIN
    return [(MARGIN + (i // rows) * (width + MARGIN), MARGIN + (i % rows) * PITCH, width) for i in range(count)]


def write(board: np.ndarray, line: np.ndarray, x: int, y: int, width: int) -> np.ndarray:
    """``board`` with the ink of ``line`` (a photo of a written line) drawn in marker at (x, y),
    ``LINE_H`` tall and at most ``width`` long."""
    ink = 255.0 - ink_gray(line).astype(np.float32)  # ink_gray: dark ink on light, whatever the photo's polarity
    paper, darkest = np.percentile(ink, 50), np.percentile(ink, 99.5)
    lo = paper + 0.3 * (darkest - paper)  # the paper's texture and shading stay off the board
    alpha = np.clip((ink - lo) / max(0.4 * (darkest - paper), 1.0), 0, 1)
    f = LINE_H / alpha.shape[0]
    w = min(width, max(1, round(alpha.shape[1] * f)))
    alpha = cv2.resize(alpha, (w, LINE_H), interpolation=cv2.INTER_AREA)[:, :, None]
    out = board.copy()
    region = out[y: y + LINE_H, x: x + w].astype(np.float32)
    out[y: y + LINE_H, x: x + w] = (region * (1 - alpha) + MARKER * alpha).astype(np.uint8)
    return out


def written_board(count: int, skip: int | None = None, devset: Path = DEVSET,
                  turn: int = 0) -> tuple[np.ndarray, list[str]]:
    """A 1080p board with ``count`` dev lines written on it (all but line ``skip``), turned by
    ``turn`` quarter turns (``np.rot90``), and the texts written, in order."""
    lines = [ln for ln in dev_lines(devset) if ln[1].shape[1] >= 3 * ln[1].shape[0]]
    board, texts = background(devset), []
    for i, (x, y, width) in enumerate(place(count)):
        text, image = lines[i % len(lines)]
        if i != skip:
            board = write(board, image, x, y, width)
            texts.append(text)
    return np.ascontiguousarray(np.rot90(board, turn)), texts


def noisy(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``frame`` with a camera's sensor noise."""
    return np.clip(frame.astype(np.int16) + rng.normal(0, 1.5, frame.shape).astype(np.int16), 0, 255).astype(np.uint8)


def rss_mb() -> float:
    """This process's resident memory now, MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def settle(gate: Gate, frames: list[np.ndarray]):
    """Feed ``frames`` to the gate until one is to be read; that decision (or the last one)."""
    decision = None
    for frame in frames:
        decision = gate.check(frame)
        if decision.recognise:
            break
    return decision


def measure(cfg: Config, count: int, repeats: int, seed: int = 0) -> dict:
    """One board's figures (ms, medians over ``repeats``), see the module docstring."""
    rng = np.random.default_rng(seed)
    middle = count // 2
    before, _ = written_board(count, skip=middle)
    after, _ = written_board(count)
    base = build_reader(cfg)
    changed, full, unchanged, lines_read = [], [], [], []
    for _ in range(repeats):
        reader, old = BoardReader(base), build_reader(cfg)
        reader.reset()
        gate = Gate(cfg.gate, reader.fixed_region)
        first = settle(gate, [noisy(before, rng) for _ in range(8)])
        page = reader.read_changes(first.board, gate.changed_boxes())
        gate.accept()
        old.read(first.board)
        lines, _, _ = reconcile_board([], page.lines, gate.state)
        decision = settle(gate, [noisy(after, rng) for _ in range(8)])
        assert decision is not None and decision.recognise, "the gate did not see the line written"
        t0 = time.perf_counter()
        new = reader.read_changes(decision.board, gate.changed_boxes())
        gate.accept()
        reconcile_board(lines, new.lines, gate.state)
        changed.append(decision.ms + (time.perf_counter() - t0) * 1000)
        lines_read.append(sum(not ln.cached for ln in new.lines))
        t0 = time.perf_counter()
        old.read(decision.board)
        full.append((time.perf_counter() - t0) * 1000)
        still = noisy(after, rng)
        t0 = time.perf_counter()
        quiet = gate.check(still)
        unchanged.append((time.perf_counter() - t0) * 1000)
        assert not quiet.recognise, f"an unchanged frame was read ({quiet.reason})"
    return {"lines": count, "changed_ms": statistics.median(changed), "full_ms": statistics.median(full),
            "unchanged_ms": statistics.median(unchanged), "lines_read": statistics.median(lines_read),
            "partial_reads": reader.partial_reads, "votes": reader.votes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = Config()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = [measure(cfg, n, args.repeats) for n in (15, 40)]
    print(f"1 thread, {SIZE[0]}×{SIZE[1]}, medians of {args.repeats} runs; "
          "one line written in the middle of the board\n")
    print("| board | one line changed (ms) | full re-read (ms) | ratio | lines recognised | unchanged frame (ms) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["changed_ms"] / r["full_ms"]
        print(f"| {r['lines']} lines | {r['changed_ms']:.0f} | {r['full_ms']:.0f} | {ratio:.2f} "
              f"| {r['lines_read']:.0f} | {r['unchanged_ms']:.1f} |")
    print(f"\none line changed, 40 lines over 15 lines: {rows[1]['changed_ms'] / rows[0]['changed_ms']:.2f}")
    print(f"steady RSS: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
