"""Character bigram language model for CTC beam search.

Interpolated bigram: P(b | a) = λ·c(a,b)/c(a) + (1 − λ)·P(b). Only pairs seen in the corpus
are stored; any other pair falls back to (1 − λ)·P(b). Built by ``toolchain/crnn/lm.py`` from the
training split of the package corpora and shipped as a small ``.npz`` beside the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class CharBigramLM:
    def __init__(self, unigram_logp: np.ndarray, pair_keys: np.ndarray, pair_logp: np.ndarray, lam: float) -> None:
        self.num_classes = len(unigram_logp)
        self.unigram = unigram_logp.astype(np.float32)
        self.backoff = (np.log(1.0 - lam) + self.unigram).astype(np.float32)
        order = np.argsort(pair_keys)
        self.keys = pair_keys[order].astype(np.int64)
        self.values = pair_logp[order].astype(np.float32)
        self.lam = lam

    @classmethod
    def load(cls, path: str | Path) -> CharBigramLM:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"language model not found: {path}")
        with np.load(path) as z:
            return cls(z["unigram_logp"], z["pair_keys"], z["pair_logp"], float(z["lam"]))

    def score(self, prev: int | None, k: int) -> float:
        """log P(k | prev); prev None is the start of a line (unigram)."""
        if prev is None:
            return float(self.unigram[k])
        key = prev * self.num_classes + k
        i = int(np.searchsorted(self.keys, key))
        if i < len(self.keys) and self.keys[i] == key:
            return float(self.values[i])
        return float(self.backoff[k])
