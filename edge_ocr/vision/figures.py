"""Drawings that are not text: a line box whose ink is only circles, triangles, boxes and other
simple outlines drawn with a thin stroke.

The DB detector finds a diagram's shapes as text and the recogniser reads them: a circle as
``G`` at 0.978, a triangle, a circle and a box as ``O△口`` (issue 27). A written character is
small against its stroke (a marker's letter or a printed glyph: 5 to 12 stroke widths across,
and its outline has many corners); a drawn figure is large against its stroke (a 220-px circle
in a 5-px stroke: 44) and its outline is an ellipse or a polygon of a few corners. A line is a
drawing when every component of its ink that is of any size is such a figure or a thin simple
stroke (a line, an arrow, an axis with its ticks): text beside or inside a figure keeps the line. A box whose
ink lies mostly on long straight rules (an axis, a number line read as ``1—————>``, a tick
crossing one read as ``十``) is a drawing too. A reading of one or two characters from a box
whose ink is mostly one such thin stroke (the edge of a diagram's box) is dropped too
(:func:`is_stroke`).
"""

from __future__ import annotations

import cv2
import numpy as np

FIGURE_SPAN = 16.0  # a figure's smaller side is at least this many stroke widths
FIGURE_CORNERS = 8  # its outline simplified to 2 % of its length has at most this many corners
RULED = 0.5  # a line box with this share of its ink on long rules is a drawing (an axis, a tick on one)
CONNECTOR_SHARE = 0.8  # is_stroke: a short reading's box with this share of its ink in connectors
SUBSTANTIAL = 0.1  # components smaller than this share of the crop's height are specks, not judged


def ink_mask(crop: np.ndarray) -> np.ndarray:
    """The ink of a line crop (0/255) by Otsu's threshold: the darker side, or the lighter where
    the darker covers most of the crop (chalk on a blackboard: the board is not a stroke); all 0
    when the crop is flat."""
    if crop.ndim == 3:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    if int(crop.max()) - int(crop.min()) < 40:
        return np.zeros(crop.shape, np.uint8)
    _, mask = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    return cv2.bitwise_not(mask) if cv2.countNonZero(mask) > mask.size // 2 else mask


def figure_kind(component: np.ndarray) -> str:
    """What one connected component (0/255 mask cut to its bounding box) is: "figure" (a thin,
    simple outline large both ways: a circle, a triangle, a box), "connector" (a thin, simple
    stroke long one way: a line, an arrow) or "ink" (anything else, text among it)."""
    h, w = component.shape
    contours, _ = cv2.findContours(np.pad(component, 1), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    # A thin stroke's outline runs along both its sides: its width is twice its area over its
    # outline's length (the widest point, where an arrow's head meets, would say 14 px for 5).
    stroke = 2.0 * cv2.countNonZero(component) / max(1.0, sum(cv2.arcLength(c, True) for c in contours))
    if max(h, w) < FIGURE_SPAN * stroke:
        return "ink"
    outline = max(contours, key=cv2.contourArea)
    corners = cv2.approxPolyDP(outline, 0.02 * cv2.arcLength(outline, True), True)
    if len(corners) > FIGURE_CORNERS:
        return "ink"
    return "figure" if min(h, w) >= FIGURE_SPAN * stroke else "connector"


def kind_areas(mask: np.ndarray) -> dict[str, int]:
    """Ink pixels per :func:`figure_kind` of the components of ``mask`` (0/255) that are of any
    size (the longer side at least :data:`SUBSTANTIAL` of its height); kinds absent are left out."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, 8, cv2.CV_32S)
    least = SUBSTANTIAL * mask.shape[0]
    areas: dict[str, int] = {}
    for k in range(1, n):
        x, y, w, h, size = (int(v) for v in stats[k, :5])
        if max(w, h) >= least:
            kind = figure_kind(((labels[y : y + h, x : x + w] == k) * 255).astype(np.uint8))
            areas[kind] = areas.get(kind, 0) + size
    return areas


def is_stroke(crop: np.ndarray) -> bool:
    """Whether most of a line crop's ink (:data:`CONNECTOR_SHARE`) is connectors, with no figure:
    one long straight stroke and the cut ends of others, as the edge of a diagram's box that the
    fine pass found by itself (read as '一' at 0.92, a corner as '7'). A connector is at least
    :data:`FIGURE_SPAN` stroke widths long, longer than a written '1' or '一' (5-12). Only for a
    reading of one or two characters: a line of text over a ruled line holds both."""
    areas = kind_areas(ink_mask(crop))
    total = sum(areas.values())
    return total > 0 and "figure" not in areas and areas.get("connector", 0) >= CONNECTOR_SHARE * total


def is_drawing(crop: np.ndarray, ruled: np.ndarray | None = None) -> bool:
    """Whether a line crop (grey or BGR, upright) holds only drawn figures and no text; ``ruled``
    (the same crop of the rules' mask, edge_ocr.vision.clean.without_rules) marks long straight
    rules: a box whose ink is mostly rule is an axis, a number line or a tick on one."""
    mask = ink_mask(crop)
    if ruled is not None and mask.any():
        on_rules = cv2.countNonZero(cv2.bitwise_and(mask, ruled))
        if on_rules >= RULED * cv2.countNonZero(mask):
            return True
    kinds = kind_areas(mask).keys()
    # Beside a figure connectors are its arrows; alone, an axis with its ticks, or a rule: a
    # connector is FIGURE_SPAN stroke widths long, longer than a written '1' or '一' (5-12).
    return bool(kinds) and kinds <= {"figure", "connector"}
