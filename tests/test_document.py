"""Page diff: lines matched by place; same place with other text is a change."""

from edge_ocr.document import diff
from edge_ocr.page import PageLine


def _line(text: str, y: float, x: float = 100.0) -> PageLine:
    return PageLine(text, 0.9, [[x, y], [x + 400, y], [x + 400, y + 40], [x, y + 40]], 0)


def test_added_removed_changed_and_unchanged() -> None:
    old = [_line("F = ma", 100), _line("homework p.42", 200), _line("quiz friday", 300)]
    new = [_line("F = ma", 102), _line("homework p.43", 201), _line("read chapter 7", 400)]
    events = diff(old, new)
    kinds = sorted((e.kind, e.text, e.previous) for e in events)
    assert kinds == [("added", "read chapter 7", None), ("changed", "homework p.43", "homework p.42"),
                     ("removed", "quiz friday", "quiz friday")]
    assert diff(new, new) == []
    assert [e.kind for e in diff([], new)] == ["added"] * 3
    assert {e.index for e in diff(old, [])} == {0, 1, 2}


def test_same_text_elsewhere_is_a_move_not_a_change() -> None:
    events = diff([_line("F = ma", 100)], [_line("F = ma", 100, x=900)])
    assert sorted(e.kind for e in events) == ["added", "removed"]
