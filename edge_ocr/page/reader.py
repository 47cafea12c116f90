"""Recognise a whole frame as a typed page result.

Two ways to find the lines, chosen by ``[vision] detector``: ``db`` (a learned DB text
detector on the rectified surface, then orientation and line grouping: ``edge_ocr.vision``'s
``detector``, ``layout``, ``orientation``) or ``classical`` (surface → clean → smearing
splitter). Both cut each line from the full-resolution frame and share the recogniser and
its line cache.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from edge_ocr import rounding
from edge_ocr.imageio import ImageError, to_bgr8
from edge_ocr.page.cache import LineCache
from edge_ocr.page.result import PageLine, PageResult, draw_lines
from edge_ocr.recognition.recognizer import LineResult, Recognizer
from edge_ocr.vision.clean import clean, ink_gray, without_rules
from edge_ocr.vision.db import TextBox
from edge_ocr.vision.detector import TextDetector
from edge_ocr.vision.figures import is_drawing, is_stroke
from edge_ocr.vision.layout import TextLine, drop_specks, group_lines, order_lines
from edge_ocr.vision.lines import crop_quad, find_lines
from edge_ocr.vision.orientation import column_to_row, rotate_points, unrotate_points
from edge_ocr.vision.sharpness import text_sharpness
from edge_ocr.vision.surface import ANALYSIS_SIDE, Surface, frame_quad, locate_surface, rectify, steady_quad

ORIENTATION_SAMPLE = 5  # lines read each way up to decide how the page is turned
ORIENTATION_SURE = 0.85  # mean character confidence that ends the vote (dev pages: same turns, same CER)
# A fixed camera's turn, once voted, is kept while its own score (the vote's, at that turn only)
# stays at or above this: read the wrong way up, few characters come out and those unsure.
ORIENTATION_KEEP = 0.5
# One or two characters are clutter unless read surely and at about the page's line height: a
# diagram's stroke ends are read as '20', '2', '口' at confidences up to 0.78, and the nested
# boxes of a drawing as a '1' at 0.9 in a box four lines tall (tests/unit/test_detector.py). Chosen
# on the whole real dev set: 0.5 → 0.8 moved page CER 0.0913 → 0.0907 (ppocrv4_det) and
# 0.0919 → 0.0913 (the first db_lite student); the height rule changed no dev page.
CLUTTER_CHARS, CLUTTER_CONFIDENCE, CLUTTER_TALL = 2, 0.8, 2.5
# No line of a blurred frame (sharpness below vision.min_sharpness) is reported surer than this:
# its text may be confident-looking garbage (9-px motion blur: CER 0.40 at confidences near 0.9).
BLURRED_CONFIDENCE = 0.5


def is_clutter(res: LineResult, tall: float = 1.0) -> bool:
    """A reading of one or two characters that are unsure, or ``tall`` (box height ÷ the page's
    median line height) above ``CLUTTER_TALL``: a stroke of a diagram, a magnet, a tick (real
    dev pages: page CER 0.096 → 0.091 when the rule came in)."""
    return len(res.text.strip()) <= CLUTTER_CHARS and (res.confidence < CLUTTER_CONFIDENCE or tall > CLUTTER_TALL)


def capped(res: LineResult, blurred: bool) -> tuple[float, list[float]]:
    """A reading's confidence and character confidences, at most ``BLURRED_CONFIDENCE`` when
    the frame is blurred."""
    cap = BLURRED_CONFIDENCE if blurred else 1.0
    return min(res.confidence, cap), [min(c, cap) for c in res.char_confidences]


def is_page(image: np.ndarray, mode: str, detector: TextDetector | None = None) -> bool:
    """Auto mode: a single line is a short, wide strip; anything else is a frame to segment.

    With a detector, a strip is a page when the detector finds more than one line in it, one
    above the other (a scanned strip often holds two lines).
    """
    if mode != "auto":
        return mode == "page"
    h, w = image.shape[:2]
    if not (h <= 160 or w >= 4 * h):
        return True
    if detector is None:
        return False
    lines = [ln for ln in group_lines(detector.detect(to_bgr8(image))) if not ln.vertical]
    centres = sorted(float(ln.quad[:, 1].mean()) for ln in lines if ln.length > 0.2 * w)
    return any(b - a > 0.5 * min(ln.thickness for ln in lines) for a, b in itertools.pairwise(centres))


class PageReader:
    """Reads frames into pages; owns the line cache across frames. Build it from the
    configuration with :func:`edge_ocr.page.build.build_reader`."""

    def __init__(self, recognizer: Recognizer, fixed_region: np.ndarray | None = None,
                 binarizer: str = "sauvola", cache_size: int = 512, analysis_side: int = ANALYSIS_SIDE,
                 detector: TextDetector | None = None, min_confidence: float = 0.0,
                 min_sharpness: float = 0.0) -> None:
        self.recognizer = recognizer
        self.fixed_region = fixed_region
        self.binarizer = binarizer
        self.analysis_side = analysis_side
        self.detector = detector
        self.min_confidence = min_confidence
        self.min_sharpness = min_sharpness
        self._quad: np.ndarray | None = None
        self._made: set[int] = set()
        self._turn: int | None = None  # the last page's quarter turns: tried first on the next frame
        # A fixed camera (the daemon): the turn is voted once per surface (quad and frame size),
        # then kept until its score clearly disagrees; ``votes`` counts the votes run.
        self.fixed_camera = False
        self._turn_key: bytes | None = None
        self.votes = 0
        self.cache: LineCache[LineResult] = LineCache(cache_size)

    def reset(self) -> None:
        """Forget the scene: the steady surface, the page's turn and the line cache. For an image
        that is not the next frame of the same camera (an upload, another file)."""
        self._quad = None
        self._turn = None
        self._turn_key = None
        self.cache.clear()

    def read(self, frame: np.ndarray, debug: dict[str, np.ndarray] | None = None, layout: str = "auto") -> PageResult:
        """Recognise one frame, in any layout :func:`edge_ocr.imageio.to_bgr8` accepts (``layout``
        "yuv420" for an I420 camera frame). ``debug``, if given, receives the intermediate pictures."""
        frame = to_bgr8(frame, layout)
        if frame.shape[0] < 16 or frame.shape[1] < 16:
            raise ImageError(f"frame too small to hold text: {frame.shape[1]}×{frame.shape[0]} pixels")
        t = {"start": time.perf_counter()}
        self._made = set()

        def lap(name: str) -> None:
            t[name] = time.perf_counter()

        quad, detected = locate_surface(frame, self.fixed_region)
        quad = self._quad = steady_quad(self._quad, quad, frame.shape)
        ink = ink_gray(frame)
        rotation, ruled = 0, None
        if self.detector is None:
            surface = rectify(ink, quad, self.analysis_side, detected)
            lap("surface")
            cleaned = clean(surface.image, self.binarizer)
            lap("clean")
            regions = find_lines(cleaned.mask)
            surface_boxes = [r.box for r in regions]
            blocks, vertical = [r.block for r in regions], [False] * len(regions)
            names = ["surface", "clean", "split", "recognise", "sharpness"]
        else:
            surface = rectify(frame, quad, self.detector.max_side, detected)
            lap("surface")
            seen, plain, ruled = without_rules(frame, surface)  # a grid or ruled table would join rows
            found = self._detect(self.detector, seen, quad, detected, plain)
            lap("detect")
            lines, k = self._orient(ink, surface, found)
            lap("orient")
            rotation = 90 * k
            surface_boxes = [ln.quad for ln in lines]
            blocks, vertical = [ln.block for ln in lines], [ln.vertical for ln in lines]
            names = ["surface", "detect", "orient", "split", "recognise", "sharpness"]
        boxes = [surface.points_to_frame(b) for b in surface_boxes]
        # From the full-resolution frame, unflattened: the recogniser stretches each line's
        # contrast itself, and dividing by the analysis surface's light measured worse
        # (page CER 0.066 against 0.051 on the synthesised scenes).
        crops = [self._crop(ink, box, v) for box, v in zip(boxes, vertical)]
        lap("split")
        # A diagram's circles, triangles and boxes are found as text and read as 'G' or 'O△口'
        # (edge_ocr/vision/figures.py): such lines are not read at all.
        drawn = {i for i, (c, box, v) in enumerate(zip(crops, boxes, vertical))
                 if is_drawing(crop_quad(ink, box) if v else c, None if ruled is None else crop_quad(ruled, box))}
        results = self._recognize([c for i, c in enumerate(crops) if i not in drawn])
        lap("recognise")
        heights = [float(np.linalg.norm(np.subtract(b[3], b[0]))) for b in boxes]
        median = float(np.median(heights)) if heights else 1.0
        read = iter(results)
        by_line = [None if i in drawn else next(read) for i in range(len(crops))]
        kept = [(i, res) for i, res in enumerate(by_line) if res is not None and res.text.strip()
                and res.confidence >= self.min_confidence and not is_clutter(res, heights[i] / median)
                and not (len(res.text.strip()) <= CLUTTER_CHARS and is_stroke(crops[i]))]
        # Judged on the lines kept: a board with no text (blank, erased) is never "blurred".
        sharpness, blurred = self.judge(ink, [boxes[i] for i, _ in kept])
        lap("sharpness")
        out = []
        for i, res in kept:
            conf, chars = capped(res, blurred)
            out.append(PageLine(res.text, conf, rounding.pixels(boxes[i]), blocks[i], chars,
                                id(res) not in self._made, vertical[i],
                                surface_box=rounding.pixels(surface_boxes[i])))
        if debug is not None:
            debug.update(surface=rectify(frame, quad, self.analysis_side).image,
                         lines=draw_lines(frame, surface.quad, [ln.box for ln in out]))
            if self.detector is None:
                debug.update(flattened=cleaned.flat, binarised=cleaned.mask)
        prev, timings = t["start"], {}
        for n in names:
            timings[n] = (t[n] - prev) * 1000
            prev = t[n]
        timings["total"] = (t["sharpness"] - t["start"]) * 1000
        h, w = frame.shape[:2]
        return PageResult(out, rounding.pixels(surface.quad), surface.detected, (w, h),
                          self.recognizer.contract.id, timings, rotation,
                          self.detector.contract.id if self.detector else "classical",
                          sharpness=sharpness, blurred=blurred, surface_image=surface.image)

    def read_line(self, image: np.ndarray) -> tuple[PageLine, float | None, bool]:
        """``image`` read as one line (a strip): the line, and its sharpness judged on the whole
        strip and whether it is blurred (its confidences then capped, as in :meth:`read`)."""
        image = to_bgr8(image)
        res = self.recognizer.recognize([image])[0]
        sharpness, blurred = self.judge(ink_gray(image), [frame_quad(image)])
        return PageLine.whole(image, res.text, *capped(res, blurred)), sharpness, blurred

    def judge(self, ink: np.ndarray, boxes: list[np.ndarray]) -> tuple[float | None, bool]:
        """The sharpness of the text in ``ink`` (grey) within ``boxes`` (frame pixels), and
        whether it is below ``min_sharpness`` (blurred)."""
        sharpness = text_sharpness(ink, boxes)
        return sharpness, sharpness is not None and sharpness < self.min_sharpness

    def _recognize(self, crops: list[np.ndarray]) -> list[LineResult]:
        """Results for ``crops`` through the line cache; those recognised now are remembered in
        ``_made`` (by identity) until the next frame, so the page can say which lines are cached."""
        prepared = [self.recognizer.prepare(c) for c in crops]
        results: list[LineResult | None] = [self.cache.lookup(line) for line in prepared]
        todo = [i for i, r in enumerate(results) if r is None]
        for i, res in zip(todo, self.recognizer.recognize_prepared([prepared[i] for i in todo])):
            results[i] = res
            self._made.add(id(res))
            self.cache.store(prepared[i], res)
        return [r for r in results if r is not None]

    @staticmethod
    def _detect(detector: TextDetector, frame: np.ndarray, quad: np.ndarray, detected: bool,
                surface: Surface) -> list[TextBox]:
        """Text boxes in ``surface`` pixels, detected on the surface at the frame's own resolution
        (the scale-aware pass needs the pixels the shrunk surface has lost)."""
        if not detector.small_text:
            return detector.detect(surface.image)
        whole = not detected and np.allclose(quad, frame_quad(frame))
        full = frame if whole else rectify(frame, quad, None, detected).image
        sx = (surface.image.shape[1] - 1) / max(1, full.shape[1] - 1)
        sy = (surface.image.shape[0] - 1) / max(1, full.shape[0] - 1)
        return [TextBox(b.quad * np.float32([sx, sy]), b.score) for b in detector.detect(full)]

    @staticmethod
    def _crop(ink: np.ndarray, box: np.ndarray, vertical: bool) -> np.ndarray:
        crop = crop_quad(ink, box)
        return column_to_row(crop) if vertical else crop

    @staticmethod
    def _layout(found: list, k: int, size: tuple[int, int]) -> list[TextLine]:
        """``found`` boxes (surface pixels, surface of ``size`` (w, h)) grouped into lines in the
        reading order of the page turned by ``k`` quarter turns; quads back in surface pixels."""
        turned = [type(b)(rotate_points(b.quad, k, size), b.score) for b in found]
        lines = order_lines(drop_specks(group_lines(turned)))
        for ln in lines:
            ln.quad = unrotate_points(ln.quad, k, size)
        return lines

    def _score(self, ink: np.ndarray, surface: Surface, lines: list[TextLine]) -> float:
        """The vote's score for ``lines`` laid out one way up: mean character confidence over a
        few long lines, times the share of the characters expected (read the wrong way, few come
        out and those few are unsure). Through the cache: the chosen way's crops are the page's
        own (recognised once), and on an unchanged board every way's crops are hits."""
        sample = sorted(lines, key=lambda ln: -ln.length)[:ORIENTATION_SAMPLE]
        crops = [self._crop(ink, surface.points_to_frame(ln.quad), ln.vertical) for ln in sample]
        chars = [c for r in self._recognize(crops) for c in r.char_confidences]
        return float(np.sum(chars)) / max(len(chars), 1) * min(1.0, len(chars) / (2.0 * max(1, len(sample))))

    def _orient(self, ink: np.ndarray, surface: Surface, found: list) -> tuple[list[TextLine], int]:
        """Lines in reading order (quads in surface pixels, corners in upright text order) and
        the page's quarter turns ``k`` (see ``edge_ocr.vision.orientation``). A ``fixed_camera``
        keeps the turn voted for this surface while it reads at least ``ORIENTATION_KEEP``."""
        size = (surface.image.shape[1], surface.image.shape[0])
        if not found:
            return [], 0
        key = np.asarray(surface.quad, np.float32).tobytes() + repr(ink.shape).encode()
        if self.fixed_camera and self._turn is not None and key == self._turn_key:
            lines = self._layout(found, self._turn, size)
            if self._score(ink, surface, lines) >= ORIENTATION_KEEP:
                return lines, self._turn
        self.votes += 1
        tall = sum(max(b.size) for b in found if b.size[1] > 1.3 * b.size[0])
        wide = sum(max(b.size) for b in found if b.size[0] >= 1.3 * b.size[1])
        candidates = sorted((1, 3, 0) if tall > wide else (0, 2), key=lambda k: k != self._turn)
        options: dict[int, list[TextLine]] = {}
        best_k, best = candidates[0], -1.0
        for k in candidates:
            lines = options[k] = self._layout(found, k, size)
            score = self._score(ink, surface, lines)
            if score > best + 0.02:
                best_k, best = k, score
            if best >= ORIENTATION_SURE:
                break  # the last page's way up (tried first) reads surely: a camera does not turn
        self._turn, self._turn_key = best_k, key
        return options[best_k], best_k
