"""Lessons, spans and erase points from hand-built version sequences; the right answers are
written down from the sequences, not from the code."""

from __future__ import annotations

from edge_ocr.archive.lessons import Line, State, VersionIn, derive, ended_by
from edge_ocr.archive.records import ErasePoint
from edge_ocr.archive.store import LessonRules, Period

MONDAY_8 = 1704096000.0  # 2024-01-01 08:00 UTC, a Monday
RULES = LessonRules(timezone="UTC", inactivity_s=1800, wiped_s=120)


def box(row: int, dx: float = 0) -> list[list[float]]:
    y = 40.0 * row
    return [[dx, y], [200 + dx, y], [200 + dx, y + 24], [dx, y + 24]]


def v(vid: int, ts: float, *lines: tuple[str, int] | tuple[str, int, float]) -> VersionIn:
    """Version ``vid`` (seq = id) at ``ts`` holding (text, row[, x shift]) lines."""
    return VersionIn(vid, vid, ts, tuple(Line(t, box(*rest)) for t, *rest in lines))


def test_inactivity_splits_lessons():
    out = derive("b", [v(1, 0, ("a", 0)), v(2, 60, ("a", 0)), v(3, 1800 + 60, ("a", 0)), v(4, 1860 + 1801, ("a", 0))],
                 RULES)
    assert [d.versions for d in out] == [[1, 2, 3], [4]]  # 1800 s is not yet more than inactivity_s
    assert [d.ended_by for d in out] == ["inactivity", None]


def test_a_wipe_ends_the_lesson_only_when_it_lasts():
    short = derive("b", [v(1, 0, ("a", 0)), v(2, 30), v(3, 30 + 119, ("c", 0))], RULES)
    assert [d.versions for d in short] == [[1, 2, 3]]
    long = derive("b", [v(1, 0, ("a", 0)), v(2, 30), v(3, 100), v(4, 30 + 120, ("c", 0))], RULES)
    assert [d.versions for d in long] == [[1, 2, 3], [4]]  # the empty versions stay with the wiped lesson
    assert long[0].ended_by == "wiped"


def test_timetable_periods_make_lessons():
    rules = LessonRules((Period("Physics", (0,), "08:00", "08:45"), Period("Maths", (1,), "08:00", "09:00")),
                        timezone="UTC", inactivity_s=600)
    ts = [MONDAY_8 - 600, MONDAY_8 + 300, MONDAY_8 + 2000, MONDAY_8 + 2700, MONDAY_8 + 86400 + 60]
    out = derive("b", [v(k + 1, t, ("x", 0)) for k, t in enumerate(ts)], rules)
    # 07:50 alone; 08:05 and 08:33 in Physics (a 28 min gap, more than inactivity_s, does not split
    # a period); 08:45 is past Physics' end; Tuesday 08:01 is Maths.
    assert [d.versions for d in out] == [[1], [2, 3], [4], [5]]
    assert [d.title for d in out][1:4:2] == ["Physics", "Maths"]
    assert out[0].title == "b 2024-01-01 07:50"
    assert [d.ended_by for d in out] == ["timetable", "timetable", "timetable", None]


def test_a_period_for_other_devices_does_not_apply():
    rules = LessonRules((Period("Physics", (0,), "08:00", "08:45", devices=("other",)),), timezone="UTC")
    out = derive("b", [v(1, MONDAY_8 - 60, ("x", 0)), v(2, MONDAY_8 + 60, ("x", 0))], rules)
    assert [d.versions for d in out] == [[1, 2]]


def test_spans_changes_and_erase_points():
    seq = [v(1, 0, ("A", 0), ("B", 1), ("C", 2)),
           v(2, 30, ("A", 0), ("B", 1), ("C", 2), ("D", 3)),
           v(3, 60, ("A", 0), ("B2", 1), ("D", 3)),  # B changed in place, C wiped off
           v(4, 90, ("A", 0), ("B2", 1), ("D", 3), ("E", 4)),
           v(5, 120)]  # all wiped
    (lesson,) = derive("b", seq, RULES)
    life = {s.text: (s.first_version, s.last_version, s.removed_ts) for s in lesson.spans}
    assert life == {"A": (1, 4, 120), "B": (1, 2, 60), "C": (1, 2, 60), "D": (2, 4, 120), "B2": (3, 4, 120),
                    "E": (4, 4, 120)}
    by_text = {s.text: s for s in lesson.spans}
    assert by_text["B2"].replaces == by_text["B"].id
    assert all(s.replaces is None for s in lesson.spans if s.text != "B2")
    # Erase at v3: C removed (B's change is no erase); fullest since the start: v2 (4 lines).
    # Erase at v5: 4 lines removed; fullest since v3: v4 (4 lines).
    assert lesson.erases == [ErasePoint(60, 2, 2, 1), ErasePoint(120, 4, 4, 4)]
    assert lesson.max_lines == 4


def test_a_line_read_in_a_shifted_box_is_the_same_span():
    (lesson,) = derive("b", [v(1, 0, ("same", 0)), v(2, 30, ("same", 0, 150.0))], RULES)
    assert [(s.text, s.first_version, s.last_version, s.removed_ts) for s in lesson.spans] == [("same", 1, 2, None)]
    assert lesson.erases == []


def test_lines_left_on_the_board_at_the_end_are_not_removed():
    out = derive("b", [v(1, 0, ("A", 0)), v(2, 5000, ("Z", 0))], RULES)
    assert [(s.text, s.last_version, s.removed_ts) for s in out[0].spans] == [("A", 1, None)]
    assert out[0].erases == []


def test_the_clock_ends_an_open_lesson():
    state = State(1, "t", None, 0, 100, 1, 1, 1, [], [], wiped_since=None)
    assert ended_by(state, 100 + 1800, "b", RULES) is None
    assert ended_by(state, 100 + 1801, "b", RULES) == "inactivity"
    state.wiped_since = 100
    assert ended_by(state, 100 + 120, "b", RULES) == "wiped"
    assert State.from_json(state.to_json()) == state
