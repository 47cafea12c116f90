"""The accuracy gate on real material: the shipped defaults read the dev set's real lines and real
pages (``../shared/devset``, labelled by hand, never trained or calibrated on) no worse than the
figures measured when this gate was set, plus a small margin. A change that makes real reading
worse fails ``make test``; improve a figure, then tighten its bound here.

Bounds (measured 2026-12-04 on main, 1 thread, ai-edge-litert; ``make bench-accuracy`` and
``make bench-pages`` report the same figures): dev lines CER 0.054 (bound 0.065), Chinese
handwriting lines 0.060 (bound 0.075); dev pages line-matched CER 0.092 (bound 0.105).
Classroom frames (24 labelled 1080p keyframes of the measuring lectures, ``toolchain.bench.classroom``,
measured 2026-12-04): line-matched CER 0.393 (bound 0.41).
Swapping the default recogniser for the first CRNN (``models/crnn_zh_en_int8.tflite``, dev lines
0.639) fails both."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_ocr.config import Config
from edge_ocr.imageio import read_image
from edge_ocr.labels import read_labels
from edge_ocr.page.build import build_reader, build_recognizer
from edge_ocr.paths import ROOT
from toolchain.scoring import page_errors, score

DEVSET = ROOT.parent / "shared" / "devset"
# EDGE_OCR_GATE_MODEL reads with another recogniser, to show the gate catches a worse one.
MODEL = os.environ.get("EDGE_OCR_GATE_MODEL", "")

LINES_CER, HANDWRITING_ZH_CER, PAGES_CER = 0.065, 0.075, 0.105
CLASSROOM_CER = 0.41


def _config() -> Config:
    cfg = Config()
    if MODEL:
        cfg.recognizer.model = MODEL
    cfg.validate()
    return cfg


def _rows(prefix: str) -> list[dict]:
    if not (DEVSET / "labels.tsv").exists():
        pytest.fail(f"the accuracy gate needs the dev set at {DEVSET} (CI has ../shared beside the checkout)")
    return read_labels(DEVSET, prefix)


def dev_line_cer(cfg: Config, category: str | None = None) -> dict[str, float]:
    """Corpus CER of the configured recogniser over the dev set's real line crops."""
    rec = build_recognizer(cfg.recognizer)
    rows = [r for r in _rows("lines/") if category is None or r["category"] == category]
    results = rec.recognize([read_image(DEVSET / r["file"]) for r in rows])
    return score([r["text"] for r in rows], [x.text for x in results])


def test_default_recogniser_reads_the_real_dev_lines() -> None:
    cfg = _config()
    every = dev_line_cer(cfg)
    assert every["lines"] >= 79, "fewer dev lines than when the bound was set"
    assert every["cer"] <= LINES_CER, f"dev lines CER {every['cer']:.3f} > {LINES_CER}"
    zh_hw = dev_line_cer(cfg, "zh_hw_line")
    assert zh_hw["cer"] <= HANDWRITING_ZH_CER, f"Chinese handwriting CER {zh_hw['cer']:.3f} > {HANDWRITING_ZH_CER}"


def test_default_pipeline_reads_the_real_dev_pages() -> None:
    reader = build_reader(_config())
    rows = _rows("pages/")
    assert len(rows) >= 16, "fewer dev pages than when the bound was set"
    errors = chars = 0
    per_page = {}
    for row in rows:
        reader.reset()  # each page is its own scene
        page = reader.read(read_image(DEVSET / row["file"]))
        e, c = page_errors(row["text"].split("\\n"), [ln.text for ln in page.lines])
        errors, chars = errors + e, chars + c
        per_page[Path(row["file"]).stem] = round(e / max(1, c), 3)
    cer = errors / max(1, chars)
    assert cer <= PAGES_CER, f"dev pages CER {cer:.3f} > {PAGES_CER}: {per_page}"


def test_default_pipeline_reads_the_classroom_frames() -> None:
    """The product's main scene: a fixed 1080p camera at a real whiteboard, small handwriting,
    equations and matrices, read with the shipped defaults and judged by hand labels
    (``toolchain/bench/classroom/labels.tsv``) through the one loader that keeps the split."""
    from toolchain.bench import classroom

    if not (classroom.CLASSROOM / "frames").is_dir():
        pytest.fail(f"the accuracy gate needs the classroom frames at {classroom.CLASSROOM} "
                    "(CI has ../shared beside the checkout)")
    rows = classroom.labels()
    assert len(rows) >= 24, "fewer classroom frames than when the bound was set"
    assert {r["lecture"] for r in rows} == set(classroom.MEASURE), "every measuring lecture is judged"
    reader = build_reader(_config())
    errors = chars = 0
    per_frame = {}
    for row in rows:
        reader.reset()  # each frame is judged on its own, not as a change to the one before
        page = reader.read(read_image(Path(row["path"])))
        e, c = page_errors(row["text"].split("\\n"), [ln.text for ln in page.lines])
        errors, chars = errors + e, chars + c
        per_frame[Path(row["file"]).stem] = round(e / max(1, c), 3)
    cer = errors / max(1, chars)
    assert cer <= CLASSROOM_CER, f"classroom frames CER {cer:.3f} > {CLASSROOM_CER}: {per_frame}"


@pytest.mark.parametrize("model", ["ppocrv6_small_int8", "crnn_student_zh_en_int8", "crnn_zh_en_int8"])
def test_each_contract_states_its_real_dev_cer_truly(model: str) -> None:
    """The figure a model's contract publishes (``metrics.devset_real_lines.all.cer``, what
    /health and the model card quote) is what the model reads on the dev lines today."""
    from edge_ocr.model.contract import ModelContract

    stated = ModelContract.load(ROOT / "models" / f"{model}.tflite").metrics["devset_real_lines"]["all"]
    cfg = Config()
    cfg.recognizer.model, cfg.recognizer.runtime = f"models/{model}.tflite", "litert"
    measured = dev_line_cer(cfg.validate())
    assert measured["lines"] == stated["lines"]
    assert abs(measured["cer"] - stated["cer"]) <= 0.002, (measured["cer"], stated["cer"])
