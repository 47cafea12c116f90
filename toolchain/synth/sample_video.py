"""Render the bundled sample video: a board being written on, line by line, with a hand in
front of it while each line is written.

    python -m toolchain.synth.sample_video --out samples/board.mp4

Each line gets ``hold`` still frames after the hand has moved away (the daemon's gate needs
a still board) and ``hand`` frames of a dark shape moving across the board before it
(the gate must skip those). The ground truth (every line's text and box, and the frame
from which each line is visible) goes to ``<out>.json``. 2 frames per second, 1280×720,
MPEG-4 part 2 (OpenCV's pip wheel writes it; ``VideoCapture`` reads it everywhere).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from toolchain.synth.board_video import hand
from toolchain.synth.scenes import SceneRenderer

FPS = 2.0
LINES = (
    "今天的作业：第三章练习",
    "Homework: page 42, ex. 3-5",
    "牛顿第二定律 F = ma",
    "Quiz on Friday at 10:30",
    "光合作用需要阳光和水",
    "Read chapter 7 before class",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("samples/board.mp4"))
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--lines", type=int, default=6)
    ap.add_argument("--hold", type=int, default=6, help="still frames after each line")
    ap.add_argument("--hand", type=int, default=3, help="frames with a hand in front, before each line")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    renderer = SceneRenderer("test", a.seed)
    texts = iter(LINES * (a.lines // len(LINES) + 1))
    renderer._text = lambda spec: next(texts)  # what a teacher writes, not corpus sentences
    stages = renderer.render_writing((1280, 720), a.lines, progressive=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(a.out), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (1280, 720))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {a.out}")
    n = 0
    visible_from = []
    previous = stages[0].frame
    for stage in stages:
        for i in range(a.hand):
            writer.write(hand(previous if i < a.hand - 1 else stage.frame, (i + 1) / (a.hand + 1), rng))
            n += 1
        visible_from.append(n)
        for _ in range(a.hold):
            noisy = stage.frame.astype(np.int16) + rng.normal(0, 1.5, stage.frame.shape).astype(np.int16)
            writer.write(np.clip(noisy, 0, 255).astype(np.uint8))
            n += 1
        previous = stage.frame
    writer.release()
    final = stages[-1]
    truth = {"fps": FPS, "frames": n, "size": [1280, 720], "board": final.board.round(1).tolist(),
             "lines": [{"text": t, "box": b.round(1).tolist(), "visible_from_frame": v + 1}
                       for (t, b), v in zip(final.lines, visible_from)]}
    a.out.with_suffix(".json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{a.out}: {n} frames, {a.out.stat().st_size / 1e6:.2f} MB; lines: "
          + " | ".join(t for t, _ in final.lines))


if __name__ == "__main__":
    main()
