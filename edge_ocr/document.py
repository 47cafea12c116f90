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


def diff(old: list[PageLine], new: list[PageLine]) -> list[LineEvent]:
    """Events that turn ``old`` into ``new``: removed first, then changed and added in reading order."""
    old_of = {j: i for i, j in match_boxes([o.box for o in old], [n.box for n in new], MATCH_IOU)}
    used = set(old_of.values())
    events = [LineEvent("removed", i, o.text, o.text, o.box, o.confidence) for i, o in enumerate(old) if i not in used]
    for j, n in enumerate(new):
        if j not in old_of:
            events.append(LineEvent("added", j, n.text, None, n.box, n.confidence))
        elif old[old_of[j]].text != n.text:
            events.append(LineEvent("changed", j, n.text, old[old_of[j]].text, n.box, n.confidence))
    return events
