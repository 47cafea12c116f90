"""What the archive keeps and answers with: plain dataclasses shared by the engines, the web API
and the exports. Times are Unix seconds (float); ``sha256`` names a stored picture (hex)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeviceSummary:
    """A board (one device) as the archive knows it."""

    device: str
    first_seen: float
    last_seen: float
    status: str | None  # last "online"/"offline" on <base>/<device>/status; None: never seen
    health: dict[str, Any] | None  # the last health message, as published
    lessons: int
    versions: int


@dataclass(frozen=True)
class LessonSummary:
    """One lesson: the versions of a board between its start and its end."""

    id: int
    device: str
    title: str  # the timetable's name for the period, else "<device> <local start time>"
    start_ts: float
    end_ts: float  # the last version's time (the lesson may still be open)
    open: bool  # still receiving versions
    ended_by: str | None  # "timetable" | "inactivity" | "wiped" | None while open
    versions: int
    erases: int
    max_lines: int  # lines on the fullest version


@dataclass(frozen=True)
class VersionRef:
    """One published page of a lesson, in order."""

    id: int
    seq: int  # the page's per-device seq
    ts: float
    lines: int
    picture: str | None  # sha256 of its board snapshot, when one arrived


@dataclass(frozen=True)
class Span:
    """A line's life on the board: from the version it appeared in to the one it was gone in."""

    id: int
    text: str
    first_version: int  # VersionRef.id where it appeared
    last_version: int  # the last VersionRef.id that still held it
    added_ts: float
    removed_ts: float | None  # None: still on the board at the lesson's last version
    replaces: int | None  # the Span.id it was changed from (a "changed" event), else None
    box: list[list[float]] | None = None  # where it stood (frame pixels), from its last version


@dataclass(frozen=True)
class ErasePoint:
    """Lines removed between two versions: the fullest board before it can be looked at."""

    ts: float  # the first version without the lines
    fullest_version: int  # the version with the most lines since the previous erase point
    after_version: int
    removed: int  # lines removed


@dataclass(frozen=True)
class Lesson:
    summary: LessonSummary
    versions: list[VersionRef] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    erases: list[ErasePoint] = field(default_factory=list)


@dataclass(frozen=True)
class Version:
    """One version in full: the page as published."""

    id: int
    lesson_id: int
    device: str
    seq: int
    ts: float
    text: str
    lines: list[dict[str, Any]]  # the page's lines as published (text, confidence, box, …)
    picture: str | None


@dataclass(frozen=True)
class Hit:
    """A search result: a line, the lesson and the version where it appeared."""

    device: str
    lesson_id: int
    lesson_title: str
    version_id: int  # where the text first appeared
    ts: float
    text: str
    span_id: int
    score: float  # higher is better
    matches: list[tuple[int, int]]  # [start, end) character offsets of the query in ``text``


def to_dict(record: Any) -> dict[str, Any]:
    """A record as JSON-ready dict (the web API's answers)."""
    return asdict(record)
