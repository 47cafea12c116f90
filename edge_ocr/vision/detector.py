"""A learned text detector (DB, e.g. PaddleOCR's PP-OCR det imported by ``toolchain.onnx_import.detector``):
image → probability map → rotated text boxes in image pixels.

The model has a fixed input (its contract gives height × width, normalisation and colour
order): TFLite's transposed convolutions bake their output shape, so one model file cannot
be resized. The image is scaled so its long side is ``max_side``, then covered by overlapping
tiles of the model's size (padded with the mean colour where it is smaller);
the probability maps are merged by maximum. A 16:9 camera frame at the default size is one
tile; a 4:3 or portrait page two.

That first pass is coarse; the text's size then decides whether a second, finer one runs
(scale-aware detection, issue 27). The coarse boxes' heights say how tall the text is at that
scale: where it is below ``small_text`` (or where the map shows text the pass could not box, or
nothing at all was found, or everywhere outside tall text when the coarse scale would shrink
text ``min_text`` image px tall below ``small_text``: a 1080p frame's 12-px writing leaves no
trace in the coarse map), those regions are detected again at the scale that brings the text
to ``text_height`` detector pixels, in overlapping tiles of the model's size, only the tiles the
regions touch, at most ``max_tiles`` per 1080p-worth of pixels (the scale shrinks until they
fit). Tiles write into one map (uint8, by maximum), so a line crossing a seam is one region.
Text already tall enough keeps its coarse box: large letters are never cut into pieces by a
finer look. A coarse box far taller than the page's lines may be rows run together (a matrix):
it is looked inside, and read as rows when its rows part. Settings chosen by cross-validation
over the dev pages and classroom lectures (docs/vision.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from edge_ocr.model.contract import DetectorContract
from edge_ocr.model.interpreter import TFLiteModel
from edge_ocr.vision.db import DBParams, TextBox, boxes_from_probability
from edge_ocr.vision.lines import crop_quad
from edge_ocr.vision.surface import shrink

MAX_ENLARGE = 2.0
FIT_SLACK = 0.95  # shrink by up to 5 % to save a second tile
TILE_OVERLAP = 96  # detector pixels shared by neighbouring tiles: more than a text line is tall
# Scale-aware detection: chosen by cross-validation (docs/vision.md, reports/scale_cv.md).
TEXT_HEIGHT = 24.0  # detector px: the box height (after unclip) small text is re-detected at
SMALL_TEXT = 0.0  # detector px at the coarse scale: shorter boxes are looked at again; 0: one pass
MAX_TILES = 9  # tiles the fine pass may run per 1920×1080 of image: its cost bound
ACTIVITY = 0.1  # coarse probability marking text the coarse pass could not box
MIN_TEXT = 16.0  # image px: the shortest text box looked for everywhere; 0: only where the coarse pass hints
FINE_ENLARGE = 2.0  # most detector pixels per image pixel in the fine pass
# A coarse box over STACKED times the median box height may be rows run together (a matrix, a
# stacked formula): the fine pass looks inside it too. The fine boxes inside replace it when at
# least two, each at most STACKED_ROW of its height; else its rows of ink (ink_rows); else it
# is one tall line, kept whole.
STACKED = 2.0
STACKED_ROW = 0.6
ROW_MIN = 0.3  # line heights: the shortest row of ink in a stacked box
ROW_ALIKE = 0.5  # the shortest row of a stacked box is at least this share of its tallest
ROW_GAP = 0.3  # a row of a stacked box with less ink than this share of its inkiest row is a gap
BUDGET_PIXELS = 1920 * 1080  # the image area ``max_tiles`` is counted against


def tile_starts(length: int, tile: int, overlap: int = TILE_OVERLAP) -> list[int]:
    """Offsets of windows of ``tile`` covering ``length`` with at least ``overlap`` shared."""
    if length <= tile:
        return [0]
    overlap = min(overlap, tile // 2)
    n = max(2, int(np.ceil((length - overlap) / (tile - overlap))))
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def local_contrast(bgr: np.ndarray) -> np.ndarray:
    """CLAHE on the luma channel, before detection: faint marker on glass and chalk become
    text to the detector (real dev pages: CER 0.131 → 0.116, worst board 0.42 → 0.36)."""
    ycc = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
    ycc[:, :, 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(ycc[:, :, 0])
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2BGR)


def _inside(box: TextBox, outline: TextBox | np.ndarray) -> bool:
    """Whether ``box``'s centre lies in ``outline`` (a box, or a (4, 1, 2) contour), same pixels."""
    contour = outline.quad.reshape(-1, 1, 2) if isinstance(outline, TextBox) else outline
    return cv2.pointPolygonTest(contour, tuple(float(v) for v in box.quad.mean(axis=0)), False) >= 0


