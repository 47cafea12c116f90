"""Clean a rectified surface: ink map, flattened light, local binarisation without ruled lines.

Measured choice of binariser: see ``toolchain/bench/vision.py`` (Sauvola vs OpenCV's adaptive
Gaussian threshold on synthesised scenes); ``binarize`` uses the winner.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from edge_ocr.vision.surface import Surface


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


# A surface shorter than this holds a line or two, not a ruled page; on it a quarter of the side
# is shorter than a word, and the words of a strip were taken for rules (a two-line strip: 28 %).
MIN_RULED_SIDE = 128
RULINGS = 3  # parallel rules that make a ruling (a grid, a ruled table, lined paper), not a drawing
# Share of the surface's side a rule must span here: on a real board rule_mask also marks pieces of
# handwriting along its rows (up to 28 % of the side); a grid, a table or an axis spans most of it.
LONG_RULE = 0.4


def long_rules(rules: np.ndarray, frac: float = LONG_RULE) -> np.ndarray:
    """The connected parts of a rule mask that span ``frac`` of its width or height; gaps of a few
    pixels along a rule do not cut it (a number line's ticks cut the axis in rule_mask)."""
    joined = cv2.bitwise_or(cv2.morphologyEx(rules, cv2.MORPH_CLOSE, np.ones((1, 9), np.uint8)),
                            cv2.morphologyEx(rules, cv2.MORPH_CLOSE, np.ones((9, 1), np.uint8)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, 8, cv2.CV_32S)
    h, w = rules.shape
    keep = np.zeros(n, bool)
    keep[1:] = (stats[1:, cv2.CC_STAT_WIDTH] >= frac * w) | (stats[1:, cv2.CC_STAT_HEIGHT] >= frac * h)
    return cv2.bitwise_and(rules, (keep[labels] * 255).astype(np.uint8))


def parallel_rules(rules: np.ndarray, frac: float = LONG_RULE) -> int:
    """How many separate rules run across (rows) or down (columns) a rule mask, the more of the
    two: bands of rows (columns) of which ``frac`` is rule."""
    most = 0
    for axis, length in ((1, rules.shape[1]), (0, rules.shape[0])):
        full = np.count_nonzero(rules, axis=axis) >= frac * length
        most = max(most, int(np.count_nonzero(full[1:] & ~full[:-1]) + full[0]))
    return most


def without_rules(frame: np.ndarray, surface: Surface) -> tuple[np.ndarray, Surface, np.ndarray | None]:
    """``frame`` and its rectified ``surface`` with a ruling (a grid, a ruled table, lined paper:
    at least ``RULINGS`` parallel rules) painted over in the paper's colour, for the text detector
    only (crops are still cut from the real frame); and the rules' mask in frame pixels (0/255).

    A grid of abutting cells (an exercise book's 田字格, a ruled table) is one connected pattern
    to DB: whole rows came out as one box or none, and characters in the last cell were dropped.
    A drawing's few rules (a box, an axis) stay for the detector: painted over, the stubs left
    of a real board's diagram were read as characters. Rules are found on the small surface
    (:func:`rule_mask`) and mapped to the frame through the surface's homography: a 12 MP frame
    costs two warps, and only when there are rules. Without rules: the inputs and None."""
    if min(surface.image.shape[:2]) < MIN_RULED_SIDE:
        return frame, surface, None
    rules = long_rules(rule_mask(flatten(ink_gray(surface.image))))
    if not rules.any():
        return frame, surface, None
    h, w = frame.shape[:2]
    mask = cv2.warpPerspective(rules, surface.to_frame, (w, h), flags=cv2.INTER_NEAREST)
    if parallel_rules(rules) < RULINGS:
        return frame, surface, mask
    paper = cv2.morphologyEx(surface.image, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    plain = surface.image.copy()
    plain[rules > 0] = paper[rules > 0]
    fill = cv2.warpPerspective(paper, surface.to_frame, (w, h), flags=cv2.INTER_LINEAR)
    out = frame.copy()
    out[mask > 0] = fill[mask > 0]
    return out, replace(surface, image=plain), mask
