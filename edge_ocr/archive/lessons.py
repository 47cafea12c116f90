"""Versions → lessons, spans and erase points: pure functions the engines drive one version at a time.

A device's versions (published pages, in ``seq`` order) group into lessons: one per timetable
period covering them (local time in ``rules.timezone``); outside periods a lesson ends after
``inactivity_s`` without a version, or when the board was wiped clean (a version with no lines)
and stayed so ``wiped_s`` before the next line appeared. Within a lesson, consecutive versions
are compared line by line as the daemon compares frames (``edge_ocr.page.diff``: boxes matched
by overlap, text compared without spacing and compatibility forms): a line kept is the same
*span*; a line at the same place with other text ends its span and opens one that ``replaces``
it; a line gone ends its span and, with the others gone at once, makes an *erase point* that
names the fullest version since the previous one.

The engines keep an open lesson's :class:`State` as JSON and write what a :class:`Sink` is told,
so ingest costs one comparison of two versions, and a late version re-feeds the lesson it falls
in and those after it (:func:`derive` does the same in memory, for tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from edge_ocr.archive.base import LessonRules, Period
from edge_ocr.archive.records import ErasePoint, Span
from edge_ocr.page.diff import MATCH_IOU, comparable, match_boxes

Box = list[list[float]]


@dataclass(frozen=True)
class Line:
    """What lesson derivation needs of a page line: its text and its box (frame pixels)."""

    text: str
    box: Box | None


@dataclass(frozen=True)
class VersionIn:
    """A stored version as derivation sees it."""

    id: int
    seq: int
    ts: float
    lines: tuple[Line, ...]


def page_lines(lines: Sequence[dict[str, Any]]) -> tuple[Line, ...]:
    """A page's published lines (``text``, ``box``) as derivation's :class:`Line` s."""
    return tuple(Line(str(d.get("text", "")), d.get("box") if isinstance(d.get("box"), list) else None)
                 for d in lines)


@dataclass
class State:
    """An open lesson: enough to take its next version without reading the ones before."""

    lesson_id: int
    title: str
    period: str | None  # "<name>|<local date>|<start>" of the timetable period, None outside one
    start_ts: float
    end_ts: float  # the last version's ts
    first_seq: int
    last_seq: int
    last_version: int
    last_lines: list[Line]
    live: list[int]  # span id of each line of the last version
    versions: int = 1
    erases: int = 0
    max_lines: int = 0
    fullest_version: int = 0  # the fullest version since the previous erase point
    fullest_lines: int = 0
    wiped_since: float | None = None  # ts of the first empty version of the current wipe

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> State:
        d = json.loads(text)
        d["last_lines"] = [Line(**x) for x in d["last_lines"]]
        return cls(**d)


class Sink(Protocol):
    """Where derivation writes: the engine's tables, or memory (:class:`MemorySink`)."""

    def begin_lesson(self, title: str, start_ts: float, first_seq: int) -> int: ...

    def end_lesson(self, state: State, ended_by: str) -> None: ...

    def open_span(self, lesson_id: int, text: str, version: int, ts: float, box: Box | None,
                  replaces: int | None) -> int: ...

    def close_span(self, span_id: int, last_version: int, removed_ts: float | None, box: Box | None) -> None: ...

    def erase(self, lesson_id: int, point: ErasePoint) -> None: ...


def local_time(ts: float, timezone: str) -> datetime:
    """``ts`` (Unix seconds) in ``timezone`` (IANA; "" the machine's)."""
    return datetime.fromtimestamp(ts, ZoneInfo(timezone)) if timezone else datetime.fromtimestamp(ts).astimezone()


def covering_period(ts: float, device: str, rules: LessonRules) -> tuple[Period, str] | None:
    """The timetable period covering ``ts`` for ``device`` (start inclusive, end exclusive) and
    its key for that day, else None."""
    t = local_time(ts, rules.timezone)
    hm = t.strftime("%H:%M")
    for p in rules.timetable:
        if t.weekday() in p.weekdays and p.start <= hm < p.end and (not p.devices or device in p.devices):
            return p, f"{p.name}|{t.date().isoformat()}|{p.start}"
    return None


