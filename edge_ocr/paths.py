"""Where the project's files are: the repository root (``models/``, ``samples/``) and the shipped
defaults. Every entry point resolves a configured path here, so a relative ``models/…`` means
the same file from the CLI, the daemon, ``serve``, the benchmarks and the tests."""

from __future__ import annotations

from pathlib import Path

from edge_ocr.config import RecognizerConfig, VisionConfig

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SAMPLE_VIDEO = SAMPLES / "board.mp4"


def resolve(path: str | Path) -> Path:
    """A configured path as given when absolute or existing, else relative to :data:`ROOT`."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else ROOT / p


DEFAULT_MODEL = ROOT / RecognizerConfig().model
DEFAULT_DETECTOR = ROOT / VisionConfig().detector_model
