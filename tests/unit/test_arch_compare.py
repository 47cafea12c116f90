"""`make arm64-check` judges the aarch64 result against x86's by what a reader notices
(scripts/arch_compare.py): the 1.2 px by which the learned detector's boxes moved on the sample
board between the two architectures passes; a changed text, a lost line or a box moved by half
a line fails. The boxes and texts are the sample video's ground truth (samples/board.json)."""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest

from edge_ocr.paths import ROOT

spec = importlib.util.spec_from_file_location("arch_compare", ROOT / "scripts" / "arch_compare.py")
arch_compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(arch_compare)

TRUTH = json.loads((ROOT / "samples" / "board.json").read_text(encoding="utf-8"))["lines"]


def result() -> dict:
    """A `recognize --json` document: two sample lines and the sample board read exactly."""
    lines = [{"text": t["text"], "confidence": 0.99, "box": t["box"]} for t in TRUTH]
    return {"runtime": "litert", "lines": [
        {"file": "samples/lines/line_00.png", "mode": "line", "text": "10/3/2012", "confidence": 0.99},
        {"file": "samples/lines/line_01.png", "mode": "line", "text": "勾股定理", "confidence": 0.98},
        {"file": "board.png", "mode": "page", "text": "\n".join(t["text"] for t in TRUTH), "lines": lines}]}


def shifted(doc: dict, line: int, dx: float) -> dict:
    out = copy.deepcopy(doc)
    out["lines"][2]["lines"][line]["box"] = [[x + dx, y] for x, y in doc["lines"][2]["lines"][line]["box"]]
    return out


def test_the_truth_boxes_are_lines_of_some_height() -> None:
    heights = [arch_compare.line_height(t["box"]) for t in TRUTH]
    assert all(30 < h < 80 for h in heights), heights  # so 1.2 px and half a line are far apart


def test_identical_results_are_the_same() -> None:
    assert arch_compare.compare(result(), result())[0]


def test_boxes_moved_by_the_measured_1_2_px_pass() -> None:
    other = result()
    for i in range(len(TRUTH)):
        other = shifted(other, i, 1.2)
    ok, report = arch_compare.compare(result(), other)
    assert ok, report


def test_a_box_moved_by_half_a_line_fails() -> None:
    height = arch_compare.line_height(TRUTH[2]["box"])
    ok, report = arch_compare.compare(result(), shifted(result(), 2, height / 2))
    assert not ok
    assert any(r.startswith("DIFF  board.png") for r in report)


def test_a_box_just_past_a_tenth_of_its_line_fails() -> None:
    height = arch_compare.line_height(TRUTH[0]["box"])
    assert arch_compare.compare(result(), shifted(result(), 0, 0.09 * height))[0]
    assert not arch_compare.compare(result(), shifted(result(), 0, 0.11 * height))[0]


def test_a_sample_line_with_another_text_fails() -> None:
    other = result()
    other["lines"][1]["text"] = "勾股定埋"
    ok, report = arch_compare.compare(result(), other)
    assert not ok
    assert "DIFF  samples/lines/line_01.png: '勾股定理' vs '勾股定埋'" in report


def test_one_near_tie_character_on_the_board_passes_but_a_changed_line_fails() -> None:
    one = result()
    one["lines"][2]["lines"][2]["text"] = TRUTH[2]["text"].replace("F = ma", "F = mа")  # Cyrillic а
    assert arch_compare.compare(result(), one)[0]
    changed = result()
    changed["lines"][2]["lines"][3]["text"] = "Quiz on Monday at 11:45"
    assert not arch_compare.compare(result(), changed)[0]


@pytest.mark.parametrize("drop", [0, 4])
def test_a_line_lost_on_one_side_fails(drop: int) -> None:
    other = result()
    del other["lines"][2]["lines"][drop]
    assert not arch_compare.compare(result(), other)[0]


def test_results_over_other_inputs_fail() -> None:
    other = result()
    other["lines"][0]["file"] = "samples/lines/line_09.png"
    assert not arch_compare.compare(result(), other)[0]
