"""Vision stages on small synthetic inputs with known answers."""

import cv2
import numpy as np
import pytest

from edge_ocr.vision.clean import binarize, clean, flatten, ink_gray
from edge_ocr.vision.lines import crop_line, find_lines
from edge_ocr.vision.surface import find_quad, find_surface, order_corners, rectify, steady_quad


def _board_frame(corners: np.ndarray, size=(960, 540)) -> np.ndarray:
    frame = np.full((size[1], size[0], 3), 60, np.uint8)
    cv2.fillConvexPoly(frame, corners.astype(np.int32), (235, 235, 235))
    return frame


def test_surface_corners_are_found_and_rectified() -> None:
    corners = np.array([[180, 90], [800, 60], [840, 470], [150, 430]], np.float32)
    frame = _board_frame(corners)
    quad, conf = find_quad(frame)
    assert conf > 0.5
    assert np.abs(order_corners(quad) - corners).max() < 8
    s = find_surface(frame)
    assert s.detected
    assert abs(s.image.shape[1] - 660) < 30 and abs(s.image.shape[0] - 375) < 30
    back = s.points_to_frame(np.array([[0, 0], [s.image.shape[1] - 1, s.image.shape[0] - 1]]))
    assert np.abs(back - corners[[0, 2]]).max() < 8


def test_no_board_falls_back_to_whole_frame_and_fixed_region_is_used() -> None:
    flat = np.full((300, 400, 3), 128, np.uint8)
    s = find_surface(flat)
    assert not s.detected and s.image.shape == flat.shape
    fixed = find_surface(flat, fixed_region=np.array([[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]))
    assert abs(fixed.image.shape[1] - 200) <= 2 and abs(fixed.image.shape[0] - 150) <= 2


def test_analysis_surface_is_bounded_and_keeps_thin_strokes() -> None:
    big = np.full((3000, 4000), 240, np.uint8)
    big[1000:1002, 500:3500] = 30  # a 2-px stroke: a quarter of a pixel after shrinking 4×
    quad = np.array([[0, 0], [3999, 0], [3999, 2999], [0, 2999]], np.float32)
    s = rectify(big, quad, max_side=1024)
    assert max(s.image.shape) == 1024
    assert s.image[240:262, 300:700].min() < 215, "area averaging keeps the stroke visible"
    assert np.abs(s.points_to_frame(np.array([[1023, 767]])) - [3999, 2999]).max() < 1


def test_steady_quad_ignores_jitter_but_follows_a_moved_camera() -> None:
    q = np.array([[100, 100], [900, 110], [910, 600], [90, 590]], np.float32)
    assert steady_quad(q, q + 3, (720, 1280)) is q
    moved = q + 40
    assert steady_quad(q, moved, (720, 1280)) is moved
    assert steady_quad(None, q, (720, 1280)) is q


def test_red_marker_stays_as_dark_as_black_ink() -> None:
    img = np.full((20, 40, 3), 250, np.uint8)
    img[5:15, 5:15] = (30, 30, 200)  # red in BGR
    img[5:15, 25:35] = (20, 20, 20)
    g = ink_gray(img)
    assert g[10, 10] < 60 and g[10, 30] < 60
    assert cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[10, 10] > 60, "luminance would have made red faint"


def test_flatten_removes_vignetting_and_sauvola_keeps_strokes_in_shadow() -> None:
    h, w = 200, 400
    light = np.linspace(90, 250, w, dtype=np.float32)[None, :].repeat(h, 0)
    img = light.copy()
    img[90:110, 20:380:40] = light[90:110, 20:380:40] * 0.35  # strokes, in shadow on the left
    flat = flatten(img.astype(np.uint8))
    bg = np.delete(flat, np.s_[85:115], axis=0)
    assert bg.std() < 12 and bg.mean() > 225
    mask = binarize(flat, 31)
    assert mask[100, 20] == 255 and mask[100, 340] == 255
    assert (mask[:80] > 0).mean() < 0.01


def test_light_ruled_lines_are_not_ink_but_text_on_them_is() -> None:
    img = np.full((300, 600, 3), 248, np.uint8)
    for y in range(40, 300, 50):
        cv2.line(img, (0, y), (599, y), (225, 190, 170), 2)  # light blue rule (BGR)
    cv2.putText(img, "ruled text", (40, 138), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (40, 40, 40), 4)
    mask = clean(img).mask
    assert mask[40:42, 300:600].max() == 0 and mask[240:242, :].max() == 0
    assert (mask[100:150] > 0).sum() > 500


def test_lines_columns_reading_order_and_split_of_touching_lines() -> None:
    mask = np.zeros((400, 800), np.uint8)
    rows = (50, 130, 210)
    for x0 in (40, 460):
        for y in rows:
            for k in range(8):  # eight "characters" per line
                cv2.rectangle(mask, (x0 + k * 38, y), (x0 + k * 38 + 28, y + 30), 255, -1)
    lines = find_lines(mask)
    assert len(lines) == 6
    assert [ln.block for ln in lines] == [0, 0, 0, 1, 1, 1]
    ys = [ln.bounds[1] for ln in lines]
    assert ys[:3] == sorted(ys[:3]) and ys[3:] == sorted(ys[3:])
    assert all(ln.bounds[0] < 400 for ln in lines[:3]) and all(ln.bounds[0] > 400 for ln in lines[3:])


def test_slanted_line_is_measured_and_deskewed() -> None:
    mask = np.zeros((300, 700), np.uint8)
    for k in range(12):
        x = 30 + k * 50
        y = int(150 + k * 50 * np.tan(np.radians(4)))
        cv2.rectangle(mask, (x, y - 15), (x + 35, y + 15), 255, -1)
    (line,) = find_lines(mask)
    assert abs(line.angle - 4) < 1.0
    crop = crop_line(mask, line)
    rows_with_ink = (crop > 0).any(axis=1).sum()
    assert rows_with_ink < 0.8 * crop.shape[0] + 30 and crop.shape[1] > 550


@pytest.mark.parametrize("shape", [(0, 0), (1, 1), (1, 1, 3)])
def test_degenerate_masks(shape) -> None:
    mask = np.zeros(shape[:2], np.uint8)
    if mask.size == 0:
        with pytest.raises(ValueError):
            find_lines(mask)
    else:
        assert find_lines(mask) == []
