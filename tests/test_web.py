"""The web page in a real headless Chromium (Debian's package), driven over the DevTools
protocol: load the page, put a sample image into the file input, wait for the recognised
text to appear. The screenshot is kept in test-artifacts/web-upload.png."""

from __future__ import annotations

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

from edge_ocr.api import build_api
from edge_ocr.config import HttpConfig
from edge_ocr.recognizer import Recognizer

from .broker import free_port
from .conftest import MODEL

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
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


def test_upload_in_a_headless_browser_shows_the_text(tmp_path: Path, samples) -> None:
    api = build_api(HttpConfig(port=free_port()), Recognizer(MODEL))
    stop = threading.Event()
    threading.Thread(target=api.serve, args=(stop,), daemon=True).start()
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
        path, _ = samples[0]
        expected = api.reader.recognizer.recognize([cv2.imread(str(path))])[0].text
        node = cdp("DOM.querySelector", nodeId=cdp("DOM.getDocument")["root"]["nodeId"], selector="#file")["nodeId"]
        cdp("DOM.setFileInputFiles", nodeId=node, files=[str(path)])
        shown, deadline = "", time.monotonic() + 20
        while expected not in shown and time.monotonic() < deadline:
            time.sleep(0.2)
            shown = cdp.eval("document.getElementById('lines').innerText") or ""
        status = cdp.eval("document.getElementById('status').innerText")
        ARTIFACTS.mkdir(exist_ok=True)
        import base64

        shot = cdp("Page.captureScreenshot", format="png")["data"]
        (ARTIFACTS / "web-upload.png").write_bytes(base64.b64decode(shot))
        assert expected and expected in shown, (shown, status)
        assert "line mode" in status and cdp.eval("document.getElementById('canvas').width") > 0
        assert cdp.eval("document.getElementById('health').innerText").startswith("ok")
    finally:
        browser.terminate()
        browser.wait(10)
        stop.set()
