import json
import subprocess
import sys
from pathlib import Path

from edge_ocr.page.diff import comparable
from tests import bombs
from tests.conftest import ROOT, SAMPLES
from tests.render import multi_page_tiff


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


PEAK = ("import resource, sys\nfrom edge_ocr.cli import main\nrc = main(sys.argv[1:])\n"
        "print('maxrss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(rc)")


def _peak(*args: str) -> tuple[subprocess.CompletedProcess, int]:
    """``edge-ocr ARGS`` and its peak RSS in KiB."""
    r = subprocess.run([sys.executable, "-c", PEAK, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    return r, int(r.stderr.strip().splitlines()[-1].split()[1])


def test_bombs_are_refused_without_the_memory_they_claim(tmp_path: Path) -> None:
    """Field case N02 through ``recognize``: a bomb of every format gets exit 1 and an error that
    says too large, the good image after them is read, and the peak RSS stays within 150 MB of
    reading the good image alone."""
    paths = []
    for label, data in bombs.every_format().items():
        paths.append(tmp_path / f"{label}.img")
        paths[-1].write_bytes(data)
    good = str(SAMPLES / "line_01.png")
    alone, alone_kib = _peak("recognize", good)
    r, kib = _peak("recognize", *map(str, paths), good)
    assert alone.returncode == 0 and r.returncode == 1
    for path in paths:
        assert f"edge-ocr: {path}: image too large" in r.stderr, path
    assert r.stdout == alone.stdout
    assert (kib - alone_kib) / 1024 <= 150, f"peak RSS {alone_kib / 1024:.0f} MB alone, {kib / 1024:.0f} MB with bombs"


def test_every_page_of_a_multi_page_tiff_is_read(tmp_path: Path) -> None:
    pages = [["Lesson one", "Photosynthesis"], ["Lesson two", "Respiration"]]
    scan = tmp_path / "scan.tif"
    scan.write_bytes(multi_page_tiff(pages))
    r = _run("recognize", str(scan))
    assert r.returncode == 0, r.stderr
    heads = [ln for ln in r.stdout.splitlines() if ln.startswith("== ")]
    assert [h.split(", ")[0] for h in heads] == [f"== {scan} [page {k}/2]: 2 lines" for k in (1, 2)]
    r = _run("recognize", "--json", str(scan))
    rows = json.loads(r.stdout)["lines"]
    assert [(row["file"], row["page"]) for row in rows] == [(str(scan), 1), (str(scan), 2)]
    assert [[comparable(ln["text"]) for ln in row["lines"]] for row in rows] == \
        [[comparable(t) for t in lines] for lines in pages]


def test_an_image_without_text_is_said_as_such(tmp_path: Path) -> None:
    """A drawing with no text: the CLI says 'no text found' rather than an empty success, and
    --json carries text_found false."""
    import cv2

    from tests.render import diagram

    path = tmp_path / "diagram.png"
    cv2.imwrite(str(path), diagram("arrows"))
    r = _run("recognize", str(path))
    assert r.returncode == 0 and "0 lines" in r.stdout and "no text found" in r.stdout, r.stdout
    doc = json.loads(_run("recognize", "--json", str(path)).stdout)
    assert doc["lines"][0]["text_found"] is False and doc["lines"][0]["lines"] == []
