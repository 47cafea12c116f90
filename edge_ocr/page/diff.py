"""What changed on the board: lines added, removed and changed between two pages.

Lines are matched by place, not by text: the camera does not move, so a line at the same
place with other text was edited, a line at a new place was added. Boxes are compared by
overlap (intersection over union of their polygons), greedily from the best pair down.

Every changed frame is read afresh (see ``edge_ocr.page.cache``), and a re-read of an unchanged line
can come out differently: rendered lines moved by a pixel, re-exposed and re-noised read
differently 6 % of the time, nearly all in spacing or ℃/°C (``tests/line_pairs.py``); real
handwritten dev lines 28 % of the time, mostly in characters the recogniser is unsure of. So a
line's text changes only on a *sure difference*: once spacing and compatibility forms (℃ and
°C, fullwidth and ASCII) are set aside, some differing stretch whose newly read characters (or,
for a deletion, the old ones) all have confidence ≥ ``SURE``. Measured (re-reads of the same
pixels vs 227 rendered one-character edits): real lines 28 % → 2.1 % spurious changes, rendered
0-1 of 227, and no edit held back that a plain text comparison would have let through.
"""

from __future__ import annotations

import dataclasses
import difflib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge_ocr import rounding
from edge_ocr.page.result import PageLine, json_kind

MATCH_IOU = 0.3
SURE = 0.85  # character confidence that makes a difference in reading a change on the board


@dataclass(frozen=True)
class LineEvent:
    kind: str  # added | removed | changed
    index: int  # the line's position in the new page (added, changed) or the old one (removed)
    text: str
    previous: str | None  # the old text (changed, removed)
    box: list[list[float]]
    confidence: float

    KINDS = ("added", "removed", "changed")

    @classmethod
    def from_dict(cls, doc: object) -> LineEvent:
        """An event from its JSON (an ``events`` message); raises ValueError saying why ``doc``
        is not one. Only ``event``, ``index`` and ``text`` are required."""
        if not isinstance(doc, dict):
            raise ValueError(f"{json_kind(doc)}, not an edge-ocr event message")
        if doc.get("event") not in cls.KINDS or not isinstance(doc.get("index"), int) \
                or not isinstance(doc.get("text"), str):
            raise ValueError("no event, index and text: not an edge-ocr line event")
        conf = doc.get("confidence")
        return cls(doc["event"], doc["index"], doc["text"], doc.get("previous"),
                   doc.get("box") if isinstance(doc.get("box"), list) else [],
                   float(conf) if isinstance(conf, int | float) and not isinstance(conf, bool) else 0.0)

    def to_dict(self) -> dict:
        return {"event": self.kind, "index": self.index, "text": self.text, "previous": self.previous,
                "box": rounding.pixels(self.box), "confidence": rounding.confidence(self.confidence)}


def _hulls(a: list[list[float]], b: list[list[float]]) -> tuple[np.ndarray, np.ndarray, float]:
    pa, pb = (cv2.convexHull(np.asarray(p, np.float32).reshape(-1, 2)) for p in (a, b))
    inter, _ = cv2.intersectConvexConvex(pa, pb)
    return pa, pb, float(inter)


def box_iou(a: list[list[float]], b: list[list[float]]) -> float:
    pa, pb, inter = _hulls(a, b)
    union = cv2.contourArea(pa) + cv2.contourArea(pb) - inter
    return inter / union if union > 0 else 0.0


def box_inside(part: list[list[float]], whole: list[list[float]]) -> float:
    """The share of ``part``'s area that lies inside ``whole`` (0..1)."""
    pa, _, inter = _hulls(part, whole)
    area = cv2.contourArea(pa)
    return inter / area if area > 0 else 0.0


