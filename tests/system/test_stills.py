"""Stills end to end (issue 28, items 6 and 8), against a real mosquitto and a real socket: the
daemon's folder source reads every version of every photo exactly once however it is written
(slowly, replaced, rewritten, touched), and a blurred photo neither replaces the published page
nor comes out of the API looking confident."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path

import cv2
import jsonschema
from jsonschema import Draft202012Validator

from edge_ocr import config as config_mod
from edge_ocr.config import Config, HttpConfig
from edge_ocr.daemon.service import Service
from edge_ocr.http.api import OPENAPI, build_api
from edge_ocr.page.build import build_reader
from edge_ocr.page.diff import comparable
from edge_ocr.page.reader import BLURRED_CONFIDENCE
from edge_ocr.paths import ROOT
from tests.broker import Broker, Subscriber, free_port
from tests.render import BOARD_AFTER, BOARD_BEFORE, CLASS_NOTES, class_board, edited_board, motion_blur
from tests.system.test_api import _start, call
from tests.unit.test_capture import _slow_write

SCHEMAS = {name: Draft202012Validator(json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text()))
           for name in ("page", "health")}


def _jpeg(image) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def _daemon(broker: Broker, tmp_path: Path, folder: Path) -> tuple[Service, threading.Thread, Subscriber]:
    env = {"EDGE_OCR_MQTT_PORT": str(broker.port), "EDGE_OCR_MQTT_HOST": "127.0.0.1", "EDGE_OCR_DEVICE_ID": "test",
           "EDGE_OCR_SERVICE_STATE_DIR": str(tmp_path / "state"), "EDGE_OCR_CAPTURE_SOURCE": str(folder),
           "EDGE_OCR_CAPTURE_FPS": "20", "EDGE_OCR_CAPTURE_FOLDER_SETTLE_S": "0.2",
           "EDGE_OCR_CAPTURE_FOLDER_GIVE_UP_S": "2"}
    svc = Service(config_mod.load(None, environ=env))
    sub = Subscriber(broker.port, "edge-ocr/test/#")
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    return svc, t, sub


def _texts(page: dict) -> list[str]:
    return [comparable(ln["text"]) for ln in page["lines"]]


def test_every_version_of_a_folder_photo_is_read_exactly_once(broker: Broker, tmp_path: Path) -> None:
    """The camera's latest.jpg uploaded slowly (field case N16: pieces 0.3 s apart), replaced by
    cp + mv, deleted and written again, touched; beside it a photo that stays truncated. Five
    versions, five pages, each with its own text; the truncated file is reported once."""
    folder = tmp_path / "photos"
    folder.mkdir()
    svc, t, sub = _daemon(broker, tmp_path, folder)
    latest = folder / "latest.jpg"
    before, after = _jpeg(edited_board(BOARD_BEFORE)), _jpeg(edited_board(BOARD_AFTER))
    versions: list[list[str]] = []

    def published(n: int) -> None:
        assert sub.wait_for(lambda: len(sub.json("/page")) >= n, 60), f"page {n} not published"
        time.sleep(1.0)  # an unchanged file is not read again meanwhile

    _slow_write(before, latest, chunks=4, pause=0.3)
    versions.append(BOARD_BEFORE)
    published(1)
    (folder / "incoming.part").write_bytes(after)  # cp + mv
    (folder / "incoming.part").rename(latest)
    versions.append(BOARD_AFTER)
    published(2)
    latest.unlink()  # deleted and written again
    latest.write_bytes(before)
    versions.append(BOARD_BEFORE)
    published(3)
    stamp = latest.stat().st_mtime_ns + 1_000_000_000
    os.utime(latest, ns=(stamp, stamp))  # touched: the same photo again, read again
    versions.append(BOARD_BEFORE)
    published(4)
    (folder / "stalled.jpg").write_bytes(after[: len(after) // 2])  # an upload that stopped
    _slow_write(after, folder / "z-last.jpg", chunks=3, pause=0.4)
    versions.append(BOARD_AFTER)
    published(5)
    assert sub.wait_for(lambda: svc.health.counters["frame_errors"] == 1, 15), "the stalled upload is reported"
    time.sleep(1.0)
    svc.request_stop()
    t.join(30)
    sub.close()
    pages = sub.json("/page")
    assert [_texts(p) for p in pages] == [[comparable(x) for x in v] for v in versions]
    assert svc.health.counters["frames_recognised"] == len(versions) and svc.health.counters["frame_errors"] == 1
    assert not [e for p in pages for e in SCHEMAS["page"].iter_errors(p)]


def test_a_blurred_photo_does_not_replace_the_page(broker: Broker, tmp_path: Path) -> None:
    """A sharp board is published; the next photo, the same board smeared by a 9-px and then a
    15-px motion, publishes nothing: the page stays, the frames are counted, health says why;
    a sharp photo again is published and clears the fault."""
    folder = tmp_path / "photos"
    folder.mkdir()
    svc, t, sub = _daemon(broker, tmp_path, folder)
    board = class_board()
    cv2.imwrite(str(folder / "1.png"), board)
    assert sub.wait_for(lambda: len(sub.json("/page")) == 1, 60)
    for name, length in (("2.png", 9), ("3.png", 15)):
        cv2.imwrite(str(folder / name), motion_blur(board, length, 30))
    assert sub.wait_for(lambda: svc.health.counters["frames_blurred"] == 2, 60)
    assert sub.wait_for(lambda: any(h["faults"].get("blur") for h in sub.json("/health")), 10)
    cv2.imwrite(str(folder / "4.png"), board)  # sharp again
    assert sub.wait_for(lambda: len(sub.json("/page")) == 2, 60)
    assert sub.wait_for(lambda: "blur" not in sub.json("/health")[-1]["faults"], 10)
    svc.request_stop()
    t.join(30)
    sub.close()
    pages, health = sub.json("/page"), sub.json("/health")
    assert [_texts(p) for p in pages] == [[comparable(x) for x in CLASS_NOTES]] * 2
    assert all(not p["blurred"] and p["sharpness"] >= svc.cfg.vision.min_sharpness for p in pages)
    assert svc.health.counters["frames_recognised"] == 4 and svc.health.counters["frames_blurred"] == 2
    blurred = [h for h in health if h["faults"].get("blur")]
    assert blurred and "blurred" in blurred[0]["faults"]["blur"] and blurred[0]["state"] == "degraded"
    assert not [e for h in health for e in SCHEMAS["health"].iter_errors(h)]
    assert not [e for p in pages for e in SCHEMAS["page"].iter_errors(p)]


def _ocr(port: int, image) -> dict:
    body = json.dumps({"image_base64": base64.b64encode(cv2.imencode(".png", image)[1]).decode()})
    status, doc, _ = call(port, "POST", "/api/ocr", body.encode(), {"Content-Type": "application/json"})
    assert status == 200, doc
    spec = json.loads(OPENAPI.read_text())
    jsonschema.validate(doc, {"$ref": "#/components/schemas/OcrResult", "components": spec["components"]})
    return doc


def test_the_api_marks_a_blurred_upload_and_caps_its_confidence() -> None:
    port = free_port()
    stop = _start(build_api(HttpConfig(port=port), build_reader(Config())))
    try:
        sharp = _ocr(port, class_board())
        blurred = [_ocr(port, motion_blur(class_board(), length, 0)) for length in (9, 15)]
    finally:
        stop.set()
    assert not sharp["blurred"] and "warning" not in sharp and sharp["confidence"] > 0.9
    assert [comparable(ln["text"]) for ln in sharp["lines"]] == [comparable(x) for x in CLASS_NOTES]
    for doc in blurred:
        assert doc["blurred"] and doc["sharpness"] < sharp["sharpness"] and "blurred" in doc["warning"]
        assert doc["confidence"] <= BLURRED_CONFIDENCE
        assert all(ln["confidence"] <= BLURRED_CONFIDENCE for ln in doc["lines"])
