"""The API under slow clients, a flood of connections and of uploads, and on an open address: a real
``edge-ocr serve`` (or ``edge-ocr run``) process over loopback sockets (field case N04; issue 28,
faults 3 and 10)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import cv2
import pytest

from edge_ocr.labels import read_labels
from edge_ocr.page.diff import comparable
from edge_ocr.paths import ROOT
from edge_ocr.tools.bench import sample_board
from tests.broker import free_port
from tests.system.test_api import multipart

LINES = ROOT / "samples" / "lines"
BOARD = json.loads((ROOT / "samples" / "board.json").read_text(encoding="utf-8"))
BOARD_TEXT = [comparable(ln["text"]) for ln in BOARD["lines"]]
SLOW_HEAD = (b"POST /api/ocr HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
             b"Content-Length: 1000000\r\n\r\n--b\r\n")  # announces 1 MB, then sends a byte at a time


def _env(**http: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_OCR_")}
    env.update({f"EDGE_OCR_HTTP_{k.upper()}": v for k, v in http.items()})
    return env


def _get(port: int, path: str = "/health", host: str = "127.0.0.1", timeout: float = 5.0,
         headers: dict | None = None) -> tuple[int, dict, float]:
    """(status, JSON body, seconds) of one GET on a fresh connection."""
    t0 = time.monotonic()
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, json.loads(r.read()), time.monotonic() - t0
    finally:
        c.close()


def _post(port: int, data: bytes, name: str, path: str = "/api/ocr") -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of one upload on a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        c.request("POST", path, *multipart(data, name))
        r = c.getresponse()
        return r.status, json.loads(r.read()), dict(r.getheaders())
    finally:
        c.close()


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None, port: int | None = None,
            probe: str = "127.0.0.1") -> Iterator[int]:
    """``edge-ocr serve`` (or the command ``args``) on ``port`` (a free one), once /health answers
    on ``probe``."""
    port = port or free_port()
    cmd = list(args) or ["serve", "--port", str(port)]
    proc = subprocess.Popen([sys.executable, "-m", "edge_ocr", *cmd], cwd=ROOT, env=env or _env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the server exited: {proc.stdout.read()}"
            assert time.monotonic() < deadline, "the server did not answer /health within 60 s"
            try:
                _get(port, host=probe, timeout=2, headers={"Authorization": "Bearer t0ken"})
                break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _still_open(s: socket.socket) -> bool:
    """Nothing received and not closed by the server: the connection is still being read."""
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _reply(s: socket.socket, seconds: float) -> bytes:
    s.settimeout(seconds)
    data = b""
    try:
        while chunk := s.recv(4096):
            data += chunk
    except OSError:
        pass
    return data


def test_health_answers_while_200_clients_trickle_uploads() -> None:
    """200 connections announce a 1 MB upload and send a byte a second (N04: 110 of them used to
    leave /health and every upload unanswered): /health answers in < 1 s every time, a real upload
    is read right, the trickles stay open until their deadline and then get 408."""
    row = read_labels(LINES)[0]
    image = (LINES / row["file"]).read_bytes()
    with serving(env=_env(request_timeout_s="8")) as port:
        slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
        opened = time.monotonic()
        for s in slow:
            s.sendall(SLOW_HEAD)
            s.setblocking(False)  # a peek must not wait (with a timeout, Python polls before it reads)
        times = []
        for _ in range(5):
            for s in slow:
                s.send(b"x")
            status, doc, seconds = _get(port)
            assert status == 200 and doc["status"] == "ok"
            times.append(seconds)
            time.sleep(0.5)
        status, doc, _ = _post(port, image, row["file"], "/api/ocr?mode=line")
        assert status == 200 and doc["text"] == row["text"]
        assert time.monotonic() - opened < 7 and all(_still_open(s) for s in slow), \
            "the 200 slow connections were all open while /health and the upload were answered"
        print(f"/health with 200 trickling connections: max {max(times) * 1000:.0f} ms")
        assert max(times) < 1.0
        deadline = opened + 20
        while time.monotonic() < deadline and any(_still_open(s) for s in slow):
            for s in slow:
                with suppress(OSError):
                    s.send(b"x")
            time.sleep(1)
        replies = [_reply(s, 2) for s in slow]
        assert all(r.startswith(b"HTTP/1.1 408 ") for r in replies), "each trickle is answered 408 and closed"
        assert time.monotonic() - opened >= 8, "not before its deadline (8 s + 1 s per 1000 bytes)"
        for s in slow:
            s.close()
        status, text, _ = _get_text(port, "/metrics")
        assert "edge_ocr_http_requests_timed_out_total 200" in text


def _get_text(port: int, path: str) -> tuple[int, str, float]:
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.read().decode(), time.monotonic() - t0


def test_connections_past_the_limit_are_refused_at_once() -> None:
    """Past http.max_connections a client gets 503 with Retry-After at once (waitress alone stops
    accepting and leaves it hanging); once connections close, /health answers again."""
    with serving(env=_env(max_connections="20")) as port:
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
        time.sleep(0.5)
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        t0 = time.monotonic()
        reply = _reply(extra, 3)
        assert time.monotonic() - t0 < 1.0 and reply.startswith(b"HTTP/1.1 503 ")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert b"Retry-After: 5" in head and "http.max_connections" in json.loads(body)["error"]
        for s in idle[:5]:
            s.close()
        time.sleep(1.5)
        assert _get(port)[0] == 200
        for s in idle[5:]:
            s.close()


def test_health_answers_while_12_mp_uploads_are_read() -> None:
    """16 concurrent 12 MP board photos (5 s of /health delay before): /health answers in < 1 s
    throughout; uploads beyond 2 workers + 4 waiting get 503 with Retry-After, never a hang; every
    upload read is read right (the board's five lines, spaces aside)."""
    _ok, jpeg = cv2.imencode(".jpg", sample_board((4000, 3000)), [cv2.IMWRITE_JPEG_QUALITY, 90])
    data = jpeg.tobytes()
    with serving(env=_env(threads="2", upload_queue="4")) as port:
        replies: list[tuple[int, dict, dict]] = []
        times: list[float] = []
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(_post, port, data, "board.jpg") for _ in range(16)]
            time.sleep(0.3)
            while not all(f.done() for f in futures):
                times.append(_get(port)[2])
                time.sleep(0.2)
            replies = [f.result() for f in futures]
    read = [doc for status, doc, _ in replies if status == 200]
    refused = [(doc, headers) for status, doc, headers in replies if status == 503]
    print(f"16 uploads of 12 MP: {len(read)} read, {len(refused)} refused; /health max "
          f"{max(times) * 1000:.0f} ms over {len(times)} probes")
    assert len(read) + len(refused) == 16 and len(read) >= 6 and refused
    assert all([comparable(ln["text"]) for ln in doc["lines"]] == BOARD_TEXT for doc in read)
    assert all(h.get("Retry-After") == "5" and "busy" in doc["error"] for doc, h in refused)
    assert len(times) >= 5 and max(times) < 1.0


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "no-such-host.invalid"])
def test_serve_refuses_an_open_address_without_a_token(host: str) -> None:
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "edge_ocr", "serve", "--host", host, "--port", str(port)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "http.token" in done.stderr and "allow_open" in done.stderr and "--allow-open" in done.stderr


