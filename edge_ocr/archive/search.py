"""Search terms, query plans and ranking, shared by both engines.

Trigram indexes (FTS5 ``trigram``, ``pg_trgm``) cannot answer a one- or two-character Chinese
query (``力``, ``光合``), and a word index cannot answer Chinese at all. So every line (span)
is indexed under its own *terms* in one table ``terms(term, span_id)`` with a B-tree on
``(term, span_id)``, the same on SQLite and PostgreSQL: each CJK character (unigram) and each
pair of neighbouring CJK characters (bigram), and each Latin/digit word lower-cased. A query is
cut the same way; a Latin word matches from the start of a word of the line, the query's last
word as a prefix (a range on the B-tree). Candidate
lines come from the rarest term (counts capped at ``COUNT_CAP`` so a common term costs little),
narrowed by up to ``MAX_TERMS`` others, newest first, at most ``CANDIDATES``; each is then
confirmed by a substring match of the normalised query in the normalised text, which also gives
the match offsets. Ranking (:func:`score`): the whole line is the query, then the query stands
as whole words, then fewer other characters in the line, then recency.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import groupby

COUNT_CAP = 5000  # a term's count is read up to this: enough to tell rare from common
MAX_TERMS = 4  # terms a candidate must hold (the rarest first); the substring check does the rest
CANDIDATES = 1000  # newest candidate lines confirmed and ranked per query
MAX_WORDS = 64  # words a Latin prefix is expanded to; a shorter, commoner prefix reads its range

_WORD = re.compile(r"[^\W_]+")


def is_cjk(ch: str) -> bool:
    """Han, kana, hangul and CJK symbols: scripts written without spaces between words."""
    o = ord(ch)
    return (0x2E80 <= o <= 0x9FFF or 0xAC00 <= o <= 0xD7AF or 0xF900 <= o <= 0xFAFF
            or 0x20000 <= o <= 0x3FFFF)


_PLAIN_SPACE = re.compile(r"\s\s|[^\S ]")


def normalise(text: str) -> tuple[str, list[int]]:
    """``text`` as searched (NFKC, lower case, runs of whitespace as one space) and, for each of
    its characters, the index of the character of ``text`` it came from."""
    low = text.lower()
    if len(low) == len(text) and unicodedata.is_normalized("NFKC", text) and not _PLAIN_SPACE.search(text) \
            and text[:1] != " ":
        return low, list(range(len(text)))  # the common case, one pass in C
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch).lower():
            if c.isspace():
                if not out or out[-1] == " ":
                    continue
                c = " "
            out.append(c)
            where.append(i)
    return "".join(out), where


def _pieces(norm: str) -> list[tuple[str, bool]]:
    """Runs of ``norm``: (CJK run, True) or (Latin/digit word, False). Linear in the length:
    a line of a million characters costs a million steps, not their square."""
    return [("".join(g), cjk) for m in _WORD.finditer(norm) for cjk, g in groupby(m.group(), is_cjk)]


def terms_of(text: str) -> set[str]:
    """The terms a line is indexed under: CJK unigrams and bigrams, Latin/digit words."""
    terms: set[str] = set()
    for run, cjk in _pieces(normalise(text)[0]):
        if cjk:
            terms.update(run)
            terms.update(run[k:k + 2] for k in range(len(run) - 1))
        else:
            terms.add(run)
    return terms


@dataclass(frozen=True)
class Plan:
    """A query as the engines run it: the normalised text to confirm, and its terms."""

    text: str
    exact: tuple[str, ...]  # terms a matching line holds as such (CJK)
    prefixes: tuple[str, ...]  # terms a matching line holds a word starting with (Latin)


def plan(query: str) -> Plan | None:
    """The plan for ``query``; None when it holds nothing searchable (punctuation, spaces)."""
    norm = normalise(query)[0].strip()
    pieces = _pieces(norm)
    if not pieces:
        return None
    exact: set[str] = set()
    prefixes: set[str] = set()
    for k, (run, cjk) in enumerate(pieces):
        if cjk:
            exact.update([run] if len(run) == 1 else (run[i:i + 2] for i in range(len(run) - 1)))
        elif k == len(pieces) - 1:  # the query may end inside a word of the line
            prefixes.add(run)
        else:
            exact.add(run)
    return Plan(norm, tuple(sorted(exact)), tuple(sorted(prefixes)))


def prefix_range(prefix: str) -> tuple[str, str]:
    """[low, high) of the terms starting with ``prefix`` (byte order: the index's collation)."""
    return prefix, prefix + "\U0010ffff"


def matches(text: str, p: Plan, norm: str, where: list[int]) -> list[tuple[int, int]]:
    """[start, end) offsets in ``text`` of each occurrence of the query (none: not a hit);
    ``norm``, ``where``: :func:`normalise` of ``text``."""
    out: list[tuple[int, int]] = []
    k = norm.find(p.text)
    glued = p.text[0].isalnum() and not is_cjk(p.text[0])  # a Latin word matches from a word's start
    while k >= 0:
        if not (glued and k > 0 and norm[k - 1].isalnum() and not is_cjk(norm[k - 1])):
            out.append((where[k], where[k + len(p.text) - 1] + 1))
        k = norm.find(p.text, k + 1)
    return out


def score(text: str, norm: str, p: Plan, found: list[tuple[int, int]], recency: float) -> float:
    """Higher is better: 8 when the line is the query; 4 when every occurrence stands as whole
    words (no letter or digit glued to it; CJK always counts as whole); up to 2 for the share of
    the line the query covers; up to 1 for recency (1: the newest candidate)."""
    norm = norm.strip()
    whole = all((s == 0 or not text[s - 1].isalnum() or is_cjk(text[s - 1]) or is_cjk(text[s]))
                and (e == len(text) or not text[e].isalnum() or is_cjk(text[e]) or is_cjk(text[e - 1]))
                for s, e in found)
    cover = len(p.text) * len(found) / max(len(norm), 1)
    return 8.0 * (norm == p.text) + 4.0 * whole + 2.0 * min(cover, 1.0) + recency