def ended_by(state: State, ts: float, device: str, rules: LessonRules, has_lines: bool = True) -> str | None:
    """Why the lesson in ``state`` is over at ``ts`` (a version at ``ts``, with lines or not, or
    just the clock): "timetable", "inactivity", "wiped", or None while it goes on."""
    period = covering_period(ts, device, rules)
    key = period[1] if period else None
    if state.period or key:
        return "timetable" if key != state.period else None
    if ts - state.end_ts > rules.inactivity_s:
        return "inactivity"
    if has_lines and state.wiped_since is not None and ts - state.wiped_since >= rules.wiped_s:
        return "wiped"
    return None


def match_lines(old: Sequence[Line], new: Sequence[Line]) -> dict[int, tuple[int, bool]]:
    """New line index → (old line index, same text) for the lines found again: first by box
    overlap (:func:`edge_ocr.page.diff.match_boxes`, IoU ≥ ``MATCH_IOU``; other text there is a
    changed line), then lines left over that read the same (:func:`comparable`) wherever they
    stand (a line the detector boxed differently)."""
    oi = [i for i, line in enumerate(old) if line.box]
    ni = [j for j, line in enumerate(new) if line.box]
    out: dict[int, tuple[int, bool]] = {}
    for a, b in match_boxes([old[i].box for i in oi], [new[j].box for j in ni], MATCH_IOU):
        i, j = oi[a], ni[b]
        out[j] = (i, comparable(old[i].text) == comparable(new[j].text))
    used = {i for i, _ in out.values()}
    free: dict[str, list[int]] = {}
    for i, line in enumerate(old):
        if i not in used:
            free.setdefault(comparable(line.text), []).append(i)
    for j, line in enumerate(new):
        if j not in out and free.get(comparable(line.text)):
            out[j] = (free[comparable(line.text)].pop(0), True)
    return out


def start(device: str, v: VersionIn, rules: LessonRules, sink: Sink) -> State:
    """A new lesson whose first version is ``v``: every line opens a span."""
    period = covering_period(v.ts, device, rules)
    title = period[0].name if period else f"{device} {local_time(v.ts, rules.timezone):%Y-%m-%d %H:%M}"
    lesson = sink.begin_lesson(title, v.ts, v.seq)
    live = [sink.open_span(lesson, line.text, v.id, v.ts, line.box, None) for line in v.lines]
    return State(lesson, title, period[1] if period else None, v.ts, v.ts, v.seq, v.seq, v.id, list(v.lines), live,
                 max_lines=len(v.lines), fullest_version=v.id, fullest_lines=len(v.lines),
                 wiped_since=None if v.lines else v.ts)


def advance(state: State, v: VersionIn, sink: Sink) -> None:
    """Take the lesson's next version: spans kept, changed (a new span replacing the old),
    removed and added; an erase point when lines were removed."""
    found = match_lines(state.last_lines, v.lines)
    kept = {i for i, _ in found.values()}
    removed = [i for i in range(len(state.last_lines)) if i not in kept]
    for i in removed:
        sink.close_span(state.live[i], state.last_version, v.ts, state.last_lines[i].box)
    live = []
    for j, line in enumerate(v.lines):
        i, same = found.get(j, (None, False))
        if i is not None and same:
            live.append(state.live[i])
            continue
        if i is not None:  # changed: the old text's life ends here
            sink.close_span(state.live[i], state.last_version, v.ts, state.last_lines[i].box)
        live.append(sink.open_span(state.lesson_id, line.text, v.id, v.ts, line.box,
                                   state.live[i] if i is not None else None))
    if removed:
        sink.erase(state.lesson_id, ErasePoint(v.ts, state.fullest_version, state.last_version, len(removed)))
        state.erases += 1
        state.fullest_version, state.fullest_lines = v.id, len(v.lines)
    elif len(v.lines) >= state.fullest_lines:  # ties: the later version, the more recent board
        state.fullest_version, state.fullest_lines = v.id, len(v.lines)
    state.wiped_since = None if v.lines else (state.wiped_since if state.wiped_since is not None else v.ts)
    state.last_version, state.last_lines, state.live = v.id, list(v.lines), live
    state.end_ts, state.last_seq = v.ts, v.seq
    state.versions += 1
    state.max_lines = max(state.max_lines, len(v.lines))


