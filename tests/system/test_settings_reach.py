"""One setting reaches every model, and a reload reaches every reader (issue 28, fault 9):
``--no-xnnpack``, ``EDGE_OCR_XNNPACK=0`` and ``[recognizer] xnnpack`` as seen in the execution plan
of every interpreter built (XNNPACK shows as DELEGATE nodes), and a SIGHUP that changes the
recogniser reaching the daemon's ``/api/ocr`` and ``/health`` as well as its loop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from edge_ocr import cli
from edge_ocr import config as config_mod
from edge_ocr.daemon.service import Service
from edge_ocr.labels import read_labels
from edge_ocr.model.interpreter import TFLiteModel
from edge_ocr.paths import ROOT
from edge_ocr.tools.bench import sample_board
from tests.broker import free_port
from tests.system.test_http_limits import _get, _post

LINES = ROOT / "samples" / "lines"


Built = list[tuple[str, TFLiteModel]]


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Built:
    """Every TFLite model built while the test runs, with its file's stem (the real models, only
    noted), in a clean environment."""
    models: Built = []
    init = TFLiteModel.__init__

    def noting(self: TFLiteModel, path: str | Path, *args, **kwargs) -> None:
        init(self, path, *args, **kwargs)
        models.append((Path(path).stem, self))

    monkeypatch.setattr(TFLiteModel, "__init__", noting)
    for var in [v for v in os.environ if v.startswith("EDGE_OCR_")]:
        monkeypatch.delenv(var)
    return models


def _delegated(model: TFLiteModel) -> bool:
    """Whether the interpreter's execution plan hands ops to XNNPACK (a DELEGATE node)."""
    return any(op["op_name"] == "DELEGATE" for op in model._it._get_ops_details())


def _names(models: Built) -> list[str]:
    return sorted(name for name, _ in models)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("board") / "board.png"
    cv2.imwrite(str(path), sample_board((1280, 720)))
    return path


@pytest.mark.parametrize("how", ["flag", "environment", "configuration"])
def test_xnnpack_off_reaches_every_interpreter_of_recognize(built: Built, board: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Before: ``--no-xnnpack`` switched the recogniser only, ``EDGE_OCR_XNNPACK=0`` the detector only."""
    args = ["recognize", "--mode", "page", "--runtime", "litert", str(board)]
    if how == "flag":
        args.append("--no-xnnpack")
    elif how == "environment":
        monkeypatch.setenv("EDGE_OCR_XNNPACK", "0")
    else:
        (tmp_path / "c.toml").write_text("[recognizer]\nxnnpack = false\n")
        args += ["--config", str(tmp_path / "c.toml")]
    assert cli.main(args) == 0
    assert _names(built) == ["db_lite_int8", "ppocrv6_small_int8"]
    assert not any(_delegated(m) for _, m in built), "no interpreter hands work to XNNPACK"


def test_xnnpack_on_by_default_reaches_every_interpreter(built: Built, board: Path) -> None:
    """The other direction, so that the test above can see a delegate at all."""
    assert cli.main(["recognize", "--mode", "page", "--runtime", "litert", str(board)]) == 0
    assert _names(built) == ["db_lite_int8", "ppocrv6_small_int8"] and all(_delegated(m) for _, m in built)


def test_xnnpack_off_reaches_the_daemon_and_its_api(built: Built, board: Path, tmp_path: Path) -> None:
    env = {"EDGE_OCR_XNNPACK": "0", "EDGE_OCR_RECOGNIZER_RUNTIME": "litert", "EDGE_OCR_MQTT_ENABLED": "false",
           "EDGE_OCR_HTTP_ENABLED": "true", "EDGE_OCR_HTTP_PORT": str(free_port()),
           "EDGE_OCR_SERVICE_STATE_DIR": str(tmp_path / "state"), "EDGE_OCR_CAPTURE_SOURCE": str(tmp_path)}
    svc = Service(config_mod.load(None, environ=env))
    image = cv2.imread(str(board))
    assert [ln.text for ln in svc.reader.read(image).lines] == [ln.text for ln in svc.api.reader.read(image).lines]
    assert _names(built) == ["db_lite_int8", "db_lite_int8", "ppocrv6_small_int8", "ppocrv6_small_int8"]
    assert not any(_delegated(m) for _, m in built), "neither the loop's reader nor the API's uses XNNPACK"
    svc.delivery.stop(0)


def test_sighup_with_a_new_recogniser_reaches_the_api_and_health(tmp_path: Path) -> None:
    """The shipped PP-OCRv6 reads line_03 right and line_05 wrong, the first CRNN the other way
    round (labels.tsv). After a SIGHUP that configures the CRNN, the daemon's /api/ocr reads
    line_05 right and names the CRNN, and /health names it too (before: the old model kept on)."""
    labels = {row["file"]: row["text"] for row in read_labels(LINES)}
    port = free_port()
    config = tmp_path / "edge-ocr.toml"
    common = (f'[http]\nenabled = true\nport = {port}\n[mqtt]\nenabled = false\n[capture]\nsource = "{tmp_path}"\n'
              f'[service]\nstate_dir = "{tmp_path / "state"}"\n')
    config.write_text(common + '[recognizer]\nmodel = "models/ppocrv6_small_int8.tflite"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_OCR_")}
    proc = subprocess.Popen([sys.executable, "-m", "edge_ocr", "run", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def read(name: str) -> dict:
        status, doc, _ = _post(port, (LINES / name).read_bytes(), name, "/api/ocr?mode=line")
        assert status == 200
        return doc

    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the daemon serves within 60 s"
            try:
                assert _get(port, timeout=2)[1]["model"] == "ppocrv6_small_int8"
                break
            except OSError:
                time.sleep(0.2)
        before = {name: read(name) for name in ("line_03.png", "line_05.png")}
        assert {d["model"] for d in before.values()} == {"ppocrv6_small_int8"}
        assert before["line_03.png"]["text"] == labels["line_03.png"]
        assert before["line_05.png"]["text"] != labels["line_05.png"]
        config.write_text(common + '[recognizer]\nmodel = "models/crnn_zh_en_int8.tflite"\n')
        proc.send_signal(signal.SIGHUP)
        while _get(port)[1]["model"] != "crnn_zh_en_int8":
            assert time.monotonic() < deadline + 30, "/health names the new model within 30 s"
            time.sleep(0.2)
        after = read("line_05.png")
        assert after["model"] == "crnn_zh_en_int8" and after["text"] == labels["line_05.png"]
        assert _get(port)[1]["model"] == "crnn_zh_en_int8"
    finally:
        proc.terminate()
        proc.wait(30)