def ink_rows(image: np.ndarray, box: TextBox, line_height: float) -> list[TextBox]:
    """The rows of ink in ``box`` (``image`` pixels; ``line_height``: the page's median line
    height there) when it holds at least two, each at least :data:`ROW_MIN` line heights tall and
    :data:`ROW_ALIKE` of the tallest, parted by rows with under :data:`ROW_GAP` of the inkiest
    row's ink; else []. A handwritten matrix is one blob to the detector at any scale (its entries
    stand apart, its brackets join its rows). Ink is the Otsu class in the minority; strokes
    taller than two line heights (brackets) are left out, and the inkiest row is the 90th
    percentile, so one arrow along a row does not hide the others."""
    q = box.quad.astype(np.float32)
    w, h = (max(2, round(v)) for v in box.size)
    crop = crop_quad(image, q, (w, h))
    gray = crop if crop.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(crop[:, :, :3]), cv2.COLOR_BGR2GRAY)
    _, mask = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    if mask.mean() > 0.5:
        mask = 1 - mask
    mask &= 1 - cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((max(3, round(2 * line_height)), 1), np.uint8))
    profile = mask.sum(axis=1).astype(np.float32)
    on = np.concatenate([[0], (profile > ROW_GAP * np.percentile(profile, 90)).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(on))
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= ROW_MIN * line_height]
    # Rows of one matrix or one paragraph are alike; a strip of ascenders above a large word is not.
    if len(runs) < 2 or min(b - a for a, b in runs) < ROW_ALIKE * max(b - a for a, b in runs):
        return []
    u, v = (q[1] - q[0]) / w, (q[3] - q[0]) / h
    out = []
    for y0, y1 in runs:
        cols = np.flatnonzero(mask[y0:y1].any(axis=0))
        pad = 0.2 * (y1 - y0)
        x0, x1 = max(0.0, cols[0] - pad), min(float(w), cols[-1] + 1 + pad)
        top, bottom = max(0.0, y0 - pad), min(float(h), y1 + pad)
        corners = [q[0] + u * x + v * y for x, y in ((x0, top), (x1, top), (x1, bottom), (x0, bottom))]
        out.append(TextBox(np.asarray(corners, np.float32), box.score))
    return out