def finish(state: State, reason: str, sink: Sink) -> None:
    """End the lesson: its lines still on the board keep ``removed_ts`` None."""
    for span, line in zip(state.live, state.last_lines):
        sink.close_span(span, state.last_version, None, line.box)
    sink.end_lesson(state, reason)


def feed(state: State | None, v: VersionIn, device: str, rules: LessonRules, sink: Sink) -> State:
    """The open lesson after ``v``: ``state`` advanced, or (its lesson over, or none) a new one."""
    if state is not None:
        reason = ended_by(state, v.ts, device, rules, bool(v.lines))
        if reason is None:
            advance(state, v, sink)
            return state
        finish(state, reason, sink)
    return start(device, v, rules, sink)


@dataclass
class Derived:
    """One lesson as :class:`MemorySink` holds it."""

    title: str
    start_ts: float
    first_seq: int
    versions: list[int] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    erases: list[ErasePoint] = field(default_factory=list)
    ended_by: str | None = None
    max_lines: int = 0


class MemorySink:
    """Derivation written to lists (ids: lessons and spans numbered from 1)."""

    def __init__(self) -> None:
        self.lessons: list[Derived] = []
        self.spans: dict[int, Span] = {}
        self._lesson_of: dict[int, int] = {}

    def begin_lesson(self, title: str, start_ts: float, first_seq: int) -> int:
        self.lessons.append(Derived(title, start_ts, first_seq))
        return len(self.lessons)

    def end_lesson(self, state: State, ended_by: str) -> None:
        self.lessons[state.lesson_id - 1].ended_by = ended_by

    def open_span(self, lesson_id: int, text: str, version: int, ts: float, box: Box | None,
                  replaces: int | None) -> int:
        sid = len(self.spans) + 1
        self.spans[sid] = Span(sid, text, version, version, ts, None, replaces, box)
        self._lesson_of[sid] = lesson_id
        return sid

    def close_span(self, span_id: int, last_version: int, removed_ts: float | None, box: Box | None) -> None:
        s = self.spans[span_id]
        self.spans[span_id] = Span(s.id, s.text, s.first_version, last_version, s.added_ts, removed_ts, s.replaces, box)

    def erase(self, lesson_id: int, point: ErasePoint) -> None:
        self.lessons[lesson_id - 1].erases.append(point)


def derive(device: str, versions: Iterable[VersionIn], rules: LessonRules) -> list[Derived]:
    """All lessons of ``versions`` (in ``seq`` order); the last one stays open (``ended_by``
    None, its live spans ending at its last version)."""
    sink = MemorySink()
    state: State | None = None
    members: dict[int, list[int]] = {}
    for v in versions:
        state = feed(state, v, device, rules, sink)
        members.setdefault(state.lesson_id, []).append(v.id)
        sink.lessons[state.lesson_id - 1].max_lines = state.max_lines
    if state is not None:
        for span, line in zip(state.live, state.last_lines):
            sink.close_span(span, state.last_version, None, line.box)
    for sid, lesson in sink._lesson_of.items():
        sink.lessons[lesson - 1].spans.append(sink.spans[sid])
    for lid, ids in members.items():
        sink.lessons[lid - 1].versions = ids
    return sink.lessons
