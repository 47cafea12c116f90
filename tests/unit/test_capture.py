"""Capture backends with stand-ins only for hardware: video files written by cv2.VideoWriter,
an image folder, and a fake picamera2 module in sys.modules."""

import sys
import threading
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_ocr.config import CaptureConfig
from edge_ocr.daemon.capture import (
    Capture,
    CaptureError,
    FolderCamera,
    FrameError,
    OpenCVCamera,
    Picamera2Camera,
    make_camera,
)


def _video(path: Path, frames: int = 6, size=(320, 240)) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i in range(frames):
        img = np.full((size[1], size[0], 3), 40 * i % 255, np.uint8)
        cv2.putText(img, str(i), (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        w.write(img)
    w.release()
    return path


def _collect(capture: Capture, n: int, timeout: float = 10.0) -> list:
    out, deadline = [], time.monotonic() + timeout
    for frame in capture.frames():
        out.append(frame)
        if len(out) >= n or time.monotonic() > deadline:
            capture.stop.set()
    return out


def test_video_file_gives_numbered_frames_then_ends(tmp_path: Path) -> None:
    cam = make_camera(CaptureConfig(source=str(_video(tmp_path / "v.avi"))))
    assert isinstance(cam, OpenCVCamera) and cam.is_file
    frames = list(Capture(cam, fps=1000, retry_max_s=0.1, stop=threading.Event()).frames())
    assert [f.seq for f in frames] == [1, 2, 3, 4, 5, 6]
    assert frames[0].image.shape == (240, 320, 3) and frames[-1].ts >= frames[0].ts


def test_folder_picks_up_new_files_in_name_order_and_reports_bad_ones(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cam = FolderCamera(str(folder), settle_s=0.0)
    cam.open()
    assert cam.read() is None and cam.stills
    cv2.imwrite(str(folder / "b.png"), np.full((50, 60, 3), 200, np.uint8))
    cv2.imwrite(str(folder / "a.png"), np.full((40, 60, 3), 100, np.uint8))
    (folder / "c.jpg").write_bytes(b"\xff\xd8\xff truncated")
    (folder / "d.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    (folder / "notes.txt").write_text("not a picture, not reported")
    first, second = cam.read(), cam.read()
    assert first.shape[0] == 40 and second.shape[0] == 50
    with pytest.raises(FrameError, match=r"c\.jpg: not a decodable JPEG image"):
        cam.read()
    with pytest.raises(FrameError, match=r"d\.heic: HEIC/HEIF images are not supported"):
        cam.read()
    assert cam.read() is None


def test_a_bad_still_is_reported_and_the_next_one_still_comes(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "1.png"), np.full((40, 60, 3), 100, np.uint8))
    (tmp_path / "2.gif").write_bytes(b"GIF89a\x10\x00\x10\x00 broken")
    cv2.imwrite(str(tmp_path / "3.png"), np.full((50, 60, 3), 200, np.uint8))
    bad: list[str] = []
    capture = Capture(FolderCamera(str(tmp_path), settle_s=0.0), fps=1000, retry_max_s=0.1,
                      stop=threading.Event(), on_bad_frame=bad.append)
    frames = _collect(capture, 2)
    assert [f.image.shape[0] for f in frames] == [40, 50] and all(f.still for f in frames)
    assert len(bad) == 1 and "2.gif" in bad[0] and "GIF" in bad[0]


class _FakePicamera2:
    """Stands in for picamera2.Picamera2 (no camera hardware here)."""

    unplugged = False

    def __init__(self) -> None:
        self.config = None

    @staticmethod
    def global_camera_info() -> list:
        return [{"Model": "imx708"}]

    def create_still_configuration(self, main: dict) -> dict:
        return {"main": main}

    def configure(self, config: dict) -> None:
        self.config = config

    def start(self) -> None:
        if _FakePicamera2.unplugged:
            raise RuntimeError("Camera __init__ sequence did not complete")

    def capture_array(self, name: str) -> np.ndarray:
        if _FakePicamera2.unplugged:
            raise RuntimeError("Device or resource busy")
        w, h = self.config["main"]["size"]
        return np.full((h, w, 4), 128, np.uint8)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = _FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    _FakePicamera2.unplugged = False
    return _FakePicamera2


def test_picamera2_backend_and_auto_choice(fake_picamera2) -> None:
    cam = make_camera(CaptureConfig(source="auto", width=640, height=480))
    assert isinstance(cam, Picamera2Camera)
    frames = _collect(Capture(cam, fps=1000, retry_max_s=0.1, stop=threading.Event()), 3)
    assert [f.seq for f in frames] == [1, 2, 3] and frames[0].image.shape == (480, 640, 3)


def test_missing_picamera2_is_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    assert not Picamera2Camera.available()
    with pytest.raises(CaptureError, match="apt install python3-picamera2"):
        Picamera2Camera(640, 480).open()


def test_camera_unplugged_and_back_is_reported_and_resumes(fake_picamera2) -> None:
    faults, recoveries = [], []
    stop = threading.Event()
    cap = Capture(Picamera2Camera(320, 240), fps=50, retry_max_s=0.5, stop=stop,
                  on_fault=faults.append, on_recover=lambda: recoveries.append(time.monotonic()))
    seen: list[float] = []

    def consume() -> None:
        for _ in cap.frames():
            seen.append(time.monotonic())

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.3)
    fake_picamera2.unplugged = True
    time.sleep(1.0)
    frames_while_gone = len(seen)
    time.sleep(0.5)
    assert len(seen) == frames_while_gone and len(faults) == 1 and "busy" in faults[0]
    fake_picamera2.unplugged = False
    back = time.monotonic()
    time.sleep(1.5)
    stop.set()
    t.join(5)
    assert recoveries and recoveries[0] - back < 1.0, "resumed within the backoff cap"
    assert len(seen) > frames_while_gone


def test_video_file_removed_and_restored(tmp_path: Path) -> None:
    path = _video(tmp_path / "cam.avi", frames=3)
    data = path.read_bytes()
    faults, recoveries = [], []
    stop = threading.Event()
    cap = Capture(OpenCVCamera(str(path), 320, 240, 1.0, loop=True), fps=100, retry_max_s=0.5, stop=stop,
                  on_fault=faults.append, on_recover=lambda: recoveries.append(time.monotonic()))
    t = threading.Thread(target=lambda: [None for _ in cap.frames()])
    t.start()
    time.sleep(0.3)
    path.unlink()
    time.sleep(1.0)
    assert faults and "no such video file" in faults[0]
    path.write_bytes(data)
    back = time.monotonic()
    deadline = back + 5
    while not recoveries and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join(5)
    assert recoveries and recoveries[0] - back < 5.0
