"""Page diff: lines matched by place; same place with other text is a change."""

from edge_ocr.page.diff import reconcile, sure_difference
from edge_ocr.page.result import PageLine


def _line(text: str, y: float, x: float = 100.0) -> PageLine:
    return PageLine(text, 0.9, [[x, y], [x + 400, y], [x + 400, y + 40], [x, y + 40]], 0)


def test_added_removed_changed_and_unchanged() -> None:
    old = [_line("F = ma", 100), _line("homework p.42", 200), _line("quiz friday", 300)]
    new = [_line("F = ma", 102), _line("homework p.43", 201), _line("read chapter 7", 400)]
    events = reconcile(old, new)[1]
    kinds = sorted((e.kind, e.text, e.previous) for e in events)
    assert kinds == [("added", "read chapter 7", None), ("changed", "homework p.43", "homework p.42"),
                     ("removed", "quiz friday", "quiz friday")]
    assert reconcile(new, new)[1] == []
    assert [e.kind for e in reconcile([], new)[1]] == ["added"] * 3
    assert {e.index for e in reconcile(old, [])[1]} == {0, 1, 2}


def test_same_text_elsewhere_is_a_move_not_a_change() -> None:
    events = reconcile([_line("F = ma", 100)], [_line("F = ma", 100, x=900)])[1]
    assert sorted(e.kind for e in events) == ["added", "removed"]


def _read(text: str, confidences: list[float]) -> PageLine:
    line = _line(text, 100)
    line.char_confidences = confidences
    line.confidence = min(confidences, default=0.0)
    return line


def test_only_a_sure_difference_is_a_change() -> None:
    old = _read("第35页 x=13", [1.0] * 8)
    assert sure_difference(old, _read("第36页 x=13", [1.0, 1.0, 0.97, 1.0, 1.0, 1.0, 1.0, 1.0])), "35 → 36, read surely"
    assert not sure_difference(old, _read("第35页x=13", [1.0] * 7)), "spacing is not a change"
    assert not sure_difference(_read("98°C", [1.0] * 4), _read("98℃", [1.0] * 3)), "nor ℃ for °C"
    assert not sure_difference(old, _read("第3S页 x=13", [1.0, 1.0, 0.55, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0][:8])), \
        "an unsure character that reads differently is not a change"
    assert sure_difference(_read("第3S页", [1.0, 1.0, 0.5, 1.0]), _read("第35页", [1.0] * 4)), \
        "a sure reading replaces an unsure one"
    assert sure_difference(old, _read("第35页 x=1", [1.0] * 7)), "a surely read character that is gone"
    assert not sure_difference(_read("第35页 x=13.", [1.0] * 8 + [0.4]), old), "an unsure speck that is gone"


def test_steady_keeps_the_old_text_where_nothing_surely_changed() -> None:
    old = [_read("DATA.DIR", [1.0] * 8), _read("x = 13", [1.0] * 6)]
    old[1].box = [[100, 200], [500, 200], [500, 240], [100, 240]]
    new = [_read("DATA-DIR", [1.0, 1.0, 1.0, 1.0, 0.6, 1.0, 1.0, 1.0]), _read("x = 18", [1.0] * 6)]
    new[1].box = old[1].box
    kept = reconcile(old, new)[0]
    assert [ln.text for ln in kept] == ["DATA.DIR", "x = 18"]
    assert [(e.kind, e.text) for e in reconcile(old, new)[1]] == [("changed", "x = 18")]
