"""Host toolchain on a tiny configuration: rendering, resumable training, int8 export."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_ocr.paths import ROOT
from edge_ocr.recognition.charset import Charset
from toolchain.synth.corpus import Corpus
from toolchain.synth.dataset import load_split, render_split
from toolchain.synth.fonts import fonts_for
from toolchain.synth.render import LineRenderer

CHARSET = ROOT / "models" / "charset_zh_en.txt"
TINY = ["--batch", "8", "--channels", "8,8,16,16,16,16", "--lstm-units", "16", "--eval-every", "3",
        "--val-limit", "16", "--lr", "0.001", "--seed", "0"]


@pytest.fixture(scope="module")
def charset() -> Charset:
    return Charset.load(CHARSET)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    render_split("train", 160, root / "train", CHARSET, workers=1)
    render_split("val", 32, root / "val", CHARSET, workers=1)
    return root


def test_test_split_shares_no_fonts_or_sentences_with_training(charset: Charset) -> None:
    (tc, tl), (sc, sl) = fonts_for("train"), fonts_for("test")
    assert not {f.path for f in tc + tl} & {f.path for f in sc + sl}
    train, test = Corpus.load("train", charset), Corpus.load("test", charset)
    assert not set(train.zh) & set(test.zh)
    assert not set(train.en) & set(test.en)
    assert len(test.zh) > 1000 and len(test.en) > 500


def test_rendered_lines_are_normalised_and_labelled(charset: Charset) -> None:
    r = LineRenderer("train", Corpus.load("train", charset), seed=7)
    for _ in range(30):
        line, text = r.sample()
        assert line.shape[0] == 32 and line.shape[1] <= 384 and line.shape[1] % 4 == 0
        assert text and text == text.strip()
        charset.encode(text)
        assert line.min() < 100, "a rendered line must contain ink"


def _train(data: Path, run: Path, steps: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "toolchain.crnn.train", "--data", str(data), "--run", str(run),
           "--steps", str(steps), *TINY]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


def test_training_stops_and_resumes_from_the_last_checkpoint(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    out, _ = _train(tiny_data, run, 3).communicate(timeout=600)
    assert "stopped at step 3" in out, out[-2000:]
    assert [int(r["step"]) for r in _history(run)] == [3]
    assert (run / "curve.png").stat().st_size > 1000

    out, _ = _train(tiny_data, run, 6).communicate(timeout=600)
    assert "resumed from" in out and "at step 3" in out, out[-2000:]
    assert [int(r["step"]) for r in _history(run)] == [3, 6]

    # A SIGTERM mid-run (what systemd or a user's Ctrl-C sends) saves and the next run continues.
    proc = _train(tiny_data, run, 100_000)
    deadline = time.time() + 300
    while time.time() < deadline and max(int(r["step"]) for r in _history(run)) < 9:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    stopped = int(out.rsplit("stopped at step ", 1)[1].split(";")[0])
    assert stopped >= 9
    out, _ = _train(tiny_data, run, stopped + 1).communicate(timeout=600)
    assert f"at step {stopped}" in out, out[-2000:]


def test_int8_export_is_fully_integer_and_runs_on_the_device_runtime(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    out, _ = _train(tiny_data, run, 2).communicate(timeout=600)
    assert "stopped at step 2" in out
    models = tmp_path / "models"
    models.mkdir()
    (models / "charset_zh_en.txt").write_bytes(CHARSET.read_bytes())
    r = subprocess.run([sys.executable, "-m", "toolchain.crnn.export", "--run", str(run),
                        "--data", str(tiny_data / "train"),
                        "--calib", "16", "--out", str(models), "--name", "tiny"], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    contract = json.loads((models / "tiny_int8.json").read_text())
    audit = contract["provenance"]["audit"]
    assert audit["float_ops"] == []
    for op in ("CONV_2D", "FULLY_CONNECTED", "UNIDIRECTIONAL_SEQUENCE_LSTM"):
        assert op in audit["ops"]
    text = (models / "tiny_int8.audit.md").read_text()
    assert "| CONV_2D | int8, int8, int32 | int8 |" in text

    from edge_ocr.recognition.recognizer import Recognizer

    images, widths, _ = load_split(tiny_data / "val")
    rec = Recognizer(models / "tiny_int8.tflite")
    res = rec.recognize([np.asarray(images[i, :, : widths[i]]) for i in range(3)])
    assert len(res) == 3 and rec.charset.num_classes == 6625


def test_page_reader_finds_the_lines_of_synthesised_scenes() -> None:
    from edge_ocr.page.diff import match_boxes
    from edge_ocr.page.reader import PageReader
    from edge_ocr.recognition.recognizer import Recognizer
    from toolchain.synth.scenes import SceneRenderer

    reader = PageReader(Recognizer(ROOT / "models" / "crnn_zh_en_int8.tflite"), cache_size=1)
    scenes = SceneRenderer("test", seed=5, charset_path=str(CHARSET))
    tp = gt = pred = 0
    for _ in range(4):
        s = scenes.render(frame_size=(1280, 720))
        page = reader.read(s.frame)
        boxes = [np.array(ln.box, np.float32) for ln in page.lines]
        tp += len(match_boxes([b for _, b in s.lines], boxes, 0.5))
        gt += len(s.lines)
        pred += len(boxes)
    assert tp / gt >= 0.9, f"recall {tp}/{gt}"
    assert tp / max(1, pred) >= 0.8, f"precision {tp}/{pred}"