class TextDetector:
    """Runs a DB text detector described by its contract on BGR images."""

    def __init__(self, model: str | Path, num_threads: int = 1, runtime: str = "auto",
                 max_side: int | None = None, params: DBParams | None = None, enhance: bool = True,
                 xnnpack: bool | None = None, text_height: float = TEXT_HEIGHT, small_text: float = SMALL_TEXT,
                 max_tiles: int = MAX_TILES, activity: float = ACTIVITY, min_text: float = MIN_TEXT) -> None:
        self.contract = DetectorContract.load(model)
        self.model = TFLiteModel(self.contract.model_path, num_threads=num_threads, runtime=runtime, xnnpack=xnnpack)
        shape = self.model.input_shape
        c = self.contract
        if len(shape) != 4 or tuple(shape[1:]) != (c.height, c.width, 3):
            raise ValueError(f"{c.model_path}: input shape {shape} does not match the contract's "
                             f"1×{c.height}×{c.width}×3")
        self.max_side = max_side or c.max_side
        self.params = params or c.params
        self.enhance = enhance
        self.text_height, self.small_text, self.max_tiles, self.activity = text_height, small_text, max_tiles, activity
        self.min_text = min_text
        self._mean = np.asarray(c.mean, np.float32) * 255.0
        self._inv_std = 1.0 / (np.asarray(c.std, np.float32) * 255.0)
        self.last_ms: dict[str, float] = {}

    def scale_for(self, height: int, width: int) -> float:
        """Detector pixels per image pixel: the long side to ``max_side``, enlarging at most
        ``MAX_ENLARGE``× (a small still's text would otherwise outgrow what DB was trained on);
        a little less when that makes the image fit one tile (a 1920×1080 frame: 796×448)."""
        c = self.contract
        s = min(self.max_side / max(height, width), MAX_ENLARGE)
        fit = min(c.height / height, c.width / width)
        return fit if s * FIT_SLACK <= fit < s else s

    def _model_bgr(self, image: np.ndarray) -> np.ndarray:
        """``image`` as three channels in the model's colour order."""
        img = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return img[:, :, :3] if self.contract.colour_order == "BGR" else img[:, :, 2::-1]

    def _normalised(self, scaled: np.ndarray, height: int, width: int) -> np.ndarray:
        """A (height, width, 3) float32 input holding ``scaled`` (uint8, at most that size) at its
        top left, normalised; the rest 0 after normalisation: the mean colour."""
        if self.enhance:
            scaled = local_contrast(np.ascontiguousarray(scaled))
        padded = np.zeros((height, width, 3), np.float32)
        x = padded[: scaled.shape[0], : scaled.shape[1]]
        x[...] = scaled  # normalised in place: one float image, not three
        x -= self._mean
        x *= self._inv_std
        return padded

    def probability(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """(probability map for the scaled image, detector pixels per image pixel): the coarse pass."""
        c = self.contract
        img = self._model_bgr(image)
        h, w = img.shape[:2]
        s = self.scale_for(h, w)
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        ph, pw = max(sh, c.height), max(sw, c.width)
        padded = self._normalised(shrink(img, (sw, sh)), ph, pw)
        prob = np.zeros((ph, pw), np.float32)
        for y in tile_starts(ph, c.height):
            for x0 in tile_starts(pw, c.width):
                window = (slice(y, y + c.height), slice(x0, x0 + c.width))
                tile = self.model(padded[None, window[0], window[1]]).reshape(c.height, c.width)
                np.maximum(prob[window], tile, out=prob[window])
        return prob[:sh, :sw], s

    def fine_plan(self, shape: tuple[int, int], prob: np.ndarray, s0: float, boxes: list[TextBox]
                  ) -> tuple[float, list[tuple[int, int]], list[TextBox], list[TextBox], float] | None:
        """Where and at what scale to look again after the coarse pass: (detector pixels per
        image pixel, tile origins in that scale's pixels, the coarse boxes kept: text already
        tall enough, the coarse boxes that may be stacked rows: :data:`STACKED` times the median
        height, that median in image px), or None when every box is tall enough and the map
        shows nothing else.

        ``prob`` and ``boxes`` are the coarse map and boxes (its pixels), ``s0`` its scale."""
        if not self.small_text:
            return None
        heights = [min(b.size) for b in boxes]
        median = float(np.median(heights)) if heights else 0.0
        stacked = [b for b, ht in zip(boxes, heights) if ht >= self.small_text and ht > STACKED * median]
        large = [b for b, ht in zip(boxes, heights) if self.small_text <= ht <= STACKED * median]
        small = [ht for ht in heights if ht < self.small_text]
        # Text min_text px tall would be too small for the coarse pass to see: look everywhere.
        unseen = self.min_text * s0 < self.small_text
        roi = np.ones_like(prob, np.uint8) if unseen else (prob > self.activity).astype(np.uint8)
        for b, ht in zip(boxes, heights):  # the small and stacked boxes' regions, grown back by unclip
            if ht < self.small_text or ht > STACKED * median:
                cv2.fillPoly(roi, [np.round(b.quad).astype(np.int32)], 1)
        roi = cv2.dilate(roi, np.ones((5, 5), np.uint8))
        for b in large:  # text tall enough keeps its coarse box
            cv2.fillPoly(roi, [np.round(b.quad).astype(np.int32)], 0)
        if not roi.any():
            if boxes:
                return None
            roi[...] = 1  # nothing seen at all: text too small for the coarse pass, look everywhere
        h, w = shape
        budget = max(self.max_tiles, int(np.ceil(self.max_tiles * h * w / BUDGET_PIXELS)))
        # Text seen: to text_height; text only hinted at or not seen: min_text px to text_height
        # (the image's own resolution without min_text).
        guess = self.text_height / self.min_text if self.min_text else 1.0
        s1 = min(s0 * self.text_height / float(np.median(small)) if small else guess, FINE_ENLARGE)
        integral = cv2.integral(roi)
        while s1 >= 1.25 * s0:
            tiles = self._tiles_over(roi, integral, s0, s1, h, w)
            if len(tiles) <= budget:
                return s1, tiles, large, stacked, median / s0
            s1 *= 0.9
        return None

    def _tiles_over(self, roi: np.ndarray, integral: np.ndarray, s0: float, s1: float, h: int,
                    w: int) -> list[tuple[int, int]]:
        """Origins (y, x), in pixels of scale ``s1``, of the tiles that touch ``roi`` (coarse pixels)."""
        c = self.contract
        sh, sw = max(1, round(h * s1)), max(1, round(w * s1))
        r = s0 / s1
        out = []
        for y in tile_starts(sh, c.height):
            for x in tile_starts(sw, c.width):
                y0, x0 = min(int(y * r), roi.shape[0] - 1), min(int(x * r), roi.shape[1] - 1)
                y1 = min(int(np.ceil((y + c.height) * r)), roi.shape[0])
                x1 = min(int(np.ceil((x + c.width) * r)), roi.shape[1])
                if integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0] > 0:
                    out.append((y, x))
        return out

    def fine_probability(self, image: np.ndarray, s1: float, tiles: list[tuple[int, int]]) -> np.ndarray:
        """The map (uint8, 0..255) of ``image`` scaled by ``s1``, computed on ``tiles`` only (their
        origins in scaled pixels), each tile cut from the image by one affine warp: the scaled
        image itself is never held."""
        c = self.contract
        img = self._model_bgr(image)
        h, w = img.shape[:2]
        sh, sw = max(1, round(h * s1)), max(1, round(w * s1))
        while s1 * img.shape[1] / w < 0.5 and min(img.shape[:2]) > 2:  # no bilinear step over thin strokes
            img = cv2.pyrDown(img)
        fx, fy = sw / img.shape[1], sh / img.shape[0]
        prob = np.zeros((sh, sw), np.uint8)
        ys, xs, run = tile_starts(sh, c.height), tile_starts(sw, c.width), set(tiles)
        edge = TILE_OVERLAP // 2
        for y, x in tiles:
            vh, vw = min(c.height, sh - y), min(c.width, sw - x)
            m = np.float32([[fx, 0, -x], [0, fy, -y]])
            cut = cv2.warpAffine(img, m, (vw, vh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            tile = self.model(self._normalised(cut, c.height, c.width)[None]).reshape(c.height, c.width)
            # A line cut by a tile's edge comes out shifted and faint there: where a neighbour
            # that was run overlaps, leave that edge's band to it (the overlap is ≥ 2 × edge).
            i, j = ys.index(y), xs.index(x)
            t0 = edge if i > 0 and (ys[i - 1], x) in run else 0
            t1 = vh - edge if i + 1 < len(ys) and (ys[i + 1], x) in run else vh
            l0 = edge if j > 0 and (y, xs[j - 1]) in run else 0
            l1 = vw - edge if j + 1 < len(xs) and (y, xs[j + 1]) in run else vw
            window = prob[y + t0 : y + t1, x + l0 : x + l1]
            np.maximum(window, (tile[t0:t1, l0:l1] * 255.0 + 0.5).astype(np.uint8), out=window)
        return prob

    def detect(self, image: np.ndarray) -> list[TextBox]:
        """Text boxes (corners in ``image`` pixels) of a BGR or gray image.

        ``image`` may be a whole frame, a rectified surface or any crop of one (a region whose
        cells changed): the boxes are in the crop's own pixels (add its origin to place them in
        the frame), and the scale is chosen from the text inside it, so a crop holding small
        writing is detected as finely as the whole frame would have detected it. Pass the
        highest resolution at hand: the coarse pass shrinks it, the fine pass needs the pixels.
        An image with no text gives [] (at the cost of one fine look over it)."""
        t0 = time.perf_counter()
        prob, s0 = self.probability(image)
        t1 = time.perf_counter()
        coarse = boxes_from_probability(prob, self.params)
        plan = self.fine_plan(image.shape[:2], prob, s0, coarse)
        t2 = time.perf_counter()
        self.last_ms = {"detect": (t1 - t0) * 1000, "db": (t2 - t1) * 1000}
        if plan is None:
            return [TextBox(b.quad / s0, b.score) for b in coarse]
        s1, tiles, large, stacked, median = plan
        fine = [TextBox(b.quad / s1, b.score)
                for b in boxes_from_probability(self.fine_probability(image, s1, tiles), self.params)]
        kept = [TextBox(b.quad / s0, b.score) for b in large]
        for b in stacked:
            box = TextBox(b.quad / s0, b.score)
            inside = [f for f in fine if _inside(f, box)]
            if len(inside) >= 2 and max(min(f.size) for f in inside) <= STACKED_ROW * min(box.size):
                continue  # the fine pass parted its rows: its boxes stand
            fine = [f for f in fine if not _inside(f, box)]
            kept += ink_rows(image, box, median) or [box]
        outlines = [k.quad.reshape(-1, 1, 2) for k in kept]
        kept += [f for f in fine if not any(_inside(f, o) for o in outlines)]
        self.last_ms.update(fine=(time.perf_counter() - t2) * 1000, fine_tiles=float(len(tiles)))
        return kept
