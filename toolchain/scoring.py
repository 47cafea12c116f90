"""Scoring: line CER, line-matched page CER and bag-of-characters F1, whitespace removed as in
the dev set's convention. Edit distance is rapidfuzz's Levenshtein (C++, identical results)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
from rapidfuzz.distance import Levenshtein


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute all cost 1)."""
    return Levenshtein.distance(a, b)


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


def match_lines(truth: list[str], predicted: list[str]) -> list[tuple[int, int]]:
    """Pairs (truth index, predicted index) of least total cost, each line used at most once.

    A pair costs its edit distance; leaving both lines unpaired costs their two lengths, so a
    pair is only kept when it is cheaper than that (scipy's ``linear_sum_assignment`` over
    the padded square cost matrix).
    """
    from scipy.optimize import linear_sum_assignment

    t, p = [squash(x) for x in truth], [squash(x) for x in predicted]
    n, m = len(t), len(p)
    if not n or not m:
        return []
    big = n + m
    cost = np.zeros((big, big), np.float64)
    for i, a in enumerate(t):
        cost[i, :m] = [edit_distance(a, b) for b in p]
        cost[i, m:] = len(a)
    for j, b in enumerate(p):
        cost[n:, j] = len(b)
    rows, cols = linear_sum_assignment(cost)
    return [(i, j) for i, j in zip(rows, cols) if i < n and j < m and cost[i, j] < len(t[i]) + len(p[j])]


def page_errors(truth: list[str], predicted: list[str]) -> tuple[int, int]:
    """(errors, truth characters) of the line-matched page CER: paired lines cost their edit
    distance, an unpaired truth line or an extra predicted line costs its length."""
    t, p = [squash(x) for x in truth], [squash(x) for x in predicted]
    pairs = match_lines(t, p)
    edits = sum(edit_distance(t[i], p[j]) for i, j in pairs)
    used_t, used_p = {i for i, _ in pairs}, {j for _, j in pairs}
    edits += sum(len(x) for i, x in enumerate(t) if i not in used_t)
    edits += sum(len(x) for j, x in enumerate(p) if j not in used_p)
    return edits, sum(len(x) for x in t)


def page_cer(truth: list[str], predicted: list[str]) -> float:
    """Line-matched page CER (see :func:`page_errors`); can exceed 1 with extra lines."""
    edits, chars = page_errors(truth, predicted)
    return edits / max(1, chars)


def bag_f1(truth: str, predicted: str) -> float:
    """Order-free F1 of the two texts' character multisets (whitespace removed)."""
    a, b = Counter(squash(truth)), Counter(squash(predicted))
    common = sum((a & b).values())
    if not common:
        return 0.0
    precision, recall = common / sum(b.values()), common / sum(a.values())
    return 2 * precision * recall / (precision + recall)