def test_serve_refuses_an_open_address_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "edge-ocr.toml"
    config.write_text('[http]\nhost = "0.0.0.0"\n')
    done = subprocess.run([sys.executable, "-m", "edge_ocr", "serve", "--config", str(config)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "http.host: '0.0.0.0' is not a loopback address" in done.stderr


def test_daemon_refuses_an_open_address_without_a_token(tmp_path: Path) -> None:
    env = _env(enabled="true", host="::", port=str(free_port()))
    env.update({"EDGE_OCR_MQTT_ENABLED": "false", "EDGE_OCR_SERVICE_STATE_DIR": str(tmp_path / "state"),
                "EDGE_OCR_CAPTURE_SOURCE": str(tmp_path)})
    done = subprocess.run([sys.executable, "-m", "edge_ocr", "run"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "http.token" in done.stderr and "allow_open" in done.stderr


def test_open_address_with_a_token_or_said_open_and_loopback_forms_serve(tmp_path: Path) -> None:
    """Allowed: a token, the explicit opt-in (``--allow-open``; ``[http] allow_open`` in the daemon),
    and every loopback form without a token (IPv6 ::1, another 127/8 address, localhost)."""
    port = free_port()
    with serving("serve", "--host", "0.0.0.0", "--port", str(port), "--token", "t0ken", port=port):
        assert _get(port)[0] == 401
        assert _get(port, headers={"Authorization": "Bearer t0ken"})[0] == 200
    port = free_port()
    with serving("serve", "--host", "0.0.0.0", "--port", str(port), "--allow-open", port=port):
        assert _get(port)[0] == 200
    for host, probe in (("::1", "::1"), ("127.0.0.2", "127.0.0.2"), ("localhost", "127.0.0.1")):
        port = free_port()
        with serving("serve", "--host", host, "--port", str(port), port=port, probe=probe):
            assert _get(port, host=probe)[0] == 200
    config = tmp_path / "edge-ocr.toml"
    port = free_port()
    config.write_text(f'[http]\nenabled = true\nhost = "0.0.0.0"\nport = {port}\nallow_open = true\n'
                      f'[mqtt]\nenabled = false\n[capture]\nsource = "{tmp_path}"\n'
                      f'[service]\nstate_dir = "{tmp_path / "state"}"\n')
    with serving("run", "--config", str(config), port=port):
        assert _get(port)[0] == 200
