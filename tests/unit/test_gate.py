"""The gate's board model on rendered 1080p board frames: writing is read once its cells are
still; a person moving or standing in front never enters the board that is read, and the lines
behind them keep their pixels."""

import cv2
import numpy as np

from edge_ocr.config import GateConfig
from edge_ocr.daemon.gate import Gate

PERSON_BGR = (60, 80, 120)


def _board(lines: int, seed: int = 0, skip: tuple[int, ...] = ()) -> np.ndarray:
    frame = np.full((1080, 1920, 3), 225, np.uint8)
    for i in range(lines):
        if i not in skip:
            cv2.putText(frame, f"line {i} F=ma 2024", (200, 200 + 110 * i), cv2.FONT_HERSHEY_SIMPLEX, 2.0,
                        (30, 30, 30), 4)
    noise = np.random.default_rng(seed).normal(0, 3, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def _line_box(i: int) -> list[list[float]]:
    return [[190, 150 + 110 * i], [900, 150 + 110 * i], [900, 215 + 110 * i], [190, 215 + 110 * i]]


def _with_person(frame: np.ndarray, x: int) -> np.ndarray:
    out = frame.copy()
    cv2.ellipse(out, (x, 600), (180, 420), 0, 0, 360, PERSON_BGR, -1)
    return out


def _person_pixels(image: np.ndarray) -> int:
    return int(np.all(np.abs(image.astype(int) - PERSON_BGR) < 12, axis=2).sum())


def _started(lines: int) -> Gate:
    gate = Gate(GateConfig())
    for k in range(3):
        if gate.check(_board(lines, seed=k)).recognise:
            gate.accept()
    return gate


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
    # New writing moves its cells for a frame, then is read once they have been still for
    # stable_frames frames: one new line is more than ``change`` of the board.
    reasons = [gate.check(_board(3, seed=20 + k)).reason for k in range(2)]
    d = gate.check(_board(3, seed=22))
    assert reasons == ["moving", "settling"] and d.reason == "changed" and d.recognise
    assert d.change > GateConfig().change and d.board is not None
    gate.accept()
    assert gate.check(_board(3, seed=23)).reason == "unchanged"


def test_a_person_moving_never_enters_the_board_and_writing_away_from_them_is_read() -> None:
    """A person walks to and fro on the right while a line is written on the left: the line is
    read within stable_frames + 1 frames of appearing, the person never reaches the board that is
    read, and their cells are occluded, not board."""
    gate = _started(2)
    read_at, occluded = None, []
    for k in range(12):
        x = 1300 + 120 * (k % 4)  # never still
        d = gate.check(_with_person(_board(3 if k >= 2 else 2, seed=40 + k), x))
        occluded.append(d.occluded)
        if d.recognise:
            assert _person_pixels(d.board) == 0, f"frame {k}: the person is in the board that is read"
            read_at = read_at if read_at is not None else k
            gate.accept()
    assert read_at is not None and read_at - 2 <= GateConfig().stable_frames + 1, read_at
    assert min(occluded) > 0.05
    assert gate.state(_line_box(2)) == "clean" and _person_pixels(gate.composite) == 0


def test_a_person_standing_still_occludes_and_lines_behind_keep_their_pixels() -> None:
    """A person stands still in front of line 1 for many frames (longer than absorb_frames):
    they stay foreground (dark and saturated, unlike the board), line 1 is occluded and the
    board that is read still shows it; once they leave, the cells are clean again."""
    gate = _started(3)
    before = gate.composite.copy()
    gate.force()
    for k in range(GateConfig().absorb_frames + 5):
        d = gate.check(_with_person(_board(3, seed=60 + k), 500))
        if d.recognise:
            gate.accept()
    assert d.board is not None or gate.composite is not None
    assert gate.state(_line_box(1)) == "occluded" and gate.state(_line_box(0)) == "occluded"
    assert _person_pixels(gate.composite) == 0
    ys, xs = slice(260, 330), slice(190, 900)
    assert np.abs(gate.composite[ys, xs].astype(int) - before[ys, xs]).mean() < 4, "line 1's pixels kept"
    for k in range(GateConfig().stable_frames + 2):
        gate.check(_board(3, seed=90 + k))
    assert gate.state(_line_box(1)) == "clean" and gate.status()["board"]["occluded"] == 0.0


def test_an_erased_line_shows_as_board_once_its_cells_are_clean() -> None:
    gate = _started(3)
    for k in range(GateConfig().stable_frames + 1):
        d = gate.check(_board(3, seed=70 + k, skip=(2,)))
    assert d.reason == "changed" and d.recognise
    ys, xs = slice(370, 440), slice(190, 900)
    dark = int((d.board[ys, xs].min(axis=2) < 100).sum())
    assert dark < 20, f"line 2 is wiped from the board that is read ({dark} dark pixels left)"


def test_a_line_next_to_a_cell_not_clean_yet_is_settling() -> None:
    """A stroke added just after line 2's end: while it moves, line 2 is occluded; one frame later
    it is still but not clean yet, so line 2 is settling; line 0, far away, is clean throughout."""
    gate = _started(3)
    frame = _board(3, seed=80)
    cv2.line(frame, (915, 400), (975, 380), (30, 30, 30), 4)
    gate.check(frame)
    assert gate.state(_line_box(2)) == "occluded" and gate.state(_line_box(0)) == "clean"
    gate.check(frame)
    assert gate.state(_line_box(2)) == "settling" and gate.state(_line_box(0)) == "clean"
    gate.check(frame)
    assert gate.state(_line_box(2)) == "clean"


def test_capture_now_forces_one_recognition() -> None:
    gate = _started(1)
    assert not gate.check(_board(1, seed=5)).recognise
    gate.force()
    assert gate.check(_board(1, seed=6)).reason == "forced"
    gate.accept()
    assert not gate.check(_board(1, seed=7)).recognise


def test_health_reports_occlusion_and_stale_cells() -> None:
    gate = _started(2)
    for k in range(4):
        gate.check(_with_person(_board(2, seed=100 + k), 500))
    board = gate.status()["board"]
    stale = np.array(board["stale_s"])
    assert board["occluded"] > 0.05 and stale.shape == (18, 32)
    assert stale[6, 8] > 0 and stale[0, 31] == 0.0  # behind the person, and a corner always clean
    names = [m[0] for m in gate.metrics()]
    assert names == ["board_occluded_ratio", "board_stale_max_seconds"]
