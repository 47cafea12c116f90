"""CER and exact-line accuracy, whitespace removed as in the dev set's convention."""

from __future__ import annotations

import re


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


PUNCT = re.compile(r"[，。、：；！？《》【】（）,.:;!?()\"'“”‘’\-]")


def strip_punct(text: str) -> str:
    return PUNCT.sub("", text)


def score(refs: list[str], hyps: list[str]) -> dict[str, float]:
    """Corpus CER (total edits / total reference characters) and exact-line accuracy."""
    if len(refs) != len(hyps):
        raise ValueError("refs and hyps differ in length")
    edits = chars = exact = 0
    for r, h in zip(refs, hyps):
        r, h = squash(r), squash(h)
        edits += edit_distance(r, h)
        chars += len(r)
        exact += r == h
    return {"cer": edits / max(1, chars), "line_acc": exact / max(1, len(refs)), "lines": len(refs), "chars": chars}
