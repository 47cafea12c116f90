"""Fine-tuning on one writer's hand, measured on that writer's other pages (issue 30).

    python -m toolchain.crnn.writers [--writers 3] [--skip 0] [--counts 10 25 50 0] [--steps 2400]

For each of the ``--writers`` writers of ``../shared/handwriting-fr`` with the most lines (and
at least two pages), the pages in order are split: the last pages holding at least a quarter of
the writer's lines are checked, the first ones learnt from (a school labels what it has and reads
what comes next). Each ``--counts`` entry fine-tunes the shipped student (``make finetune``'s
:mod:`toolchain.crnn.finetune`, ``--check``) on the first that many lines of the learning pages
(0: all of them); every model, the default recogniser too, is scored on the same check lines
through the runtime's recogniser. One row per run is appended to ``--report`` as it finishes.
Settings of the fine-tuning (``--steps``, ``--lr``, ``--replay``) are chosen on writers the
figures do not report: ``--skip 3`` takes the writers after the three measured ones.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

HANDWRITING = Path("../shared/handwriting-fr")
CHECK_SHARE = 0.25


def writer_pages(root: Path) -> dict[str, dict[str, list[dict[str, str]]]]:
    """{writer: {page: rows in file order}} from ``labels.tsv``."""
    with (root / "labels.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    out: dict[str, dict[str, list[dict[str, str]]]] = {}
    for r in sorted(rows, key=lambda r: r["file"]):
        out.setdefault(r["writer"], {}).setdefault(r["page"], []).append(r)
    return out


def split_pages(pages: dict[str, list[dict[str, str]]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(learn, check) rows: the last pages (by name) holding at least :data:`CHECK_SHARE` of the
    lines are checked, the others learnt; a page is never on both sides."""
    names = sorted(pages)
    total = sum(len(v) for v in pages.values())
    check: list[str] = []
    while names[:-1] and sum(len(pages[p]) for p in check) < CHECK_SHARE * total:
        check.insert(0, names.pop())
    return [r for p in names for r in pages[p]], [r for p in check for r in pages[p]]


def write_folder(folder: Path, rows: list[dict[str, str]], root: Path) -> Path:
    """A fine-tuning folder: ``labels.tsv`` of ``rows`` and a link to the line images."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "lines"
    if not link.exists():
        link.symlink_to((root / "lines").resolve())
    with (folder / "labels.tsv").open("w", encoding="utf-8", newline="") as f:
        f.write("file\ttext\n" + "".join(f"{r['file']}\t{r['text']}\n" for r in rows))
    return folder


def main() -> None:
    from toolchain.common import parser
    from toolchain.crnn.finetune import LR, MODELS, REPLAY, STEPS, cer_of, load_lines
    from toolchain.crnn.student import NAME

    ap = parser(__doc__)
    ap.add_argument("--data", type=Path, default=HANDWRITING)
    ap.add_argument("--writers", type=int, default=3, help="writers with the most lines (two pages or more)")
    ap.add_argument("--skip", type=int, default=0, help="leave out this many of the largest writers first")
    ap.add_argument("--steps", type=int, default=STEPS, help="fine-tuning steps (make finetune's default)")
    ap.add_argument("--lr", type=float, default=LR, help="fine-tuning learning rate (make finetune's default)")
    ap.add_argument("--replay", type=int, default=REPLAY, help="rendered lines replayed (make finetune's default)")
    ap.add_argument("--curve", action="store_true", help="the float head's check CER along each run")
    ap.add_argument("--counts", type=int, nargs="+", default=[0], help="lines learnt per run (0: all)")
    ap.add_argument("--out", type=Path, default=Path("build/writers"))
    ap.add_argument("--report", type=Path, default=Path("build/writers/report.md"))
    ap.add_argument("--default", type=Path, default=MODELS / "ppocrv6_small_int8.tflite",
                    help="the default recogniser, scored on the same check lines")
    args = ap.parse_args()
    by_writer = writer_pages(args.data)
    chosen = sorted((w for w in by_writer if len(by_writer[w]) >= 2),
                    key=lambda w: -sum(len(v) for v in by_writer[w].values()))[args.skip: args.skip + args.writers]
    base = MODELS / f"{NAME}_int8.tflite"
    args.report.parent.mkdir(parents=True, exist_ok=True)
    if not args.report.exists():
        args.report.write_text("| writer | learnt lines (pages) | check lines (pages) | steps | lr | replay | "
                               "student before | after | default | minutes |\n" + "|---" * 10 + "|\n", encoding="utf-8")
    for writer in chosen:
        learn, check = split_pages(by_writer[writer])
        check_dir = write_folder(args.out / writer / "check", check, args.data)
        held = load_lines(check_dir, hold=lambda _: True)[1]
        before, default = cer_of(base, held)["cer"], cer_of(args.default, held)["cer"]
        print(f"{writer}: {len(learn)} lines to learn from, {len(check)} to check; "
              f"before {before:.4f}, default {default:.4f}", flush=True)
        for count in args.counts:
            rows = learn[:count] if count else learn
            run = args.out / writer / f"n{len(rows)}_s{args.steps}_lr{args.lr:g}_r{args.replay}"
            data = write_folder(run / "data", rows, args.data)
            t0 = time.time()
            subprocess.run([sys.executable, "-m", "toolchain.crnn.finetune", "--data", str(data), "--check",
                            str(check_dir), "--out", str(run), "--steps", str(args.steps), "--lr", str(args.lr),
                            "--replay", str(args.replay),
                            *(["--curve"] if args.curve else [])],
                           check=True)
            after = cer_of(run / f"{NAME}_finetuned_int8.tflite", held)["cer"]
            pages = len({r["page"] for r in rows})
            with args.report.open("a", encoding="utf-8") as f:
                f.write(f"| {writer} | {len(rows)} ({pages}) | {len(check)} ({len({r['page'] for r in check})}) | "
                        f"{args.steps} | {args.lr:g} | {args.replay} | {before:.4f} | {after:.4f} | {default:.4f} | "
                        f"{(time.time() - t0) / 60:.1f} |\n")
            print(f"{writer}, {len(rows)} lines learnt: {before:.4f} → {after:.4f} (default {default:.4f})", flush=True)


if __name__ == "__main__":
    main()
