"""A teacher in front of the board (issue 18), on videos made at test time from a board photo at
the daemon's default 2 fps (frame numbers are video time): a person who never stops moving while
lines are written, and one who stands still in front of written lines and erases another. The
daemon runs as a process against a real mosquitto; what arrives on MQTT is judged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from jsonschema import Draft202012Validator

from edge_ocr.config import Config
from edge_ocr.imageio import read_image
from edge_ocr.labels import read_labels
from edge_ocr.page.build import build_reader
from edge_ocr.page.diff import box_iou
from edge_ocr.paths import ROOT
from edge_ocr.tools.bench import sample_board
from tests.broker import Broker, Subscriber
from tests.conftest import REAL_BOARD
from toolchain.scoring import page_cer
from toolchain.synth.board_video import FPS, LOOKS, moving_teacher, standing_teacher

LATENCY_S = 3.0
# Page CER against the labels of each board read as a still by the shipped defaults (2026-12-05):
# live, behind a moving person, the last page may read at most 0.02 worse.
STILL_CER = {"sample-board": 0.0, "real-board": 0.131}
PAGE_SCHEMA = Draft202012Validator(json.loads((ROOT / "schemas" / "page.schema.json").read_text()))


def _sample_board() -> tuple[np.ndarray, list[str]]:
    meta = json.loads((ROOT / "samples" / "board.json").read_text(encoding="utf-8"))
    return sample_board(tuple(meta["size"])), [ln["text"] for ln in meta["lines"]]


def _real_board() -> tuple[np.ndarray, list[str]]:
    photo = read_image(REAL_BOARD)
    s = 1280 / max(photo.shape[:2])
    label = next(r["text"] for r in read_labels(REAL_BOARD.parent.parent, "pages/wbpg_d07.jpg"))
    return cv2.resize(photo, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), label.split("\\n")


BOARDS = [pytest.param(_sample_board, id="sample-board"),
          pytest.param(_real_board, id="real-board", marks=pytest.mark.skipif(
              not REAL_BOARD.exists(), reason="the dev set's real board photo is not here"))]


@pytest.fixture(params=BOARDS)
def board(request: pytest.FixtureRequest) -> tuple[np.ndarray, list, list[str], list[str]]:
    """(photo, line regions, the lines read from the photo still, the labelled truth). The
    regions are the still's boxes, one per labelled line (checked): the lesson is built on them."""
    photo, truth = request.param()
    still = build_reader(Config()).read(photo)
    assert len(still.lines) == len(truth), [ln.text for ln in still.lines]
    return photo, [np.asarray(ln.box, np.float32) for ln in still.lines], [ln.text for ln in still.lines], truth


def _run(broker: Broker, tmp_path: Path, video: Path) -> tuple[list[dict], list[dict]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_OCR_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env.update({"EDGE_OCR_MQTT_PORT": str(broker.port), "EDGE_OCR_MQTT_HOST": "127.0.0.1",
                "EDGE_OCR_DEVICE_ID": "test", "EDGE_OCR_SERVICE_STATE_DIR": str(tmp_path / "state"),
                "EDGE_OCR_CAPTURE_SOURCE": str(video), "EDGE_OCR_CAPTURE_FPS": "50"})
    sub = Subscriber(broker.port, "#")
    proc = subprocess.run([sys.executable, "-m", "edge_ocr", "run"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sub.wait_for(lambda: b"offline" in sub.raw("test/status"))
    sub.close()
    pages, events = sub.json("test/page"), sub.json("test/events")
    assert all(not list(PAGE_SCHEMA.iter_errors(p)) for p in pages)
    return pages, events


def _first_page_with(pages: list[dict], region: np.ndarray) -> int | None:
    for page in pages:
        if any(box_iou(region.tolist(), ln["box"]) > 0.3 for ln in page["lines"]):
            return page["frame"]["seq"]
    return None


@pytest.mark.parametrize("look", list(LOOKS))
def test_a_teacher_who_never_stops_moving(broker: Broker, tmp_path: Path, board, look: str,
                                          request: pytest.FixtureRequest) -> None:
    """Every line is published within 3 s of video time after it is written and uncovered, once
    (one ``added``, nothing removed), and the last page reads like the photo read still; in
    dark, light grey or white clothes, with a shadow, or with the exposure changing."""
    photo, regions, still, truth = board
    lesson = moving_teacher(photo, regions, tmp_path / "lesson.avi", look=LOOKS[look])
    pages, events = _run(broker, tmp_path, tmp_path / "lesson.avi")
    late = []
    for i, region in enumerate(lesson.regions):
        published = _first_page_with(pages, region)
        if published is None or (published - lesson.uncovered[i]) / FPS > LATENCY_S:
            late.append((still[i], lesson.uncovered[i], published))
    assert not late, f"(line, uncovered at frame, published at frame): {late}"
    assert [e["event"] for e in events] == ["added"] * len(truth), [(e["event"], e["text"]) for e in events]
    final = [ln["text"] for ln in pages[-1]["lines"]]
    bound = STILL_CER["real-board" if "real-board" in request.node.name else "sample-board"] + 0.02
    assert page_cer(truth, final) <= bound, (final, still)


@pytest.mark.parametrize("look", list(LOOKS))
def test_a_teacher_standing_in_front_while_erasing_another_line(broker: Broker, tmp_path: Path, board,
                                                                 look: str, request: pytest.FixtureRequest) -> None:
    """The lines behind a person standing still stay on the page marked ``occluded`` (no
    ``removed``), nothing of the person becomes text, and the line erased meanwhile gives
    exactly one ``removed``; whatever the clothes, shadow or exposure (``LOOKS``)."""
    if look == "light-grey" and "real-board" in request.node.name:
        # Known fault, left for the gate's next step: clothes of the board's own grey in front of a
        # line on the real photo look like blank board, so the hidden line reads as erased
        # (3 `removed` instead of 1). Nothing in one frame tells them apart; the person's outline
        # over time would.
        request.applymarker(pytest.mark.xfail(strict=True, reason="clothes the board's own grey hide a line"))
    photo, regions, _, _ = board
    centres = [float(r[:, 0].mean()) for r in regions]
    stand_x = float(np.median(centres))
    tops = [float(r[:, 1].min()) for r in regions]
    erase = int(np.argmin(tops))  # the top line: above the person's head
    lesson = standing_teacher(photo, regions, tmp_path / "lesson.avi", stand_x=stand_x, erase=erase, look=LOOKS[look])
    pages, events = _run(broker, tmp_path, tmp_path / "lesson.avi")
    removed = [e for e in events if e["event"] == "removed"]
    assert len(removed) == 1 and box_iou(removed[0]["box"], lesson.regions[erase].tolist()) > 0.3, \
        [(e["event"], e["text"]) for e in events]
    assert removed[0]["frame"]["seq"] - lesson.cleared_at <= LATENCY_S * FPS, (removed[0]["frame"], lesson.cleared_at)
    foreign = [ln["text"] for p in pages for ln in p["lines"]
               if not any(box_iou(r.tolist(), ln["box"]) > 0.1 for r in lesson.regions)]
    assert foreign == [], "text read from the person"
    if removed[0]["frame"]["seq"] <= lesson.last_seen:  # published while the person was in view
        assert any(ln["occluded"] for p in pages for ln in p["lines"]), "lines behind the person are marked"
    assert [e["event"] for e in events if e["event"] != "removed"] == ["added"] * len(regions)
    assert len(pages[-1]["lines"]) == len(regions) - 1 and not any(ln["occluded"] for ln in pages[-1]["lines"])
