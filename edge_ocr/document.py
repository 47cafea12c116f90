"""What changed on the board: lines added, removed and changed between two pages.

Lines are matched by place, not by text: the camera does not move, so a line at the same
place with other text was edited, a line at a new place was added. Boxes are compared by
overlap (intersection over union of their polygons), greedily from the best pair down.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_ocr.page import PageLine

MATCH_IOU = 0.3


@dataclass(frozen=True)
class LineEvent:
    kind: str  # added | removed | changed
    index: int  # the line's position in the new page (added, changed) or the old one (removed)
    text: str
    previous: str | None  # the old text (changed, removed)
    box: list[list[float]]
    confidence: float

    def to_dict(self) -> dict:
        return {"event": self.kind, "index": self.index, "text": self.text, "previous": self.previous,
                "box": self.box, "confidence": round(self.confidence, 4)}


def box_iou(a: list[list[float]], b: list[list[float]]) -> float:
    pa, pb = (cv2.convexHull(np.asarray(p, np.float32).reshape(-1, 2)) for p in (a, b))
    inter, _ = cv2.intersectConvexConvex(pa, pb)
    union = cv2.contourArea(pa) + cv2.contourArea(pb) - inter
    return float(inter / union) if union > 0 else 0.0


def diff(old: list[PageLine], new: list[PageLine]) -> list[LineEvent]:
    """Events that turn ``old`` into ``new``: removed first, then changed and added in reading order."""
    pairs = sorted(((box_iou(o.box, n.box), i, j) for i, o in enumerate(old) for j, n in enumerate(new)),
                   reverse=True)
    old_of: dict[int, int] = {}
    used: set[int] = set()
    for iou, i, j in pairs:
        if iou < MATCH_IOU:
            break
        if i not in used and j not in old_of:
            used.add(i)
            old_of[j] = i
    events = [LineEvent("removed", i, o.text, o.text, o.box, o.confidence) for i, o in enumerate(old) if i not in used]
    for j, n in enumerate(new):
        if j not in old_of:
            events.append(LineEvent("added", j, n.text, None, n.box, n.confidence))
        elif old[old_of[j]].text != n.text:
            events.append(LineEvent("changed", j, n.text, old[old_of[j]].text, n.box, n.confidence))
    return events
