"""A real headless Chromium (Debian's package) driven over the DevTools protocol, for the tests of
the device's web page and the archive's."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.broker import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make test installs it)")


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
        """The expression's value; a promise is awaited, an exception raised as RuntimeError."""
        reply = self("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"].get("exception", {}).get("description")
            raise RuntimeError(f"{expression[:200]}: {details}")
        return reply["result"].get("value")

    def screenshot(self, path: Path) -> None:
        """The page as it shows now, as PNG."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self("Page.captureScreenshot", format="png")["data"]))

    def navigate(self, url: str, timeout_s: float = 20) -> None:
        self("Page.navigate", url=url)
        deadline = time.monotonic() + timeout_s
        while self.eval("document.readyState") != "complete" and time.monotonic() < deadline:
            time.sleep(0.1)

    def wait(self, expression: str, timeout_s: float = 20) -> object:
        """Evaluate until the value is truthy (or the time is up); the last value."""
        deadline = time.monotonic() + timeout_s
        value = self.eval(expression)
        while not value and time.monotonic() < deadline:
            time.sleep(0.1)
            value = self.eval(expression)
        return value


@contextmanager
def browser(profile: Path, size: str = "1280,900") -> Iterator[DevTools]:
    """Chromium headless with a fresh profile, its first tab ready to drive."""
    debug_port = free_port()
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-default-apps", "--disable-sync", "--no-first-run",
         "--disable-extensions", "--metrics-recording-only", f"--window-size={size}",
         f"--remote-debugging-port={debug_port}", f"--user-data-dir={profile}", "about:blank"],
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
        yield cdp
    finally:
        proc.terminate()
        proc.wait(10)
