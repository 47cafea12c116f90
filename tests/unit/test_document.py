"""Page diff: lines matched by place; same place with other text is a change."""

from edge_ocr.page.diff import reconcile, reconcile_board, sure_difference
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


def test_a_board_with_someone_in_front_makes_events_only_where_it_is_clean() -> None:
    """``reconcile_board``: a line not found where someone stands stays (occluded), not removed;
    one not found where its own cells are clean is removed even with someone next to it; a new
    line where the board is not clean is held back; a line read differently while hidden keeps
    its text."""
    old = [_line("alpha", 100), _line("beta", 200), _line("gamma", 300), _line("delta 1", 400)]
    new = [_read("delta 7", [0.99] * 7), _line("epsilon", 500)]
    new[0].box = old[3].box
    places = {100: "occluded", 200: "near", 300: "clean", 400: "occluded", 500: "settling"}

    def state(box: list[list[float]]) -> str:
        return places[round(box[0][1])]

    lines, events, held = reconcile_board(old, new, state)
    assert [(e.kind, e.text) for e in events] == [("removed", "beta"), ("removed", "gamma")]
    assert [(ln.text, ln.occluded) for ln in lines] == [("delta 1", True), ("alpha", True)]
    assert [ln.text for ln in held] == ["epsilon"]
    places[500] = "clean"
    places[400] = "clean"
    lines, events, held = reconcile_board(lines, new, state)
    assert [(e.kind, e.text) for e in events] == [("changed", "delta 7"), ("added", "epsilon")] and not held


def _piece(text: str, x0: float, x1: float, y: float = 200, conf: float = 0.97) -> PageLine:
    return PageLine(text, conf, [[x0, y], [x1, y], [x1, y + 40], [x0, y + 40]], 0, [conf] * len(text))


def test_a_line_found_as_two_pieces_next_frame_is_no_edit() -> None:
    """The detector cuts a line at a gap in one frame and not the other: nothing was written or
    erased, so no event either way and the page keeps the one line."""
    whole = [_piece("Bring the red folder", 100, 700, y=100), _piece("Homework due Friday", 100, 700)]
    split = [_piece("Bring the red folder", 100, 700, y=100), _piece("Homework", 100, 330),
             _piece("due Friday", 370, 700)]
    lines, events = reconcile(whole, split)
    assert events == [] and [ln.text for ln in lines] == ["Bring the red folder", "Homework due Friday"]
    lines, events = reconcile(split, whole)  # and joined again in the frame after
    assert events == [] and [ln.text for ln in lines] == ["Bring the red folder", "Homework", "due Friday"]


def test_an_edit_inside_a_line_found_in_pieces_is_one_change() -> None:
    whole = [_piece("Homework due Friday", 100, 700)]
    split = [_piece("Homework", 100, 330), _piece("due Monday", 370, 700)]
    lines, events = reconcile(whole, split)
    assert [(e.kind, e.text, e.previous) for e in events] == [("changed", "Homework due Monday", "Homework due Friday")]
    assert [ln.text for ln in lines] == ["Homework due Monday"]
