"""CTC decoding: greedy and prefix beam search, with per-character confidences.

Works on log-probabilities of shape (T, C) with the blank at index 0. Shared by the
runtime and the training toolchain so that evaluation decodes exactly as the device does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_ocr.recognition.lm import CharBigramLM

NEG_INF = -math.inf


@dataclass(frozen=True)
class Decoded:
    """Class ids of the emitted characters, their confidences and the frames they came from."""

    ids: list[int]
    char_conf: list[float]
    frames: list[int]

    @property
    def confidence(self) -> float:
        """Line confidence: the weakest character's (a line is as wrong as its worst glyph); 0 when
        nothing was read, so that an empty line never looks confident."""
        return min(self.char_conf) if self.char_conf else 0.0


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float32, copy=False)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _collapse(best: np.ndarray, prob: Callable[[int, int], float], blank: int) -> Decoded:
    """Merge repeats and drop blanks from the best class per frame; a character's confidence is
    its best frame's probability."""
    ids, conf, frames = [], [], []
    prev = blank
    for t, k in enumerate(best.tolist()):
        if k != blank and k != prev:
            ids.append(k)
            conf.append(prob(t, k))
            frames.append(t)
        elif k != blank and k == prev and conf:
            conf[-1] = max(conf[-1], prob(t, k))
        prev = k
    return Decoded(ids, conf, frames)


def greedy(log_probs: np.ndarray, blank: int = 0) -> Decoded:
    """Best class per frame, repeats merged, blanks dropped."""
    return _collapse(log_probs.argmax(axis=-1), lambda t, k: float(math.exp(log_probs[t, k])), blank)


def greedy_logits(logits: np.ndarray, blank: int = 0) -> Decoded:
    """``greedy(log_softmax(logits))`` without normalising every frame: the best class is the
    same before and after, so only the frames that emit a character need their softmax (with
    6,625 classes, normalising all frames cost more than a millisecond per line). The best
    class is the frame's maximum, so its probability is 1 / Σ exp(x − max): one pass."""
    x = logits.astype(np.float32, copy=False)
    best = x.argmax(axis=-1)
    rows = np.nonzero(best != blank)[0]
    emitting = x[rows]
    top = emitting[np.arange(len(rows)), best[rows]]
    probs = 1.0 / np.exp(emitting - top[:, None]).sum(axis=-1)
    p_at = dict(zip(rows.tolist(), probs.tolist()))
    return _collapse(best, lambda t, k: float(p_at[t]), blank)


def _logaddexp(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    hi, lo = (a, b) if a > b else (b, a)
    return hi + math.log1p(math.exp(lo - hi))


def beam_search(
    log_probs: np.ndarray,
    beam_width: int = 8,
    blank: int = 0,
    prune: float = -12.0,
    top_k: int = 16,
    lm: CharBigramLM | None = None,
    lm_weight: float = 0.1,
    insertion_bonus: float = 0.5,
) -> Decoded:
    """CTC prefix beam search, optionally with a character bigram language model.

    Each frame only expands classes within ``prune`` (log space) of the frame's best and at
    most ``top_k`` of them: with 6,000+ classes, full expansion would cost seconds per line.
    With ``lm``, every new character adds ``lm_weight``·log P(char | previous) plus
    ``insertion_bonus`` (which offsets the LM's bias towards short outputs).
    Confidence of a character is its best frame posterior along the winning prefix.
    """
    T = log_probs.shape[0]
    # prefix -> (log p ending in blank, log p ending in non-blank)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    best_frame: dict[tuple[int, ...], tuple[list[float], list[int]]] = {(): ([], [])}
    for t in range(T):
        row = log_probs[t]
        if top_k < row.shape[0]:
            cand = np.argpartition(row, -top_k)[-top_k:]
        else:
            cand = np.arange(row.shape[0])
        best = row.max()
        cand = [int(k) for k in cand if row[k] >= best + prune]
        nxt: dict[tuple[int, ...], list[float]] = {}
        nxt_meta: dict[tuple[int, ...], tuple[list[float], list[int]]] = {}
        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            for k in cand:
                p = float(row[k])
                if k == blank:
                    e = nxt.setdefault(prefix, [NEG_INF, NEG_INF])
                    e[0] = _logaddexp(e[0], total + p)
                    nxt_meta.setdefault(prefix, best_frame[prefix])
                    continue
                last = prefix[-1] if prefix else None
                new = prefix + (k,)
                e = nxt.setdefault(new, [NEG_INF, NEG_INF])
                conf, frames = best_frame[prefix]
                if k == last:
                    bonus = 0.0 if lm is None else lm_weight * lm.score(last, k) + insertion_bonus
                    e[1] = _logaddexp(e[1], pb + p + bonus)
                    same = nxt.setdefault(prefix, [NEG_INF, NEG_INF])
                    same[1] = _logaddexp(same[1], pnb + p)
                    meta = nxt_meta.setdefault(prefix, best_frame[prefix])
                    if conf and math.exp(p) > meta[0][-1]:
                        nxt_meta[prefix] = (meta[0][:-1] + [math.exp(p)], meta[1])
                else:
                    bonus = 0.0 if lm is None else lm_weight * lm.score(last, k) + insertion_bonus
                    e[1] = _logaddexp(e[1], total + p + bonus)
                old = nxt_meta.get(new)
                if old is None or (old[0] and math.exp(p) > old[0][-1]):
                    nxt_meta[new] = (conf + [math.exp(p)], frames + [t])
        ranked = sorted(nxt.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)[:beam_width]
        beams = {k: (v[0], v[1]) for k, v in ranked}
        best_frame = {k: nxt_meta[k] for k in beams}
    prefix = max(beams, key=lambda k: _logaddexp(*beams[k]))
    conf, frames = best_frame[prefix]
    return Decoded(list(prefix), conf, frames)
