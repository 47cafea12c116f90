"""What the toolchain's commands share: the opening of their argument parsers, and the history
file and SIGTERM flag that let a long training run stop at a checkpoint and resume."""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

UNLABELLED = Path("../shared/unlabelled")  # real photos without labels: distillation only, never the dev set


def parser(doc: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def distill_parser(doc: str | None, out: str, batch: int, lr: float) -> argparse.ArgumentParser:
    """A student's command: a step (cache, train, export), its work folder, the real photos, the
    run's seed, batch and learning rate, and where the exported model goes."""
    ap = parser(doc)
    ap.add_argument("step", choices=("cache", "train", "export"))
    ap.add_argument("--out", type=Path, default=Path(out), help="cache, checkpoints, history")
    ap.add_argument("--photos", type=Path, default=UNLABELLED, help="real photos without labels (never the dev set)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--models", type=Path, default=Path("models"))
    return ap


def run_step(ap: argparse.ArgumentParser, steps: dict[str, Callable[[argparse.Namespace], None]]) -> None:
    """Parse the command line and run the step it names (TensorFlow's C++ chatter quietened)."""
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    steps[args.step](args)


def import_parser(doc: str | None, names: str) -> argparse.ArgumentParser:
    """An ONNX import: the source model, the output stem (``names`` says what it makes), the folder."""
    ap = parser(doc)
    ap.add_argument("--onnx", required=True, help="ONNX file, or a known name (see the module's KNOWN)")
    ap.add_argument("--name", required=True, help=f"output stem: {names}")
    ap.add_argument("--out", type=Path, default=Path("models"))
    return ap


def start_history(path: Path, columns: str) -> Path:
    """``path`` (a CSV of the run's curve), created with its header unless a run left it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(columns + "\n")
    return path


def stop_on_sigterm() -> dict[str, bool]:
    """A flag set by SIGTERM: the loop saves a checkpoint and ends instead of dying mid-step."""
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    return stop


def ort_session(model: Any, threads: int = 1):
    """An ONNX Runtime CPU session over ``model`` (a path or an ``onnx.ModelProto``) on
    ``threads`` threads, warnings off (PaddleOCR graphs leave unused constants it would list)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.log_severity_level = 3
    source = str(model) if isinstance(model, str | Path) else model.SerializeToString()
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
