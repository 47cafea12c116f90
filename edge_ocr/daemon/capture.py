"""Frames in: the Pi camera, an OpenCV device/stream/file, or a folder of images.

Every backend implements ``Camera`` (open, read, close) and knows nothing about text.
``Capture`` wraps one and turns it into an endless, paced stream of ``Frame`` objects with
sequence numbers: a camera fault (unplugged, stream dropped, read timeout) is reported and
retried with backoff, never raised, so the daemon outlives its camera.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge_ocr.config import CaptureConfig
from edge_ocr.imageio import UNSUPPORTED, ImageError, read_pages, sniff_format
from edge_ocr.log import Log
from edge_ocr.paths import SAMPLE_VIDEO

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif",
                  ".pnm", ".pbm", ".pgm", ".ppm", ".pam",  # Netpbm: what scanimage (SANE) writes
                  # not readable, but a photo someone meant: each is reported, by format, not ignored
                  ".heic", ".heif", ".avif", ".jxl", ".pdf", ".svg", ".psd"}
TAIL = 64  # bytes at a file's end searched for its format's end mark
RETRY_S = 0.5  # first wait before decoding a settled file again; doubles per failure
log = Log("edge_ocr.daemon.capture")


class CaptureError(RuntimeError):
    """The camera failed (gone, dropped, timed out); the caller retries."""


class EndOfStreamError(Exception):
    """A finite source (a video file without ``loop``) has no more frames."""


class FrameError(Exception):
    """One input could not be used (a file that does not decode); the camera itself is fine."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8
    seq: int  # 1, 2, … per daemon run
    ts: float  # wall-clock time of capture (time.time())
    still: bool = False  # a photo of its own (a folder source), not the next frame of a video


class Camera(Protocol):
    name: str
    stills: bool  # each read is an unrelated still photo, to be read once (no motion to wait out)

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None:
        """The next frame, None when none is ready yet; raises CaptureError or EndOfStreamError."""

    def close(self) -> None: ...


class Picamera2Camera:
    """The Raspberry Pi camera through picamera2 (Debian package python3-picamera2)."""

    def __init__(self, width: int, height: int) -> None:
        self.name = "picamera2"
        self.stills = False
        self.size = (width, height)
        self._cam = None

    @staticmethod
    def available() -> bool:
        try:
            from picamera2 import Picamera2
        except ImportError:
            return False
        try:
            return bool(Picamera2.global_camera_info())
        except Exception:
            return False

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CaptureError(
                "picamera2 is not installed: on Raspberry Pi OS run 'sudo apt install python3-picamera2' "
                "and create the virtual environment with --system-site-packages") from None
        try:
            cam = Picamera2()
            # "RGB888" is BGR in memory: what OpenCV expects.
            cam.configure(cam.create_still_configuration(main={"size": self.size, "format": "RGB888"}))
            cam.start()
        except Exception as exc:
            raise CaptureError(f"picamera2: {exc}") from exc
        self._cam = cam

    def read(self) -> np.ndarray | None:
        if self._cam is None:
            raise CaptureError("picamera2: not open")
        try:
            image = self._cam.capture_array("main")
        except Exception as exc:
            raise CaptureError(f"picamera2: capture failed: {exc}") from exc
        return np.ascontiguousarray(image[:, :, :3])

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            except Exception:
                pass
            self._cam = None


class OpenCVCamera:
    """A V4L2/USB device (index or /dev/video*), an RTSP/HTTP stream, or a video file."""

    def __init__(self, source: str, width: int, height: int, timeout_s: float, loop: bool = False) -> None:
        self.source: int | str = int(source) if source.isdigit() else source
        self.name = f"opencv:{source}"
        self.stills = False
        self.size = (width, height)
        self.timeout_ms = int(timeout_s * 1000)
        self.is_file = isinstance(self.source, str) and not re.match(r"^[a-z]+://", self.source) \
            and not self.source.startswith("/dev/")
        self.loop = loop
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        if self.is_file and not Path(str(self.source)).is_file():
            raise CaptureError(f"{self.source}: no such video file")
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_ms]
        cap = cv2.VideoCapture(self.source, cv2.CAP_ANY, params)
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"{self.source}: cannot open")
        if not self.is_file:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # examine the newest frame, not a stale buffered one
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise CaptureError(f"{self.source}: not open")
        ok, image = self._cap.read()
        if ok and image is not None and image.size:
            return image
        if self.is_file:
            if not self.loop:
                raise EndOfStreamError(str(self.source))
            self.close()
            self.open()  # from the start; a file that vanished raises CaptureError here
            return None
        raise CaptureError(f"{self.source}: read failed (unplugged or stream dropped?)")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


