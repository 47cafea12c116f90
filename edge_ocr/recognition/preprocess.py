"""Line normalisation shared by training and inference, so both see the same pixels.

A line crop becomes a single-channel float image of fixed height, aspect ratio kept, dark
text on a light background, contrast stretched, padded on the right to a width that the
model's time downsampling divides.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_ocr.imageio import to_bgr8

PAD_VALUE = 255.0


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grayscale uint8 from gray, BGR, gray+alpha or BGRA input (alpha composited as
    :func:`edge_ocr.imageio.composite` does: onto a background the ink stands out from)."""
    if image.ndim == 2:
        gray = image
    elif image.ndim == 3 and image.shape[2] == 1:
        gray = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 3:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] in (2, 4):  # with alpha: composited first
        gray = cv2.cvtColor(to_bgr8(image, "gray"), cv2.COLOR_BGR2GRAY)
    else:
        raise ValueError(f"unsupported image shape {image.shape}")
    if gray.dtype != np.uint8:
        gray = np.clip(gray, 0, 255).astype(np.uint8)
    return gray


def stretch_contrast(gray: np.ndarray) -> np.ndarray:
    """Stretch ink..background to 0..255 and make the text dark on light.

    Camera lines arrive faint, grey or inverted (chalk on a blackboard); the model was
    trained on this same normalisation, so it only has to learn one polarity and range.
    """
    # The background is the majority (the median); if it sits nearer the dark extreme than
    # the light one, the strokes are light on dark and the line is inverted.
    p1, med, p99 = np.percentile(gray, (1, 50, 99))
    if med - p1 < p99 - med:
        gray = 255 - gray
    # Ink is a small minority of a line crop: take its level from a low percentile and the
    # background from a high one, so thin strokes on a wide margin are not lost.
    lo, hi = np.percentile(gray, (0.5, 90))
    if hi - lo < 8:
        return np.full_like(gray, 255)
    out = np.clip((gray.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255)
    return out.astype(np.uint8)


def scaled_width(width: int, height: int, target_height: int, multiple: int) -> int:
    """Width after resizing to ``target_height``, rounded up to ``multiple``."""
    w = max(1, round(width * target_height / max(1, height)))
    return max(multiple, -(-w // multiple) * multiple)


def normalize_line(
    image: np.ndarray,
    height: int,
    multiple: int = 4,
    max_width: int | None = None,
) -> np.ndarray:
    """Line crop → float32 ``(height, W)`` in 0..255, W a multiple of ``multiple``.

    Lines wider than ``max_width`` after resizing are squeezed horizontally to fit,
    which is how the model was trained on its widest lines.
    """
    gray = to_gray(image)
    h, w = gray.shape
    if h == 0 or w == 0:
        raise ValueError("empty line image")
    gray = stretch_contrast(gray)
    new_w = max(1, round(w * height / h))
    if max_width is not None and new_w > max_width:
        new_w = max_width
    resized = cv2.resize(gray, (new_w, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)
    padded_w = max(multiple, -(-new_w // multiple) * multiple)
    out = np.full((height, padded_w), PAD_VALUE, dtype=np.float32)
    out[:, :new_w] = resized
    return out


def pad_to(line: np.ndarray, width: int) -> np.ndarray:
    """Right-pad a normalised line to ``width`` with the background value."""
    if line.shape[1] >= width:
        return line[:, :width]
    out = np.full((line.shape[0], width), PAD_VALUE, dtype=np.float32)
    out[:, : line.shape[1]] = line
    return out


def input_tensor(lines: list[np.ndarray], width: int, channels: int, scale: float, offset: float,
                 batch: int | None = None) -> np.ndarray:
    """What a recogniser is fed, built in this one place (the runtime, calibration, LM tuning and
    export all call it): normalised grey lines (H, W) in 0..255 → (``batch`` or len(lines), H,
    ``width``, ``channels``) float32, each line right-padded with background, grey repeated on
    every channel, then ``x * scale + offset`` (the contract's normalisation). Rows past the
    lines (a model with a fixed batch) are background."""
    height = lines[0].shape[0]
    x = np.full((batch or len(lines), height, width, channels), PAD_VALUE, np.float32)
    for i, line in enumerate(lines):
        x[i] = pad_to(line, width)[:, :, None]
    return x * np.float32(scale) + np.float32(offset)
