import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SAMPLES


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_ocr", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_recognize_prints_text_and_confidence(samples) -> None:
    """The first five samples' labels (rendered truth) are what the default model reads."""
    paths = [str(p) for p, _ in samples[:5]]
    r = _run("recognize", *paths)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 5
    for line, path, (_, label) in zip(lines, paths, samples):
        name, conf, text = line.split("\t", 2)
        assert name == path and 0.5 <= float(conf) <= 1.0 and text == label


def test_json_output_is_machine_readable(samples) -> None:
    r = _run("recognize", "--json", "--decoder", "beam", str(samples[0][0]))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["decoder"] == "beam" and doc["model"] == "ppocrv6_small_int8"
    assert doc["lines"][0]["text"] and len(doc["lines"][0]["char_confidences"]) == len(doc["lines"][0]["text"])


def test_bad_inputs_get_clear_errors_and_the_rest_still_runs(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes((SAMPLES / "line_00.png").read_bytes()[:60])
    r = _run("recognize", str(tmp_path / "missing.png"), str(corrupt), str(SAMPLES / "line_01.png"))
    assert r.returncode == 1
    assert "missing.png: no such file" in r.stderr
    assert "corrupt.png: not a decodable" in r.stderr
    assert "line_01.png" in r.stdout


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    r = _run("recognize", "--model", str(tmp_path / "none.tflite"), str(SAMPLES / "line_00.png"))
    assert r.returncode == 2
    assert "cannot load model" in r.stderr and "none.json" in r.stderr
