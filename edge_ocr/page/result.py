"""A page as the product speaks it: typed lines and pages with one JSON shape each
(``to_dict``/``from_dict``), used by the daemon's messages, the API, ``watch`` and the live view.
The JSON shape is ``schemas/page.schema.json``; numbers follow :mod:`edge_ocr.rounding`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge_ocr import rounding
from edge_ocr.vision.surface import frame_quad


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class PageLine:
    text: str
    confidence: float
    box: list[list[float]]  # 4 corners in frame pixels: tl, tr, br, bl
    block: int = 0
    char_confidences: list[float] = field(default_factory=list)
    cached: bool = False
    vertical: bool = False  # a column of vertical writing, read top to bottom
    occluded: bool = False  # something stands in front of it: its text is the last read before
    # The same corners on the rectified surface the line was found on (not published): what the
    # live view draws without mapping frame → surface again.
    surface_box: list[list[float]] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"text": self.text, "confidence": rounding.confidence(self.confidence),
                "box": rounding.pixels(self.box), "block": self.block,
                "char_confidences": rounding.confidences(self.char_confidences), "cached": self.cached,
                "vertical": self.vertical, "occluded": self.occluded}

    @classmethod
    def whole(cls, image: np.ndarray, text: str, confidence: float, char_confidences: list[float]) -> PageLine:
        """A line that is the whole ``image`` (line mode): its box is the image's corners."""
        return cls(text, confidence, frame_quad(image).tolist(), 0, list(char_confidences))

    @classmethod
    def from_dict(cls, doc: object, index: int = 0) -> PageLine:
        """A line from its JSON; only ``text`` and ``confidence`` are required (what a person
        needs to read it). Raises ValueError naming line ``index + 1`` when they are missing."""
        if not (isinstance(doc, dict) and isinstance(doc.get("text"), str) and _number(doc.get("confidence"))):
            raise ValueError(f"line {index + 1} has no text and confidence: not an edge-ocr page")
        box = doc.get("box")
        return cls(doc["text"], float(doc["confidence"]), box if isinstance(box, list) else [],
                   doc.get("block") if isinstance(doc.get("block"), int) else 0,
                   [float(c) for c in doc.get("char_confidences") or [] if _number(c)],
                   doc.get("cached") is True, doc.get("vertical") is True, doc.get("occluded") is True)


@dataclass
class PageResult:
    lines: list[PageLine]
    surface: list[list[float]]
    surface_detected: bool
    frame_size: tuple[int, int]
    model: str
    timings_ms: dict[str, float]
    rotation: int = 0  # degrees counter-clockwise the frame was turned to read it upright: 0, 90, 180, 270
    detector: str = "classical"
    # The rectified surface the lines were found on (not published): the live view's picture.
    surface_image: np.ndarray | None = field(default=None, repr=False, compare=False)
    # How much fine detail the text keeps (edge_ocr.vision.sharpness: 0 smeared … ~0.7 sharp; None:
    # no text to judge) and whether that is below vision.min_sharpness: a blurred frame's text is
    # unreliable, its confidences are capped, and the daemon does not publish it.
    sharpness: float | None = None
    blurred: bool = False

    @property
    def text(self) -> str:
        return "\n".join(ln.text for ln in self.lines)

    @property
    def text_found(self) -> bool:
        """Whether any text was read: an image with none (blank, a diagram, text too small or too
        blurred for the detector) is said as such, not as an empty success."""
        return any(ln.text.strip() for ln in self.lines)

    def to_dict(self) -> dict:
        return {"text": self.text, "lines": [ln.to_dict() for ln in self.lines],
                "surface": rounding.pixels(self.surface), "surface_detected": self.surface_detected,
                "frame_size": list(self.frame_size), "model": self.model, "detector": self.detector,
                "rotation": self.rotation, "timings_ms": {k: rounding.ms(v) for k, v in self.timings_ms.items()},
                "sharpness": None if self.sharpness is None else rounding.confidence(self.sharpness),
                "blurred": self.blurred, "text_found": self.text_found}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, doc: object) -> PageResult:
        """A page from its JSON (a ``page`` message, an API answer). Lenient about what a reader
        does not need (missing timings, surface…), strict about the lines; raises ValueError
        saying why ``doc`` is not an edge-ocr page."""
        if not isinstance(doc, dict):
            raise ValueError(f"{json_kind(doc)}, not an edge-ocr page message")
        if not isinstance(doc.get("lines"), list):
            raise ValueError("no 'lines' list: not an edge-ocr page")
        lines = [PageLine.from_dict(ln, i) for i, ln in enumerate(doc["lines"])]
        timings = doc.get("timings_ms") if isinstance(doc.get("timings_ms"), dict) else {}
        size = doc.get("frame_size") if isinstance(doc.get("frame_size"), list) else [0, 0]
        return cls(lines, doc.get("surface") or [], doc.get("surface_detected") is True, tuple(size),
                   str(doc.get("model", "")), {k: float(v) for k, v in timings.items() if _number(v)},
                   doc.get("rotation") if isinstance(doc.get("rotation"), int) else 0, str(doc.get("detector", "")),
                   sharpness=float(doc["sharpness"]) if _number(doc.get("sharpness")) else None,
                   blurred=doc.get("blurred") is True)


NO_TEXT = ("no text found in the image (blank, only drawings, or text too small or too blurred to "
           "detect): text and lines are empty")


def found_fields(lines: list[dict]) -> dict:
    """``text_found``, and a ``notice`` when it is false: an image with no text is said as such,
    never an empty answer that looks like a confident one."""
    found = any(ln["text"].strip() for ln in lines)
    return {"text_found": found} if found else {"text_found": False, "notice": NO_TEXT}


def json_kind(value: object) -> str:
    """What kind of JSON value ``value`` is, for messages that reject it."""
    return {dict: "a JSON object", list: "a JSON list", str: "a JSON string", bool: "a JSON boolean",
            type(None): "JSON null"}.get(type(value), "a JSON number")


def draw_lines(frame: np.ndarray, quad: np.ndarray, boxes: list[list[list[float]]]) -> np.ndarray:
    """The frame with the surface (green) and line boxes (red, numbered in reading order)."""
    vis = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame[:, :, :3].copy()
    thick = max(2, round(max(vis.shape[:2]) / 600))
    cv2.polylines(vis, [np.asarray(quad, np.int32)], True, (0, 200, 0), thick)
    for i, box in enumerate(boxes):
        pts = np.asarray(box, np.int32)
        cv2.polylines(vis, [pts], True, (0, 0, 255), thick)
        corner = (int(pts[0][0]), int(pts[0][1]))
        cv2.putText(vis, str(i + 1), corner, cv2.FONT_HERSHEY_SIMPLEX, thick * 0.4, (0, 0, 255), thick)
    return vis


def live_picture(page: PageResult) -> np.ndarray:
    """The surface the page was read on with its numbered line boxes (the web page's live view)."""
    boxes = [ln.surface_box for ln in page.lines if ln.surface_box is not None]
    return draw_lines(page.surface_image, frame_quad(page.surface_image), boxes)
