"""Capture backends with stand-ins only for hardware: video files written by cv2.VideoWriter,
an image folder, and a fake picamera2 module in sys.modules."""

import itertools
import os
import sys
import threading
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_ocr.config import CaptureConfig, ConfigError
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
    cam = FolderCamera(str(folder), settle_s=0.0, give_up_s=0.3)
    cam.open()
    assert cam.read() is None and cam.stills
    cv2.imwrite(str(folder / "b.png"), np.full((50, 60, 3), 200, np.uint8))
    cv2.imwrite(str(folder / "a.png"), np.full((40, 60, 3), 100, np.uint8))
    (folder / "c.jpg").write_bytes(b"\xff\xd8\xff truncated")
    (folder / "d.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    (folder / "notes.txt").write_text("not a picture, not reported")
    first, second = cam.read(), cam.read()
    assert first.shape[0] == 40 and second.shape[0] == 50
    assert cam.read() is None, "a JPEG without its end may still be being written: it holds the names after it"
    time.sleep(0.35)
    with pytest.raises(FrameError, match=r"c\.jpg: not a decodable JPEG image.*without its end"):
        cam.read()
    with pytest.raises(FrameError, match=r"d\.heic: HEIC/HEIF images are not supported"):
        cam.read()
    assert cam.read() is None


def test_a_bad_still_is_reported_and_the_next_one_still_comes(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "1.png"), np.full((40, 60, 3), 100, np.uint8))
    (tmp_path / "2.gif").write_bytes(b"GIF89a\x10\x00\x10\x00 broken")
    cv2.imwrite(str(tmp_path / "3.png"), np.full((50, 60, 3), 200, np.uint8))
    bad: list[str] = []
    capture = Capture(FolderCamera(str(tmp_path), settle_s=0.0, give_up_s=0.3), fps=1000, retry_max_s=0.1,
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


# -- the folder source against slow writers and replaced files (issue 28, field case N16) ------

def _photo(seed: int, ext: str = ".jpg") -> bytes:
    """A photo-like picture (noise under text, so JPEG sizes differ per seed) encoded as ``ext``."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (7, 7), 0)
    cv2.putText(img, f"photo {seed}", (20, 130), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
    return cv2.imencode(ext, img)[1].tobytes()


def _decoded(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _slow_write(data: bytes, dst: Path, chunks: int = 4, pause: float = 0.3, first: float = 0.0) -> None:
    """What field case N16's writer does (an FTP upload, a Samba copy over Wi-Fi): the file is
    created at once and grows in pieces, ``pause`` seconds apart; ``first`` > 0: that share at
    once, a stall of ``pause``, then the rest."""
    if first > 0:
        cuts = [0, int(len(data) * first), len(data)]
    else:
        step = -(-len(data) // chunks)
        cuts = [*range(0, len(data), step), len(data)]
    with dst.open("wb") as f:
        for a, b in itertools.pairwise(cuts):
            f.write(data[a:b])
            f.flush()
            os.fsync(f.fileno())
            if b < len(data):
                time.sleep(pause)


class _Watcher:
    """A Capture over a FolderCamera running in a thread: every frame and every report kept."""

    def __init__(self, folder: Path, settle_s: float = 0.2, give_up_s: float = 1.5) -> None:
        self.frames: list = []
        self.bad: list[str] = []
        self.stop = threading.Event()
        cam = FolderCamera(str(folder), settle_s=settle_s, give_up_s=give_up_s)
        self.capture = Capture(cam, fps=20, retry_max_s=0.1, stop=self.stop, on_bad_frame=self.bad.append)
        self.thread = threading.Thread(target=lambda: self.frames.extend(self.capture.frames()))
        self.thread.start()

    def wait(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.frames) < n and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.mark.parametrize(("ext", "chunks", "pause", "first"), [
    (".jpg", 4, 0.3, 0.0),  # N16's default pieces, 0.3 s apart: the old source rejected it at once
    (".jpg", 2, 1.0, 0.5),  # half at once, a 1 s stall (longer than the settle time), the rest
    (".png", 6, 0.3, 0.0),
    (".tif", 3, 0.6, 0.0),  # no end mark: settled, then retried with backoff while it does not decode
])
def test_a_photo_written_slowly_is_read_once_when_complete(tmp_path: Path, ext: str, chunks: int, pause: float,
                                                          first: float) -> None:
    data = _photo(1, ext)
    watcher = _Watcher(tmp_path)
    _slow_write(data, tmp_path / f"upload{ext}", chunks, pause, first)
    watcher.wait(1)
    time.sleep(1.0)  # nothing more comes of it
    watcher.close()
    assert watcher.bad == [], "a photo being written is not reported as broken"
    assert len(watcher.frames) == 1 and np.array_equal(watcher.frames[0].image, _decoded(data))


def test_each_version_of_a_replaced_file_is_read_exactly_once(tmp_path: Path) -> None:
    """An IP camera's latest.jpg: replaced by cp + mv, deleted and written again (the same size
    and perhaps the same inode), touched with the same content, written slowly in place. Every
    version is read once, with its own pixels, and an unchanged file never again."""
    latest = tmp_path / "latest.jpg"
    versions = [_photo(k) for k in range(4)]
    watcher = _Watcher(tmp_path)
    written: list[bytes] = []

    def settled() -> None:
        watcher.wait(len(written))
        time.sleep(0.5)  # polls of an unchanged file in between: no second read

    latest.write_bytes(versions[0])
    written.append(versions[0])
    settled()
    part = tmp_path / "latest.jpg.part"  # cp + mv: another inode under the same name
    part.write_bytes(versions[1])
    part.rename(latest)
    written.append(versions[1])
    settled()
    latest.unlink()  # deleted and written again, same size as before
    latest.write_bytes(versions[1])
    written.append(versions[1])
    settled()
    stamp = latest.stat().st_mtime_ns + 1_000_000_000
    os.utime(latest, ns=(stamp, stamp))  # touch: same bytes, a new version all the same
    written.append(versions[1])
    settled()
    _slow_write(versions[2], latest, chunks=3, pause=0.3)  # rewritten in place, slowly
    written.append(versions[2])
    settled()
    (tmp_path / "other.jpg").write_bytes(versions[3])
    written.append(versions[3])
    settled()
    watcher.close()
    assert watcher.bad == []
    assert len(watcher.frames) == len(written) == 6
    for frame, data in zip(watcher.frames, written, strict=True):
        assert np.array_equal(frame.image, _decoded(data))


def test_a_file_that_stays_truncated_is_reported_once_and_read_once_completed(tmp_path: Path) -> None:
    """An upload that stopped half way: reported once when it has stayed so for give_up_s (not
    every poll), then read once when the rest arrives. A complete file that does not decode is
    reported at once, and again only if it changes."""
    data = _photo(7)
    path = tmp_path / "a-stalled.jpg"
    path.write_bytes(data[: len(data) // 2])
    broken = tmp_path / "b-broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + bytes(200) + b"\xff\xd9")  # ends as a JPEG ends, holds nothing
    watcher = _Watcher(tmp_path, settle_s=0.1, give_up_s=0.8)
    time.sleep(0.5)
    assert watcher.bad == [], "not reported while it may still be being written"
    time.sleep(2.5)  # three give-up times more: still one report each
    assert len(watcher.bad) == 2 and "a-stalled.jpg" in watcher.bad[0] and "without its end" in watcher.bad[0]
    assert "b-broken.jpg" in watcher.bad[1]
    with path.open("ab") as f:
        f.write(data[len(data) // 2:])
    watcher.wait(1)
    time.sleep(0.5)
    broken.write_bytes(broken.read_bytes())  # rewritten, still broken: a new version, reported again
    deadline = time.monotonic() + 3
    while len(watcher.bad) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    watcher.close()
    assert len(watcher.frames) == 1 and np.array_equal(watcher.frames[0].image, _decoded(data))
    assert len(watcher.bad) == 3 and "b-broken.jpg" in watcher.bad[2]


def test_files_that_leave_the_folder_leave_its_memory(tmp_path: Path) -> None:
    cam = FolderCamera(str(tmp_path), settle_s=0.0)
    cam.open()
    for k in range(30):
        cv2.imwrite(str(tmp_path / f"{k:02d}.png"), np.full((20, 20, 3), k, np.uint8))
    assert sum(cam.read() is not None for _ in range(31)) == 30
    for k in range(25):
        (tmp_path / f"{k:02d}.png").unlink()
    assert cam.read() is None
    assert sorted(cam._files) == [f"{k:02d}.png" for k in range(25, 30)]


def test_folder_settings_come_from_the_configuration(tmp_path: Path) -> None:
    cam = make_camera(CaptureConfig(source=str(tmp_path), folder_settle_s=1.5, folder_give_up_s=20.0))
    assert isinstance(cam, FolderCamera) and (cam.settle_s, cam.give_up_s) == (1.5, 20.0)
    with pytest.raises(ConfigError, match=r"capture\.folder_give_up_s: must be above capture\.folder_settle_s"):
        CaptureConfig(folder_settle_s=5.0, folder_give_up_s=2.0).validate()
