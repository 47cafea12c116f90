"""A lesson exported for reading elsewhere: Markdown (text only: pictures are omitted, the HTML
export holds them) and one self-contained HTML file (pictures inlined as ``data:`` URIs, the style
inline, no script, no other reference), readable offline.

Both hold the title, the date and times, each erase segment's fullest board as text (the
version with the most lines before each erase point, and the fullest since the last one), and
the timeline of lines added, changed and removed with their times, in ``timezone``.
"""

from __future__ import annotations

import base64
import html as html_mod
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_ocr.archive.records import Lesson, Version
from edge_ocr.archive.store import Store

MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")
FONTS = ('system-ui, "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Microsoft YaHei", "PingFang SC", '
         '"Hiragino Sans GB", sans-serif')


@dataclass(frozen=True)
class Board:
    """One erase segment's fullest board: its version, its picture (JPEG bytes or None when none
    arrived) and the erase that ended the segment (None: the lesson's last segment)."""

    version: Version
    picture: bytes | None
    erased_ts: float | None
    removed: int


@dataclass(frozen=True)
class Change:
    ts: float
    kind: str  # "added" | "changed" | "removed"
    text: str
    was: str | None = None  # a changed line's text before


def zone(name: str) -> tzinfo:
    """The exports' clock: an IANA zone, or the machine's when ``name`` is empty."""
    if not name:
        return datetime.now().astimezone().tzinfo or UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"archive timezone {name!r} is not an IANA zone name (e.g. Europe/Paris)") from None


def boards(store: Store, lesson: Lesson) -> list[Board]:
    """The fullest board of each erase segment, in order: the one the store names before each
    erase point, then the fullest version after the last erase (ties: the later, the board as
    left) unless the board was bare the whole segment."""
    out: list[Board] = []
    for erase in lesson.erases:
        version = store.version(erase.fullest_version)
        if version is not None:
            out.append(Board(version, _picture(store, version), erase.ts, erase.removed))
    since = lesson.erases[-1].ts if lesson.erases else float("-inf")
    tail = [v for v in lesson.versions if v.ts >= since]
    if tail:
        fullest = max(reversed(tail), key=lambda v: v.lines)
        version = store.version(fullest.id) if fullest.lines else None
        if version is not None:
            out.append(Board(version, _picture(store, version), None, 0))
    return out


def _picture(store: Store, version: Version) -> bytes | None:
    return store.picture(version.picture) if version.picture else None


def timeline(lesson: Lesson) -> list[Change]:
    """Lines added, changed (a span that ``replaces`` another) and removed, in time order; a
    replaced line's removal is its change, not listed twice."""
    by_id = {s.id: s for s in lesson.spans}
    replaced = {s.replaces for s in lesson.spans if s.replaces is not None}
    changes: list[Change] = []
    for span in lesson.spans:
        if span.replaces is not None and span.replaces in by_id:
            changes.append(Change(span.added_ts, "changed", span.text, by_id[span.replaces].text))
        else:
            changes.append(Change(span.added_ts, "added", span.text))
        if span.removed_ts is not None and span.id not in replaced:
            changes.append(Change(span.removed_ts, "removed", span.text))
    order = {"removed": 0, "changed": 1, "added": 2}  # at one instant: what went, then what came
    return sorted(changes, key=lambda c: (c.ts, order[c.kind]))


def filename(lesson: Lesson, kind: str, tz: tzinfo) -> str:
    """``lesson-<id>-<device>-<YYYYmmdd-HHMM>.<kind>``, ASCII only (a Content-Disposition name)."""
    stamp = datetime.fromtimestamp(lesson.summary.start_ts, tz).strftime("%Y%m%d-%H%M")
    device = re.sub(r"[^A-Za-z0-9._-]+", "_", lesson.summary.device)[:40]
    return f"lesson-{lesson.summary.id}-{device}-{stamp}.{kind}"