@dataclass
class _Version:
    """What the folder source knows of one version of one file (see :class:`FolderCamera`)."""

    key: tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns: any write, replacement or touch changes it
    since: float  # monotonic time this version was first seen (unchanged since)
    next_try: float  # monotonic time of the next look at it
    tries: int = 0  # decode attempts that failed
    done: bool = False  # read, or reported as unusable: not looked at again while unchanged
    waiting: bool = False  # "incomplete" already logged for this version


def file_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """A file version's identity beside its name: a new inode (cp + mv, delete and write again),
    a new size or mtime (written in place, touched) or ctime (rewritten keeping the mtime) is
    another version."""
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def ends_complete(path: Path, size: int) -> bool | None:
    """Whether the file ends the way a whole file of its format ends, from its first and last
    bytes only: JPEG's EOI marker (within the last ``TAIL`` bytes: some cameras pad), PNG's IEND
    chunk, GIF's trailer byte, WebP's RIFF length, BMP's file size. None where the format has no
    such mark (TIFF, an unknown signature, a BMP that leaves its size 0). A format that is never
    readable (HEIC, PDF, …) counts as complete: nothing appended would make it readable."""
    with path.open("rb") as f:
        head = f.read(32)
        f.seek(max(0, size - TAIL))
        tail = f.read(TAIL)
    fmt = sniff_format(head)
    if fmt == "JPEG":
        return b"\xff\xd9" in tail
    if fmt == "PNG":
        return b"IEND" in tail
    if fmt == "GIF":
        return tail.endswith(b";")
    if fmt == "WebP":
        return int.from_bytes(head[4:8], "little") + 8 <= size
    if fmt == "BMP":
        declared = int.from_bytes(head[2:6], "little")
        return declared <= size if declared else None
    return True if fmt in UNSUPPORTED else None