def match_boxes(a: list, b: list, threshold: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of two lists of boxes by IoU, best pair first: (i in a, j in b)."""
    pairs = sorted(((box_iou(p, q), i, j) for i, p in enumerate(a) for j, q in enumerate(b)), reverse=True)
    used_a, used_b, out = set(), set(), []
    for iou, i, j in pairs:
        if iou < threshold:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((i, j))
    return out


def comparable(text: str) -> str:
    """``text`` as compared between frames: NFKC-normalised, whitespace removed."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def _char_confidences(line: PageLine) -> list[float]:
    if len(line.char_confidences) == len(line.text):
        return line.char_confidences
    return [line.confidence] * len(line.text)  # a charset with multi-character symbols


def sure_difference(old: PageLine, new: PageLine) -> bool:
    """Whether ``new`` reads differently from ``old`` surely enough to say the board changed
    (see the module docstring)."""
    if comparable(old.text) == comparable(new.text):
        return False
    co, cn = _char_confidences(old), _char_confidences(new)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old.text, new.text, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        before = [c for ch, c in zip(old.text[i1:i2], co[i1:i2]) if not ch.isspace()]
        after = [c for ch, c in zip(new.text[j1:j2], cn[j1:j2]) if not ch.isspace()]
        judged = after or before  # what is there now; for a deletion, what was there
        if judged and min(judged) >= SURE:
            return True
    return False


def reconcile(old: list[PageLine], new: list[PageLine]) -> tuple[list[PageLine], list[LineEvent]]:
    """The new page as published and the events that turn ``old`` into it, with one matching of
    places: a line that shows no :func:`sure_difference` from the old line at its place keeps
    the old line's text and confidences (the published page does not flicker); removed events
    first, then changed and added in reading order."""
    lines, events, _ = reconcile_board(old, new, lambda box: "clean")
    return lines, events


Lines = list[PageLine]
PIECE = 0.6  # share of a piece's box inside a whole line's box for it to be a piece of that line


def _joined(pieces: Lines) -> PageLine:
    """Pieces of one line read as one: texts joined by a space along the line (left to right; top
    to bottom for vertical writing), each character keeping its confidence."""
    axis = 1 if pieces[0].vertical else 0
    pieces = sorted(pieces, key=lambda p: float(np.mean([pt[axis] for pt in p.box])))
    chars: list[float] = []
    for k, p in enumerate(pieces):
        chars += ([1.0] if k else []) + _char_confidences(p)
    return dataclasses.replace(pieces[0], text=" ".join(p.text for p in pieces), char_confidences=chars,
                               confidence=min(p.confidence for p in pieces))


def regroup(old: Lines, new: Lines) -> Lines:
    """``new`` with lines the detector cut or joined differently from the frame before put back
    as they were, when they read the same: a line found as two pieces (a gap, a glare) or two
    pieces found as one line is no edit of the board, and must not become ``added``, ``changed``
    or ``removed`` events. Pieces of a line are the lines whose boxes lie (``PIECE``) inside its
    box. New pieces of an old line always join at its place (an edit there is then one
    ``changed`` line); old pieces inside one new line stay when the new line reads as they did
    joined (no :func:`sure_difference`)."""
    new = list(new)
    for o in old:  # one old line, several new pieces: one line at the old line's place again
        idx = [j for j, n in enumerate(new) if box_inside(n.box, o.box) >= PIECE]
        if len(idx) > 1:
            new[idx[0]] = dataclasses.replace(_joined([new[j] for j in idx]), box=o.box, surface_box=o.surface_box)
            new = [n for j, n in enumerate(new) if j not in idx[1:]]
    out: Lines = []
    for n in new:  # several old pieces, one new line: the old pieces stay as they were
        pieces = [o for o in old if box_inside(o.box, n.box) >= PIECE]
        if len(pieces) > 1 and not sure_difference(_joined(pieces), n):
            out += pieces
        else:
            out.append(n)
    return out


def reconcile_board(old: Lines, new: Lines,
                    state: Callable[[list[list[float]]], str]) -> tuple[Lines, list[LineEvent], Lines]:
    """:func:`reconcile` for a board a person may stand in front of. ``state(box)`` says how a
    line's place looks now: ``clean``; ``near`` (its own cells clean, something next to them not);
    ``settling`` or ``occluded`` (see :meth:`edge_ocr.daemon.gate.Gate.state`). An old line not
    found again is ``removed`` only where its own cells are clean (elsewhere it stays on the page,
    ``occluded`` when something stands in front of it); a line reads ``changed`` only where it is
    clean; a new line is held back (the third list) until it and its surroundings are clean, so a
    half-uncovered line is never published. Returns (page lines, events, held-back lines)."""
    new = regroup(old, new)
    old_of = {j: i for i, j in match_boxes([o.box for o in old], [n.box for n in new], MATCH_IOU)}
    used = set(old_of.values())
    events, kept = [], []
    for i, o in enumerate(old):
        if i in used:
            continue
        place = state(o.box)
        if place in ("clean", "near"):
            events.append(LineEvent("removed", i, o.text, o.text, o.box, o.confidence))
        else:
            kept.append(dataclasses.replace(o, occluded=place == "occluded"))
    lines, held = [], []
    for j, n in enumerate(new):
        place = state(n.box)
        n = dataclasses.replace(n, occluded=place == "occluded")
        o = old[old_of[j]] if j in old_of else None
        if o is None:
            if place != "clean":
                held.append(n)
                continue
            events.append(LineEvent("added", len(lines), n.text, None, n.box, n.confidence))
        elif place == "clean" and sure_difference(o, n):
            events.append(LineEvent("changed", len(lines), n.text, o.text, n.box, n.confidence))
        elif o.text != n.text:
            n = dataclasses.replace(n, text=o.text, confidence=o.confidence, char_confidences=o.char_confidences)
        lines.append(n)
    return lines + kept, events, held
