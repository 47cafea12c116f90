"""Command line: ``edge-ocr recognize IMAGE...`` prints text and confidence per line image."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_ocr import __version__
from edge_ocr.contract import ContractError
from edge_ocr.imageio import ImageError, read_image
from edge_ocr.interpreter import RuntimeMissingError
from edge_ocr.recognizer import DECODERS, Recognizer

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "crnn_zh_en_int8.tflite"


def _recognize(args: argparse.Namespace) -> int:
    try:
        rec = Recognizer(args.model, num_threads=args.threads, runtime=args.runtime,
                         decoder=args.decoder, beam_width=args.beam_width)
    except (FileNotFoundError, ContractError, RuntimeMissingError, ValueError) as exc:
        print(f"edge-ocr: cannot load model: {exc}", file=sys.stderr)
        return 2
    failed = 0
    rows = []
    for path in args.images:
        try:
            image = read_image(path)
        except ImageError as exc:
            print(f"edge-ocr: {exc}", file=sys.stderr)
            rows.append({"file": str(path), "error": str(exc)})
            failed += 1
            continue
        result = rec.recognize([image])[0]
        rows.append({"file": str(path), **result.to_dict()})
        if not args.json:
            print(f"{path}\t{result.confidence:.3f}\t{result.text}")
    if args.json:
        doc = {"model": rec.contract.id, "runtime": rec.runtime, "decoder": args.decoder, "lines": rows}
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edge-ocr", description="On-device OCR for boards and notebooks.")
    ap.add_argument("--version", action="version", version=f"edge-ocr {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("recognize", help="recognise single-line images and print text and confidence")
    rec.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    rec.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a .tflite with its .json contract beside it")
    rec.add_argument("--json", action="store_true", help="print one JSON document for machines")
    rec.add_argument("--decoder", choices=DECODERS, default="greedy")
    rec.add_argument("--beam-width", type=int, default=8)
    rec.add_argument("--threads", type=int, default=1)
    rec.add_argument("--runtime", choices=("auto", "litert", "tflite"), default="auto")
    rec.set_defaults(func=_recognize)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
