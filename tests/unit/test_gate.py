"""The gate on rendered board frames: still and changed → recognise; moving or unchanged → skip."""

import cv2
import numpy as np

from edge_ocr.config import GateConfig
from edge_ocr.daemon.gate import Gate


def _board(lines: int, seed: int = 0) -> np.ndarray:
    frame = np.full((1080, 1920, 3), 225, np.uint8)
    for i in range(lines):
        cv2.putText(frame, f"line {i} F=ma 2024", (200, 200 + 110 * i), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (30, 30, 30), 4)
    noise = np.random.default_rng(seed).normal(0, 3, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def _with_person(frame: np.ndarray, x: int) -> np.ndarray:
    out = frame.copy()
    cv2.ellipse(out, (x, 600), (180, 420), 0, 0, 360, (60, 80, 120), -1)
    return out


def test_recognises_once_stable_then_only_on_change() -> None:
    gate = Gate(GateConfig())
    reasons = []
    for k in range(3):
        d = gate.check(_board(2, seed=k))
        reasons.append(d.reason)
        if d.recognise:
            gate.accept()
    assert reasons == ["moving", "settling", "first"]
    for k in range(3):
        d = gate.check(_board(2, seed=10 + k))
        assert not d.recognise and d.reason == "unchanged", "sensor noise is not new writing"
    d = gate.check(_board(3, seed=20))  # one new line is too small to count as motion
    assert d.reason == "changed" and d.recognise and d.change > GateConfig().change
    gate.accept()
    assert gate.check(_board(3, seed=21)).reason == "unchanged"


def test_a_person_in_front_of_the_board_blocks_recognition() -> None:
    gate = Gate(GateConfig())
    for k in range(3):
        if gate.check(_board(2, seed=k)).recognise:
            gate.accept()
    decisions = [gate.check(_with_person(_board(3, seed=30 + x), 300 + 150 * x)) for x in range(5)]
    assert all(d.reason == "moving" and not d.recognise for d in decisions)


def test_capture_now_forces_one_recognition() -> None:
    gate = Gate(GateConfig())
    for k in range(3):
        if gate.check(_board(1, seed=k)).recognise:
            gate.accept()
    assert not gate.check(_board(1, seed=5)).recognise
    gate.force()
    assert gate.check(_board(1, seed=6)).reason == "forced"
    gate.accept()
    assert not gate.check(_board(1, seed=7)).recognise
