"""The archive's rules, errors and results, apart from the ``Store`` interface so the engines
can use them without importing ``store`` (which picks the engines)."""

from __future__ import annotations

from dataclasses import dataclass


class StoreError(RuntimeError):
    """The database failed (gone, full, refused): the message was not stored and must not be
    acknowledged, so the broker delivers it again."""


class MessageError(ValueError):
    """A message that is not what its topic carries (or a picture whose bytes do not hash to its
    ``sha256``): nothing was stored, the database is fine, so acknowledging it loses nothing."""


@dataclass(frozen=True)
class Period:
    """A timetable period: a lesson holds the versions of its devices between start and end."""

    name: str
    weekdays: tuple[int, ...]  # 0 = Monday … 6 = Sunday
    start: str  # "HH:MM", local time (archive.timezone)
    end: str
    devices: tuple[str, ...] = ()  # empty: every device


@dataclass(frozen=True)
class LessonRules:
    """How versions group into lessons: a timetable period when one covers the version, else a
    lesson ends after ``inactivity_s`` without a version, or when the board is wiped clean (a
    version with no lines) and stays so for ``wiped_s``."""

    timetable: tuple[Period, ...] = ()
    timezone: str = ""  # IANA name; "": the machine's
    inactivity_s: float = 1800.0
    wiped_s: float = 120.0


@dataclass(frozen=True)
class Pruned:
    """What ``prune`` removed."""

    lessons: int
    versions: int
    pictures: int
    bytes_before: int
    bytes_after: int
