"""Fine-tuning a school's own lines, end to end on a tiny folder: the real teacher and the
shipped student, a real int8 export, the runtime reading the result; and the labelled-folder
reader's errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_ocr.labels import LabelsError, read_labels
from edge_ocr.paths import ROOT

STUDENT = ROOT / "models" / "crnn_student_zh_en_int8.tflite"


def write_folder(folder: Path, count: int, seed: int = 3) -> list[str]:
    """``count`` rendered test-split lines (fonts and texts training never saw) as PNGs + labels.tsv."""
    from edge_ocr.recognition.charset import Charset
    from toolchain.synth.corpus import Corpus
    from toolchain.synth.render import LineRenderer

    renderer = LineRenderer("test", Corpus.load("test", Charset.load(ROOT / "models" / "charset_zh_en.txt")),
                            seed, height=48, max_width=480)
    folder.mkdir(parents=True)
    rows, texts = ["file\ttext"], []
    for i in range(count):
        image, text = renderer.sample_raw()
        cv2.imwrite(str(folder / f"line_{i:03d}.png"), image)
        rows.append(f"line_{i:03d}.png\t{text}")
        texts.append(text)
    (folder / "labels.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return texts


def test_a_folder_without_labels_or_with_missing_images_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match=r"labels\.tsv: no such file"):
        read_labels(tmp_path)
    (tmp_path / "labels.tsv").write_text("name\ttext\na.png\tx\n", encoding="utf-8")
    with pytest.raises(LabelsError, match=r"lacks the column\(s\) \['file'\]"):
        read_labels(tmp_path)
    (tmp_path / "labels.tsv").write_text("file\ttext\na.png\tx\n", encoding="utf-8")
    with pytest.raises(LabelsError, match=r"1 listed image.*'a\.png'"):
        read_labels(tmp_path)


def test_fine_tuning_runs_end_to_end_and_reports_before_and_after(tmp_path: Path) -> None:
    """The mechanics only (40 steps on 24 rendered lines): that fine-tuning lowers CER is measured
    on real writers' held-out pages by ``python -m toolchain.crnn.writers`` (model card)."""
    if not STUDENT.exists():
        pytest.fail(f"{STUDENT} missing: the shipped student is what fine-tuning starts from")
    write_folder(tmp_path / "mine", 24)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "toolchain.crnn.finetune",
                        "--data", str(tmp_path / "mine"), "--out", str(out),
                        "--steps", "40", "--batch", "8", "--replay", "16", "--views", "2", "--calib", "16"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    model = out / "crnn_student_zh_en_finetuned_int8.tflite"
    contract = json.loads(model.with_suffix(".json").read_text())
    assert contract["quantization"].startswith("full-integer int8")
    assert "Ops touching float32 tensors: none" in model.with_suffix(".audit.md").read_text()
    card = (out / "crnn_student_zh_en_finetuned.MODEL_CARD.md").read_text()
    figures = [float(x) for x in re.findall(r"\| (\d\.\d{4}) \|", card)]
    assert len(figures) == 2, card  # before and after, on the held-out lines

    from edge_ocr.recognition.recognizer import Recognizer

    rec = Recognizer(model, num_threads=1)
    line = cv2.imread(str(tmp_path / "mine" / "line_000.png"))
    result = rec.recognize([line])[0]
    assert result.text.strip() and 0 < result.confidence <= 1
    assert np.isfinite(figures).all() and all(0 <= f <= 2 for f in figures), card


def test_a_line_too_narrow_for_its_text_is_left_out_and_the_rest_learnt() -> None:
    """CTC needs a frame per character and a blank between equal neighbours: 'aaaaaaa' needs 13
    frames, and a 64-px crop has 8 (its 7 characters alone would fit). The real teacher reads
    both lines; only the wide one becomes training items, one per view."""
    import random

    from toolchain.crnn import student as rd
    from toolchain.crnn.finetune import learn_items

    assert rd.ctc_fits([5, 6, 7], 3) and not rd.ctc_fits([5, 5], 2) and rd.ctc_fits([5, 5], 3)
    wide, narrow = np.full((48, 320), 230, np.float32), np.full((48, 64), 230, np.float32)
    wide[12:36, 20:300:16] = narrow[12:36, 4:60:8] = 30
    items = learn_items(rd.Teacher(1), [("wide.png", "abc", wide), ("narrow.png", "aaaaaaa", narrow)], 2,
                        random.Random(0))
    assert [it[4] for it in items] == ["abc", "abc"]
    assert all(len(it[0]) == 40 for it in items), "320 px: 40 frames per view"