class FolderCamera:
    """Image files in a folder, in name order; each version of each file is a still photo, read
    once when it is complete (each page of a multi-page TIFF a still of its own, in order).

    A camera's FTP upload or a Samba copy creates the file at once and fills it in pieces, and
    ``latest.jpg`` is replaced (cp + mv, delete and write, touch) under the same name. So a file
    version (name + :func:`file_key`) is looked at once it has been unchanged for ``settle_s``;
    one whose format's end mark is missing (:func:`ends_complete`) waits, one that does not
    decode is tried again with backoff, and either is reported once (``FrameError``) when it has
    stayed so, unchanged, for ``give_up_s`` (a complete file that does not decode, or a format
    never readable, at once). A later version is looked at again. Files are taken in name order:
    one not ready yet holds back the names after it (for at most ``give_up_s`` once it stops
    changing), so pages follow the photos' order. Only names present in the folder are
    remembered.
    """

    def __init__(self, folder: str, settle_s: float = 0.5, give_up_s: float = 10.0) -> None:
        self.folder = Path(folder)
        self.name = f"folder:{folder}"
        self.stills = True
        self.settle_s, self.give_up_s = settle_s, give_up_s
        self._files: dict[str, _Version] = {}
        self._read: set[str] = set()  # names read before: a new version of one is logged as replaced
        self._pages: list[np.ndarray] = []  # a multi-page TIFF's pages after the first: a still each

    def open(self) -> None:
        if not self.folder.is_dir():
            raise CaptureError(f"{self.folder}: no such folder")

    def read(self) -> np.ndarray | None:
        if self._pages:
            return self._pages.pop(0)
        try:
            names = sorted(n for n in os.listdir(self.folder)
                           if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:
            raise CaptureError(f"{self.folder}: {exc.strerror}") from exc
        now = time.monotonic()
        files: dict[str, _Version] = {}
        for name in names:
            try:
                st = (self.folder / name).stat()
            except OSError:
                continue  # gone since the listing
            if not stat.S_ISREG(st.st_mode):
                continue
            key, known = file_key(st), self._files.get(name)
            files[name] = known if known is not None and known.key == key else \
                _Version(key, now, now + self.settle_s)
        self._files = files  # deleted files leave
        self._read &= files.keys()
        for name, version in files.items():
            if version.done:
                continue
            if now < version.next_try:
                return None  # not ready: the names after it wait their turn
            return self._try(name, version, now)
        return None

    def _try(self, name: str, version: _Version, now: float) -> np.ndarray | None:
        """The photo if it is whole and decodes; None while it may still be being written
        (``next_try`` set); raises ``FrameError`` once when it will not be usable."""
        path = self.folder / name
        stable = now - version.since
        try:
            complete = ends_complete(path, version.key[1])
        except OSError:
            return None  # gone or unreadable for now: the next listing says which
        if complete is False and stable < self.give_up_s:
            if not version.waiting:
                version.waiting = True
                log.debug("still_incomplete", file=name, bytes=version.key[1], reason="no end mark yet")
            version.next_try = version.since + self.give_up_s
            return None
        try:
            image, *pages = read_pages(path)
        except ImageError as exc:
            if self._changed(path, version):
                return None
            version.tries += 1
            if complete is None and stable < self.give_up_s:
                version.next_try = now + min(self.give_up_s - stable, RETRY_S * 2 ** (version.tries - 1))
                return None
            version.done = True
            if complete is False:
                raise FrameError(f"{exc}; unchanged for {stable:.0f} s without its end: an upload that "
                                 "stopped?") from None
            raise FrameError(str(exc)) from None
        if self._changed(path, version):
            return None  # rewritten while read: the new version is read when it settles
        version.done = True
        log.info("still_read", file=name, bytes=version.key[1], replaced=name in self._read, pages=1 + len(pages))
        self._read.add(name)
        self._pages = pages
        return image

    @staticmethod
    def _changed(path: Path, version: _Version) -> bool:
        """Whether the file is no longer the version that was looked at."""
        try:
            return file_key(path.stat()) != version.key
        except OSError:
            return True

    def close(self) -> None:
        pass


def make_camera(cfg: CaptureConfig) -> Camera:
    """The backend for ``capture.source``; "auto": the Pi camera, else /dev/video0, else the
    bundled sample video of a board being written on."""
    src = cfg.source
    if src == "auto":
        if Picamera2Camera.available():
            return Picamera2Camera(cfg.width, cfg.height)
        if Path("/dev/video0").exists():
            return OpenCVCamera("/dev/video0", cfg.width, cfg.height, cfg.read_timeout_s)
        return OpenCVCamera(str(SAMPLE_VIDEO), cfg.width, cfg.height, cfg.read_timeout_s, cfg.loop)
    if src == "picamera2":
        return Picamera2Camera(cfg.width, cfg.height)
    if Path(src).is_dir():
        return FolderCamera(src, cfg.folder_settle_s, cfg.folder_give_up_s)
    return OpenCVCamera(src, cfg.width, cfg.height, cfg.read_timeout_s, cfg.loop)


class Capture:
    """Paced, numbered frames from a camera that may fail and come back.

    ``on_fault(message)`` is called when the camera fails (once per outage) and
    ``on_recover()`` when frames flow again; ``on_bad_frame(message)`` for an input that could
    not be used (the camera is fine); ``tick()`` is called on every attempt, so a watchdog sees a
    daemon that is waiting for its camera as alive.
    """

    def __init__(self, camera: Camera, fps: float, retry_max_s: float, stop: threading.Event,
                 on_fault: Callable[[str], None] = lambda m: None, on_recover: Callable[[], None] = lambda: None,
                 tick: Callable[[], None] = lambda: None,
                 on_bad_frame: Callable[[str], None] = lambda m: None) -> None:
        self.camera, self.interval, self.retry_max_s = camera, 1.0 / fps, retry_max_s
        self.stop, self.on_fault, self.on_recover, self.tick = stop, on_fault, on_recover, tick
        self.on_bad_frame = on_bad_frame
        self.seq = 0
        self.fault: str | None = None
        self._open = False

    def frames(self) -> Iterator[Frame]:
        """Frames until ``stop`` is set or a finite source ends."""
        backoff = 0.25
        next_at = time.monotonic()
        try:
            while not self.stop.is_set():
                self.tick()
                try:
                    if not self._open:
                        self.camera.open()
                        self._open = True
                    image = self.camera.read()
                except EndOfStreamError:
                    return
                except FrameError as exc:
                    self.on_bad_frame(str(exc))
                    continue
                except CaptureError as exc:
                    self._fail(str(exc))
                    self.stop.wait(backoff)
                    backoff = min(self.retry_max_s, backoff * 2)
                    continue
                if image is None:
                    self.stop.wait(min(self.interval, 0.1))
                    continue
                backoff = 0.25
                if self.fault is not None:
                    self.fault = None
                    self.on_recover()
                self.seq += 1
                yield Frame(image, self.seq, time.time(), self.camera.stills)
                next_at = max(next_at + self.interval, time.monotonic())
                self.stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            self.camera.close()
            self._open = False

    def _fail(self, message: str) -> None:
        self.camera.close()
        self._open = False
        if self.fault is None:
            self.fault = message
            self.on_fault(message)
