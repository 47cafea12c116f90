"""Clean a rectified surface: ink map, flattened light, local binarisation without ruled lines.

Measured choice of binariser: see ``toolchain/bench/vision.py`` (Sauvola vs OpenCV's adaptive
Gaussian threshold on synthesised scenes); ``binarize`` uses the winner.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def ink_gray(image: np.ndarray) -> np.ndarray:
    """Darkness of ink as a gray image, dark on light.

    The per-pixel minimum over the colour channels keeps red, blue and green marker strokes
    as dark as black ones (each marker colour is dark in at least one channel, white paper
    is bright in all three), where a luminance conversion would make red faint.
    """
    if image.ndim == 2:
        return image
    b, g, r = cv2.split(image)[:3]
    return cv2.min(cv2.min(b, g), r)  # numpy's min over a 3-long axis is ~20× slower


def background(gray: np.ndarray, stroke: int = 0) -> np.ndarray:
    """The light falling on the surface, without the strokes (uint8, never 0).

    A grey closing (strokes removed) on a 4× downscaled copy, smoothed and scaled back:
    cheap on 1080p, and wide enough to bridge marker strokes.
    """
    h, w = gray.shape
    f = 4 if min(h, w) >= 64 else 1
    small = cv2.resize(gray, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    k = max(5, (stroke or max(h, w) // 60) // f * 2 + 1)
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    bg = cv2.GaussianBlur(bg, (0, 0), k / 2)
    return cv2.max(cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR), 1)


def flatten(gray: np.ndarray) -> np.ndarray:
    """Divide by the background so glare and vignetting do not swallow strokes."""
    return cv2.divide(gray, background(gray), scale=255.0)  # uint8 in and out, saturating: no float image


def sauvola(
    gray: np.ndarray, window: int = 31, k: float = 0.2, r: float = 128.0, min_contrast: float = 24.0
) -> np.ndarray:
    """Sauvola local threshold: ink where gray < mean·(1 + k·(std/r − 1)). Returns 0/255 mask.

    A pixel must also be ``min_contrast`` darker than its neighbourhood: on blank board,
    where the local deviation is only noise, plain Sauvola marks a fifth of the pixels.
    """
    g = gray.astype(np.float32)
    win = (window, window)
    mean = cv2.boxFilter(g, -1, win, borderType=cv2.BORDER_REFLECT)
    sq = cv2.boxFilter(g * g, -1, win, borderType=cv2.BORDER_REFLECT)
    std = np.sqrt(np.maximum(sq - mean * mean, 0))
    thresh = np.minimum(mean * (1 + k * (std / r - 1)), mean - min_contrast)
    return ((g < thresh) * 255).astype(np.uint8)


def adaptive(gray: np.ndarray, window: int = 31, c: int = 15) -> np.ndarray:
    """OpenCV's adaptive Gaussian threshold (the baseline Sauvola is compared with)."""
    return cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, window | 1, c)


def binarize(gray: np.ndarray, window: int = 31, method: str = "sauvola") -> np.ndarray:
    """Ink mask (0/255) by a local threshold."""
    if method == "sauvola":
        return sauvola(gray, window)
    if method == "adaptive":
        return adaptive(gray, window)
    raise ValueError(f"binariser must be sauvola or adaptive, got {method!r}")


def rule_mask(gray: np.ndarray, min_len_frac: float = 0.25) -> np.ndarray:
    """Pixels of ruled lines and grid boxes: thin runs across a good part of the surface.

    Runs are found in a permissive mask (anything visibly darker than the flattened
    background): there a rule is continuous, even where text crosses it, while in the
    Sauvola mask it breaks up next to text. A run must span ``min_len_frac`` of the surface;
    of it, only the thin part (under 4 px across at half resolution) is rule, so strokes
    crossing it survive. Half resolution (min-pooled, so a 1 px line keeps its darkness)
    because long openings cost O(length) per pixel.
    """
    ph, pw = gray.shape[0] // 2 * 2, gray.shape[1] // 2 * 2
    if ph < 8 or pw < 8:
        return np.zeros_like(gray)
    small = cv2.erode(gray[:ph, :pw], np.ones((2, 2), np.uint8), anchor=(0, 0))[::2, ::2]
    loose = ((small < 232) * 255).astype(np.uint8)
    h, w = loose.shape
    found = np.zeros_like(loose)
    for along, across, bridge in (
        ((max(5, int(w * min_len_frac)), 1), (1, 4), (3, 1)),
        ((1, max(5, int(h * min_len_frac))), (4, 1), (1, 3)),
    ):
        # Sensor noise breaks a faint rule every few pixels: bridge that before asking for length.
        bridged = cv2.morphologyEx(loose, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, bridge))
        long_runs = cv2.morphologyEx(bridged, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, along))
        thick = cv2.morphologyEx(loose, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, across))
        found |= cv2.bitwise_and(long_runs, cv2.bitwise_not(thick))
    found = cv2.resize(found, (pw, ph), interpolation=cv2.INTER_NEAREST)
    found = np.pad(found, ((0, gray.shape[0] - ph), (0, gray.shape[1] - pw)))
    return cv2.dilate(found, np.ones((3, 3), np.uint8))


@dataclass(frozen=True)
class Cleaned:
    """A cleaned surface: the flattened gray a person looks at, the mask segmentation uses."""

    flat: np.ndarray  # flattened ink gray, dark on white
    mask: np.ndarray  # ink 0/255, rules and the surface border removed


def clean(surface: np.ndarray, method: str = "sauvola") -> Cleaned:
    """Flatten, binarise, and drop ruled lines from a rectified surface."""
    flat = flatten(ink_gray(surface))
    window = max(15, (min(flat.shape) // 40) | 1)
    ink = binarize(flat, window, method)
    rules = rule_mask(flat)
    if rules.any():
        # Keep ink that is thick where it crosses a rule: that is a stroke, not the rule.
        strokes = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
        ink = cv2.bitwise_and(ink, cv2.bitwise_not(cv2.bitwise_and(rules, cv2.bitwise_not(strokes))))
    # The rectified surface's edges carry the board frame and a sliver of background when
    # the quad is a few pixels off; nobody writes there.
    b = max(3, int(min(ink.shape) * 0.015))
    ink[:b], ink[-b:], ink[:, :b], ink[:, -b:] = 0, 0, 0, 0
    return Cleaned(flat, ink)
