"""The web page in a real headless Chromium (Debian's package), driven over the DevTools
protocol, served by a running daemon: load the page, put a sample image into the file input,
wait for the recognised text to appear, then for the live board. Screenshots are kept in
test-artifacts/web-upload.png and web-live.png."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2

from edge_ocr import config as config_mod
from edge_ocr.daemon.service import Service
from edge_ocr.paths import ROOT
from edge_ocr.tools.bench import sample_board
from tests.broker import free_port
from tests.chromium import browser, needs_chromium

ARTIFACTS = ROOT / "test-artifacts"
pytestmark = needs_chromium


def test_upload_and_live_view_in_a_headless_browser(tmp_path: Path, samples) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):  # the daemon's camera: two frames of the finished sample board
        cv2.imwrite(str(frames / f"{i}.png"), sample_board((1280, 720)))
    env = {"EDGE_OCR_MQTT_ENABLED": "false", "EDGE_OCR_SERVICE_STATE_DIR": str(tmp_path / "state"),
           "EDGE_OCR_CAPTURE_SOURCE": str(frames), "EDGE_OCR_GATE_STABLE_FRAMES": "1",
           "EDGE_OCR_HTTP_ENABLED": "true", "EDGE_OCR_HTTP_PORT": str(free_port())}
    svc = Service(config_mod.load(None, environ=env))
    api = svc.api
    daemon = threading.Thread(target=svc.run, daemon=True)
    daemon.start()
    try:
        with browser(tmp_path / "profile") as cdp:
            cdp.navigate(f"http://127.0.0.1:{api.cfg.port}/")
            path, expected = samples[0]  # its label, rendered truth: "10/3/2012"
            node = cdp("DOM.querySelector", nodeId=cdp("DOM.getDocument")["root"]["nodeId"], selector="#file")["nodeId"]
            cdp("DOM.setFileInputFiles", nodeId=node, files=[str(path)])
            shown, deadline = "", time.monotonic() + 20
            while expected not in shown and time.monotonic() < deadline:
                time.sleep(0.2)
                shown = cdp.eval("document.getElementById('lines').innerText") or ""
            status = cdp.eval("document.getElementById('status').innerText")
            cdp.screenshot(ARTIFACTS / "web-upload.png")
            assert expected and expected in shown, (shown, status)
            assert "line mode" in status and cdp.eval("document.getElementById('canvas').width") > 0
            assert cdp.eval("document.getElementById('health').innerText").startswith("ok")
            texts = "Array.from(document.querySelectorAll('#livelines li')).map(li => li.firstChild.textContent)"
            live, deadline = [], time.monotonic() + 20
            while len(live) < 5 and time.monotonic() < deadline:
                time.sleep(0.2)
                live = cdp.eval(texts) or []
            assert live == [ln["text"] for ln in svc.delivery.latest.doc["lines"]] and len(live) == 5, live
            assert cdp.eval("document.getElementById('live').naturalWidth") > 400, "the rectified frame is shown"
            cdp.screenshot(ARTIFACTS / "web-live.png")
    finally:
        svc.request_stop()
        daemon.join(30)
