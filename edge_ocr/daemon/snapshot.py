"""The board picture published with each page (topic ``<base>/<device>/snapshot``): a JPEG of the
board the page was read from, without anyone in front of it.

It is cut from the gate's *clean board* (:meth:`edge_ocr.daemon.gate.Gate.clean_board`): only cells
the gate has seen clean, every other cell the board's background colour, so a person standing
or walking in front of the board is never in it. The board quad of the page (the surface found,
or ``vision.fixed_region``) is rectified as the reader rectifies it (:func:`rectify`), its long
side at most ``snapshot.max_side``, and turned upright by the page's ``rotation``.

The JPEG must fit its message limit by itself (``snapshot.max_bytes`` and the MQTT limit in
force, counted as the whole PUBLISH packet with the JPEG in base64): first at
``snapshot.quality``; if it is too large, at the highest quality from ``MIN_QUALITY`` up that
fits; if not even that fits, smaller (by the size it missed by, at least a fifth per step) down to
``MIN_SIDE``. It is never cut: a picture that cannot fit is not sent. Same pixels, same settings,
same limit: same bytes (OpenCV's libjpeg is deterministic), so an unchanged board gives the same
``sha256`` and costs an archive nothing.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge_ocr.daemon.fit import packet_size
from edge_ocr.daemon.outbox import encode
from edge_ocr.vision.surface import rectify

MIN_QUALITY = 30  # below this JPEG blocks smear handwriting: make the picture smaller instead
MIN_SIDE = 320  # long side (px) below which a board's writing is no longer legible: not sent
SHRINK = 0.8  # the least a step down in size shrinks the long side by
QUALITY_STEP = 5  # the quality search's resolution
# The widest values stamped on a message after it is built: a 32-hex msg_id and 19-digit numbers.
RESERVED = {"msg_id": "0" * 32, "seq": 10**18, "page_seq": 10**18}


@dataclass(frozen=True)
class Jpeg:
    data: bytes
    width: int
    height: int
    quality: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def picture(board: np.ndarray, quad: list[list[float]], rotation: int, max_side: int) -> np.ndarray:
    """The board quad (frame pixels, tl tr br bl) of ``board`` (BGR, frame-sized) rectified with
    its long side at most ``max_side`` and turned ``rotation`` degrees counter-clockwise (the
    page's turn to read it upright)."""
    image = rectify(board, np.asarray(quad, np.float32).reshape(4, 2), max_side).image
    return np.ascontiguousarray(np.rot90(image, (rotation // 90) % 4))


def _encode(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} picture as JPEG")
    return buf.tobytes()


def fit_jpeg(image: np.ndarray, quality: int, fits: Callable[[int], bool]) -> Jpeg | None:
    """``image`` (BGR) as the best JPEG whose size in bytes ``fits``: at ``quality``, else the
    highest quality from ``MIN_QUALITY`` that fits, else smaller; None when not even
    ``MIN_SIDE`` px at ``MIN_QUALITY`` fits."""
    floor = min(quality, MIN_QUALITY)
    current = image
    while True:
        h, w = current.shape[:2]
        data = _encode(current, quality)
        if fits(len(data)):
            return Jpeg(data, w, h, quality)
        low = _encode(current, floor)
        if fits(len(low)):
            best, lo, hi = Jpeg(low, w, h, floor), floor, quality  # fits at lo, not at hi
            while hi - lo > QUALITY_STEP:
                mid = (lo + hi) // 2
                data = _encode(current, mid)
                if fits(len(data)):
                    best, lo = Jpeg(data, w, h, mid), mid
                else:
                    hi = mid
            return best
        side = max(h, w)
        # JPEG bytes grow about with the pixels: aim at the size that would fit, a fifth down at least.
        target = side * min(SHRINK, math.sqrt(_largest_fit(fits, len(low)) / len(low)) * 0.95)
        if side <= MIN_SIDE:
            return None
        scale = max(target, MIN_SIDE) / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        current = cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _largest_fit(fits: Callable[[int], bool], above: int) -> int:
    """The largest JPEG size in bytes (below ``above``) that ``fits`` (0: none)."""
    lo, hi = 0, above
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def message(body: dict, jpeg: Jpeg) -> dict:
    """The snapshot message (``schemas/snapshot.schema.json``) without ``msg_id``, ``seq`` and
    ``page_seq``, which the outbox stamps: ``body`` (device, ts, frame) and the picture."""
    return {**body, "width": jpeg.width, "height": jpeg.height, "sha256": jpeg.sha256,
            "jpeg": base64.b64encode(jpeg.data).decode("ascii")}


def fits_message(body: dict, topic: str, limit: int) -> Callable[[int], bool]:
    """Whether a JPEG of n bytes, as the snapshot message of ``body`` on ``topic`` (QoS 1, MQTT 5:
    the larger packet), stays within ``limit`` bytes of PUBLISH packet."""
    bare = len(encode({**RESERVED, **body, "width": 99999, "height": 99999, "sha256": "0" * 64, "jpeg": ""}))

    def fits(n: int) -> bool:
        return packet_size(topic, b"", 1, True) + bare + 4 * math.ceil(n / 3) + 3 <= limit

    return fits
