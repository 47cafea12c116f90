"""Fine-tune the CRNN student on a school's own lines: ``make finetune DATA=dir``.

    python -m toolchain.crnn.finetune --data DIR [--out build/finetune] [--steps 2400]

``DIR`` holds line images (one text line each, any format the runtime reads) and
``labels.tsv`` with a header naming ``file`` and ``text``. Every tenth line (by file name) is
held out to measure the model before and after, or, with ``--check DIR2``, all of ``DIR`` is learnt
and the lines of ``DIR2`` (say, other pages of the same hand) are measured. The rest are seen ``--views`` times (as cut,
then rescaled, blurred, noised, JPEG'd), and ``--replay`` freshly rendered train-split lines with
the teacher's targets are mixed in, so the model keeps what it could read before. Only the head
(BiLSTM and classifier) learns: the backbone stays PP-OCRv6's, so 200 lines take minutes on two
cores. Writes ``<name>_int8.tflite`` with its contract, audit and ``<name>.MODEL_CARD.md`` (the
before/after figures) to ``--out``; point ``recognizer.model`` at the ``.tflite`` to use it.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_ocr.labels import read_labels
from toolchain.crnn import student as rd

MODELS = Path("models")
# Chosen on two writers of ../shared/handwriting-fr that the model card does not report
# (MODEL_CARD.md, "One writer's hand"): 400 → 2400 steps, replay 400 → 150, lr 5e-4 over 1e-3.
STEPS, REPLAY, LR = 2400, 150, 5e-4


def held_out(name: str) -> bool:
    """Every tenth file by a stable hash of its name (the same on every run and machine)."""
    return zlib.crc32(name.encode("utf-8")) % 10 == 0


def load_lines(folder: Path, hold: Callable[[str], bool] = held_out
               ) -> tuple[list[tuple[str, str, np.ndarray]], list[tuple[str, str, np.ndarray]]]:
    """(train, held out) lists of (file, text, image), text filtered to the charset; ``hold``
    says which files are held out (every tenth by default, and none of fewer than ten lines); the
    training images normalised as the cache normalises, the held-out ones as read (the runtime's
    recogniser normalises them itself when they are measured)."""
    from edge_ocr.imageio import read_image
    from edge_ocr.recognition.charset import Charset
    from edge_ocr.recognition.preprocess import normalize_line

    charset = Charset.load(rd.CHARSET)
    rows = read_labels(folder)
    if not rows:
        raise SystemExit(f"{folder}/labels.tsv lists no lines")
    unknown = sorted({c for r in rows for c in r["text"] if c not in charset and c != " "})
    if unknown:
        print(f"characters the model cannot write, dropped from the labels: {''.join(unknown)}", flush=True)
    train, held = [], []
    for r in sorted(rows, key=lambda r: r["file"]):
        image, text = read_image(folder / r["file"]), " ".join(charset.filter(r["text"]).split())
        if hold(r["file"]) and (len(rows) >= 10 or hold is not held_out):
            held.append((r["file"], text, image))
        else:
            line = normalize_line(image, rd.HEIGHT, multiple=rd.STRIDE, max_width=rd.MAX_WIDTH)
            train.append((r["file"], text, line))
    return train, held


def learn_items(teacher: rd.Teacher, lines: list[tuple[str, str, np.ndarray]], views: int,
                rng: random.Random) -> list[tuple]:
    """:class:`toolchain.crnn.student.Frames` items of your lines, each seen ``views`` times (as
    cut, then varied); a line whose text is too long for its width (CTC cannot align it: a
    narrow crop of a long line) is left out and named, so one bad line never stops the run."""
    from tqdm import tqdm

    from edge_ocr.recognition.charset import Charset

    charset, items = Charset.load(rd.CHARSET), []
    for name, text, line in tqdm(lines, desc="your lines", unit="line"):
        for v in range(views):
            f, h, i, p = teacher.frames(line if v == 0 else rd.vary(line, rng))
            if not rd.ctc_fits(charset.encode(text), len(f)):
                print(f"{name}: {len(text)} characters on {len(f)} frames cannot be learnt; left out", flush=True)
                break
            items.append((f, h, i, p, text, 0, 0.0, True))
    return items


def cer_of(model_path: Path, lines: list[tuple[str, str, np.ndarray]]) -> dict[str, float]:
    """CER of a TFLite model through the runtime's recogniser (greedy, 1 thread) on the line
    images of ``lines``, each prepared as the device prepares it."""
    from edge_ocr.recognition.recognizer import Recognizer
    from toolchain.scoring import score

    rec = Recognizer(model_path, num_threads=1)
    return score([t for _, t, _ in lines], [rec.recognize([image])[0].text for _, _, image in lines])


def card(args: argparse.Namespace, out: Path, before: dict, after: dict, counts: dict, seconds: float) -> str:
    """The fine-tuned model's card: what it was made from and the held-out figures."""
    def row(name: str, m: dict) -> str:
        return f"| {name} | {m.get('cer', float('nan')):.4f} | {m.get('line_acc', float('nan')):.3f} |"

    return "\n".join([
        f"# {out.stem}: {rd.NAME} fine-tuned on `{args.data}`", "",
        f"Made by `python -m toolchain.crnn.finetune` on {time.strftime('%Y-%m-%d %H:%M')} "
        f"in {seconds / 60:.1f} min.", "",
        f"- base: `{args.base}` (int8) and its head weights; backbone: PP-OCRv6 small's, frozen",
        f"- training: {counts['train']} of your lines × {args.views} views, plus {counts['replay']} rendered "
        f"lines replayed with the teacher's targets; {args.steps} steps of batch {args.batch}, learning rate {args.lr}",
        f"- held out: {counts['held']} lines, never trained on: "
        + (f"those of `{args.check}`" if args.check else "every tenth file of yours by a hash of its name"), "",
        "| model | held-out CER | held-out line accuracy |", "|---|---|---|",
        row(f"before (`{args.base.name}`)", before), row(f"after (`{out.name}`)", after), "",
        "Use it: set `recognizer.model` to this file (its `.json` contract and the charset must sit beside it).",
        "With fewer than ten lines nothing is held out and the figures read nan: they would mean nothing.", ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder of line images + labels.tsv")
    ap.add_argument("--out", type=Path, default=Path("build/finetune"))
    ap.add_argument("--check", type=Path,
                    help="folder of line images + labels.tsv measured before and after instead of a tenth of --data "
                         "(e.g. other pages of the same writer)")
    ap.add_argument("--name", default=f"{rd.NAME}_finetuned")
    ap.add_argument("--base", type=Path, default=MODELS / f"{rd.NAME}_int8.tflite")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--views", type=int, default=4, help="times each of your lines is seen (1 as cut)")
    ap.add_argument("--replay", type=int, default=REPLAY, help="rendered lines mixed in so nothing is forgotten")
    ap.add_argument("--calib", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--curve", action="store_true",
                    help="with --check: the float head's CER on the check lines 8 times in the run "
                         "(history.csv, curve.png in the run folder), for choosing --steps on writers not reported")
    a = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t0 = time.time()
    base_head = a.base.with_name(a.base.stem.removesuffix("_int8") + ".head.npz")
    for need in (a.base, base_head):
        if not need.is_file():
            raise SystemExit(f"{need}: missing; fine-tuning starts from the shipped student (make student)")
    if a.check:  # all of --data is learnt; the other folder's lines are measured
        train_lines = load_lines(a.data, hold=lambda _: False)[0]
        held = load_lines(a.check, hold=lambda _: True)[1]
    else:
        train_lines, held = load_lines(a.data)
    print(f"{len(train_lines)} lines to learn from, {len(held)} held out", flush=True)
    before = cer_of(a.base, held) if held else {}
    if held:
        print(f"before: held-out CER {before['cer']:.4f}", flush=True)

    from tqdm import tqdm

    a.out.mkdir(parents=True, exist_ok=True)
    work = a.out / f"{a.name}.run"
    # Minutes, not hours: every fine-tune starts from the shipped head, never from an older run's
    # checkpoints (which would resume a finished schedule and train nothing).
    shutil.rmtree(work, ignore_errors=True)
    # The head reads int8 backbone features, as the device computes them: calibrated, like the
    # export below, on your lines.
    calib = rd.calibration([line for _, _, line in train_lines], a.calib, a.seed)
    teacher = rd.Teacher(a.threads, rd.Int8Backbone(work / "backbone_int8.tflite", calib, a.threads))
    items = learn_items(teacher, train_lines, a.views, random.Random(a.seed))
    renderer = rd.HandRenderer(a.seed + 50_000)
    for _ in tqdm(range(a.replay), desc="replay lines", unit="line"):
        line, text = renderer.sample()
        f, h, i, p = teacher.frames(line)
        items.append((f, h, i, p, text, 1, 1.0, False))
    learnt = len(items)
    if a.curve and held:  # measured along the way, never learnt: indices past the learnt items
        from edge_ocr.recognition.preprocess import normalize_line

        items += learn_items(teacher, [(n, t, normalize_line(i, rd.HEIGHT, multiple=rd.STRIDE, max_width=rd.MAX_WIDTH))
                                       for n, t, i in held], 1, random.Random(a.seed))
    data = rd.Frames.from_items(items)
    weights, cfg = rd.load_head(base_head)
    model = rd.head(cfg)
    model.set_weights(weights)
    rd.fit(model, data, np.arange(learnt), np.arange(learnt, len(items)), work, a.steps, a.lr, a.batch,
           eval_every=max(1, a.steps // (8 if a.curve else 4)), seed=a.seed, warmup=min(50, a.steps // 10))
    out = a.out / f"{a.name}_int8.tflite"
    rd.save_head(model.get_weights(), cfg, a.out / f"{a.name}.head.npz")
    rd.write_tflite(rd.student(model.get_weights(), cfg), out,
                    {"source": f"{a.base.name} fine-tuned on {a.data} ({len(train_lines)} lines; head only)",
                     "base_sha256": rd._sha256(a.base), "steps": a.steps},
                    calib)
    after = cer_of(out, held) if held else {}
    if held:
        print(f"after: held-out CER {after['cer']:.4f}", flush=True)
    counts = {"train": len(train_lines), "held": len(held), "replay": a.replay}
    text = card(a, out, before, after, counts, time.time() - t0)
    (a.out / f"{a.name}.MODEL_CARD.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