def _clock(ts: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M:%S")


def _when(lesson: Lesson, tz: tzinfo) -> str:
    """``2026-12-05, 09:00:00–09:06:00 (Europe/Paris)``, and ", still open" while it goes on."""
    s = lesson.summary
    start = datetime.fromtimestamp(s.start_ts, tz)
    end = datetime.fromtimestamp(s.end_ts, tz)
    days = start.strftime("%Y-%m-%d") + ("" if end.date() == start.date() else " – " + end.strftime("%Y-%m-%d"))
    name = getattr(tz, "key", None) or start.tzname()
    return f"{days}, {start:%H:%M:%S}–{end:%H:%M:%S} ({name})" + (", still open" if s.open else "")


def _board_heading(k: int, board: Board, lesson: Lesson, tz: tzinfo) -> str:
    v = board.version
    lines = len(v.lines)
    ended = ", the last board so far" if lesson.summary.open else ", as the lesson ended"
    if board.erased_ts is not None:
        ended = (f", before the erase at {_clock(board.erased_ts, tz)} ({board.removed} line"
                 f"{'s' if board.removed != 1 else ''} removed)")
    return f"Board {k}: {lines} line{'s' if lines != 1 else ''} at {_clock(v.ts, tz)}{ended}"


def _texts(version: Version) -> list[str]:
    return [str(line.get("text", "")) for line in version.lines]


def md_escape(text: str) -> str:
    """Board text inline in Markdown: characters Markdown would read as markup, backslashed."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def markdown(lesson: Lesson, boards: list[Board], tz: tzinfo) -> str:
    """The lesson as Markdown. Boards are fenced (their text exactly as read); timeline texts
    are escaped. Pictures are omitted: the HTML export inlines them."""
    s = lesson.summary
    out = [f"# {md_escape(s.title)}", "",
           f"- Board: {md_escape(s.device)}",
           f"- When: {_when(lesson, tz)}",
           f"- Versions: {s.versions}, erases: {s.erases}, most lines at once: {s.max_lines}",
           "- Pictures: omitted here (the HTML export holds them)", ""]
    if not boards:
        out += ["No board with text was archived for this lesson.", ""]
    for k, board in enumerate(boards, 1):
        texts = _texts(board.version)
        fence = "`" * max(3, 1 + max((len(m) for t in texts for m in re.findall(r"`+", t)), default=0))
        out += [f"## {_board_heading(k, board, lesson, tz)}", "", fence + "text", *texts, fence, ""]
    out += ["## Timeline", ""]
    changes = timeline(lesson)
    for c in changes:
        what = {"added": "+", "removed": "−", "changed": "~"}[c.kind]
        was = f" (was: {md_escape(c.was)})" if c.was is not None else ""
        out.append(f"- {_clock(c.ts, tz)} {what} {c.kind}: {md_escape(c.text)}{was}")
    if not changes:
        out.append("No line was added or removed.")
    return "\n".join(out) + "\n"


STYLE = f"""
body {{ font: 15px/1.5 {FONTS}; margin: 24px auto; max-width: 980px; color: #222; padding: 0 16px; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
.meta {{ color: #555; }} figure {{ margin: 8px 0; }} img {{ max-width: 100%; border: 1px solid #ccc; }}
ol.board {{ background: #f6f6f2; padding: 10px 10px 10px 36px; border-radius: 6px; }}
table {{ border-collapse: collapse; }} td {{ padding: 2px 10px 2px 0; vertical-align: top; }}
.added {{ color: #0a6b2d; }} .removed {{ color: #a11; text-decoration: line-through; }} .changed {{ color: #7a4d00; }}
.time {{ font-variant-numeric: tabular-nums; color: #555; }}
"""


def html(lesson: Lesson, boards: list[Board], tz: tzinfo) -> str:
    """The lesson as one HTML file: pictures inlined (data: URIs), no script, no external reference."""
    e = html_mod.escape
    s = lesson.summary
    parts = ["<!doctype html>", '<html lang="zh-Hans">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{e(s.title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
             f"<h1>{e(s.title)}</h1>",
             f'<p class="meta">Board {e(s.device)} · {e(_when(lesson, tz))} · {s.versions} versions, '
             f"{s.erases} erases, at most {s.max_lines} lines</p>"]
    if not boards:
        parts.append("<p>No board with text was archived for this lesson.</p>")
    for k, board in enumerate(boards, 1):
        parts.append(f"<h2>{e(_board_heading(k, board, lesson, tz))}</h2>")
        if board.picture is not None:
            data = base64.b64encode(board.picture).decode()
            parts.append(f'<figure><img alt="board {k}" src="data:image/jpeg;base64,{data}"></figure>')
        else:
            parts.append('<p class="meta">No picture of this version was archived.</p>')
        parts.append('<ol class="board">' + "".join(f"<li>{e(t)}</li>" for t in _texts(board.version)) + "</ol>")
    parts.append("<h2>Timeline</h2>")
    changes = timeline(lesson)
    if changes:
        rows = []
        for c in changes:
            was = f' <span class="removed">{e(c.was)}</span> →' if c.was is not None else ""
            rows.append(f'<tr><td class="time">{_clock(c.ts, tz)}</td><td>{c.kind}</td>'
                        f'<td>{was} <span class="{c.kind}">{e(c.text)}</span></td></tr>')
        parts.append("<table>" + "".join(rows) + "</table>")
    else:
        parts.append("<p>No line was added or removed.</p>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
