"""The web page in a real headless Chromium (Debian's package), driven over the DevTools
protocol, served by a running daemon: load the page, put a sample image into the file input,
wait for the recognised text to appear, then for the live board. Screenshots are kept in
test-artifacts/web-upload.png and web-live.png."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import pytest

from edge_ocr import config as config_mod
from edge_ocr.daemon.service import Service
from edge_ocr.paths import ROOT
from edge_ocr.tools.bench import sample_board
from tests.broker import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make test installs it)")


class DevTools:
    def __init__(self, ws_url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.ids = itertools.count(1)

    def __call__(self, method: str, **params: object) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def eval(self, expression: str) -> object:
        return self("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


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
    debug_port = free_port()
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-default-apps", "--disable-sync", "--no-first-run",
         "--disable-extensions", "--metrics-recording-only", "--window-size=1280,900",
         f"--remote-debugging-port={debug_port}", f"--user-data-dir={tmp_path / 'profile'}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        targets, deadline = None, time.monotonic() + 30
        while targets is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/list", timeout=2) as r:
                    targets = [t for t in json.load(r) if t["type"] == "page"]
            except OSError:
                time.sleep(0.2)
        assert targets, "chromium did not open its DevTools port"
        cdp = DevTools(targets[0]["webSocketDebuggerUrl"])
        cdp("Page.enable")
        cdp("Page.navigate", url=f"http://127.0.0.1:{api.cfg.port}/")
        deadline = time.monotonic() + 20
        while cdp.eval("document.readyState") != "complete" and time.monotonic() < deadline:
            time.sleep(0.1)
        path, expected = samples[0]  # its label, rendered truth: "10/3/2012"
        node = cdp("DOM.querySelector", nodeId=cdp("DOM.getDocument")["root"]["nodeId"], selector="#file")["nodeId"]
        cdp("DOM.setFileInputFiles", nodeId=node, files=[str(path)])
        shown, deadline = "", time.monotonic() + 20
        while expected not in shown and time.monotonic() < deadline:
            time.sleep(0.2)
            shown = cdp.eval("document.getElementById('lines').innerText") or ""
        status = cdp.eval("document.getElementById('status').innerText")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = cdp("Page.captureScreenshot", format="png")["data"]
        (ARTIFACTS / "web-upload.png").write_bytes(base64.b64decode(shot))
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
        (ARTIFACTS / "web-live.png").write_bytes(base64.b64decode(cdp("Page.captureScreenshot", format="png")["data"]))
    finally:
        browser.terminate()
        browser.wait(10)
        svc.request_stop()
        daemon.join(30)
